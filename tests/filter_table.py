"""The filter reference table: every stencilkit filter beside its scipy.ndimage twin.

Used by tests/test_filters.py (correctness over dtypes x modes x parameters x chunkings) and by
benchmarks/filters.py (speed beside scipy and OpenCV), so both check the same calls.

Two independent references:

* scipy.ndimage with the same arguments, for floating-point data (to round-off) and for the
  rank filters (exactly);
* :func:`windows`, a plain NumPy evaluation (pad by the mode's definition in
  tests/reference.py, then a sliding window), for integer data, where stencilkit's rule is the
  exact result rounded to nearest (ties to even) and saturated to the dtype, and scipy's own
  truncation and wrap-around are not followed (see stencilkit.filters).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from reference import pad_index


def windows(a, shape, origins, axes, mode, cval=0):
    """``a.shape + shape``: for every element, its window (padded as the mode says)."""
    pad = a
    for ax, s, o in zip(axes, shape, origins):
        c = s // 2 + o
        n = a.shape[ax]
        mapped = [pad_index(k, n, mode) for k in range(-c, n + s - 1 - c)]
        safe = [0 if m is None else m for m in mapped]
        pad = np.take(pad, safe, axis=ax)
        outside = [i for i, m in enumerate(mapped) if m is None]
        if outside:
            sel = [slice(None)] * pad.ndim
            sel[ax] = outside
            pad[tuple(sel)] = cval
    return sliding_window_view(pad, shape, axis=axes)


def round_even_saturate(value, dtype):
    """The integer-output rule for float values: nearest, ties to even, then the dtype's range."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return np.rint(value) != 0
    info = np.iinfo(dtype)
    return np.clip(np.nan_to_num(np.rint(value)), info.min, info.max).astype(dtype)


def assert_device_result(got, want, exact):
    """A device path's filter result against the CPU's: exact where ``exact`` (integer filters,
    rank filters), else within 1 for integers (another rounding of float sums over large
    windows) and to round-off for floats (another summation order)."""
    assert got.dtype == want.dtype and got.shape == want.shape
    if exact:
        np.testing.assert_array_equal(got, want)
    elif want.dtype.kind in "iu":
        assert np.abs(got.astype(np.int64) - want.astype(np.int64)).max() <= 1
    else:
        np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-4)


def cpu_passes(monkeypatch, fn, a, *args, **kw):
    """``(fn(a, ...) on the CPU, the line passes it ran)``: the plan a filter hands the CPU
    backend (``stencilkit._passes.Passes``), caught on its way, for the device kernels' tests."""
    from stencilkit.backends import cpu

    seen = []
    real = cpu.BACKEND.run_passes

    def spy(passes, arr, out):
        seen.append(passes)
        return real(passes, arr, out)

    monkeypatch.setattr(cpu.BACKEND, "run_passes", spy, raising=False)
    want = fn(a, *args, **kw)
    monkeypatch.undo()
    (plan,) = seen
    return want, plan


def exact_mean(total, n, dtype):
    """Integer sums divided by n: nearest, ties to even, saturated (exact integer arithmetic)."""
    q = total // n
    r = total - q * n
    q = q + ((2 * r > n) | ((2 * r == n) & (q % 2 == 1)))
    info = np.iinfo(dtype)
    return np.clip(q, info.min, info.max).astype(dtype)


def _box(params, ndim):
    size = params.get("size", 3)
    return (size,) * ndim if np.ndim(size) == 0 else tuple(size)


def _origins(params, ndim):
    o = params.get("origin", 0)
    return (o,) * ndim if np.ndim(o) == 0 else tuple(o)


def window_rank(name, params, n):
    """The rank an ordered filter takes of ``n`` values (scipy.ndimage's definitions)."""
    if name == "median_filter":
        return n // 2
    if name == "rank_filter":
        return params["rank"] % n
    p = params["percentile"] + (100 if params["percentile"] < 0 else 0)
    return n - 1 if p == 100 else int(n * p / 100)


def _linear_weights(name, params, ndim):
    if name == "uniform_filter":
        return np.ones(_box(params, ndim), np.int64), np.prod(_box(params, ndim))
    if name == "correlate":
        return np.asarray(params["weights"]), None
    if name == "convolve":
        w = np.asarray(params["weights"])
        return w[(slice(None, None, -1),) * w.ndim], None
    if name == "laplace":
        w = np.zeros((3,) * ndim, np.int64)
        for d in range(ndim):
            for o in (0, 2):
                idx = [1] * ndim
                idx[d] = o
                w[tuple(idx)] += 1
            w[(1,) * ndim] -= 2
        return w, None
    if name in ("sobel", "prewitt"):
        smooth = [1, 2, 1] if name == "sobel" else [1, 1, 1]
        axis = params.get("axis", -1) % ndim
        w = np.array(1)
        for ax in range(ndim):
            w = np.multiply.outer(w, np.array([-1, 0, 1] if ax == axis else smooth))
        return w, None
    raise KeyError(name)


