"""The generic filters (a user's function of each window or line) against scipy.ndimage.

scipy calls the function from C for every element; stencilkit compiles it (numba) and calls it
from a compiled loop, on the CPU, per Dask region and on the device. Each case compares with
scipy's own call on the same function: windows (sizes, footprints, origins, axes) x dtypes x
modes, extra arguments and keywords, numba and NumPy functions, C functions
(scipy.LowLevelCallable), the Python fallback for what numba cannot compile, integer outputs
(scipy's float rounded once, saturated), Dask with uneven chunks smaller than the window,
device arrays (numba's simulator without a GPU), and the errors scipy raises. The functions are
module-level, so each compiles once per input dtype for the whole file.
"""

import math
import warnings

import numba
import numpy as np
import pytest
import scipy.ndimage as ndi
from kernels import sample, span_callable, span_cfunc
from kernels import window_spread as spread

from stencilkit import StencilError, StencilTypeError, filters
from stencilkit._errors import StencilPerformanceWarning

da = pytest.importorskip("dask.array")

CROSS = ndi.generate_binary_structure(2, 1)
ODD = np.array([[1, 1, 0], [0, 1, 1]], bool)  # even length along axis 0, asymmetric
WINDOWS = [({"size": 3}, 0), ({"size": (2, 4)}, (0, -1)), ({"footprint": ODD}, (-1, 1)),
           ({"footprint": CROSS}, (1, 0))]
WINDOW_IDS = ["size3", "size2x4", "odd_footprint", "cross"]
MODES = [("reflect", 0.0), ("constant", -2.5), ("nearest", 0.0), ("mirror", 0.0),
         ("wrap", 0.0), ("constant", 7.0)]


def weighted(values, weights, scale=1.0):
    s = 0.0
    for i in range(values.size):
        s += values[i] * weights[i]
    return s * scale


def shifted(line, result, k, offset=0.0):
    for i in range(result.size):
        result[i] = line[i] * k - line[i + 2] + offset


def _image(dtype, shape=(11, 14), seed=0):
    a = sample(shape, dtype, seed=seed)
    if np.dtype(dtype).kind == "f":
        a[2, 3] = np.nan
    return a


@pytest.mark.parametrize("window,origin", WINDOWS, ids=WINDOW_IDS)
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32, np.float64, np.bool_])
def test_generic_filter_equals_scipy(window, origin, dtype):
    """Every mode and cval; the float64 result exactly, integer outputs rounded once."""
    a = _image(dtype)
    # (numba's NumPy sums in order where NumPy sums pairwise: its std an ulp or so apart)
    for fn, rtol in ((spread, 0), (np.median, 0), (np.std, 1e-14)):
        for mode, cval in MODES:
            kw = dict(window, mode=mode, cval=cval, origin=origin)
            want = ndi.generic_filter(a, fn, output=np.float64, **kw)
            got = filters.generic_filter(a, fn, output=np.float64, **kw)
            np.testing.assert_allclose(got, want, rtol=rtol, atol=0,
                                       err_msg=f"{fn.__name__} {mode} {cval}")
            if a.dtype.kind in "biu" and not rtol:  # (scipy truncates into integers, wraps)
                info = np.iinfo(np.uint8 if a.dtype == bool else a.dtype)
                rounded = np.clip(np.nan_to_num(np.rint(want)), info.min, info.max)
                got = filters.generic_filter(a, fn, **kw)
                assert got.dtype == a.dtype  # (bool: as every filter's, True from 1 up)
                np.testing.assert_array_equal(
                    got, rounded >= 1 if a.dtype == bool else rounded.astype(a.dtype))


def test_generic_filter_in_3d_along_axes_and_in_parallel():
    a = sample((4, 9, 10), np.float32, seed=3)
    for kw in ({"size": (3, 2), "axes": (2, 1), "origin": (0, -1)},
               {"footprint": ODD, "axes": (0, 2), "mode": "mirror"},
               {"size": (2, 1, 3), "mode": "wrap"}):
        want = ndi.generic_filter(a, spread, **kw)
        np.testing.assert_array_equal(filters.generic_filter(a, spread, **kw), want, str(kw))
    big = sample((90, 80), np.float64, seed=4)  # (more elements than run on one thread)
    np.testing.assert_array_equal(filters.generic_filter(big, np.median, size=(3, 4)),
                                  ndi.generic_filter(big, np.median, size=(3, 4)))


