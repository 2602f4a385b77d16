"""stencilkit.filters against scipy.ndimage and exact NumPy references, NumPy and Dask.

Every (filter, parameters) in tests/filter_table.py runs over dtypes x the five scipy modes x
(NumPy, Dask with uneven chunks smaller than the window). The kernels are compiled once per
(configuration, dtype); modes and chunkings reuse them.
"""

import numpy as np
import pytest
import scipy.ndimage as ndi
from filter_table import TABLE, entry, exact_mean, numpy_reference, round_even_saturate
from kernels import sample

from stencilkit import StencilError, StencilTypeError, filters
from stencilkit.backends import cpu_lines as _lines

da = pytest.importorskip("dask.array")

MODES = ["reflect", "mirror", "nearest", "wrap", "constant"]
DTYPES = [np.uint8, np.int16, np.float32, np.float64]
SHAPE = (13, 17)
CHUNKS = ((4, 1, 6, 2), (2, 9, 6))  # uneven, some smaller than every window's reach
CASES = [(e.name, i) for e in TABLE for i in range(max(1, len(e.params)))]
# What the README's "combinations compared" figure counts.
COMBINATIONS = len(CASES) * len(DTYPES) * len(MODES) * 2


def _params(name, i):
    e = entry(name)
    return e, (e.params[i] if e.params else {})


def _cval(mode, dtype):
    if mode != "constant":
        return {}
    return {"cval": 7 if np.dtype(dtype).kind in "iu" else 1.5}


def expected(e, a, params, kw):
    """The reference result for ``a`` (see tests/filter_table.py for the two references)."""
    mode, cval = kw["mode"], kw.get("cval", 0)
    if a.dtype.kind in "iu" and e.exact_ints:
        return numpy_reference(e.name, a, params, mode, cval, a.dtype)
    if e.name in ("sobel", "prewitt") and cval:
        # scipy pads its second (smoothing) pass with cval again, not with the derivative of
        # the padded array; stencilkit filters the padded array itself
        return numpy_reference(e.name, a, params, mode, cval, a.dtype)
    if a.dtype.kind in "iu":
        return round_even_saturate(e.scipy(a.astype(np.float64), params, **kw), a.dtype)
    return e.scipy(a, params, **kw)


def check(e, a, got, want, ref_float=None):
    assert got.dtype == a.dtype and got.shape == a.shape
    if a.dtype.kind in "iu" and not e.exact_ints:
        # rounding of a float result: only exact ties may land either side
        diff = got.astype(np.int64) - want.astype(np.int64)
        frac = np.abs(np.abs(ref_float - np.floor(ref_float)) - 0.5)
        assert np.all((diff == 0) | ((np.abs(diff) == 1) & (frac < 1e-9)))
    elif a.dtype.kind in "iu" or e.rank:
        np.testing.assert_array_equal(got, want)
    else:
        scale = float(np.abs(a).max()) * 4
        tol = 2e-6 if a.dtype == np.float32 else 1e-12
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name,i", CASES, ids=[f"{n}-{i}" for n, i in CASES])
def test_filter_matches_reference_every_mode_numpy_and_dask(name, i, dtype):
    e, params = _params(name, i)
    a = sample(SHAPE, dtype)
    x = da.from_array(a, chunks=CHUNKS)
    for mode in MODES:
        kw = {"mode": mode, **_cval(mode, dtype)}
        got = e.stencilkit(a, params, **kw)
        want = expected(e, a, params, kw)
        ref_float = None
        if a.dtype.kind in "iu" and not e.exact_ints:
            ref_float = e.scipy(a.astype(np.float64), params, **kw)
        check(e, a, got, want, ref_float)
        lazy = e.stencilkit(x, params, **kw)
        assert isinstance(lazy, da.Array) and lazy.chunks == x.chunks
        chunked = lazy.compute(scheduler="sync")
        if a.dtype.kind == "f" and not e.rank:
            # running sums start where a chunk's region starts: round-off differs (item 24)
            tol = 1e-5 if a.dtype == np.float32 else 1e-12
            np.testing.assert_allclose(chunked, got, rtol=tol,
                                       atol=tol * float(np.abs(a).max()))
        else:
            np.testing.assert_array_equal(chunked, got)


def test_integer_results_round_and_saturate_where_scipy_truncates_and_wraps():
    a = np.array([1, 1, 0, 0], np.uint8)
    assert ndi.uniform_filter(a, 3, mode="constant").tolist() == [0, 0, 0, 0]
    assert filters.uniform_filter(a, 3, mode="constant").tolist() == [1, 1, 0, 0]  # 2/3 -> 1
    ties = np.array([1, 2, 3, 4], np.uint8)  # pair means 1.5, 2.5, 3.5: ties to even
    assert filters.uniform_filter(ties, 2, mode="nearest").tolist() == [1, 2, 2, 4]
    peak = np.array([0, 10, 0], np.uint8)
    assert ndi.laplace(peak).tolist() == [10, 236, 10]
    assert filters.laplace(peak).tolist() == [10, 0, 10]  # -20 saturates to 0
    assert filters.laplace(peak, output=np.int16).tolist() == [10, -20, 10]
    edge = np.tile(np.array([0, 0, 255, 255], np.uint8), (3, 1))
    assert filters.sobel(edge, axis=1).max() == 255  # 1020 saturates
    assert filters.sobel(edge, axis=1, output=np.int32).max() == 1020
    wide = np.array([-5, 300], np.int16)  # rank filters too (the README's examples)
    assert ndi.maximum_filter(wide, 1, output=np.uint8).tolist() == [251, 44]
    assert filters.maximum_filter(wide, 1, output=np.uint8).tolist() == [0, 255]
    frac = np.array([2.7, -1.6], np.float32)
    assert ndi.median_filter(frac, 1, output=np.int16).tolist() == [2, -1]
    assert filters.median_filter(frac, 1, output=np.int16).tolist() == [3, -2]


