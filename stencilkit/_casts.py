"""The conversions generated kernels make, as numba overloads used by every backend.

``widen(value, acc_marker)`` converts an element read from an input to the accumulator type (the
marker is a zero of that type, so one generated source serves every dtype). ``store_cast(value,
out_array)`` converts the kernel's result to the output's dtype by the rules of
:mod:`stencilkit._dtypes`. ``to_int`` and its companions stand for the body's own conversions
of floats to integers (``int()``, ``np.uint8()``, ``math.floor``, ``round``). They are explicit
so that the CPU backend, the CUDA backend and the CUDA simulator (which follows NumPy scalar
promotion) agree bit for bit.
"""

from __future__ import annotations

import numpy as np
from numba import types
from numba.core.errors import TypingError
from numba.extending import overload, register_jitable

# The Python bodies below run only where kernels run as Python: numba's CUDA simulator (compiled
# code, CPU or device, uses the overloads). They follow the overloads' rules exactly, so that the
# simulator gives the compiled backends' bits.

def widen(value, acc_marker):
    """Convert ``value`` to the type of ``acc_marker`` (a float into an integer: :func:`to_int`)."""
    if _is_float(value) and isinstance(acc_marker, np.integer):
        return _saturate(value, acc_marker.dtype)
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
        return _saturate(v[()], target)
    with np.errstate(all="ignore"):
        return v.astype(target)[()]


@overload(widen)
def _ol_widen(value, acc_marker):
    target = acc_marker
    if isinstance(value, types.Float) and isinstance(target, types.Integer):
        return lambda value, acc_marker: to_int(value, target)  # (float data, acc=int)

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
        return lambda value, out: to_int(value, target)  # (saturated, NaN 0)
    if not isinstance(value, (types.Number, types.Boolean)):
        raise TypingError(
            f"the kernel returns a value of type {value}, not a number; a stencil kernel must "
            "return one scalar per output element"
        )

    def plain(value, out):
        return target(value)

    return plain


# -- conversions of floats to integers inside a kernel's body -----------------------------------
#
# numba compiles ``int(x)``, ``np.uint8(x)``, ``math.floor(x)`` and ``round(x)`` of a float as
# LLVM's fptosi/fptoui, whose result is undefined for NaN and for values beyond the integer
# type: x86 gives its "integer indefinite" (``int(1e20)`` is -2**63, ``np.uint8(300.7)`` 44,
# ``np.uint8(-1.5)`` 255), aarch64 and CUDA saturate, NaN 0. The generated kernels route these
# calls through the functions below (:class:`stencilkit.codegen._IntegerOps`; the C++
# path's ``sk_f2i_*``), so that every backend truncates toward zero, saturates at the type's
# limits and gives 0 for NaN, as the result's conversion into an integer output does
# (:func:`store_cast`). Integer and bool arguments convert as numba converts them.


def _saturate(value, dtype):
    """A float ``value`` (Python or NumPy) as an integer ``dtype`` scalar (the rule above)."""
    dtype = np.dtype(dtype)
    info = np.iinfo(dtype)
    if value != value:
        return dtype.type(0)
    if value <= float(info.min):
        return dtype.type(info.min)
    if value >= float(info.max):
        return dtype.type(info.max)
    return dtype.type(value)


def _is_float(value) -> bool:
    return isinstance(value, (float, np.floating))


def to_int(value, kind):
    """``kind(value)`` for an integer type ``kind`` (NumPy's or numba's), floats saturated."""
    dtype = np.dtype(str(kind)) if isinstance(kind, types.Type) else np.dtype(kind)
    if _is_float(value):
        return _saturate(value, dtype)
    with np.errstate(all="ignore"):  # (integers wrap, as compiled code converts them)
        return np.asarray(value).astype(dtype)[()]


def int_(value):
    """``int(value)``, a float truncated into int64 (saturated, NaN 0), as numba types it."""
    if _is_float(value):
        return _saturate(value, np.int64)
    return value if isinstance(value, np.integer) else np.int64(value)  # (numba: same type)


def floor_int(x):
    """``math.floor(x)``: a float's floor as int64 (saturated, NaN 0); an integer itself."""
    return _saturate(np.floor(x), np.int64) if _is_float(x) else _exact_int(x)


def ceil_int(x):
    """``math.ceil(x)``: a float's ceiling as int64 (saturated, NaN 0); an integer itself."""
    return _saturate(np.ceil(x), np.int64) if _is_float(x) else _exact_int(x)


def trunc_int(x):
    """``math.trunc(x)``: a float truncated toward zero as int64 (saturated, NaN 0)."""
    return _saturate(np.trunc(x), np.int64) if _is_float(x) else _exact_int(x)