def test_generic_filter_extra_arguments_keywords_and_kinds_of_function():
    a = sample((10, 12), np.int16, seed=1)
    w = np.linspace(-1, 2, 9)
    for fn in (weighted, numba.njit(weighted)):
        for extra in ({"extra_arguments": (w,)},
                      {"extra_arguments": (w,), "extra_keywords": {"scale": 0.5}},
                      {"extra_keywords": {"weights": w, "scale": -2.0}}):
            want = ndi.generic_filter(a, weighted, size=3, output=np.float64, **extra)
            got = filters.generic_filter(a, fn, size=3, output=np.float64, **extra)
            np.testing.assert_array_equal(got, want, str(extra))
    for fn in (lambda v: v[0] - v[-1], np.ptp, np.amax, np.mean):  # a lambda, NumPy's functions
        np.testing.assert_allclose(
            filters.generic_filter(a, fn, footprint=ODD, output=np.float64),
            ndi.generic_filter(a, fn, footprint=ODD, output=np.float64), rtol=1e-15, atol=0)


def test_c_functions_as_scipy_takes_them():
    """scipy's own C test callbacks (a bare capsule, a LowLevelCallable) and a numba cfunc,
    compiled into the loop (no warning)."""
    from scipy.ndimage import _ctest

    im = sample((20, 21), np.float64, seed=2)
    weights = np.arange(5.0) / 10
    for fn in (_ctest.filter2d(weights), span_callable()):
        np.testing.assert_array_equal(filters.generic_filter(im, fn, footprint=CROSS),
                                      ndi.generic_filter(im, fn, footprint=CROSS))
    np.testing.assert_array_equal(filters.generic_filter1d(im, _ctest.filter1d(3), 3, axis=0),
                                  ndi.generic_filter1d(im, _ctest.filter1d(3), 3, axis=0))


def test_c_functions_in_other_forms_and_their_signature_checked():
    """A numba cfunc and a ctypes function pointer are C functions too (scipy would call them
    from Python with the window and ctypes refuse it): taken as LowLevelCallables; a ctypes
    function of another signature is refused by name."""
    import ctypes

    im = sample((9, 11), np.float64, seed=4)
    want = ndi.generic_filter(im, span_callable(), size=3, mode="wrap")
    for fn in (span_cfunc(), span_cfunc().ctypes):
        np.testing.assert_array_equal(filters.generic_filter(im, fn, size=3, mode="wrap"), want)
    other = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_double)(lambda v: 1)
    with pytest.raises(StencilTypeError, match=r"signature 'int \(double\)' is not one that "
                       r"generic_filter takes: int \(double \*, npy_intp, double \*, void \*\)"):
        filters.generic_filter(im, other, size=3)
    with pytest.raises(StencilTypeError, match="a ctypes function must have one of the C "
                       "signatures int .double .*, npy_intp, double .*, void .*. or"):
        filters.generic_filter(im, ctypes.pythonapi.Py_IsInitialized, size=3)  # no argtypes


def test_c_functions_in_a_pickled_graph_run_in_this_process_and_say_why_not_elsewhere(
        monkeypatch):
    """dask.distributed pickles every graph, its in-process workers' too: a C function comes
    back in the process that pickled it (a forked one too) and works; in any other process
    (here: the record of live functions emptied) computing raises the reason and what to do,
    as the task's error (raised while unpickling, it would take a worker down)."""
    import pickle

    from stencilkit import _generic

    im = sample((12, 10), np.float64, seed=5)
    want = ndi.generic_filter(im, span_callable(), footprint=CROSS)
    for fn in (span_callable(), span_cfunc()):
        lazy = filters.generic_filter(da.from_array(im, chunks=(5, 4)), fn, footprint=CROSS)
        data = pickle.dumps(lazy)
        np.testing.assert_array_equal(pickle.loads(data).compute(scheduler="threads"), want)
        with monkeypatch.context() as m:
            m.setattr(_generic, "_LIVE", {})
            elsewhere = pickle.loads(data)
            with pytest.raises(StencilTypeError, match="cannot run in another process .* "
                               "Dask's threads .* Python or numba.njit code"):
                elsewhere.compute(scheduler="threads")
    # a Python function travels as itself
    lazy = filters.generic_filter(da.from_array(im, chunks=(5, 4)), np.ptp, footprint=CROSS)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(lazy)).compute(), want)


