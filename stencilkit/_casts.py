"""The two conversions every generated kernel makes, as numba overloads used by every backend.

``widen(value, acc_marker)`` converts an element read from an input to the accumulator type (the
marker is a zero of that type, so one generated source serves every dtype). ``store_cast(value,
out_array)`` converts the kernel's result to the output's dtype by the rules of
:mod:`stencilkit._dtypes`. They are explicit so that the CPU backend, the CUDA backend and the
CUDA simulator (which follows NumPy scalar promotion) agree bit for bit.
"""

from __future__ import annotations

import numpy as np
from numba import types
from numba.core.errors import TypingError
from numba.extending import overload

# The Python bodies below run only where kernels run as Python: numba's CUDA simulator (compiled
# code, CPU or device, uses the overloads). They follow the overloads' rules exactly, so that the
# simulator gives the compiled backends' bits.

def widen(value, acc_marker):
    """Convert ``value`` to the type of ``acc_marker``."""
    return type(acc_marker)(value)


def store_cast(value, out):
    """Convert ``value`` to ``out.dtype`` by stencilkit's casting rules."""
    target = np.dtype(out.dtype)
    v = np.asarray(value)
    if target.kind == "b":
        return np.bool_(v != 0)
    if v.dtype.kind == "c" and target.kind != "c":
        raise TypeError(
            "the kernel returns a complex value but the output dtype is "
            f"{target}; return .real or abs(...), or pass out_dtype=complex128"
        )
    if v.dtype.kind == "f" and target.kind in "iu":
        info = np.iinfo(target)
        if v != v:
            return target.type(0)
        if v <= float(info.min):
            return target.type(info.min)
        if v >= float(info.max):
            return target.type(info.max)
    with np.errstate(all="ignore"):
        return v.astype(target)[()]


@overload(widen)
def _ol_widen(value, acc_marker):
    target = acc_marker

    def impl(value, acc_marker):
        return target(value)

    return impl


@overload(store_cast)
def _ol_store_cast(value, out):
    target = out.dtype
    if isinstance(target, types.Boolean):

        def to_bool(value, out):
            return value != 0

        return to_bool
    if isinstance(value, types.Complex) and not isinstance(target, types.Complex):
        raise TypingError(
            "the kernel returns a complex value but the output dtype is "
            f"{target}; return .real or abs(...), or pass out_dtype=complex128"
        )
    if isinstance(value, types.Float) and isinstance(target, types.Integer):
        info = np.iinfo(str(target))
        lo, hi = float(info.min), float(info.max)
        scalar = np.dtype(str(target)).type
        lo_i, hi_i = scalar(info.min), scalar(info.max)

        def saturate(value, out):
            if value != value:
                return target(0)
            if value <= lo:
                return lo_i
            if value >= hi:
                return hi_i
            return target(value)

        return saturate
    if not isinstance(value, (types.Number, types.Boolean)):
        raise TypingError(
            f"the kernel returns a value of type {value}, not a number; a stencil kernel must "
            "return one scalar per output element"
        )

    def plain(value, out):
        return target(value)

    return plain


def rint(x):
    """``np.rint`` for the CUDA target (numba-cuda has none): nearest integer, ties to even."""
    return np.rint(x)


@overload(rint)
def _ol_rint(x):
    # Adding and subtracting 2**52 (2**23 for float32) rounds to the nearest integer, ties to
    # even, exactly, in the default rounding mode, for |x| below that; larger values (and NaN,
    # infinities) are integers or themselves already. Types as np.rint: floats keep their type.
    if isinstance(x, types.Float):
        big = np.float32(2.0**23) if x.bitwidth == 32 else np.float64(2.0**52)
        zero = big.dtype.type(0)  # typed: an int literal would promote float32 to float64

        def round_float(x):
            ax = -x if x < 0 else x
            if not ax < big:
                return x
            y = (ax + big) - big
            if x < 0:
                return -y
            return y if y != 0 else x * zero  # keeps the sign of -0.0

        return round_float
    if isinstance(x, (types.Integer, types.Boolean)):

        def round_int(x):
            return np.float64(x)

        return round_int
    return None


def default_acc(arr):  # pragma: no cover - replaced by the overload in compiled code
    """A zero of the default accumulator type for ``arr``'s dtype (see stencilkit._dtypes)."""
    return np.int64(0) if arr.dtype.kind in "biu" else arr.dtype.type(0)


@overload(default_acc)
def _ol_default_acc(arr):
    dt = arr.dtype
    if isinstance(dt, (types.Integer, types.Boolean)):

        def int_acc(arr):
            return np.int64(0)

        return int_acc

    def own(arr):
        return dt(0)

    return own