def test_large_windows_run_as_separable_passes_and_stay_exact():
    a = sample((40, 37), np.int16)
    for size in [(7, 5), 9]:
        want = numpy_reference("uniform_filter", a, {"size": size}, "reflect", 0, a.dtype)
        np.testing.assert_array_equal(filters.uniform_filter(a, size), want)
        kw = {"mode": "constant", "cval": -3}
        want = numpy_reference("uniform_filter", a, {"size": size}, "constant", -3, a.dtype)
        np.testing.assert_array_equal(filters.uniform_filter(a, size, **kw), want)
        for name in ("minimum_filter", "maximum_filter"):
            got = getattr(filters, name)(a, size=size, mode="wrap")
            np.testing.assert_array_equal(got, getattr(ndi, name)(a, size=size, mode="wrap"))
    # the one-sweep box divides in float32 where every sum is below 2**23 (the quotient then
    # rounds exactly, ties to even included): full-range int16 data with windows just under
    # (255 elements: 8.36e6) and over (256: 8.39e6) that bound, and even counts (ties)
    rng = np.random.default_rng(8)
    b = rng.choice(np.array([-32768, 32767, -1, 0, 1, 3], np.int16), (41, 52))
    b[:20] = rng.integers(-32768, 32768, (20, 52))
    for size in [(15, 17), (16, 16), (2, 16), (4, 8)]:
        for mode, cval in [("reflect", 0), ("constant", -32768)]:
            want = numpy_reference("uniform_filter", b, {"size": size}, mode, cval, b.dtype)
            got = filters.uniform_filter(b, size, mode=mode, cval=cval)
            np.testing.assert_array_equal(got, want, err_msg=f"{size} {mode}")
    # the hard cases: one cell off the dtype's extreme per window, by the amounts d for which
    # a float32 division would round the mean wrongly (found here; none exist for sums below
    # 2**23, as the proof says: int16 15x17), else 100..199; uint16 17x17 sums exceed 2**23 and
    # have such d, so a looser bound in box2_pass fails here
    for dtype, base, sign in [(np.int16, 32767, -1), (np.int16, -32768, 1),
                              (np.uint16, 65535, -1)]:
        for size in [(15, 17), (17, 17)]:
            n = size[0] * size[1]
            d = np.arange(4000)
            total = n * base + sign * d
            f32 = np.rint(np.float32(total) / np.float32(n))
            hard = d[f32 != (2 * total + n) // (2 * n)]  # exact rounding (n odd: no ties)
            if n * max(abs(base), abs(base + sign * 3999)) < 2**23:
                assert len(hard) == 0
            c = np.full((180, 180), base, dtype)
            c[9::18, 9::18] = (base + sign * np.r_[hard, 100:200][:100]).reshape(10, 10)
            want = numpy_reference("uniform_filter", c, {"size": size}, "nearest", 0, c.dtype)
            np.testing.assert_array_equal(filters.uniform_filter(c, size, mode="nearest"), want)
    f = sample((30, 33), np.float64)
    np.testing.assert_allclose(filters.gaussian_filter(f, 2.5, mode="mirror"),
                               ndi.gaussian_filter(f, 2.5, mode="mirror"), rtol=1e-12, atol=1e-9)


def test_windows_larger_than_the_array_and_tiny_arrays():
    for shape in [(1,), (2,), (1, 3), (2, 2)]:
        a = sample(shape, np.float64)
        for mode in MODES:
            np.testing.assert_allclose(filters.uniform_filter(a, 5, mode=mode),
                                       ndi.uniform_filter(a, 5, mode=mode), atol=1e-12)
            # scipy 1.17 returns garbage here for the (2,) array (gh-23075): NumPy reference
            np.testing.assert_array_equal(
                filters.median_filter(a, 5, mode=mode),
                numpy_reference("median_filter", a, {"size": 5}, mode, 0, a.dtype))
    for shape in [(0,), (0, 5), (3, 0)]:
        a = np.zeros(shape, np.uint8)
        for fn in (filters.uniform_filter, filters.median_filter, filters.laplace):
            got = fn(a) if fn is filters.laplace else fn(a, size=3)
            assert got.shape == shape and got.dtype == np.uint8


def test_integer_extremes_and_nan_in_rank_filters():
    for dtype in (np.int64, np.uint64):
        info = np.iinfo(dtype)
        a = np.array([info.max, info.min, info.max - 1, info.min + 1, 5], dtype)
        for name in ("minimum_filter", "maximum_filter", "median_filter"):
            # scipy rounds int64 through double here (scipy #11816): NumPy reference
            np.testing.assert_array_equal(
                getattr(filters, name)(a, size=3),
                numpy_reference(name, a, {"size": 3}, "reflect", 0, a.dtype))
    f = np.arange(12.0)
    f[5] = np.nan
    for name in ("minimum_filter", "maximum_filter", "median_filter", "uniform_filter"):
        got = getattr(filters, name)(f, size=3)
        assert np.isnan(got[4:7]).all()  # exactly the windows that hold the NaN
        assert not np.isnan(np.delete(got, [4, 5, 6])).any()


def test_strided_byteswapped_readonly_input_and_output_aliasing():
    base = sample((20, 30), np.float64)
    want = ndi.gaussian_filter(base[::2, ::-3], 1.2)
    np.testing.assert_allclose(filters.gaussian_filter(base[::2, ::-3], 1.2), want, atol=1e-9)
    swapped = base.astype(">f8")
    swapped.flags.writeable = False
    np.testing.assert_allclose(filters.uniform_filter(swapped, 3), ndi.uniform_filter(base, 3),
                               atol=1e-12)
    b = base.copy()
    want = ndi.uniform_filter(base, 5)
    assert filters.uniform_filter(b, 5, output=b) is b  # separable passes, in place
    np.testing.assert_allclose(b, want, atol=1e-12)
    c = sample((9, 9), np.uint8)
    want = filters.median_filter(c, 3)
    filters.median_filter(c, 3, output=c)
    np.testing.assert_array_equal(c, want)


def test_axes_and_complex_input():
    a = sample((4, 9, 11), np.float64)
    np.testing.assert_allclose(filters.uniform_filter(a, 3, axes=(1, 2)),
                               ndi.uniform_filter(a, 3, axes=(1, 2)), atol=1e-12)
    np.testing.assert_allclose(filters.gaussian_filter(a, 1.0, axes=(0, 2)),
                               ndi.gaussian_filter(a, 1.0, axes=(0, 2)), atol=1e-12)
    z = sample((8, 9), np.complex128)
    for fn in ("correlate", "convolve"):  # complex weights: scipy's conjugation rule
        np.testing.assert_allclose(getattr(filters, fn)(z, [[1, 2j], [0.5, 1]]),
                                   getattr(ndi, fn)(z, [[1, 2j], [0.5, 1]]), atol=1e-12)


BAD_CALLS = [
    (lambda a: filters.uniform_filter(a, -2), StencilError, r"size must be >= 0"),
    (lambda a: filters.median_filter(a, (0, 3)), RuntimeError, r"size 0 along an axis"),
    (lambda a: filters.uniform_filter(a, 2.5), StencilTypeError, r"size must be integers"),
    (lambda a: filters.uniform_filter(a, 3.0), TypeError, r"3.0 cannot be interpreted as an"),
    (lambda a: filters.uniform_filter(a, (3, 3, 3)), RuntimeError, r"size has 3 values"),
    (lambda a: filters.uniform_filter(a, (3, 3, 3)), StencilError,
     r"sequence argument must have length equal to input rank"),
    (lambda a: filters.correlate(a, np.ones((3, 3)), origin=0.0), TypeError,
     r"origin must be integers"),
    (lambda a: filters.uniform_filter(a, 3, origin=2), StencilError, r"origin 2 is outside"),
    (lambda a: filters.uniform_filter(a, 3, mode="edge"), StencilError, r"unknown mode 'edge'"),
    (lambda a: filters.correlate(a, np.ones((2, 2)), mode=["wrap", "nearest"]), RuntimeError,
     r"one mode per axis"),
    (lambda a: filters.median_filter(a, 3, mode=["wrap", "wrap"]), RuntimeError,
     r"one mode per axis is only supported where the rank is the window's smallest"),
    (lambda a: filters.uniform_filter(a, 3, axes=(0, 0)), StencilError,
     r"axes must be unique; \(0, 0\) names an axis twice"),
    (lambda a: filters.uniform_filter(a, 3, axes=(1.0,)), TypeError, r"cannot be interpreted"),
    (lambda a: filters.sobel(a, axis=1.0), ValueError, r"axis must be an int"),
    (lambda a: filters.uniform_filter(a, 3, axes=(2,)), StencilError, r"out of range"),
    (lambda a: filters.uniform_filter(a, 3, output=np.zeros((2, 2))), StencilError,
     r"output has shape"),
    (lambda a: filters.uniform_filter(a, 3, output="U3"), StencilTypeError, r"numeric dtype"),
    (lambda a: filters.uniform_filter(a.astype(object), 3), StencilTypeError, r"numeric"),
    (lambda a: filters.uniform_filter(np.float64(3), 3), StencilError, r"0-d"),
    (lambda a: filters.minimum_filter(a, footprint=np.zeros((3, 3))), StencilError,
     r"selects no element"),
    (lambda a: filters.minimum_filter(a, footprint=np.ones(3)), RuntimeError,
     r"footprint.ndim \(1\) must match len\(axes\) \(2\)"),
    (lambda a: filters.maximum_filter(a), StencilError, r"give size or footprint"),
    (lambda a: filters.median_filter(a.astype(complex), 3), StencilTypeError, r"complex"),
    (lambda a: filters.gaussian_filter(a, -1), StencilError, r"sigma must be finite and >= 0"),
    (lambda a: filters.gaussian_filter(a, 1, order=4), StencilError, r"order must be 0"),
    (lambda a: filters.gaussian_filter(a, 1, radius=-1), StencilError, r"radius must be >= 0"),
    (lambda a: filters.correlate(a, np.ones(3)), RuntimeError,
     r"weights.ndim \(1\) must match len\(axes\) \(2\)"),
    (lambda a: filters.correlate(a, np.ones((3, 3)) * 1j, mode="constant", cval=1j),
     StencilTypeError, r"complex cval needs complex input"),
    (lambda a: filters.correlate(a, np.ones((3, 3)) * 1j, output=np.zeros(a.shape)),
     RuntimeError, r"output must have a complex dtype"),
    (lambda a: filters.gaussian_filter(a, 1 + 0j), TypeError, r"sigma must be real numbers"),
    (lambda a: filters.gaussian_filter(a, 1, truncate=4j), TypeError,
     r"truncate must be real numbers"),
    (lambda a: filters.sobel(a, axis=5), StencilError, r"out of range"),
    (lambda a: filters.uniform_filter(a, 3, mode="constant", cval=1j), StencilTypeError,
     r"complex cval"),
    (lambda a: filters.uniform_filter(da.from_array(a), 3, output=np.zeros_like(a)),
     StencilError, r"do not apply to Dask"),
    (lambda a: filters.rank_filter(a, 9, 3), RuntimeError,
     r"rank 9 is outside the window's 9 elements; give -9 <= rank < 9"),
    (lambda a: filters.rank_filter(a, -10, 3), RuntimeError, r"rank -10 is outside"),
    (lambda a: filters.rank_filter(a, 2.0, 3), TypeError, r"rank must be an integer, got 2.0"),
    (lambda a: filters.percentile_filter(a, 100.5, 3), RuntimeError,
     r"percentile 100.5 is outside \[-100, 100\]"),
    (lambda a: filters.percentile_filter(a, "50", 3), TypeError, r"percentile must be a number"),
    (lambda a: filters.rank_filter(a, 2, (3, 0)), RuntimeError, r"size 0 along an axis"),
    (lambda a: filters.rank_filter(a, 2, 3, mode=["reflect", "wrap"]), RuntimeError,
     r"rank 2 of 9 needs a single mode"),
    (lambda a: filters.uniform_filter1d(a, 0), RuntimeError, r"size must be >= 1, got 0"),
    (lambda a: filters.minimum_filter1d(a, 2.5), TypeError, r"size must be an integer"),
    (lambda a: filters.correlate1d(a, [[1, 2]]), RuntimeError,
     r"weights must be a non-empty 1-d sequence, got shape \(1, 2\)"),
    (lambda a: filters.gaussian_filter1d(a, [1, 2]), TypeError, r"sigma, order and radius are"),
    (lambda a: filters.gaussian_filter1d(a, 1, radius=1.1), ValueError,
     r"radius must be integers; 1.1"),  # (a TypeError too)
    (lambda a: filters.convolve1d(a, [1, 2], axis=2), np.exceptions.AxisError,
     r"convolve1d: axis 2 is out of range for a 2-d input"),
    (lambda a: filters.rank_filter(a, 0, footprint=np.eye(2), mode=["reflect", "wrap"]),
     RuntimeError, r"one mode per axis needs a separable window"),
]


@pytest.mark.parametrize("call,exc,match", BAD_CALLS, ids=[m for _, _, m in BAD_CALLS])
def test_bad_parameters_raise_specific_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call(sample((6, 7), np.float64))


@pytest.mark.parametrize("dtype", [np.int8, np.uint16, np.int32, np.float32, np.float64, bool])
def test_real_input_with_complex_weights_is_complex_as_in_scipy(dtype):
    a = sample((5, 6), dtype)
    w = np.array([[1, 0], [0.5, 1 + 1j]], np.complex64)
    for fn in ("correlate", "convolve"):
        for kw in ({}, {"mode": "constant", "cval": 5.0}):
            want = getattr(ndi, fn)(a, w, **kw)
            got = getattr(filters, fn)(a, w, **kw)
            assert got.dtype == want.dtype  # int8 -> complex64, int32 -> complex128
            np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-5)
        with pytest.warns(UserWarning, match="promoting specified output dtype to complex"):
            got = getattr(filters, fn)(a, w, output=np.float32)
        assert got.dtype == np.complex64
        with pytest.raises(RuntimeError, match="output must have a complex dtype"):
            getattr(filters, fn)(a, w, output=np.zeros(a.shape, np.float32))
    z = sample((5, 6), np.complex64)
    with pytest.warns(UserWarning, match="promoting specified output dtype to complex"):
        assert filters.uniform_filter(z, 3, output=np.float64).dtype == np.complex128


