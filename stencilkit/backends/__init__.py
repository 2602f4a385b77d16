"""Execution backends: each runs generated code on one kind of array."""
