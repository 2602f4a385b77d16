"""Exit statuses of the ``stencilkit`` command and the error that means "fix the command line"."""

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """A problem with the command line itself (exit status 2), found before any file is touched."""