def test_a_function_numba_cannot_compile_runs_from_python_with_a_warning():
    a = sample((7, 9), np.float32, seed=6)
    table = {0: 1.0}

    def pythonic(values):  # a dict of Python objects: no numba type
        return float(sorted(values.tolist())[1]) + table[0]

    want = ndi.generic_filter(a, pythonic, size=3, mode="constant", cval=1.5)
    with pytest.warns(StencilPerformanceWarning, match="pythonic.*could not be compiled"):
        got = filters.generic_filter(a, pythonic, size=3, mode="constant", cval=1.5)
    np.testing.assert_array_equal(got, want)

    def line_py(line, result):
        result[:] = [float(x) * table[0] for x in line[1:-1]]

    with pytest.warns(StencilPerformanceWarning):
        got = filters.generic_filter1d(a, line_py, 3, axis=0, mode="wrap")
    np.testing.assert_array_equal(got, ndi.generic_filter1d(a, line_py, 3, axis=0, mode="wrap"))


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
def test_generic_filter1d_equals_scipy(dtype):
    a = sample((5, 7, 9), dtype, seed=2)
    for axis in (0, 1, -1):
        for size, origin in ((1, 0), (3, 0), (4, -2), (5, 2), (12, 0)):
            for mode, cval in MODES[:4]:
                kw = {"axis": axis, "origin": origin, "mode": mode, "cval": cval,
                      "extra_arguments": (2.0,), "extra_keywords": {"offset": 0.5}}
                want = ndi.generic_filter1d(a, _line_of(size), size, output=np.float64, **kw)
                got = filters.generic_filter1d(a, _line_of(size), size, output=np.float64, **kw)
                np.testing.assert_array_equal(got, want, err_msg=str((axis, size, kw)))


def _line_of(size):
    """``shifted`` for windows of at least 3, a copy of the window's first element below."""
    return shifted if size >= 3 else _first


def _first(line, result, k, offset=0.0):
    for i in range(result.size):
        result[i] = line[i] * k + offset


def d2_gauss(input, axis, output, mode, cval, sigma, scale=1.0):
    order = [0] * input.ndim
    order[axis] = 2
    return filters.gaussian_filter(input, sigma * scale, order, output, mode, cval)


def test_generic_laplace_and_gradient_magnitude_equal_scipy():
    a = sample((12, 13), np.float64, seed=7)

    def d2_scipy(input, axis, output, mode, cval, sigma, scale=1.0):
        # (scipy keeps the first axis' term in ``output``: a function writes it there)
        order = [0] * input.ndim
        order[axis] = 2
        return ndi.gaussian_filter(input, sigma * scale, order, output, mode, cval)

    kw = {"extra_arguments": (1.5,), "extra_keywords": {"scale": 2.0}, "mode": "wrap"}
    np.testing.assert_allclose(filters.generic_laplace(a, d2_gauss, **kw),
                               ndi.generic_laplace(a, d2_scipy, **kw), rtol=0, atol=1e-12)
    kw = {"mode": ["reflect", "wrap"]}  # (a nonzero cval: README, sobel with "constant")
    np.testing.assert_allclose(filters.generic_gradient_magnitude(a, filters.sobel, **kw),
                               ndi.generic_gradient_magnitude(a, ndi.sobel, **kw),
                               rtol=1e-15, atol=0)
    # integers: the terms in float64, the sum rounded once
    b = sample((12, 13), np.int16, seed=8) // 16
    want = ndi.generic_gradient_magnitude(b.astype(np.float64), ndi.sobel)
    got = filters.generic_gradient_magnitude(b, filters.sobel)
    assert got.dtype == np.int16
    np.testing.assert_array_equal(got, np.rint(want).astype(np.int16))
    # along some axes; none: the input
    c = sample((3, 6, 7), np.float32, seed=9)
    np.testing.assert_allclose(filters.generic_laplace(c, d2_gauss, axes=(0, 2),
                                                       extra_arguments=(1.0,)),
                               ndi.generic_laplace(c, d2_scipy, axes=(0, 2),
                                                   extra_arguments=(1.0,)),
                               rtol=0, atol=2e-6 * np.abs(c).max())  # (float32 terms)
    np.testing.assert_array_equal(filters.generic_laplace(c, d2_gauss, axes=()), c)


