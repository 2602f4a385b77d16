"""Execution backends: each runs generated code on one kind of array."""


def is_dask_array(a) -> bool:
    """True for a dask.array.Array, checked without importing Dask."""
    return type(a).__module__.startswith("dask.array") and hasattr(a, "dask")
