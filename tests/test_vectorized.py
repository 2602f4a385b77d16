"""filters.vectorized_filter (a NumPy-vectorised function of every window) against scipy's.

scipy.ndimage.vectorized_filter is the reference (and a plain loop over the windows for one
case); in memory the values are scipy's bit for bit (the same NumPy reductions over the same
layout, here in batches on several threads); a Dask array's chunks give the same windows, whose
float reductions may add in another order (within 1e-13), integer ones exactly. `make compat`
runs scipy's own TestVectorizedFilter against this function too.
"""

import numpy as np
import pytest
import scipy.ndimage as ndi
from hypothesis import given, settings
from hypothesis import strategies as st
from kernels import sample

from stencilkit import StencilError, StencilTypeError, filters
from stencilkit._errors import StencilNotImplementedError

da = pytest.importorskip("dask.array")

MODES = ["reflect", "constant", "nearest", "mirror", "wrap", "grid-mirror"]
WINDOWS = [({"size": (3, 4, 5)}, None), ({"size": (3, 2)}, (0, 2)), ({"size": 5}, -1),
           ({"size": (2, 3)}, (2, 0)), ({"footprint": [[1, 0, 1], [0, 1, 1]]}, (1, 2))]


def spread(windows, axis):
    return np.max(windows, axis=axis) - np.min(windows, axis=axis)


@pytest.mark.parametrize("mode", MODES)
def test_equals_scipy_in_memory_for_every_window_axes_and_origin(mode):
    x = sample((11, 12, 13), np.float64, seed=3)
    keep = x.copy()
    for window, axes in WINDOWS:
        for origin in (-1, 0, 1):
            kw = dict(window, axes=axes, origin=origin, mode=mode)
            if mode == "constant":
                kw["cval"] = 0.25
            try:
                want = ndi.vectorized_filter(x, np.mean, **kw)
            except ValueError:  # an origin past a window of 2 (np.pad's negative width)
                with pytest.raises(StencilError, match="each origin must lie within its window"):
                    filters.vectorized_filter(x, np.mean, **kw)
                continue
            got = filters.vectorized_filter(x, np.mean, **kw)
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want, err_msg=str(kw))
            # many batches (a few rows each), on the thread pool: the same values
            small = filters.vectorized_filter(x, np.std, batch_memory=160000, **kw)
            np.testing.assert_array_equal(small, ndi.vectorized_filter(x, np.std, **kw))
    np.testing.assert_array_equal(x, keep)  # the input is never written


def test_a_loop_over_the_windows_and_valid_windows():
    """The windows themselves: a loop over them with np.pad's symmetric extension (scipy's
    'reflect'), and mode='valid' (only the windows inside, a smaller result; NumPy, Dask)."""
    x = sample((7, 9), np.float64, seed=5)
    ext = np.pad(x, ((1, 1), (2, 2)), mode="symmetric")
    want = np.array([[np.median(ext[i:i + 3, j:j + 5]) for j in range(9)] for i in range(7)])
    np.testing.assert_array_equal(filters.vectorized_filter(x, np.median, size=(3, 5)), want)
    valid = filters.vectorized_filter(x, np.median, size=(3, 5), mode="valid")
    np.testing.assert_array_equal(valid, want[1:-1, 2:-2])
    lazy = filters.vectorized_filter(da.from_array(x, chunks=(2, 3)), np.median, size=(3, 5),
                                     mode="valid")
    np.testing.assert_array_equal(lazy.compute(), want[1:-1, 2:-2])


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint64, np.float16, np.float32,
                                   np.complex128, np.bool_])