def test_rank_and_percentile_filters_follow_scipy():
    """rank_filter and percentile_filter as scipy.ndimage: ranks counted from either end,
    percentiles as ``int(n * p / 100)``, the extremes as minimum/maximum filters (a mode per
    axis allowed for a box there), footprints and axes; large windows (histograms for uint8,
    selection for floats), NumPy and Dask, equal to scipy's results."""
    a = sample((15, 18), np.uint8, seed=5)
    f = sample((15, 18), np.float64, seed=5)
    x = da.from_array(f, chunks=((4, 1, 10), (7, 11)))
    fp = np.array([[1, 1, 0], [1, 1, 1], [0, 1, 1]], bool)  # 7 elements, as tests/filter_table
    for data in (a, f):
        for fn, which, kw in [
            ("rank_filter", -3, dict(footprint=fp)),  # the table's: rank 4 of 7
            ("percentile_filter", 100 * 4 / 7 + 1e-9, dict(footprint=fp)),  # int(7 p / 100) = 4
            ("rank_filter", 0, dict(size=(3, 5), mode=["wrap", "constant"], cval=2)),
            ("percentile_filter", 100, dict(size=(2, 4), mode=["nearest", "mirror"])),
            ("percentile_filter", -100, dict(footprint=fp, mode="constant", cval=9)),
            ("rank_filter", 50, dict(size=(8, 9), mode="reflect")),  # 72 elements: line passes
            ("rank_filter", 1, dict(size=3, axes=(1,), origin=1)),
        ]:
            want = getattr(ndi, fn)(data, which, **kw)
            got = getattr(filters, fn)(data, which, **kw)
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want, err_msg=f"{fn} {which} {kw}")
            if data is f:
                lazy = getattr(filters, fn)(x, which, **kw)
                np.testing.assert_array_equal(lazy.compute(scheduler="sync"), want)
    # a window holding NaN gives NaN at every rank (scipy's answer depends on where it is)
    g = f.copy()
    g[7, 9] = np.nan
    got = filters.rank_filter(g, 1, 3)
    assert np.isnan(got[6:9, 8:11]).all() and np.isnan(got).sum() == 9
    # float results into integer outputs: rounded and saturated, as every filter
    assert filters.percentile_filter(np.array([2.7, -1.6, 300.2]), 50, 3,
                                     output=np.uint8).tolist() == [3, 3, 255]


ONE_AXIS = [
    ("correlate1d", ([0.5, 1.0, -0.25],), {}),
    ("correlate1d", ([1, 2, 1, 3],), {"origin": -1}),
    ("convolve1d", ([1, -2, 3, 1],), {"origin": 1}),
    ("uniform_filter1d", (4,), {}),
    ("uniform_filter1d", (15,), {}),  # running sums
    ("gaussian_filter1d", (1.5,), {"order": 1}),
    ("minimum_filter1d", (4,), {"origin": 1}),
    ("maximum_filter1d", (20,), {}),  # van Herk
]


@pytest.mark.parametrize("name,args,kw", ONE_AXIS, ids=[f"{n}{a}" for n, a, _ in ONE_AXIS])
def test_one_axis_filters_equal_scipy(name, args, kw):
    """scipy.ndimage's 1-D filters: the N-d ones along ``axis``, every mode, both axes, NumPy
    and Dask; float64 results (scipy truncates integer ones, see the rounding rule)."""
    rng = np.random.default_rng(2)
    for dtype in (np.uint8, np.float32):
        a = rng.integers(0, 100, (11, 14)).astype(dtype)
        x = da.from_array(a, chunks=((3, 1, 7), (5, 9)))
        tol = 1e-5 if dtype == np.float32 else 1e-12
        for axis in (0, -1):
            for mode in MODES:
                k = dict(kw, axis=axis, mode=mode, **_cval(mode, np.uint8))
                want = getattr(ndi, name)(a.astype(np.float64), *args, **k)
                got = getattr(filters, name)(a, *args, output=np.float64, **k)
                np.testing.assert_allclose(got, want, rtol=tol, atol=tol * 100,
                                           err_msg=f"{dtype} {k}")
                lazy = getattr(filters, name)(x, *args, output=np.float64, **k)
                np.testing.assert_allclose(lazy.compute(scheduler="sync"), got, rtol=tol,
                                           atol=tol * 100)
    a = sample((9, 10), np.uint8)  # integer outputs: the N-d filter's result, rounded once
    nd = {"correlate1d": "correlate", "convolve1d": "convolve"}.get(name, name[:-2])
    if name.endswith("filter1d") and name != "gaussian_filter1d":
        np.testing.assert_array_equal(getattr(filters, name)(a, *args, axis=0, **kw),
                                      getattr(filters, nd)(a, *args, axes=(0,), **kw))


@pytest.mark.parametrize("name", ["gaussian_laplace", "gaussian_gradient_magnitude"])
def test_gaussian_laplace_and_gradient_magnitude_equal_scipy(name):
    """A Gaussian derivative per filtered axis, summed (or squared, summed, square-rooted):
    scipy's numbers for floats (NumPy and Dask), with per-axis sigma and modes (each term in
    its axis' mode, as scipy), truncate and radius; integer data into an integer output is the
    float64 result rounded once. With ``axes``, only those axes are smoothed (for the gradient
    magnitude, scipy 1.17 smooths the others too: compared with sigma 0 there)."""
    ours, theirs = getattr(filters, name), getattr(ndi, name)
    rng = np.random.default_rng(3)
    a = rng.integers(0, 100, (12, 15, 6)).astype(np.float64)
    x = da.from_array(a, chunks=((5, 7), (4, 11), (6,)))
    for sigma, kw in [(1.0, {}), ((1.5, 0.7, 1.0), {"mode": ["wrap", "constant", "nearest"]}),
                      (2.0, {"axes": (0, 2)}), (1.2, {"truncate": 2.0, "mode": "mirror"}),
                      (1.0, {"radius": 2, "axes": (1,), "mode": ["reflect"]})]:
        scipy_sigma = sigma
        if "axes" in kw and name == "gaussian_gradient_magnitude":
            scipy_sigma = [sigma if ax in kw["axes"] else 0.0 for ax in range(3)]
        want = theirs(a, scipy_sigma, **kw)
        got = ours(a, sigma, **kw)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-10, err_msg=f"{kw}")
        np.testing.assert_allclose(ours(x, sigma, **kw).compute(scheduler="sync"), got,
                                   rtol=1e-12, atol=1e-10)
    f32 = a.astype(np.float32)
    np.testing.assert_allclose(ours(f32, 1.5), theirs(f32, 1.5), rtol=2e-5, atol=1e-3)
    u8 = a.astype(np.uint8)[:, :, 0]
    exact = theirs(u8.astype(np.float64), 1.0)
    out = np.empty(u8.shape, np.int16)
    assert ours(u8, 1.0, output=out) is out
    ties = np.abs(np.abs(exact - np.floor(exact)) - 0.5) < 1e-9
    want = round_even_saturate(exact, np.int16)
    assert np.all((out == want) | ties)
    assert ours(u8, 1.0).dtype == np.uint8  # (saturated: a Laplacian's negatives are 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
