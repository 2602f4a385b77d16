"""The one dtype policy: which dtypes are accepted, what they are computed in, what comes out.

Every entry point calls :func:`resolve` before anything is compiled, and the tests assert its
table directly, so the policy is written down once:

* accepted inputs: bool, signed and unsigned integers of 8 to 64 bits, float16/32/64,
  complex64/128, in either byte order;
* computed in: each element read is widened to the accumulator dtype ``acc``: int64 for bool and
  integer inputs (so ``int8`` sums never wrap and ``uint8`` differences go negative), the input's
  own type for float32/64 and complex, float32 for float16 (numba has no float16 arithmetic on
  the CPU); with several inputs, the NumPy promotion of their accumulators;
* returned as: ``out_dtype``, by default the first input's dtype (in native byte order).  The
  kernel's value is converted by :func:`stencilkit._casts.store_cast`: integer to integer wraps
  modulo 2**bits as NumPy's ``astype`` does, float to integer truncates toward zero and
  saturates at the type's limits (NaN gives 0), anything to bool is ``value != 0``; the body's
  own conversions of floats to integers follow the same rule (:func:`stencilkit._casts.to_int`).
"""

from __future__ import annotations

import functools
import struct

import numpy as np

_KINDS = "biufc"


_PLAIN = frozenset((int, str, type(None)))  # (their == already tells what differs)


def exact_key(v):
    """``v`` as part of a cache key under which equal keys compute the same.

    Python compares ``0.0 == -0.0`` and ``1 == 1.0 == True`` (with equal hashes), so a cache
    keyed by a cval or a weight would hand a call with ``cval=-0.0`` what it worked out for
    ``0.0`` (its zeros' signs), and one with ``size=True`` (an error) what ``size=1`` gave.
    Floats, bools and NumPy scalars count here by type and bits, tuples element by element
    (NaN then matches itself); other values stay as they are.
    """
    t = type(v)
    if t is float:
        return t, v.hex()
    if t is bool:  # (True == 1: size=True is an error, size=1 is not)
        return t, v
    if isinstance(v, np.generic):
        return v.dtype.str, v.tobytes()
    if isinstance(v, tuple):
        first = type(v[0]) if v else None
        if (first is float or first is np.float64) and all(type(x) is first for x in v):
            return t, first, struct.pack(f"{len(v)}d", *v)  # (weights: one pack, not n keys)
        return t, tuple(x if type(x) in _PLAIN else exact_key(x) for x in v)
    if t is complex:
        return t, v.real.hex(), v.imag.hex()
    return v


def remember(cache: dict, key, value, most: int = 1024) -> None:
    """``cache[key] = value``, emptying ``cache`` first when it holds ``most`` entries.

    The bound of the library's per-configuration caches (keys from :func:`exact_key`).
    """
    if len(cache) >= most:
        cache.clear()
    cache[key] = value


@functools.lru_cache(maxsize=256)
def needs_rounding(src: np.dtype, dst: np.dtype) -> bool:
    """Whether values of ``src`` stored into the integer ``dst`` need the filters' rule.

    The filters' integer outputs are the exact result rounded to nearest (ties to even) and
    saturated to the output's range, NaN as 0 (:func:`saturate`); NumPy's ``astype`` wraps
    and truncates instead, so it may convert only where every ``src`` value fits.
    """
    dst = np.dtype(dst)
    return dst.kind in "iu" and not np.can_cast(src, dst, "safe")


def saturate(x, dtype):
    """``x`` (a NumPy or CuPy array) in the integer ``dtype`` by the filters' rule.

    Floats: nearest integer, ties to even; NaN 0; beyond the type's range its limit. Integers:
    clipped to the range. A new array of ``x``'s kind. Bool, as the range [0, 1]: True where
    that integer is at least 1.
    """
    import sys

    xp = sys.modules["cupy"] if type(x).__module__.startswith("cupy") else np
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        if x.dtype.kind == "b":
            return x.copy()
        return (xp.rint(x) if x.dtype.kind == "f" else x) >= 1  # (NaN: False)
    info = np.iinfo(dtype)
    if x.dtype.kind == "f":
        v = xp.rint(x)
        high = v >= float(info.max)  # (float(2**63 - 1) is 2**63: compared, never converted)
        low = v <= float(info.min)
        v = xp.where(high | low | (v != v), 0, v).astype(dtype)
        return xp.where(high, dtype.type(info.max), xp.where(low, dtype.type(info.min), v))
    if x.dtype.kind == "b":
        return x.astype(dtype)
    src = np.iinfo(x.dtype)
    return xp.clip(x, max(info.min, src.min), min(info.max, src.max)).astype(dtype)


def check_dtype(dtype: np.dtype, what: str, where: str) -> np.dtype:
    """Return ``dtype`` if stencilkit computes on it, else raise a TypeError saying what to do."""
    dtype = np.dtype(dtype)
    if dtype.kind not in _KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise TypeError(
            f"{where}: {what} has dtype {dtype!r}, which stencils cannot compute on; "
            "use a bool, integer, float or complex array (convert with .astype(...))"
        )
    if dtype.kind == "f" and dtype.itemsize > 8 or dtype.kind == "c" and dtype.itemsize > 16:
        raise TypeError(
            f"{where}: {what} has dtype {dtype!r} (extended precision), which numba cannot "
            "compile; convert it with .astype(np.float64)"
        )
    return dtype


def work_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype an input is handed to compiled code in: native byte order, float16 as float32."""
    dtype = np.dtype(dtype).newbyteorder("=")
    if dtype == np.float16:
        return np.dtype(np.float32)
    return dtype


def default_acc(dtype: np.dtype) -> np.dtype:
    """The accumulator an input's reads are widened to when ``acc`` is not given."""
    dtype = np.dtype(dtype)
    if dtype.kind in "biu":
        return np.dtype(np.int64)
    return work_dtype(dtype)


@functools.lru_cache(maxsize=1024)
def resolve(
    dtypes: tuple,
    acc=None,
    out_dtype=None,
    where: str = "stencil",
    names: tuple = (),
) -> tuple:
    """Return ``(acc, out_dtype, work_dtypes)`` for inputs of ``dtypes`` and the user's options.

    ``work_dtypes`` are the dtypes the inputs are handed to compiled code in. Raises TypeError
    for a dtype that cannot be computed on. Cached: it runs on every call of a stencil.
    """
    names = names or tuple(f"input {i}" for i in range(len(dtypes)))
    dtypes = tuple(check_dtype(d, f"array {n!r}", where) for d, n in zip(dtypes, names))
    if acc is None:
        acc = np.result_type(*(default_acc(d) for d in dtypes))
    else:
        acc = check_dtype(acc, "acc", where)
        if acc == np.float16:
            raise TypeError(f"{where}: acc=float16 is not supported; use float32")
    acc = acc.newbyteorder("=")
    if out_dtype is None:
        out_dtype = dtypes[0]
    else:
        out_dtype = check_dtype(out_dtype, "out_dtype", where)
    work = tuple(work_dtype(d) for d in dtypes)
    return np.dtype(acc), np.dtype(out_dtype).newbyteorder("="), work
