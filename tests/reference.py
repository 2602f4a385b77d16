"""Independent references: apply a kernel with NumPy only, one element at a time.

Nothing here imports stencilkit. ``apply_reference`` pads each input with ``numpy.pad`` in the
mode's NumPy spelling and evaluates the kernel's *Python function* at every element, handing it
array stand-ins whose ``[di, dj]`` reads the padded array relative to the current element; each
read is widened to the accumulator dtype as a NumPy scalar, and the result is converted with the
documented casting rules, written out again here from the policy text.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np

# scipy.ndimage's boundary names -> numpy.pad's
NP_PAD_MODE = {
    "reflect": "symmetric",
    "mirror": "reflect",
    "nearest": "edge",
    "wrap": "wrap",
    "constant": "constant",
}


def pad_index(k: int, n: int, mode: str) -> int | None:
    """Map index ``k`` on an axis of length ``n`` by the mode, from the mode's definition.

    Written as explicit repeated reflection, independently of numpy.pad (which refuses some
    tiny-axis cases) and of stencilkit's closed-form map.
    """
    if 0 <= k < n:
        return k
    if mode == "constant":
        return None
    if mode == "nearest":
        return 0 if k < 0 else n - 1
    if mode == "wrap":
        while k < 0:
            k += n
        while k >= n:
            k -= n
        return k
    if mode == "reflect":  # d c b a | a b c d | d c b a
        while not 0 <= k < n:
            k = -k - 1 if k < 0 else 2 * n - 1 - k
        return k
    if mode == "mirror":  # d c b | a b c d | c b a
        if n == 1:
            return 0
        while not 0 <= k < n:
            k = -k if k < 0 else 2 * n - 2 - k
        return k
    raise ValueError(mode)


class _Rel:
    """Relative-index view of one input at the current element."""

    def __init__(self, arr, center, mode, cval, acc):
        self.arr, self.center, self.mode, self.cval, self.acc = arr, center, mode, cval, acc

    def __getitem__(self, offsets):
        if not isinstance(offsets, tuple):
            offsets = (offsets,)
        idx = []
        for c, o, n in zip(self.center, offsets, self.arr.shape):
            q = pad_index(c + int(o), n, self.mode)
            if q is None:
                return self.acc.type(self.cval)
            idx.append(q)
        return self.acc.type(self.arr[tuple(idx)])


def fma32(w, x, s):
    """``w * x + s`` of float32 values rounded once to float32: C99's ``fmaf``, exactly.

    The product of two float32 values is exact in float64 and its sum with ``s`` rounded to
    float64 is ``t`` with an exact error ``e`` (Knuth's two-sum): ``t + e`` is the exact
    result. Rounding ``t`` to float32 rounds that exact result correctly except where ``t``
    lies halfway between two float32 values and ``e`` is not zero (a second rounding): the
    exact result is then on ``e``'s side of the halfway point.
    """
    w, x, s = np.broadcast_arrays(*(np.asarray(v, np.float32) for v in (w, x, s)))
    with np.errstate(all="ignore"):
        p = w.astype(np.float64) * x.astype(np.float64)
        c = s.astype(np.float64)
        t = p + c
        b = t - p
        e = (p - (t - b)) + (c - b)
        r = t.astype(np.float32)
        toward = np.where(t > r, np.float32(np.inf), np.float32(-np.inf))
        other = np.nextafter(r, toward)
        half = (r.astype(np.float64) + other.astype(np.float64)) / 2
        past = (t == half) & (e != 0) & ((e > 0) == (other > r))
    return np.where(past, other, r)


def cast_result(value, out_dtype: np.dtype):
    """stencilkit's documented conversion of a kernel value to the output dtype."""
    out_dtype = np.dtype(out_dtype)
    value = np.asarray(value)
    if out_dtype == np.bool_:
        return value != 0
    if value.dtype.kind == "f" and out_dtype.kind in "iu":
        info = np.iinfo(out_dtype)
        if np.isnan(value):
            return out_dtype.type(0)
        if value <= info.min:
            return out_dtype.type(info.min)
        if value >= float(info.max):
            return out_dtype.type(info.max)
        return out_dtype.type(int(value))  # truncation toward zero
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return value.astype(out_dtype)[()]  # integers wrap modulo 2**bits


def apply_reference(fn, arrays, params=(), *, ndim, mode="reflect", cval=0, acc=None,
                    out_dtype=None, radius=None):
    """Apply kernel function ``fn`` to the last ``ndim`` axes of ``arrays`` element by element."""
    arrays = [np.asarray(a) for a in arrays]
    if acc is None:
        accs = [np.dtype(np.int64) if a.dtype.kind in "biu" else
                (np.dtype(np.float32) if a.dtype == np.float16 else a.dtype.newbyteorder("="))
                for a in arrays]
        acc = np.result_type(*accs)
    acc = np.dtype(acc)
    out_dtype = np.dtype(out_dtype or arrays[0].dtype).newbyteorder("=")
    shape = arrays[0].shape
    core = shape[len(shape) - ndim:]
    out = np.empty(shape, dtype=out_dtype)
    for bidx in np.ndindex(*shape[: len(shape) - ndim]):
        frames = [a[bidx] for a in arrays]
        for idx in itertools.product(*(range(n) for n in core)):
            if mode == "skip":
                inside = all(r[0] <= i < n - r[1] for i, n, r in zip(idx, core, radius))
                if not inside:
                    out[bidx + idx] = out_dtype.type(cval)
                    continue
            views = [_Rel(f, idx, mode, cval, acc) for f in frames]
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                value = fn(*views, *params)
            out[bidx + idx] = cast_result(value, out_dtype)
    return out