def test_gaussian_derivatives_in_one_sweep_equal_their_terms(dtype):
    """Over the last two axes the two Gaussian derivatives run as one sweep (SepSum2); each
    term's sums are those of gaussian_filter of that order, bit for bit, and they combine as
    NumPy adds them in the data's float type (the integer rule after), on NumPy and on Dask
    chunks smaller than the window; float64 results equal scipy's to round-off."""
    from stencilkit._dtypes import saturate

    rng = np.random.default_rng(11)
    a = (rng.random((3, 23, 31)) * 200).astype(dtype)
    x = da.from_array(a, chunks=((2, 1), (5, 9, 9), (4, 20, 7)))
    work = np.dtype(np.float32) if a.dtype.itemsize <= 4 and a.dtype.kind == "f" else \
        np.dtype(np.float64)
    for name, order in (("gaussian_laplace", 2), ("gaussian_gradient_magnitude", 1)):
        for sigma, mode in ((1.0, "reflect"), (2.0, "wrap"), (1.0, "mirror"), (2.0, "nearest")):
            kw = {"mode": mode, "axes": (1, 2)}
            t0, t1 = (filters.gaussian_filter(a, (0.0, sigma, sigma), orders, output=work,
                                              mode=mode) for orders in ((0, order, 0),
                                                                         (0, 0, order)))
            exact = np.sqrt(t0 * t0 + t1 * t1) if order == 1 else t0 + t1
            want = saturate(exact, a.dtype) if a.dtype.kind in "iu" else exact.astype(a.dtype)
            got = getattr(filters, name)(a, sigma, **kw)
            np.testing.assert_array_equal(got, want, err_msg=f"{name} {sigma} {mode}")
            np.testing.assert_array_equal(getattr(filters, name)(x, sigma, **kw).compute(), got)
            if a.dtype == np.float64:  # and scipy's own (an independent reference)
                # (scipy 1.17's gradient magnitude smooths the other axes too: sigma 0 there)
                ref = getattr(ndi, name)(a, sigma if order == 2 else (0.0, sigma, sigma), **kw)
                np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-10)


def test_values_scipy_accepts():
    """size 0, a cval with modes that ignore it or that the dtype cannot hold, radius 0."""
    a = sample((7, 9), np.float64)
    for fn in ("uniform_filter", "minimum_filter", "maximum_filter"):
        for size in (0, (0, 3), (3, 0)):  # no filtering along a size-0 axis
            np.testing.assert_allclose(getattr(filters, fn)(a, size),
                                       getattr(ndi, fn)(a, size), atol=1e-12)
    for mode in ("reflect", "nearest", "wrap", "mirror"):  # cval ignored, as in scipy
        np.testing.assert_array_equal(filters.gaussian_filter(a, 1, mode=mode, cval=7),
                                      filters.gaussian_filter(a, 1, mode=mode))
    one = np.array([2], np.float32)  # scipy's gh-23075: the cval converted to float32
    np.testing.assert_array_equal(filters.median_filter(one, 5, mode="constant", cval=17.7),
                                  np.float32([17.7]))
    f32 = sample((6, 8), np.float32)
    np.testing.assert_allclose(filters.uniform_filter(f32, 3, mode="constant", cval=17.7),
                               ndi.uniform_filter(f32, 3, mode="constant", cval=17.7), rtol=1e-6)
    u8 = sample((6, 8), np.uint8)
    for cval, want in ((300.7, 255), (-3.5, 0), (7.9, 7)):  # truncated, then saturated
        got = filters.maximum_filter(u8, 3, mode="constant", cval=cval)
        ref = ndi.maximum_filter(np.pad(u8, 1, constant_values=want), 3)[1:-1, 1:-1]
        np.testing.assert_array_equal(got, ref)
    with pytest.raises(StencilError, match="cval=nan has no value"):
        filters.minimum_filter(u8, 3, mode="constant", cval=np.nan)
    # the mean of integers padded with a cval between integers: the exact mean, rounded once
    # (the running sums' integer path truncated the cval: 2.5 became 2)
    big = sample((20, 33), np.uint8, seed=9)
    for cval in (2.5, -7.75, 300.25):  # quarters: four times every value is an integer
        for size in (3, 15):  # a direct stencil, and the large window's passes
            k = (size, size) if np.ndim(size) == 0 else size
            total = ndi.correlate(4 * big.astype(np.int64), np.ones(k, np.int64),
                                  mode="constant", cval=int(4 * cval))
            np.testing.assert_array_equal(
                filters.uniform_filter(big, size, mode="constant", cval=cval),
                exact_mean(total, 4 * k[0] * k[1], np.uint8), err_msg=f"{cval} {size}")
    # a one-tap Gaussian (truncate=0 or radius=0) differentiates: order 2 is -1/sigma^2
    for order in (1, 2, 3, (0, 1), (2, 0), (2, 2)):
        for kw in ({"truncate": 0.0}, {"radius": 0}):
            np.testing.assert_allclose(filters.gaussian_filter(a, (1.0, 2.0), order, **kw),
                                       ndi.gaussian_filter(a, (1.0, 2.0), order, **kw),
                                       atol=1e-12)


def test_axes_in_any_order_pair_as_in_scipy():
    """Weights, footprints and a median's box run along the axes in increasing order; sizes,
    sigmas and modes pair with the axes as given; origins too, unless every axis is filtered."""
    a = sample((5, 6, 7), np.float64)
    w = sample((3, 2), np.float64)
    fp = np.array([[1, 0], [1, 1], [0, 1]], bool)
    cases = [("correlate", (w,), {}, (2, 0), (0, -1)), ("convolve", (w,), {}, (-1, 0), (-1, 0)),
             ("correlate", (w,), {}, (0, 2), (-1, 0)),
             ("minimum_filter", (), {"footprint": fp}, (2, 0), (0, -1)),
             ("median_filter", (), {"size": (3, 2)}, (2, 0), (-1, 0)),
             ("maximum_filter", (), {"size": (3, 2)}, (2, 0), (-1, 0)),
             ("uniform_filter", ((3, 5),), {}, (2, 0), 0),
             ("correlate", (sample((3, 2, 3), np.float64),), {}, (2, 0, 1), (1, 0, -1))]
    for fn, args, kw, axes, origin in cases:
        np.testing.assert_allclose(getattr(filters, fn)(a, *args, axes=axes, origin=origin, **kw),
                                   getattr(ndi, fn)(a, *args, axes=axes, origin=origin, **kw),
                                   atol=1e-12, err_msg=f"{fn} {axes} {origin}")


