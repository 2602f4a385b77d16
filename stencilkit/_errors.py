"""The exceptions stencilkit raises for bad kernels and bad arguments.

Each is also an instance of the built-in type that scipy.ndimage raises in the same case, so
code written against scipy (``except RuntimeError``, ``pytest.raises(TypeError)``) keeps
working: numpy's ``AxisError(ValueError, IndexError)`` is the pattern.
"""

import numpy as np


class StencilError(ValueError):
    """A kernel that stencilkit cannot compile, or arguments that do not fit it."""


class StencilTypeError(TypeError):
    """A kernel argument or option of the wrong type."""


class StencilArgumentError(StencilError, RuntimeError):
    """Arguments that do not fit one another: where scipy.ndimage raises RuntimeError.

    A per-axis sequence (``size``, ``sigma``, ``origin``, ``mode``, ...) of the wrong length,
    weights or a footprint of the wrong rank, a mode per axis for a window that is not
    separable, a real ``output`` array for a complex result. A StencilError (a ValueError)
    too, so code that catches either keeps working.
    """


class StencilValueTypeError(StencilTypeError, ValueError):
    """A value of the wrong type where a peer raises ValueError (a Gaussian's float radius)."""


class StencilAxisTypeError(StencilValueTypeError):
    """An axis that is not an integer: a TypeError (scipy.ndimage) and a ValueError (dask-image)."""


class StencilAxisError(StencilError, np.exceptions.AxisError):
    """An axis out of range: numpy's ``AxisError`` (a ValueError and an IndexError), as scipy."""


class StencilArgumentTypeError(StencilArgumentError, TypeError):
    """A scalar where an array is needed: a RuntimeError and a TypeError.

    A structuring element of 0 dimensions for an n-d input: scipy.ndimage's rank check raises
    RuntimeError, dask-image TypeError.
    """


class StencilNotImplementedError(StencilError, NotImplementedError):
    """A call that stencilkit cannot do on this kind of array: a NotImplementedError.

    An iteration until nothing changes, on a lazy Dask array (as dask-image raises).
    """


class StencilPerformanceWarning(UserWarning):
    """A call that gives the right answer by a slow route, and how to make it fast.

    A ``generic_filter`` function that numba cannot compile is called from Python for each
    element, as scipy.ndimage does.
    """