def numpy_reference(name, a, params, mode, cval, out_dtype):
    """The result of filter ``name`` by plain NumPy windows: exact for integer data, float64
    sums for floats."""
    ndim = a.ndim
    if name in ("minimum_filter", "maximum_filter", "median_filter", "rank_filter",
                "percentile_filter"):
        fp = params.get("footprint")
        fp = np.ones(_box(params, ndim), bool) if fp is None else np.asarray(fp, bool)
        win = windows(a, fp.shape, _origins(params, ndim), tuple(range(ndim)), mode, cval)
        vals = win[..., fp]
        if name == "minimum_filter":
            return vals.min(axis=-1).astype(out_dtype)
        if name == "maximum_filter":
            return vals.max(axis=-1).astype(out_dtype)
        ordered = np.sort(vals, axis=-1)[..., window_rank(name, params, vals.shape[-1])]
        if a.dtype.kind == "f":
            ordered = np.where(np.isnan(vals).any(axis=-1), np.nan, ordered)
        return ordered.astype(out_dtype)
    w, divisor = _linear_weights(name, params, ndim)
    origins = _origins(params, ndim)
    if name == "convolve":
        origins = tuple(-o - (1 - s % 2) for o, s in zip(origins, w.shape))
    if a.dtype.kind == "f":  # float data: the same windows in float64
        win = windows(a.astype(np.float64), w.shape, origins, tuple(range(ndim)), mode, cval)
        total = (win * w).sum(axis=tuple(range(-ndim, 0)))
        return (total if divisor is None else total / divisor).astype(out_dtype)
    win = windows(a.astype(np.int64), w.shape, origins, tuple(range(ndim)), mode, int(cval))
    total = (win * w.astype(np.int64)).sum(axis=tuple(range(-ndim, 0)))
    if divisor is not None:
        return exact_mean(total, int(divisor), out_dtype)
    info = np.iinfo(out_dtype)
    return np.clip(total, info.min, info.max).astype(out_dtype)


@dataclass(frozen=True)
class Entry:
    """One filter: its name (the same in stencilkit.filters and scipy.ndimage) and the
    parameter sets that tests and benchmarks use."""

    name: str
    params: tuple = ()
    rank: bool = False  # min/max/median: exact for every dtype
    exact_ints: bool = True  # integer data has an exact NumPy reference
    cv2: object = field(default=None, compare=False)  # benchmarks: OpenCV's equivalent

    def stencilkit(self, a, params, **kw):
        from stencilkit import filters

        return getattr(filters, self.name)(a, **params, **kw)

    def scipy(self, a, params, **kw):
        import scipy.ndimage as ndi

        return getattr(ndi, self.name)(a, **params, **kw)


def _cv2_blur(a, size):
    import cv2

    return cv2.blur(a, (size, size), borderType=cv2.BORDER_REFLECT)


TABLE = (
    Entry("uniform_filter", ({"size": 3}, {"size": (2, 5), "origin": (0, 1)}, {"size": 7})),
    Entry("gaussian_filter", ({"sigma": 1.0}, {"sigma": (0.5, 2.0), "truncate": 3.0}),
          exact_ints=False),
    Entry("correlate", ({"weights": np.array([[1, -2, 0], [3, 1, -1], [0, 2, 1]])},
                        {"weights": np.array([[0.25, 0.5], [-0.5, 1.0]])}),
          exact_ints=False),
    Entry("convolve", ({"weights": np.array([[1, 2], [0, -1], [3, 1]]), "origin": (0, -1)},)),
    Entry("laplace"),
    Entry("sobel", ({"axis": 0}, {"axis": 1})),
    Entry("prewitt", ({"axis": -1},)),
    Entry("minimum_filter", ({"size": 3}, {"footprint": np.array([[0, 1, 0], [1, 1, 1],
                                                                  [0, 1, 0]], bool)}),
          rank=True),
    Entry("maximum_filter", ({"size": (3, 2), "origin": (1, 0)}, {"size": 9}), rank=True),
    Entry("median_filter", ({"size": 3}, {"footprint": np.array([[1, 0, 1], [0, 1, 0],
                                                                 [1, 1, 1]], bool)}),
          rank=True),
    Entry("rank_filter", ({"rank": -3, "footprint": np.array([[1, 1, 0], [1, 1, 1],
                                                              [0, 1, 1]], bool)},),
          rank=True),
    Entry("percentile_filter", ({"percentile": 30, "size": (3, 4), "origin": (0, 1)},),
          rank=True),
)


@functools.lru_cache(maxsize=None)
def entry(name: str) -> Entry:
    return next(e for e in TABLE if e.name == name)