def round_int(x):
    """``round(x)`` (one argument): a float to the nearest int64, ties to even (saturated)."""
    return _saturate(np.rint(x), np.int64) if _is_float(x) else np.int64(x)


def _exact_int(x):
    """An integer or bool ``x`` itself, typed as numba types ``math.floor(x)``.

    uint64 for unsigned types, int64 for the others (numba's own ``math.floor`` of an integer
    goes through float64: of 2**53 + 1 it gave 2**53).
    """
    unsigned = isinstance(x, np.unsignedinteger)
    return np.uint64(x) if unsigned else np.int64(x)


@overload(to_int)
def _ol_to_int(value, kind):
    target = getattr(kind, "instance_type", None)
    if not isinstance(target, types.Integer):
        return None
    if isinstance(value, types.Float):
        info = np.iinfo(str(target))
        lo, hi = float(info.min), float(info.max)
        scalar = np.dtype(str(target)).type
        lo_i, hi_i = scalar(info.min), scalar(info.max)

        def saturated(value, kind):
            if value != value:
                return target(0)
            if value <= lo:
                return lo_i
            if value >= hi:
                return hi_i
            return target(value)

        return saturated

    def plain(value, kind):
        return target(value)

    return plain


@overload(int_)
def _ol_int(value):
    if isinstance(value, types.Float):
        return lambda value: to_int(value, np.int64)
    return lambda value: int(value)


# A float's floor, ceiling and truncation from its nearest integer (numba-cuda has no np.floor
# on scalars, and math.floor is the conversion itself): exact, since below 2**52 (2**23 for
# float32) rint moves x by at most a half, and beyond that x is an integer already.
@register_jitable
def _floor_float(x):
    r = rint(x)
    return r - 1 if r > x else r


@register_jitable
def _ceil_float(x):
    r = rint(x)
    return r + 1 if r < x else r


def _exact(x, signed_only=False):
    """The integer case of the four below: the value itself, in numba's type for the call.

    (``math.floor`` of an unsigned integer is uint64, of others int64; ``round`` int64.)
    """
    if not isinstance(x, (types.Integer, types.Boolean)):
        return None
    unsigned = isinstance(x, types.Integer) and not x.signed and not signed_only
    target = types.uint64 if unsigned else types.int64
    return lambda x: target(x)


@overload(floor_int)
def _ol_floor_int(x):
    if isinstance(x, types.Float):
        return lambda x: to_int(_floor_float(x), np.int64)
    return _exact(x)


@overload(ceil_int)
def _ol_ceil_int(x):
    if isinstance(x, types.Float):
        return lambda x: to_int(_ceil_float(x), np.int64)
    return _exact(x)


@overload(trunc_int)
def _ol_trunc_int(x):
    if isinstance(x, types.Float):
        return lambda x: to_int(_floor_float(x) if x >= 0 else _ceil_float(x), np.int64)
    return _exact(x)


@overload(round_int)
def _ol_round_int(x):
    if isinstance(x, types.Float):
        return lambda x: to_int(rint(x), np.int64)
    return _exact(x, signed_only=True)


# -- shifts ---------------------------------------------------------------------------------------
#
# numba shifts integers in 64 bits with LLVM's shl/ashr/lshr, whose result is undefined for a
# count outside 0..63: one call gave 0 in its vectorised loop and x86's count modulo 64 in its
# scalar remainder (``501 << 64`` was 0 and 501 in the same output). NumPy's rule instead
# (npy_lshift/npy_rshift; CUDA's shl/shr clamp to it): such a count shifts everything out, 0,
# or the sign for a right shift of a negative value. Counts in range are numba's own shifts.


def shl(a, b):
    """``a << b`` (NumPy's rule: see above; the simulator's NumPy scalars follow it)."""
    return a << b


def shr(a, b):
    """``a >> b`` (NumPy's rule: see above)."""
    return a >> b


def _integral(t) -> bool:
    return isinstance(t, (types.Integer, types.Boolean))


@overload(shl)
def _ol_shl(a, b):
    if not (_integral(a) and _integral(b)):
        return lambda a, b: a << b  # (numba's own error for floats)

    def impl(a, b):
        c = np.uint64(b)  # (a negative count is a huge one, as NumPy's size_t)
        ok = c < np.uint64(64)
        r = a << (c if ok else np.uint64(0))
        return r if ok else r - r

    return impl


@overload(shr)
def _ol_shr(a, b):
    if not (_integral(a) and _integral(b)):
        return lambda a, b: a >> b
    signed = not (isinstance(a, types.Integer) and not a.signed)

    def impl(a, b):
        c = np.uint64(b)
        ok = c < np.uint64(64)
        r = a >> (c if ok else np.uint64(63))  # (63: the sign, for a signed a)
        return r if ok or signed else r - r

    return impl


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
