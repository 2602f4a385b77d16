"""stencilkit: write a neighbourhood computation once in plain Python, run it at memory speed.

>>> import numpy as np, stencilkit as sk
>>> @sk.stencil
... def laplace(u):
...     return u[-1, 0] + u[1, 0] + u[0, -1] + u[0, 1] - 4 * u[0, 0]
>>> laplace(np.eye(3))
array([[-2.,  2.,  0.],
       [ 2., -4.,  2.],
       [ 0.,  2., -2.]])
"""

from ._chain import Chain, chain
from ._errors import (
    StencilArgumentError,
    StencilError,
    StencilPerformanceWarning,
    StencilTypeError,
)
from ._stencil import Stencil, stencil
from .backends.cuda import cuda_available
from .modes import MODES

__version__ = "0.1.0"

__all__ = [
    "MODES", "Chain", "Stencil", "StencilArgumentError", "StencilError",
    "StencilPerformanceWarning", "StencilTypeError",
    "chain", "cuda_available", "filters", "morphology", "resample", "stencil", "__version__",
]


def __getattr__(name):
    """``sk.filters``, ``sk.morphology`` and ``sk.resample`` load on first use.

    They import Dask only then.
    """
    if name in ("filters", "morphology", "resample"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'stencilkit' has no attribute {name!r}")