@pytest.mark.parametrize("mode", MODES)
def test_line_passes_for_large_windows_every_axis(mode):
    """Running sums, the fused 2-D box, van Herk and the row doubling passes, on 1-D to 3-D."""
    kw = {"mode": mode, **({"cval": 3} if mode == "constant" else {})}
    cval = kw.get("cval", 0)
    cube = sample((6, 11, 35), np.int16)
    line = sample((70,), np.uint8)
    column = sample((6, 35, 1), np.int16)  # a pass along rows whose axis is not the last
    for a, size, axes in [(cube, (3, 5, 7), None), (cube, 31, (2,)), (cube, 29, (1,)),
                          (line, 33, None), (column, 29, (1,))]:
        ax = tuple(range(a.ndim)) if axes is None else axes
        full = [1] * a.ndim
        for d in ax:
            full[d] = size[ax.index(d)] if np.ndim(size) else size
        got = filters.uniform_filter(a, size, axes=axes, **kw)
        want = numpy_reference("uniform_filter", a, {"size": tuple(full)}, mode, cval, a.dtype)
        np.testing.assert_array_equal(got, want)
        for name in ("minimum_filter", "maximum_filter"):
            got = getattr(filters, name)(a, size, axes=axes, **kw)
            want = numpy_reference(name, a, {"size": tuple(full)}, mode, cval, a.dtype)
            np.testing.assert_array_equal(got, want)
        x = da.from_array(a, chunks=tuple(max(1, n // 3) for n in a.shape))
        np.testing.assert_array_equal(filters.uniform_filter(x, size, axes=axes, **kw),
                                      filters.uniform_filter(a, size, axes=axes, **kw))
    f = sample((30, 40), np.float64)
    f[10, 20] = np.nan
    f[3, 35] = np.inf
    for size in [(7, 9), (1, 33), (33, 1)]:
        got = filters.uniform_filter(f, size, **kw)
        want = ndi.uniform_filter(np.nan_to_num(f, nan=0.0, posinf=0.0), size, **kw)
        win = numpy_reference("maximum_filter", np.isnan(f).astype(np.uint8),
                              {"size": size}, mode, 0, np.uint8).astype(bool)
        inf = numpy_reference("maximum_filter", np.isinf(f).astype(np.uint8),
                              {"size": size}, mode, 0, np.uint8).astype(bool)
        assert np.isnan(got[win]).all()  # NaN in exactly the windows that hold it
        assert np.isposinf(got[inf & ~win]).all()
        clean = ~win & ~inf
        np.testing.assert_allclose(got[clean], want[clean], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float64],
                         ids=lambda d: np.dtype(d).name)
def test_large_median_windows_select_exactly(dtype):
    """Beyond the sorting networks: Huang's histograms (8/16-bit boxes) or quickselect."""
    from stencilkit._passes import MEDIAN_MAX

    a = sample((23, 29), dtype)
    fp = np.random.default_rng(1).random((8, 9)) > 0.3
    assert fp.sum() > MEDIAN_MAX  # (a footprint of fewer would take a sorting network)
    x = da.from_array(a, chunks=(5, 8))
    for mode in MODES:
        kw = {"mode": mode, **_cval(mode, dtype)}
        for params in ({"size": 9}, {"size": (11, 5), "origin": (2, -1)}, {"footprint": fp}):
            got = filters.median_filter(a, **params, **kw)
            np.testing.assert_array_equal(got, ndi.median_filter(a, **params, **kw))
            np.testing.assert_array_equal(
                filters.median_filter(x, **params, **kw).compute(scheduler="sync"), got)
    f = sample((20, 20), np.float64)
    f[5, 5] = np.nan
    got = filters.median_filter(f, 9)
    assert np.isnan(got[1:10, 1:10]).all() and np.isnan(got).sum() == 81


def test_batcher_networks_sort_every_size_a_median_takes():
    """``batcher_pairs(n)``, the comparators every median network is generated from (CPU and
    device), sorts ``n`` values for each ``n`` up to ``MEDIAN_MAX``: every 0-1 input up to 16
    wires (which proves it, by the 0-1 principle: Knuth, TAOCP vol. 3, 5.3.4), random 0-1
    vectors of every weight and random integers with ties beyond."""
    from stencilkit._passes import MEDIAN_MAX, batcher_pairs

    rng = np.random.default_rng(5)
    for n in range(1, MEDIAN_MAX + 1):
        if n <= 16:
            v = (np.arange(2**n)[:, None] >> np.arange(n)) & 1
        else:
            ones = rng.random((4000, n)) < rng.random((4000, 1))
            v = np.concatenate([ones, rng.integers(0, n // 2, (2000, n))])
        want = np.sort(v, axis=1)
        pairs = batcher_pairs(n)
        assert all(0 <= a < b < n for a, b in pairs), n
        for a, b in pairs:
            lo, hi = np.minimum(v[:, a], v[:, b]), np.maximum(v[:, a], v[:, b])
            v[:, a], v[:, b] = lo, hi
        np.testing.assert_array_equal(v, want, err_msg=f"{n} wires")


def test_a_small_median_pass_lowers_to_the_sorting_network():
    """``Passes.as_stencils`` of a ``Rank`` median of up to MEDIAN_MAX elements: the filters'
    own sorting network (the route of backends without a kernel for it, and of Dask regions
    of device chunks), NaN and signed zeros as ``median_filter`` gives them."""
    from stencilkit._passes import Passes, Rank

    f = sample((13, 17), np.float64)
    f[4, 4] = np.nan
    f[::2, ::3] = -0.0
    fp = ((True, False, True), (True, True, False), (False, True, True))
    for mode in ("mirror", "constant"):
        plan = Passes((Rank(fp, (1, 0), 3, False),), mode, 0.5, np.dtype(np.float64), "test")
        got = plan.as_stencils(f, None)
        want = filters.median_filter(f, footprint=np.array(fp), mode=mode, cval=0.5,
                                     origin=(0, -1))  # lo = size // 2 + origin
        np.testing.assert_array_equal(got, want)
        assert (np.signbit(got) == np.signbit(want)).all()


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.bool_])
def test_integer_means_into_a_float_output_are_not_rounded(dtype):
    """uniform_filter of integer data with a float ``output`` is the window's mean, unrounded
    (the README's way to scipy's numbers), whichever route the window takes: the direct sum
    (3 x 3: it rounded to integers until 2026-11-27, a silent difference from scipy), the
    running sums (7 x 7), one pass per axis (a mode per axis), and on Dask."""
    a = sample((2, 19, 23), dtype, seed=3)
    for size, mode in [(3, "reflect"), (7, "nearest"), (3, ["wrap", "reflect", "mirror"]),
                       ((1, 2, 4), "constant")]:
        for out in (np.float64, np.float32) if dtype == np.uint8 else (np.float64,):
            got = filters.uniform_filter(a, size, output=out, mode=mode, cval=2)
            want = ndi.uniform_filter(a.astype(np.float64), size, mode=mode, cval=2)
            assert got.dtype == out
            np.testing.assert_allclose(got, want.astype(out), rtol=1e-6, atol=1e-9 * 2**15,
                                       err_msg=f"{size} {mode} {np.dtype(out)}")
    da = pytest.importorskip("dask.array")
    got = filters.uniform_filter(da.from_array(a, chunks=(1, 7, 9)), 3, output=np.float64)
    np.testing.assert_array_equal(got.compute(), filters.uniform_filter(a, 3, output=np.float64))


RULE_CASES = [  # every route a rank filter or a running sum takes
    ("minimum_filter", {"size": 3}), ("maximum_filter", {"size": (3, 11)}),
    ("maximum_filter", {"footprint": np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)}),
    ("median_filter", {"size": 3}), ("median_filter", {"size": 9}),
    ("uniform_filter", {"size": 3}), ("uniform_filter", {"size": 7}),
    ("gaussian_filter", {"sigma": 1.5}),
]


@pytest.mark.parametrize("dtype,out", [(np.int16, np.uint8), (np.int32, np.int16),
                                       (np.float32, np.uint8), (np.float32, np.int16),
                                       (np.float64, np.uint64)])
@pytest.mark.parametrize("name,params", RULE_CASES, ids=[f"{n}-{i}" for i, (n, _) in
                                                         enumerate(RULE_CASES)])
def test_integer_outputs_are_the_exact_result_rounded_and_saturated(name, params, dtype, out):
    """The filters' integer-output rule (module docstring of stencilkit.filters) for every
    filter and route: the exact result rounded to nearest (ties to even), saturated to the
    output's range, NaN as 0. Until 2026-11-27 rank filters stored with NumPy's conversion
    (int16 -5 into uint8 gave 251, a float median of 2.7 gave 2) and so did float running
    sums (a 7 x 7 mean of -1.03 into uint8 gave 255)."""
    a = sample((17, 23), dtype, seed=5)
    if a.dtype.kind == "f":
        a[3, 4:9] = [2.5, 3.5, -0.5, 1e6, -1e6]
        a[12, 12] = np.nan
    kw = {"mode": "constant", "cval": 2.5} if name != "median_filter" else {"mode": "mirror"}
    got = getattr(filters, name)(a, **params, output=out, **kw)
    if name == "gaussian_filter":
        exact = ndi.gaussian_filter(a.astype(np.float64), **params, **kw)
    else:
        exact = numpy_reference(name, a.astype(np.float64), params, kw["mode"],
                                kw.get("cval", 0.0), np.float64)
    want = round_even_saturate(exact, out)
    assert got.dtype == out
    if name in ("uniform_filter", "gaussian_filter") and a.dtype.kind == "f":
        assert np.abs(got.astype(np.float64) - want).max() <= 1  # (float sums: near-ties)
    else:  # (rank filters select; integer sums are exact, rounded once)
        np.testing.assert_array_equal(got, want)
    into = np.zeros(a.shape, out)
    assert getattr(filters, name)(a, **params, output=into, **kw) is into
    np.testing.assert_array_equal(into, got)
    da = pytest.importorskip("dask.array")
    lazy = getattr(filters, name)(da.from_array(a, chunks=(9, 12)), **params, output=out, **kw)
    np.testing.assert_array_equal(lazy.compute(), got)


NARROW_CASES = [  # (data, weights): sums that fit int16 just, int32, or neither (int64)
    (np.uint8, [[16, 16, 16], [16, -16, 16], [16, 16, -16]]),  # -8160 .. 28560: int16
    (np.int8, [[1, 2, 1], [0, 0, 0], [-1, -2, -1]]),  # sobel: int16
    (np.int8, [[127, 64, 64]]),  # |w| = 255: -32640 .. 32385, int16
    (np.int16, [[1, 2, 1], [0, 0, 0], [-1, -2, -1]]),  # int32
    (np.uint16, [[40000, -40000, 7]]),  # -2.6e9 .. 2.6e9, beyond int32: int64
    (np.bool_, [[3, -5, 1], [2, 1, 1]]),
]


@pytest.mark.parametrize("dtype,w", NARROW_CASES, ids=[f"{np.dtype(d).name}-{i}" for i, (d, _)
                                                       in enumerate(NARROW_CASES)])
def test_integer_sums_in_a_narrower_type_are_exact_at_its_limits(dtype, w):
    """Integer correlations whose every sum provably fits int16 or int32 say so in the kernel
    (``_passes.sum_type``: then vectorised in that type), cval of ``mode='constant'`` counted
    among the values read: exact against int64 sums of the padded windows for data at the
    dtype's extremes, a cval far outside them, and the outputs' saturation."""
    from filter_table import windows

    from stencilkit import _passes

    w = np.array(w)
    taps = [((0, 0), int(v)) for v in w.ravel()]
    lo, hi = _passes.limits(dtype)
    s_lo, s_hi = _passes.sum_span(taps, (lo, hi))
    assert (s_lo, s_hi) == (int(np.minimum(w * lo, w * hi).sum()),
                            int(np.maximum(w * lo, w * hi).sum()))
    rng = np.random.default_rng(3)
    a = np.where(rng.random((13, 17)) < 0.5, lo, hi).astype(dtype)
    a[4, 2:9] = np.arange(7)  # (and a few values between)
    r, c = w.shape
    a[7:7 + r, 7:7 + c] = np.where(w > 0, hi, lo)  # a window of the largest sum
    a[1:1 + r, 11:11 + c] = np.where(w > 0, lo, hi)  # and one of the smallest
    for mode, cval in [("wrap", 0), ("constant", 0), ("constant", -40000), ("constant", 3)]:
        reads = _passes.read_span(a.dtype, mode, cval)
        kind = _passes.sum_type(taps, reads)
        want_kind = next((np.dtype(t) for t in (np.int16, np.int32)
                          if np.iinfo(t).min <= _passes.sum_span(taps, reads)[0]
                          and _passes.sum_span(taps, reads)[1] <= np.iinfo(t).max), None)
        assert kind == want_kind
        win = windows(a.astype(np.int64), w.shape, (0, 0), (0, 1), mode, cval)
        exact = (win * w).sum(axis=(-2, -1))
        if mode == "wrap":
            assert (exact.min(), exact.max()) == (s_lo, s_hi)  # the limits reached
        for out in (np.dtype(dtype), np.dtype(np.int16), np.dtype(np.float64)):
            got = filters.correlate(a, w, output=out, mode=mode, cval=cval)
            want = exact.astype(out) if out.kind == "f" else round_even_saturate(exact, out)
            np.testing.assert_array_equal(got, want, err_msg=f"{mode} {cval} {out}")
    lazy = filters.correlate(da.from_array(a, chunks=(4, 5)), w, mode="constant", cval=-40000)
    np.testing.assert_array_equal(lazy.compute(), filters.correlate(a, w, mode="constant",
                                                                    cval=-40000))
    # a sum that fits is computed in the narrow type (what the vectorised loop depends on)
    source = _passes.linear_source(2, taps, np.dtype(np.int64), "int", np.dtype(dtype), None,
                                   _passes.read_span(a.dtype, "reflect", 0))
    kind = {np.uint16: None, np.int16: "int32"}.get(dtype, "int16")
    assert _passes.sum_type(taps, (lo, hi)) == (kind and np.dtype(kind))
    assert ("s = np.int" in source) == (kind is not None)
    assert kind is None or f"s = np.{kind}(s)" in source


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16])
def test_a_mode_per_axis_keeps_narrowed_terms_exact(dtype):
    """The per-axis passes (Sobel's smoothing pass, each Laplacian term) hold their integer
    results in the narrowest type the data's and cval's range allow: exact against scipy on
    int64 data at the dtype's extremes, cval far outside them included."""
    info = np.iinfo(dtype)
    a = np.where(np.random.default_rng(5).random((11, 14)) < 0.5, info.min, info.max)
    a = a.astype(dtype)
    for cval in (0, -40000, 3):
        mode = ["constant", "wrap"]
        want = ndi.laplace(a.astype(np.int64), mode=mode, cval=cval)
        for out in (np.dtype(dtype), np.dtype(np.int32)):
            got = filters.laplace(a, mode=mode, cval=cval, output=out)
            np.testing.assert_array_equal(got, round_even_saturate(want, out))
        want = filters.sobel(a.astype(np.float64), mode=mode, cval=cval)
        got = filters.sobel(a, mode=mode, cval=cval, output=np.int32)
        np.testing.assert_array_equal(got, want.astype(np.int32))


