"""NumPy ufuncs on scalars in numba.cuda kernels: the ones numba-cuda's CUDA target lacks.

numba-cuda (0.30) lowers a NumPy ufunc called on scalars inside a kernel through its own
database (``numba.cuda.ufuncs.ufunc_db``), which holds the trigonometric, logarithmic,
comparison, logical, bitwise, minimum/maximum and division ufuncs only (numba's PR #8294 began
it with the trigonometric ones, the rest to follow). ``np.sqrt(x[0, 0])``, ``np.exp``,
``np.abs``, ``np.floor``, ``np.power`` and the others type, then fail to lower with
``KeyError: <ufunc 'sqrt'>``: a kernel using one failed on the numba.cuda fallback of a real
GPU (``tools/cuda_compile_check.py`` found it through ``gaussian_gradient_magnitude``'s square
root; the simulator runs Python and cannot see it).

:func:`install` adds the missing ufuncs' loops, taken from the database numba-cuda vendors for
the CPU's semantics (``numba.cuda.np.ufunc_db``: numba's own loops, as stencilkit's CPU path
computes them), with the float loops of the functions CUDA's libdevice has lowered to libdevice
as numba-cuda lowers ``math``'s (``math.sqrt`` and the others). Only the ufuncs of
:data:`ADDED`, each checked to compile for a device (numba-cuda 0.30.4, NVVM 12.9, sm_80): the
others call the CPU's helper library (``logaddexp``, ``gcd``, ``lcm``) or give IR that NVVM
refuses (``rint``, ``spacing``); ``np.rint`` the code generator routes to
:func:`stencilkit._casts.rint`.
"""

from __future__ import annotations

import functools
import math

import numpy as np

ADDED = ("absolute", "add", "cbrt", "ceil", "copysign", "exp", "exp2", "expm1", "fabs",
         "float_power", "floor", "floor_divide", "fmod", "isfinite", "isinf", "log1p",
         "multiply", "negative", "nextafter", "positive", "power", "reciprocal", "remainder",
         "sign", "signbit", "sqrt", "square", "subtract", "trunc")
"""The ufuncs :func:`install` adds (by NumPy name; ``np.abs`` is ``np.absolute``)."""

# the libdevice function behind each ufunc's float loops (as numba-cuda lowers math's)
_UNARY = {"sqrt": math.sqrt, "exp": math.exp, "exp2": math.exp2, "expm1": math.expm1,
          "log1p": math.log1p, "floor": math.floor, "ceil": math.ceil, "trunc": math.trunc,
          "fabs": math.fabs}
_BINARY = {"power": math.pow, "copysign": math.copysign, "fmod": math.fmod,
           "nextafter": math.nextafter}


@functools.lru_cache(maxsize=None)
def install() -> tuple:
    """Add :data:`ADDED`'s loops to numba-cuda's CUDA ufunc database, once; the names added.

    Nothing when numba-cuda's layout differs from the one this was written against (the
    kernels then fail as before, naming the ufunc).
    """
    try:
        from numba import types
        from numba.cuda import libdevice, ufuncs
        from numba.cuda.mathimpl import (
            get_binary_impl_for_fn_and_ty,
            get_lower_unary_impl,
            get_unary_impl_for_fn_and_ty,
        )
        from numba.cuda.np import ufunc_db as cpu_loops

        db = ufuncs.ufunc_db()
        floats = {"f": types.float32, "d": types.float64}
        added = []
        for name in ADDED:
            ufunc = getattr(np, name)
            if ufunc in db:  # (a later numba-cuda has it)
                continue
            loops = dict(cpu_loops.get_ufunc_info(ufunc))
            for sig in loops:
                ins = sig.split("->")[0]
                if len(set(ins)) != 1 or ins[0] not in floats:
                    continue
                ty = floats[ins[0]]
                if name == "cbrt" and len(ins) == 1:
                    loops[sig] = get_lower_unary_impl(
                        np.cbrt, ty, libdevice.cbrtf if ty == types.float32 else libdevice.cbrt)
                elif name in _UNARY and len(ins) == 1:
                    loops[sig] = get_unary_impl_for_fn_and_ty(_UNARY[name], ty)
                elif name in _BINARY and len(ins) == 2:
                    loops[sig] = get_binary_impl_for_fn_and_ty(_BINARY[name], ty)
            db[ufunc] = loops
            added.append(name)
        return tuple(added)
    except (ImportError, AttributeError, KeyError, TypeError, RuntimeError):
        return ()