def test_the_function_gives_the_dtype(dtype):
    """Any dtype NumPy takes, the result in the function's own dtype (np.sum of uint8: uint64,
    of float16: float16), into an output of another dtype as NumPy assigns."""
    a = sample((30, 7), np.int64, seed=1) % 40
    a = (a + 1j * a if np.dtype(dtype).kind == "c" else a).astype(dtype)
    for fn in (np.sum, np.max) + ((spread,) if dtype != np.bool_ else ()):  # (bool: no -)
        want = ndi.vectorized_filter(a, fn, size=3)
        got = filters.vectorized_filter(a, fn, size=3)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
        lazy = filters.vectorized_filter(da.from_array(a, chunks=(4, 5)), fn, size=3)
        assert lazy.dtype == want.dtype
        np.testing.assert_array_equal(lazy.compute(), want)  # (integers: exact)
    out = np.zeros((7, 30), np.float64 if np.dtype(dtype).kind != "c" else np.complex128).T
    assert filters.vectorized_filter(a, np.sum, size=3, output=out) is out
    np.testing.assert_array_equal(out, ndi.vectorized_filter(a, np.sum, size=3))


def test_values_into_integer_outputs_round_and_saturate():
    """Into integers (an array or a dtype; NumPy, Dask) the values are rounded to nearest, ties
    to even, and saturated, as every filter's (scipy assigns: truncated, wrapped)."""
    a = np.array([[1, 2, 3, 300, -7, 0.5, 1.5, 2.5]])
    means = ndi.vectorized_filter(a, np.mean, size=(1, 2), mode="nearest")  # ties: x.5
    want = np.clip(np.rint(means), 0, 255).astype(np.uint8)
    assert want.tolist() == [[1, 2, 2, 152, 146, 0, 1, 2]]  # (window [i - 1, i])
    out = np.empty(a.shape, np.uint8)
    assert filters.vectorized_filter(a, np.mean, size=(1, 2), mode="nearest", output=out) is out
    np.testing.assert_array_equal(out, want)
    for x in (a, da.from_array(a, chunks=(1, 3))):
        got = filters.vectorized_filter(x, np.mean, size=(1, 2), mode="nearest",
                                        output=np.uint8)
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(np.asarray(got), want)
    sums = filters.vectorized_filter(np.full((4, 4), 200, np.int64), np.sum, size=2,
                                     output=np.int8)
    assert (sums == 127).all()  # (800: saturated, not wrapped)
    with pytest.raises(StencilTypeError, match="the function's values are complex .* the "
                       "output's dtype float64 is not"):
        filters.vectorized_filter(a + 1j, np.mean, size=2, output=np.float64)
    with pytest.raises(StencilTypeError, match="the function's values are complex"):
        filters.vectorized_filter(da.from_array(a + 1j), np.mean, size=2, output=np.float64)
    with pytest.raises(StencilTypeError, match="output must be a NumPy array or a dtype"):
        filters.vectorized_filter(a, np.mean, size=2, output="eggplant")


@settings(max_examples=25, deadline=None)
@given(shape=st.tuples(st.integers(1, 9), st.integers(1, 11)),
       chunks=st.tuples(st.integers(1, 5), st.integers(1, 6)),
       size=st.tuples(st.integers(1, 5), st.integers(1, 4)),
       mode=st.sampled_from(["reflect", "constant", "nearest", "mirror", "wrap", "valid"]),
       seed=st.integers(0, 2**16))
def test_dask_equals_numpy_for_any_chunking(shape, chunks, size, mode, seed):
    """Chunks smaller than the window, windows larger than the array, every mode."""
    if mode == "valid" and any(s > n for s, n in zip(size, shape)):
        size = tuple(min(s, n) for s, n in zip(size, shape))
    a = sample(shape, np.float64, seed=seed)
    kw = {"size": size, "mode": mode}
    if mode == "constant":
        kw["cval"] = -0.5
    x = da.from_array(a, chunks=chunks)
    np.testing.assert_allclose(filters.vectorized_filter(x, np.mean, **kw).compute(),
                               filters.vectorized_filter(a, np.mean, **kw), rtol=1e-13, atol=0)
    ints = (a * 100).astype(np.int32)
    np.testing.assert_array_equal(
        filters.vectorized_filter(da.from_array(ints, chunks=chunks), spread, **kw).compute(),
        ndi.vectorized_filter(ints, spread, **kw))