@pytest.mark.parametrize("mode", ["reflect", "constant", "wrap", "mirror", "nearest"])
def test_generic_filters_on_dask_equal_numpy(mode):
    """Uneven chunks, some smaller than the window's reach."""
    a = sample((17, 23), np.int16, seed=5)
    d = da.from_array(a, chunks=((5, 1, 4, 7), (3, 12, 8)))
    kw = {"footprint": ODD, "origin": (0, -1), "mode": mode, "cval": 2.5}
    got = filters.generic_filter(d, spread, **kw)
    assert isinstance(got, da.Array) and got.dtype == np.int16
    np.testing.assert_array_equal(got.compute(), filters.generic_filter(a, spread, **kw))
    for axis in (0, 1):
        kw = {"axis": axis, "origin": -1, "mode": mode, "cval": 2.5, "extra_arguments": (3.0,)}
        got = filters.generic_filter1d(d, shifted, 4, output=np.float32, **kw)
        np.testing.assert_array_equal(got.compute(),
                                      ndi.generic_filter1d(a, shifted, 4, output=np.float32, **kw))
    got = filters.generic_laplace(d.astype(np.float64), d2_gauss, extra_arguments=(1.0,))
    np.testing.assert_allclose(got.compute(), filters.generic_laplace(
        a.astype(np.float64), d2_gauss, extra_arguments=(1.0,)), rtol=0, atol=1e-9)


def test_generic_filters_on_device_arrays():
    """numba.cuda device arrays (the simulator without a GPU): the function compiled for the
    device, the CPU's results; NumPy's functions and keyword-only arguments refused."""
    import stencilkit as sk

    if not sk.cuda_available():
        pytest.skip("no CUDA")
    from numba import cuda

    a = _image(np.float32)
    w = np.linspace(-1, 2, 6)
    for fn, kw in ((spread, {"footprint": ODD, "origin": (0, -1), "mode": "constant",
                             "cval": 3.5}),
                   (weighted, {"size": (2, 3), "mode": "wrap", "extra_arguments": (w,),
                               "extra_keywords": {"scale": 0.5}})):
        got = filters.generic_filter(cuda.to_device(a), fn, output=np.int16, **kw)
        assert not isinstance(got, np.ndarray) and got.dtype == np.int16
        np.testing.assert_array_equal(got.copy_to_host(),
                                      filters.generic_filter(a, fn, output=np.int16, **kw))
    stack = sample((2, 9, 10), np.int16, seed=4)  # (a window along the last two axes)
    for kw in ({"footprint": ODD, "axes": (1, 2), "mode": "reflect"},
               {"size": (2, 1, 3), "mode": "nearest"}):
        np.testing.assert_array_equal(
            filters.generic_filter(cuda.to_device(stack), spread, **kw).copy_to_host(),
            np.clip(np.rint(ndi.generic_filter(stack, spread, output=np.float64, **kw)),
                    -32768, 32767).astype(np.int16))
    kw = {"axis": 0, "mode": "mirror", "extra_arguments": (2.0,), "extra_keywords": {"offset": 1}}
    got = filters.generic_filter1d(cuda.to_device(a), shifted, 3, **kw)
    np.testing.assert_array_equal(got.copy_to_host(), ndi.generic_filter1d(a, shifted, 3, **kw))
    with pytest.raises(StencilTypeError, match="no device version"):
        filters.generic_filter(cuda.to_device(a), np.mean, size=3)

    def keyword_only(values, *, k):
        return values[0] * k

    with pytest.raises(StencilTypeError, match="keyword-only"):
        filters.generic_filter(cuda.to_device(a), keyword_only, size=3,
                               extra_keywords={"k": 2.0})