@pytest.mark.parametrize("dtypes,signs", [((np.uint8, np.uint8), (1, -1)),
                                          ((np.int16, np.int16, np.int16), (1, -1, 1)),
                                          ((np.uint8, np.int8), (-1, -1)),
                                          ((np.int32, np.int32), (1, 1))])
def test_element_wise_integer_sums_in_a_narrower_type_are_exact(dtypes, signs):
    """``_passes.add`` (morphology's differences, the per-axis Laplacian's terms) sums integer
    parts in int16 or int32 where their types bound the sum (int32 parts: int64): exact
    against int64 NumPy for parts at their types' extremes, saturated into the outputs."""
    from stencilkit import _passes

    rng = np.random.default_rng(7)
    parts = []
    for d in dtypes:
        info = np.iinfo(d)
        parts.append(np.where(rng.random((9, 31)) < 0.5, info.min, info.max).astype(d))
    parts[0][0, :4] = [0, 1, 2, 3]
    exact = sum(g * p.astype(np.int64) for g, p in zip(signs, parts))
    for out in (np.dtype(np.uint8), np.dtype(np.int16), np.dtype(np.int64)):
        got = _passes.add(parts, np.dtype(np.int64), None, out, signs=list(signs))
        np.testing.assert_array_equal(got, round_even_saturate(exact, out), err_msg=str(out))


@pytest.mark.parametrize("cval", [2.0**62, -1e300, 2.0**31 + 1])
def test_integer_data_with_a_cval_beyond_int32_sums_without_overflow(cval):
    """An integer cval too large for exact int64 sums (beyond _passes.CVAL_INT) sums in
    float64: until 2026-11-30 a 3 x 3 correlation of int8 data with cval=2**62 wrapped to
    -4.6e18 at the borders, and a 1 x 15 mean or a Sobel with a mode per axis likewise.
    Against the same filters of the data as float64, and that rounded and saturated."""
    a = (np.arange(12 * 17) % 7).astype(np.int8).reshape(12, 17)
    cases = [("uniform_filter", {"size": 15}), ("uniform_filter", {"size": (1, 15)}),
             ("correlate", {"weights": np.ones((3, 3), np.int64)}), ("laplace", {}),
             ("sobel", {"mode": ["constant", "reflect"]})]
    for name, kw in cases:
        kw = {"mode": "constant", **kw}
        want = getattr(filters, name)(a.astype(np.float64), cval=cval, **kw)
        for out in (np.float64, np.int8):
            got = getattr(filters, name)(a, cval=cval, output=out, **kw)
            np.testing.assert_allclose(got, want if out is np.float64 else
                                       round_even_saturate(want, out), rtol=1e-12,
                                       err_msg=f"{name} {kw} {out}")


def test_cval_minus_zero_is_not_the_cached_plan_of_zero():
    """Python's 0.0 == -0.0 (equal hashes): the plans of a call with cval=0.0 and one with
    cval=-0.0 must not share a cache entry (a minimum at the border is the cval's zero)."""
    x = np.ones((5, 6))
    fp = np.array([[1, 1, 0]], bool)
    for c in (0.0, -0.0, np.float64(-0.0), 0.0, -0.0):
        got = filters.minimum_filter(x, footprint=fp, mode="constant", cval=c)
        want = ndi.minimum_filter(x, footprint=fp, mode="constant", cval=c)
        np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
        assert np.signbit(got[:, 0]).all() == np.signbit(c)


def test_remembered_arguments_still_raise_and_keep_equal_values_apart():
    """The filters remember their checked arguments (filters._parsed): a bad call raises every
    time, size=True (an error) is not size=1, and remembered windows are read-only."""
    x = np.arange(30.0).reshape(5, 6)
    for _ in range(2):
        np.testing.assert_array_equal(filters.median_filter(x, size=1), x)
        with pytest.raises(StencilTypeError, match="size must be integers"):
            filters.median_filter(x, size=True)
        with pytest.raises(StencilError, match="origin 5 is outside"):
            filters.uniform_filter(x, 3, origin=5)
        with pytest.raises(StencilError, match="sigma must be finite"):
            filters.gaussian_filter(x, -1.0)
    for size in (3, (3, 3), np.int64(3)):  # equal keys of other types: one result
        np.testing.assert_allclose(filters.uniform_filter(x, size), ndi.uniform_filter(x, 3))
    np.testing.assert_allclose(filters.gaussian_filter(x, 1.0, mode=("nearest", "wrap")),
                               ndi.gaussian_filter(x, 1.0, mode=("nearest", "wrap")))
    key = ("median_filter", 2, x.dtype.str, filters._dtypes.exact_key(
        (1, None, "reflect", 0.0, 0, None)))
    filters.median_filter(x, size=1)  # (remembered now: the cache is emptied when full)
    assert not filters._PARSED[key][1].flags.writeable


def test_16_bit_histogram_median_jumps_across_coarse_bins():
    # two-valued data: the median leaps between 3 and 65530 from one window to the next
    rng = np.random.default_rng(2)
    a = np.where(rng.random((19, 40)) < 0.5, 3, 65530).astype(np.uint16)
    a[:, 20:] = rng.integers(0, 65536, (19, 20))
    np.testing.assert_array_equal(filters.median_filter(a, (9, 11)),
                                  ndi.median_filter(a, (9, 11)))


