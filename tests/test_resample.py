"""stencilkit.resample against plain NumPy loops, skimage and OpenCV, on NumPy and Dask."""

import itertools

import numpy as np
import pytest
import scipy.ndimage as ndi
from filter_table import exact_mean
from kernels import sample

from stencilkit import StencilError, StencilTypeError, resample

da = pytest.importorskip("dask.array")

_BINOMIAL = np.array([1, 4, 6, 4, 1])

DTYPES = [np.uint8, np.int16, np.float32, np.float64]
FUNCS = {"mean": np.mean, "sum": np.sum, "min": np.min, "max": np.max, "median": np.median}


def loop_reference(a, full, func, edge, cval):
    """Block by block with NumPy: the definition of block_reduce, nothing shared with it."""
    a = np.asarray(a)
    if edge == "trim":
        a = a[tuple(slice(0, (n // f) * f) for n, f in zip(a.shape, full))]
    elif edge == "pad":
        a = np.pad(a, [(0, (-n) % f) for n, f in zip(a.shape, full)], constant_values=cval)
    shape = tuple(-(-n // f) for n, f in zip(a.shape, full))
    out = np.empty(shape, np.float64)
    for idx in itertools.product(*(range(m) for m in shape)):
        block = a[tuple(slice(i * f, (i + 1) * f) for i, f in zip(idx, full))]
        if func == "sum" and a.dtype.kind in "iu":
            out[idx] = int(block.astype(np.int64).sum())
        else:
            out[idx] = FUNCS[func](block.astype(np.float64))
    if func == "sum":
        return out.astype(np.zeros(1, a.dtype).sum().dtype)
    if a.dtype.kind in "iu":
        info = np.iinfo(a.dtype)
        return np.clip(np.rint(out), info.min, info.max).astype(a.dtype)
    return out.astype(a.dtype)


CASES = [((12, 10), 2), ((13, 11), 2), ((13, 11), (3, 4)), ((5, 7, 9), (2, 1, 3)), ((17,), 4),
         ((3, 8, 10), (1, 2, 2))]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("func", list(FUNCS))
def test_block_reduce_matches_loop_reference_numpy_and_dask(func, dtype):
    for (shape, factor), edge in itertools.product(CASES, ("partial", "pad", "trim")):
        a = sample(shape, dtype) // (1 if np.dtype(dtype).kind == "f" else 3)
        full = (factor,) * len(shape) if np.ndim(factor) == 0 else factor
        cval = 5 if edge == "pad" else 0
        want = loop_reference(a, full, func, edge, cval)
        got = resample.block_reduce(a, factor, func, edge=edge, cval=cval)
        assert got.dtype == want.dtype and got.shape == want.shape, (shape, factor, edge)
        if np.dtype(dtype).kind == "f" and func in ("mean", "sum"):
            np.testing.assert_allclose(got, want, rtol=1e-6 if dtype == np.float32 else 1e-12)
        else:
            np.testing.assert_array_equal(got, want, err_msg=f"{shape} {factor} {edge}")
        x = da.from_array(a, chunks=tuple(max(1, n // 2 - 1) for n in shape))
        lazy = resample.block_reduce(x, factor, func, edge=edge, cval=cval)
        np.testing.assert_array_equal(lazy.compute(scheduler="sync"), got)


def test_block_mean_of_integers_rounds_ties_to_even_exactly():
    a = np.array([[1, 2, 3, 4], [0, 0, 0, 1]], np.uint8)  # block sums 3 and 8: 0.75, 2.0
    assert resample.block_reduce(a, 2).tolist() == [[1, 2]]
    assert resample.block_reduce(a, 2, np.mean).tolist() == [[1, 2]]  # skimage's spelling
    assert resample.block_reduce(a, 2, np.max).tolist() == [[2, 4]]
    ties = np.array([[1, 0, 3, 0]], np.int16)  # 0.5 -> 0, 1.5 -> 2
    assert resample.block_reduce(ties, (1, 2)).tolist() == [[0, 2]]
    neg = np.array([[-1, 0, -3, 0]], np.int16)  # -0.5 -> 0, -1.5 -> -2
    assert resample.block_reduce(neg, (1, 2)).tolist() == [[0, -2]]
    big = np.full((4, 4), 65535, np.uint16)
    assert resample.block_reduce(big, 2).tolist() == [[65535, 65535]] * 2


def test_block_mean_agrees_with_skimage_and_opencv():
    skimage_transform = pytest.importorskip("skimage.transform")
    cv2 = pytest.importorskip("cv2")
    a = sample((37, 50), np.float64)
    np.testing.assert_allclose(resample.block_reduce(a, (2, 3), edge="pad"),
                               skimage_transform.downscale_local_mean(a, (2, 3)), rtol=1e-12)
    img = sample((40, 60), np.uint8)
    ours = resample.block_reduce(img, 2).astype(int)
    theirs = cv2.resize(img, (30, 20), interpolation=cv2.INTER_AREA).astype(int)
    exact = img.reshape(20, 2, 30, 2).astype(int).sum(axis=(1, 3))
    tie = exact % 4 == 2  # OpenCV rounds ties up, stencilkit to even
    assert np.array_equal(ours[~tie], theirs[~tie])
    assert np.all(np.abs(ours - theirs)[tie] <= 1)


def test_nan_stays_in_its_block():
    a = np.arange(16.0).reshape(4, 4)
    a[0, 0] = np.nan
    for func in ("mean", "sum", "min", "max", "median"):
        got = resample.block_reduce(a, 2, func)
        assert np.isnan(got[0, 0]) and not np.isnan(got.ravel()[1:]).any(), func


def test_decimate_numpy_and_dask():
    a = sample((11, 7, 5), np.int16)
    np.testing.assert_array_equal(resample.decimate(a, (3, 2), axes=(0, 2)), a[::3, :, ::2])
    got = resample.decimate(a, 2)
    assert got.flags.c_contiguous
    np.testing.assert_array_equal(got, a[::2, ::2, ::2])
    x = da.from_array(a, chunks=(4, 3, 2))
    np.testing.assert_array_equal(resample.decimate(x, (3, 1, 2)).compute(), a[::3, :, ::2])


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_pyramid_down_matches_opencv(dtype):
    cv2 = pytest.importorskip("cv2")
    a = sample((45, 62), dtype) if dtype == np.uint8 else np.abs(sample((45, 62), dtype))
    levels = resample.pyramid_down(a, 3)
    want = prev = a
    for level in levels:
        want = cv2.pyrDown(want)
        assert level.shape == want.shape and level.dtype == want.dtype
        if dtype == np.float32:
            np.testing.assert_allclose(level, want, rtol=1e-5, atol=1e-3)
        else:
            # exact: integer 5 x 5 binomial sums (scipy, mirror = cv2's border) over 256,
            # rounded ties to even; OpenCV rounds ties up, and differs from it only there
            sums = ndi.correlate(prev.astype(np.int64), np.outer(_BINOMIAL, _BINOMIAL),
                                 mode="mirror")[::2, ::2]
            np.testing.assert_array_equal(level, exact_mean(sums, 256, np.uint8))
            tie = sums % 256 == 128
            np.testing.assert_array_equal(level[~tie], want[~tie])
            assert np.all(want[tie].astype(int) - level[tie] <= 1)
        want = prev = level  # the next level, from the same input
    x = da.from_array(a, chunks=(10, 17))
    lazy = resample.pyramid_down(x, 2)
    for lz, level in zip(lazy, levels):
        if dtype == np.float32:
            np.testing.assert_allclose(lz.compute(scheduler="sync"), level, rtol=1e-6)
        else:
            np.testing.assert_array_equal(lz.compute(scheduler="sync"), level)


BAD = [
    (lambda a: resample.block_reduce(a, 0), StencilError, r"factor must be >= 1"),
    (lambda a: resample.block_reduce(a, 1.5), StencilTypeError, r"factor must be integers"),
    (lambda a: resample.block_reduce(a, (2, 2, 2)), StencilError, r"factor has 3 values"),
    (lambda a: resample.block_reduce(a, 2, "mode"), StencilError, r"unknown func 'mode'"),
    (lambda a: resample.block_reduce(a, 2, edge="wrap"), StencilError, r"unknown edge 'wrap'"),
    (lambda a: resample.block_reduce(a, 2, cval=3), StencilError, r"only used with edge='pad'"),
    (lambda a: resample.block_reduce(a, 9, edge="trim"), StencilError, r"leaves nothing"),
    (lambda a: resample.block_reduce(a.astype(np.uint8), 2, edge="pad", cval=-1), StencilError,
     r"cval=-1 does not fit the uint8 data"),  # np.pad would wrap it to 255
    (lambda a: resample.block_reduce(a.astype(np.int16), 2, "max", edge="pad", cval=np.nan),
     StencilError, r"pass a cval in \[-32768, 32767\]"),
    (lambda a: resample.block_reduce(a.astype(complex), 2), StencilTypeError, r"real numeric"),
    (lambda a: resample.block_reduce(np.float64(1), 2), StencilError, r"0-d"),
    (lambda a: resample.decimate(a, 0), StencilError, r"factor must be >= 1"),
    (lambda a: resample.pyramid_down(a, 0), StencilError, r"levels must be >= 1"),
    (lambda a: resample.pyramid_down(a, 1.0), StencilTypeError, r"levels must be an int"),
    (lambda a: resample.pyramid_down(a, 9), StencilError, r"nothing left to halve"),
]


@pytest.mark.parametrize("call,exc,match", BAD, ids=[m for _, _, m in BAD])
def test_bad_parameters_raise_specific_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call(sample((6, 7), np.float64))


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint16, np.int16],
                         ids=lambda d: d.__name__)
def test_pyramid_down_integer_sweep_is_exact_every_mode(dtype):
    # the 8/16-bit one-sweep kernel (16- or 32-bit sums split by column parity, ties to even
    # by shifts) against exact sums
    info = np.iinfo(dtype)
    rng = np.random.default_rng(5)
    for shape in [(45, 62), (2, 2), (2, 3), (7, 2), (3, 5, 9), (5, 255 * 2 + 1)]:
        a = rng.integers(info.min, info.max, shape, endpoint=True).astype(dtype)
        for mode in ("mirror", "reflect", "nearest", "wrap"):
            got = resample.pyramid_down(a, 1, mode=mode)[0]
            sums = ndi.correlate(a.astype(np.int64), np.outer(_BINOMIAL, _BINOMIAL)[
                (None,) * (a.ndim - 2)], mode=mode)[..., ::2, ::2]
            np.testing.assert_array_equal(got, exact_mean(sums, 256, dtype), err_msg=mode)
    for value in (info.min, info.max):  # the largest sums (65280 for uint8 in 16 bits)
        a = np.full((6, 9), value, dtype)
        np.testing.assert_array_equal(resample.pyramid_down(a, 1)[0], np.full((3, 5), value))