def test_generic_filters_raise_scipys_types():
    a = sample((6, 7), np.float64)
    for bad, err in ((lambda: filters.generic_filter(a.astype(complex), spread, size=3),
                      TypeError),
                     (lambda: filters.generic_filter(a, 3, size=3), TypeError),
                     (lambda: filters.generic_filter(a, spread), RuntimeError),
                     (lambda: filters.generic_filter(a, spread, size=(3, 0)), RuntimeError),
                     (lambda: filters.generic_filter(a, spread, size=(3, 3, 3)), RuntimeError),
                     (lambda: filters.generic_filter(a, spread, size=3, origin=2), ValueError),
                     (lambda: filters.generic_filter(a, spread, size=3, mode="nope"), ValueError),
                     (lambda: filters.generic_filter(a, spread, size=3,
                                                     mode=["wrap", "wrap"]), RuntimeError),
                     (lambda: filters.generic_filter(a, spread, size=3, extra_arguments=5),
                      TypeError),
                     (lambda: filters.generic_filter(a, spread, size=3, extra_keywords=[1]),
                      TypeError),
                     (lambda: filters.generic_filter1d(a, shifted, 0), RuntimeError),
                     (lambda: filters.generic_filter1d(a, shifted, 3, origin=2), ValueError),
                     (lambda: filters.generic_filter1d(a, shifted, 3, axis=2), IndexError),
                     (lambda: filters.generic_laplace(a, "d2"), TypeError)):
        with pytest.raises(err):
            bad()
        with pytest.raises(StencilError if err is not TypeError else StencilTypeError):
            bad()
    with pytest.warns(UserWarning, match="ignoring size"):
        filters.generic_filter(a, spread, size=2, footprint=CROSS)
    with pytest.raises(StencilTypeError, match="one real number per window"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", StencilPerformanceWarning)
            filters.generic_filter(a, lambda v: [v[0], v[1]], size=3)
    # the function's own error, from compiled code: one thread, and the parallel loop (where
    # numba loses an exception: caught, then raised by the serial loop)
    big = sample((70, 80), np.float64)
    for x in (a, big):
        with pytest.raises(ValueError, match="a window holding"):
            filters.generic_filter(x, _refuse_window, size=3)
        with pytest.raises(ValueError, match="a line of"):
            filters.generic_filter1d(x, _refuse_line, 3, axis=0)
    # a float division by zero: inf or NaN, as NumPy's float64 values give scipy's function
    with np.errstate(divide="ignore", invalid="ignore"):
        np.testing.assert_array_equal(filters.generic_filter(a, _divide_by_zero, size=3),
                                      ndi.generic_filter(a, _divide_by_zero, size=3))
    with pytest.raises(StencilTypeError, match="derivative"):
        filters.generic_laplace(a, lambda *args: None)
    empty = filters.generic_filter(np.zeros((0, 4), np.uint8), spread, size=3)
    assert empty.shape == (0, 4) and empty.dtype == np.uint8


def _divide_by_zero(values):
    return values[0] / (values[1] - values[1])


def _refuse_window(values):
    if values[0] > values[1]:
        raise ValueError("a window holding a larger first value")
    return values[0]


def _refuse_line(line, result):
    if line.size > 3:
        raise ValueError("a line of more than 3")


def test_generic_filter_into_an_output_array_and_from_views():
    a = sample((30, 40), np.uint16, seed=11)[::2, 1::3]  # (a strided view)
    out = np.empty(a.shape, np.float32)
    res = filters.generic_filter(a, spread, size=(3, 2), output=out, mode="nearest")
    assert res is out
    np.testing.assert_array_equal(out, ndi.generic_filter(a, spread, size=(3, 2),
                                                          output=np.float32, mode="nearest"))
    out = np.zeros(a.shape, np.uint8)  # integer output: rounded, saturated
    filters.generic_filter(a, spread, size=3, output=out)
    want = ndi.generic_filter(a, spread, size=3, output=np.float64)
    np.testing.assert_array_equal(out, np.clip(np.rint(want), 0, 255).astype(np.uint8))
    assert math.isfinite(float(out.sum()))


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int64, np.uint64, np.bool_,
                                   np.float32])
def test_the_loops_store_values_by_the_filters_rule(dtype):
    """The compiled loops' stores (the rounding written out, for numba.cuda) equal
    _dtypes.saturate (integers, bool) and NumPy's conversion (floats) on ties, NaN, infinities
    and the types' limits."""
    from stencilkit._dtypes import saturate
    from stencilkit.backends.cpu_lines.generic import store_of

    values = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49999999999999994, 127.5, 128.5,
                       -128.5, 255.5, 256.0, np.nan, np.inf, -np.inf, 2.0**63, -2.0**63,
                       2.0**64, 2.0**64 - 2048, 9.2e18, 1e300, -1e300, 3.0, 0.7, -0.7])
    store, lo, hi = store_of(dtype)
    got = np.zeros(values.size, dtype)
    for q, v in enumerate(values):
        store(got, q, v, lo, hi)
    with np.errstate(all="ignore"):
        want = values.astype(dtype) if np.dtype(dtype).kind == "f" else saturate(values, dtype)
    np.testing.assert_array_equal(got, want)


def test_a_cval_the_dtype_cannot_hold():
    """A cval outside the data's type: ignored by the modes that do not use it (it raised
    OverflowError for uint8 once), a float in the window's values for 'constant' (scipy's
    buffer holds it as a float), as scipy, for uint8, bool and float32 data."""
    a = sample((6, 7), np.uint8, seed=3)
    for x in (a, a > 100, a.astype(np.float32)):
        for mode, cval in (("reflect", -1.0), ("constant", -1.0), ("constant", 2.5),
                           ("constant", 1e300)):
            np.testing.assert_array_equal(
                filters.generic_filter(x, spread, size=3, mode=mode, cval=cval,
                                       output=np.float64),
                ndi.generic_filter(x, spread, size=3, mode=mode, cval=cval, output=np.float64),
                err_msg=f"{x.dtype} {mode} {cval}")