def test_8_bit_sweeps_sum_in_float32_and_round_as_float64():
    """8-bit Gaussian sweeps sum in float32; sums near a half-integer are redone in float64
    (see _lines.float32_tie), so the integers are the float64 sweep's."""
    x0, x1 = np.meshgrid(np.arange(256), np.arange(256))
    a = np.stack([x0, x1], axis=-1).reshape(256, 512).astype(np.uint8)  # every (x0, x1) pair
    wv = np.zeros(9)
    wv[4] = 1.0
    wh = np.zeros(9)
    wh[4], wh[5] = 0.5 + 1e-6, 0.5 - 1e-6  # sums (x0 + x1) / 2 + 1e-6 (x0 - x1): near ties
    exact = _lines.sep2_pass(a, wv, 4, wh, 4, "reflect", 0.0, np.uint8, fast=False)
    pairs = a.reshape(256, 256, 2).astype(np.float64)
    truth = pairs[..., 0] * wh[4] + pairs[..., 1] * wh[5]
    np.testing.assert_array_equal(exact[:, ::2], np.rint(truth))
    # plain float32 sums round some of these the wrong way ...
    f32 = pairs.astype(np.float32)
    naive = np.rint(f32[..., 0] * np.float32(wh[4]) + f32[..., 1] * np.float32(wh[5]))
    assert (naive != np.rint(truth)).sum() > 100
    # ... the float32 sweep with its float64 fallback does not; nor when every sum is redone
    np.testing.assert_array_equal(
        _lines.sep2_pass(a, wv, 4, wh, 4, "reflect", 0.0, np.uint8), exact)
    np.testing.assert_array_equal(
        _lines.sep2_pass(a, wv, 4, wh, 4, "reflect", 0.0, np.uint8, tie=0.0), exact)
    # real Gaussians and a signed derivative (the absolute error bound), every mode
    b = np.random.default_rng(4).integers(0, 256, (150, 211), dtype=np.uint8)
    w = filters._gaussian_weights(1.0, 4)
    for order in (0, 1):
        g = filters._gaussian_weights(1.0, 4, order)
        rel, _ = _lines.float32_tie(g, w, np.uint8)
        assert (rel == 0) == (order == 1)  # relative bound only for weights and data >= 0
        for mode in ("reflect", "mirror", "nearest", "wrap"):
            want = _lines.sep2_pass(b, g, 4, w, 4, mode, 0.0, np.uint8, fast=False)
            for tie in (None, 0.0):
                got = _lines.sep2_pass(b, g, 4, w, 4, mode, 0.0, np.uint8, tie=tie)
                np.testing.assert_array_equal(got, want, err_msg=f"{order} {mode}")
    # signed 8-bit data take the absolute bound too; 16-bit data would redo too many sums
    assert _lines.float32_tie(w, w, np.int8)[0] == 0.0
    assert _lines.float32_tie(w, w, np.uint16) is None


def test_gaussian_derivatives_match_scipy():
    a = sample((31, 40), np.float64)
    x = da.from_array(a, chunks=(7, 9))
    for order, sigma in [(1, 1.0), (2, 1.5), (3, 0.8), ((1, 0), (2.0, 0.7)), ((0, 2), 1.2)]:
        for mode in MODES:
            got = filters.gaussian_filter(a, sigma, order, mode=mode)
            want = ndi.gaussian_filter(a, sigma, order, mode=mode)
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-10)
        np.testing.assert_allclose(filters.gaussian_filter(x, sigma, order).compute(),
                                   filters.gaussian_filter(a, sigma, order), atol=1e-10)


@pytest.mark.parametrize("dtype", [np.int16, np.float64], ids=["int16", "float64"])
def test_one_mode_per_axis_in_separable_filters(dtype):
    """scipy.ndimage's per-axis modes, for the filters that are separable."""
    modes = ("wrap", "constant")
    a = sample((17, 23), dtype)
    x = da.from_array(a, chunks=(5, 6))
    kw = {"mode": modes, "cval": 3}
    calls = [
        ("uniform_filter", {"size": (3, 5)}), ("uniform_filter", {"size": 9}),
        ("gaussian_filter", {"sigma": (1.0, 2.0)}), ("minimum_filter", {"size": (3, 4)}),
        ("maximum_filter", {"size": 7}), ("sobel", {"axis": 0}), ("prewitt", {"axis": 1}),
        ("laplace", {}),
    ]
    for name, params in calls:
        got = getattr(filters, name)(a, **params, **kw)
        ref_in = a.astype(np.float64) if dtype != np.float64 else a
        want = getattr(ndi, name)(ref_in, **params, **kw)
        if name in ("sobel", "prewitt"):  # the padded array's derivative (see module doc)
            want = getattr(ndi, name)(ref_in, **params, mode=modes, cval=0)
            got = getattr(filters, name)(a, **params, mode=modes)
        if dtype == np.int16:
            want = round_even_saturate(want, dtype)
            np.testing.assert_array_equal(got, want, err_msg=name)
        else:
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-9, err_msg=name)
        lazy = getattr(filters, name)(x, **params, **({"mode": modes} if name in (
            "sobel", "prewitt") else kw))
        np.testing.assert_allclose(lazy.compute(scheduler="sync"), got, rtol=1e-12)
    with pytest.raises(StencilError, match="one mode per axis"):
        filters.median_filter(a, 3, mode=modes)
    with pytest.raises(StencilError, match="mode has 3 values"):
        filters.uniform_filter(a, 3, mode=("wrap",) * 3)


def test_float16_bool_and_nan_cval():
    """float16 is computed in float32 and stored back; bool as 0/1 integers; a NaN cval gives
    NaN (float) or 0 (integer output) in the border windows only."""
    h = (sample((20, 30), np.float32) / 20).astype(np.float16)
    b = sample((20, 30), np.bool_)
    from stencilkit import resample

    for name, params in [("uniform_filter", {"size": 3}), ("uniform_filter", {"size": 9}),
                         ("gaussian_filter", {"sigma": 1.5}), ("median_filter", {"size": 9}),
                         ("minimum_filter", {"size": 3}), ("maximum_filter", {"size": 9})]:
        got = getattr(filters, name)(h, **params)
        want = getattr(ndi, name)(h.astype(np.float32), **params)
        assert got.dtype == np.float16
        np.testing.assert_allclose(got.astype(np.float32), want, rtol=2e-3, atol=2e-3)
        got = getattr(filters, name)(b, **params)
        want = round_even_saturate(getattr(ndi, name)(b.astype(np.float64), **params), bool)
        assert got.dtype == np.bool_
        np.testing.assert_array_equal(got, want, err_msg=name)
        lazy = getattr(filters, name)(da.from_array(h, chunks=(7, 11)), **params)
        assert lazy.dtype == np.float16 and lazy.compute().dtype == np.float16
    assert resample.block_reduce(h, 3).dtype == np.float16
    assert resample.pyramid_down(b, 1)[0].dtype == np.bool_
    x = np.arange(12.0).reshape(3, 4)
    got = filters.uniform_filter(x, 3, mode="constant", cval=np.nan)
    assert np.isnan(got[0]).all() and np.isnan(got[:, 0]).all() and got[1, 1] == 5
    got = filters.uniform_filter(x.astype(np.uint8), 3, mode="constant", cval=np.nan)
    assert got[0].tolist() == [0, 0, 0, 0] and got[1, 1] == 5


def test_gaussian_derivative_along_a_leading_axis_filters_the_padded_array():
    # 3-D: the leading axis' pass runs first, then the last two in one sweep; outside the
    # array that sweep must see the first pass applied to cval (here 0: a derivative of a
    # constant), as when filtering np.pad(a, constant_values=cval) itself
    a = np.random.default_rng(1).random((9, 20, 21)) * 10
    sigma, order = (1.0, 1.5, 1.5), (1, 0, 0)
    r = 12
    padded = np.pad(a, r, constant_values=5.0)
    want = ndi.gaussian_filter(padded, sigma, order=order, mode="nearest")[r:-r, r:-r, r:-r]
    got = filters.gaussian_filter(a, sigma, order=order, mode="constant", cval=5.0)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


LOWERED = [
    ("uniform 15 uint8", lambda a, kw: filters.uniform_filter(a, 15, **kw), np.uint8),
    ("uniform 15 uint8 -> float32",
     lambda a, kw: filters.uniform_filter(a, 15, np.float32, **kw), np.uint8),
    ("uniform 3x9x9 int16", lambda a, kw: filters.uniform_filter(a, (3, 9, 9), **kw), np.int16),
    ("gaussian 3-D uint8",
     lambda a, kw: filters.gaussian_filter(a, (1.0, 2.0, 2.0), **kw), np.uint8),
    ("gaussian float32", lambda a, kw: filters.gaussian_filter(a, 2.0, **kw), np.float32),
    ("maximum 9 uint16", lambda a, kw: filters.maximum_filter(a, 9, **kw), np.uint16),
    ("minimum 7x5 float64",
     lambda a, kw: filters.minimum_filter(a, (1, 7, 5), **kw), np.float64),
    # windows longer than one generated expression takes (_passes.CHUNK): further statements
    ("uniform 1x3x70 uint8", lambda a, kw: filters.uniform_filter(a, (1, 3, 70), **kw),
     np.uint8),
    ("maximum 1x1x45 int16", lambda a, kw: filters.maximum_filter(a, (1, 1, 45), **kw),
     np.int16),
]