def test_functions_of_several_values_per_window():
    """In memory, the whole view in one call and the result as scipy places it; in batches,
    or on a Dask array, refused with the reason."""
    x = sample((6, 7), np.float64, seed=2)

    def low_high(windows, axis):
        return np.stack([windows.min(axis=axis), windows.max(axis=axis)], axis=-1)

    want = ndi.vectorized_filter(x, low_high, size=3)
    got = filters.vectorized_filter(x, low_high, size=3)
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    with pytest.raises(StencilError, match="one value per window when the windows are taken "
                       "in batches"):
        filters.vectorized_filter(x, low_high, size=3, batch_memory=1200)
    with pytest.raises(StencilNotImplementedError, match="on a Dask array, the function must "
                       r"give one value per window \(two windows gave an array of shape"):
        filters.vectorized_filter(da.from_array(x, chunks=3), low_high, size=3)


def test_errors_and_edge_cases():
    x = sample((5, 6), np.float64, seed=4)
    with pytest.raises(StencilError, match="`function` must be a callable"):
        filters.vectorized_filter(x, "mean", size=3)
    with pytest.raises(StencilError, match="`axes` must not repeat an axis"):
        filters.vectorized_filter(x, np.mean, size=3, axes=(0, -2))
    with pytest.raises(StencilError, match="output has shape \\(6, 5\\); the result's is "
                       "\\(5, 6\\)"):
        filters.vectorized_filter(x, np.mean, size=3, output=np.empty((6, 5)))
    with pytest.raises(StencilTypeError, match="output= arrays do not apply to a Dask input"):
        filters.vectorized_filter(da.from_array(x), np.mean, size=3, output=np.empty_like(x))
    frozen = np.empty_like(x)
    frozen.flags.writeable = False
    with pytest.raises(StencilError, match="output is read-only"):
        filters.vectorized_filter(x, np.mean, size=3, output=frozen)

    def failing(windows, axis):
        if windows.shape[0] < 5:  # (only the last batch)
            raise ArithmeticError("from the function")
        return windows.sum(axis=axis)

    with pytest.raises(ArithmeticError, match="from the function"):  # from a pool thread
        filters.vectorized_filter(np.ones((64, 64)), failing, size=3, batch_memory=64 * 9 * 8 * 6)
    # the output over the input: the same values (every mode reads the input extended into a
    # copy; 'valid', whose windows are views of the input itself, copies it first)
    # (the first batch, computed first, writes the row the second batch reads first)
    for mode, size in (("reflect", 3), ("valid", (2, 1))):
        y = sample((8, 5), np.float64, seed=6)
        want = filters.vectorized_filter(y, np.mean, size=size, mode=mode)
        out = y[-want.shape[0]:]
        assert filters.vectorized_filter(y, np.mean, size=size, mode=mode, output=out) is out
        np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(  # a window of no axes: the function of each element
        filters.vectorized_filter(x, np.mean, size=(), axes=()), x)
    x.flags.writeable = False  # a read-only input is fine
    np.testing.assert_array_equal(filters.vectorized_filter(x, np.mean, size=1), x)
    assert filters.vectorized_filter(np.empty((0, 3)), np.mean, size=2).shape == (0, 3)


def test_device_arrays_are_refused_with_the_way_round():
    from numba import cuda

    from stencilkit.backends import cuda as cuda_backend

    if not cuda_backend.simulated():
        pytest.skip("checked with the simulator's device arrays")
    with pytest.raises(StencilNotImplementedError, match="device arrays are not supported .* "
                       "use generic_filter"):
        filters.vectorized_filter(cuda.to_device(np.ones((4, 4))), np.mean, size=3)