@pytest.mark.parametrize("mode", ["reflect", "constant"])
@pytest.mark.parametrize("name,call,dtype", LOWERED, ids=[x[0] for x in LOWERED])
def test_passes_as_generated_stencils_equal_the_line_kernels(name, call, dtype, mode,
                                                             monkeypatch):
    # a backend without line kernels (CUDA) runs a filter's passes as generated stencils:
    # integers equal the CPU's line kernels exactly, floats to round-off
    from stencilkit.backends import cpu

    a = sample((4, 23, 26), dtype, seed=3)
    kw = {"mode": mode, **({"cval": 3} if mode == "constant" else {})}
    want = call(a, kw)
    monkeypatch.setattr(cpu.BACKEND, "run_passes",
                        lambda passes, arr, out: passes.as_stencils(arr, out), raising=False)
    got = call(a, kw)
    assert got.dtype == want.dtype
    if got.dtype.kind == "f":
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    else:
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64, np.uint8])
def test_weights_along_an_outer_axis_equal_the_generated_stencil(dtype):
    """1-D float weights along an axis before the last two run on NumPy and Dask arrays as a
    CPU line pass (_passes.Line1, cpu_lines.outer_pass): the generated stencil's values bit
    for bit, for every mode and cval, zero weights left out, windows longer than the axis, a
    float mean's factor, several lane tiles, NaN and -0.0, outputs of any layout, Dask chunks
    smaller than the window; and lowered back to that stencil (Passes.as_stencils)."""
    from stencilkit import _passes

    rng = np.random.default_rng(5)
    a = (rng.random((6, 9, 3, 40)) * 60 - 20).astype(dtype)
    if dtype != np.uint8:
        a[2, 1, 1, 3], a[3, 0, 0, 0], a[1, 2, 2, 7] = np.nan, -0.0, np.inf
    x = da.from_array(a, chunks=((2, 4), (4, 2, 3), (3,), (17, 23)))
    cases = [((0.25, 0.0, -1.5, 3.0, 0.1), 0, None), ((1, 1, 1, 1, 1, 1, 1, 1, 1), 1, 9),
             ((0.2,) * 13, 0, 13), ((2.0, -0.5), 1, None)]
    for weights, axis, divisor in cases:
        for origin in (0, -1):
            taps = []
            for o, w in zip(range(len(weights)), weights):
                offs = [0] * a.ndim
                offs[axis] = o - len(weights) // 2 - origin
                taps.append((tuple(offs), w))
            acc, kind = _passes.plan_acc(a.dtype, False, 0.0)  # (float sums)
            outer = _passes.outer_taps(a.ndim, taps, acc, kind, acc, divisor)
            assert outer is not None and outer.axis == axis and len(outer.offsets) == sum(
                w != 0 for w in weights)
            source = _passes.linear_source(a.ndim, taps, acc, kind, acc, divisor)
            for mode, cval in (("reflect", 0.0), ("mirror", 0.0), ("nearest", 0.0),
                               ("wrap", 0.0), ("constant", -2.5)):
                want = _passes.run(source, a, mode, cval, acc, acc)
                got = _passes.run(source, a, mode, cval, acc, acc, None, outer)
                assert got.dtype == want.dtype == acc
                np.testing.assert_array_equal(got.view(f"u{acc.itemsize}"),
                                              want.view(f"u{acc.itemsize}"), err_msg=mode)
                if weights[0] == 0.25:  # (Dask: regions with the halo the taps reach)
                    lazy = _passes.run(source, x, mode, cval, acc, acc, None, outer)
                    np.testing.assert_array_equal(lazy.compute(), got)
                    plan = _passes.Passes((outer,), mode, cval, acc, "test")
                    np.testing.assert_array_equal(plan.as_stencils(a, None), got)
            out = np.empty(a.shape[::-1], acc).T  # (an output that is not C-contiguous)
            assert _passes.run(source, a, "wrap", 0.0, acc, acc, out, outer) is out
            np.testing.assert_array_equal(out, _passes.run(source, a, "wrap", 0.0, acc, acc))
    # and not: along the last two axes, integer sums, a float16 intermediate
    assert _passes.outer_taps(4, [((0, 0, 1, 0), 1.0)], np.float64, "float", np.float64) is None
    assert _passes.outer_taps(4, [((1, 0, 0, 0), 1)], np.int64, "int", np.int64) is None
    assert _passes.outer_taps(4, [((1, 0, 0, 0), 1.0)], np.float32, "float", np.float16) is None


def test_float_results_round_into_integers_by_the_filters_rule_in_one_pass():
    """The CPU backend's compiled rounding of a float result into integers (one parallel
    pass) equals stencilkit._dtypes.saturate (NumPy's form) at ties, NaN, infinities and
    every type's limits."""
    from stencilkit import _dtypes, backends

    special = np.array([np.nan, np.inf, -np.inf, 0.5, 1.5, 2.5, -0.5, -1.5, 254.5, 255.5, 256,
                        -128.5, -129, 127.5, 1e20, -1e20, 2.0**63, 2.0**63 - 1024, -2.0**63,
                        2.0**64, 0.49999999999999994, -0.0, 3.7, -3.7, 1e30])
    backend = backends.for_array(special)
    for fdt in (np.float32, np.float64):
        x = np.concatenate([special.astype(fdt), np.linspace(-300, 300, 2401, dtype=fdt)])
        for dtype in (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64,
                      np.uint64, np.bool_):
            want = _dtypes.saturate(x, dtype)
            got = backend.saturate(x, np.dtype(dtype))
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want, err_msg=f"{fdt} -> {dtype}")
            out = np.empty(x.shape, dtype)
            assert backend.saturate(x, np.dtype(dtype), out) is out
            np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("out", [np.uint8, np.int16])
def test_integer_volumes_round_in_the_sweep_as_the_float_result_rounded(out):
    """A Gaussian of integer data over three axes (a pass along the first, into float64, then
    the last two in one sweep) rounds and saturates inside that sweep: the float64 result
    rounded by the filters' rule, bit for bit, in every mode, derivatives (negative values)
    included; and within float64 round-off of scipy's (ties may round either way)."""
    from stencilkit._dtypes import saturate

    rng = np.random.default_rng(8)
    a = rng.integers(0, 256, (5, 14, 19)).astype(np.uint8)
    for mode in MODES:
        for sigma, order in ((1.5, 0), (1.0, (1, 0, 0)), ((2.0, 1.0, 1.5), (0, 0, 2))):
            kw = {"mode": mode, "cval": 7.0, "order": order}
            exact = filters.gaussian_filter(a, sigma, output=np.float64, **kw)
            got = filters.gaussian_filter(a, sigma, output=out, **kw)
            np.testing.assert_array_equal(got, saturate(exact, out), err_msg=f"{mode} {order}")
            if mode == "constant" and order == (1, 0, 0):
                continue  # (scipy pads its later passes with cval again: README's differences)
            ref = ndi.gaussian_filter(a.astype(np.float64), sigma, **kw)
            ties = np.abs(np.abs(ref - np.floor(ref)) - 0.5) < 1e-9
            assert np.all((got == saturate(ref, out)) | ties)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
def test_gaussian_derivatives_of_volumes_equal_their_terms(dtype, monkeypatch):
    """Over the last three axes of a NumPy array the Gaussian derivatives take fewer sweeps
    (the first axis' term as it is; the other two share their smoothing along the first axis
    and run as one sweep that adds the first term in): each term's sums are gaussian_filter's
    of that order, combined as NumPy combines them in the data's float type, bit for bit, in
    every mode that extends the array, batch axes included; float64 equals scipy's."""
    from stencilkit._dtypes import saturate
    from stencilkit.backends.cpu_lines import separable

    swept = []  # (the fused route taken: its sweep with the first term as a base)
    sweep = separable.sepsum2_pass
    monkeypatch.setattr(separable, "sepsum2_pass", lambda *args, base=None, **kw: (
        swept.append(base is not None), sweep(*args, base=base, **kw))[1])
    rng = np.random.default_rng(12)
    a = (rng.random((2, 7, 12, 15)) * 200).astype(dtype)
    work = np.dtype(np.float32) if a.dtype == np.float32 else np.dtype(np.float64)
    axes = (1, 2, 3)
    for name, order in (("gaussian_laplace", 2), ("gaussian_gradient_magnitude", 1)):
        for mode in ("reflect", "mirror", "nearest", "wrap"):
            terms = []
            for ax in axes:
                orders = [0] * 4
                orders[ax] = order
                terms.append(filters.gaussian_filter(a, (0.0, 1.0, 1.0, 1.0), orders,
                                                     output=work, mode=mode))
            exact = (np.sqrt((terms[0] * terms[0] + terms[1] * terms[1]) + terms[2] * terms[2])
                     if order == 1 else (terms[0] + terms[1]) + terms[2])
            want = saturate(exact, a.dtype) if a.dtype.kind in "iu" else exact
            del swept[:]
            got = getattr(filters, name)(a, 1.0, mode=mode, axes=axes)
            assert swept == [True]
            np.testing.assert_array_equal(got, want, err_msg=f"{name} {mode}")
            if a.dtype == np.float64:
                ref = getattr(ndi, name)(a, (0.0, 1.0, 1.0, 1.0) if order == 1 else 1.0,
                                         mode=mode, axes=axes)
                np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-10)
        # the axes in another order add the terms in that order: the terms' own passes
        terms.reverse()
        exact = (np.sqrt((terms[0] * terms[0] + terms[1] * terms[1]) + terms[2] * terms[2])
                 if order == 1 else (terms[0] + terms[1]) + terms[2])
        del swept[:]
        got = getattr(filters, name)(a, 1.0, mode=mode, axes=axes[::-1])
        assert swept == []
        np.testing.assert_array_equal(
            got, saturate(exact, a.dtype) if a.dtype.kind in "iu" else exact)
