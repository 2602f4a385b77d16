"""Resampling on device arrays against the CPU: block reductions bit for bit, decimation exact,
pyramids exact for integers and to round-off for floats. Runs under the CUDA simulator without a
GPU (tests/conftest.py)."""

import itertools

import numpy as np
import pytest

import stencilkit as sk
from stencilkit import resample

pytestmark = pytest.mark.skipif(not sk.cuda_available(), reason="no CUDA")
cuda = pytest.importorskip("numba.cuda")

# the dtypes whose CPU kernels tests/test_resample.py compiles anyway (compiling is most of a
# cold test run); bool, uint64 and float16 have a test of their own below
DTYPES = [np.uint8, np.int16, np.float32, np.float64]


def data(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        a = (rng.standard_normal(shape) * 50).astype(dtype)
        a.flat[5] = np.nan  # NaN stays in its own block
        return a
    if dtype.kind == "b":
        return rng.integers(0, 2, shape).astype(bool)
    return rng.integers(0, 200, shape).astype(dtype)


def host(x):
    assert not isinstance(x, np.ndarray)  # the result stayed on the device
    return x.copy_to_host()


def same(got, want):
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("func", ["mean", "sum", "min", "max", "median"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_block_reduce_equals_the_cpu(dtype, func):
    a = data((3, 11, 13), dtype)
    d = cuda.to_device(a)
    factors = [(1, 3, 2), (1, 2, 5)] if func == "median" else [2, (1, 3, 2), (2, 1, 4)]
    for edge, factor in itertools.product(resample.EDGES, factors):
        cval = 7 if edge == "pad" else 0
        same(host(resample.block_reduce(d, factor, func, edge=edge, cval=cval)),
             resample.block_reduce(a, factor, func, edge=edge, cval=cval))


@pytest.mark.parametrize("dtype", [np.bool_, np.uint64, np.float16],
                         ids=lambda d: np.dtype(d).name)
def test_block_reduce_other_dtypes(dtype):
    a = data((11, 13), dtype)
    d = cuda.to_device(a)
    for func, edge in [("mean", "partial"), ("sum", "pad"), ("max", "trim")]:
        same(host(resample.block_reduce(d, 2, func, edge=edge)),
             resample.block_reduce(a, 2, func, edge=edge))


def test_block_reduce_one_and_four_axes():
    a = data((17,), np.int16)
    same(host(resample.block_reduce(cuda.to_device(a), 4)), resample.block_reduce(a, 4))
    same(host(resample.block_reduce(cuda.to_device(a), 4, "median")),
         resample.block_reduce(a, 4, "median"))
    b = data((2, 3, 5, 7), np.float32)
    same(host(resample.block_reduce(cuda.to_device(b), (2, 2, 2, 3), "max")),
         resample.block_reduce(b, (2, 2, 2, 3), "max"))


def test_decimate_and_empty_results():
    a = data((5, 9, 10), np.uint8)
    same(host(resample.decimate(cuda.to_device(a), (2, 1, 3))), resample.decimate(a, (2, 1, 3)))
    e = resample.block_reduce(cuda.to_device(np.zeros((0, 6), np.float32)), 2)
    assert tuple(e.shape) == (0, 3)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32], ids=lambda d: d.__name__)
def test_pyramid_down(dtype):
    a = data((2, 19, 22), dtype)
    got = [host(x) for x in resample.pyramid_down(cuda.to_device(a), 2)]
    for g, w in zip(got, resample.pyramid_down(a, 2)):
        if np.dtype(dtype).kind == "f":  # the CPU sums the fused sweep in another order
            np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-4)
        else:
            same(g, w)


def test_device_errors():
    from stencilkit.backends import cuda_cpp

    d = cuda.to_device(np.ones((4, 16, 16), np.uint8))
    if not cuda_cpp.available()[0]:  # numba.cuda only: the last two axes, 64 elements
        with pytest.raises(sk.StencilError, match="GPU median takes blocks of at most 262144"):
            resample.block_reduce(d, (2, 12, 12), "median")  # 288 elements, lead axes
        with pytest.raises(sk.StencilError, match=r"last two axes of at most 64 \(numba.cuda\)"):
            resample.block_reduce(d, (1, 9, 9), "median")
        with pytest.raises(sk.StencilError, match="last two axes"):
            resample.block_reduce(d, 2, "median")
    with pytest.raises(sk.StencilError, match="unknown func"):
        resample.block_reduce(d, 2, "mode")


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64],
                         ids=lambda d: np.dtype(d).name)
def test_last_two_axes_take_one_launch_equal_to_the_cpu(dtype, monkeypatch):
    # images and stacks: one reduce2/take2 launch, bit for bit the CPU's, whatever the edge
    # (a float cval of 0.1 makes the order of the padded sums visible); on a GPU with the C++
    # path, one launch of its kernel instead (backends.cuda_resample)
    from stencilkit.backends import cuda_blocks, cuda_resample

    launches = []
    for name in ("_launch", "_launch2"):
        real = getattr(cuda_blocks, name)
        monkeypatch.setattr(cuda_blocks, name,
                            lambda kernel, *a, real=real: launches.append(kernel) or
                            real(kernel, *a))
    real_cpp = cuda_resample.run

    def cpp(*args, **kw):
        ran = real_cpp(*args, **kw)
        if ran:
            launches.append("cpp")
        return ran

    monkeypatch.setattr(cuda_resample, "run", cpp)
    cases = [((2, 13, 11), (1, 3, 4)), ((9, 10), (2, 2)), ((15,), (4,)), ((1, 7, 9), (1, 7, 2))]
    for (shape, factor), func, edge in itertools.product(
            cases, ["mean", "sum", "min", "max"], resample.EDGES):
        a = data(shape, dtype, seed=len(shape))
        cval = (0.1 if np.dtype(dtype).kind == "f" else 7) if edge == "pad" else 0
        launches.clear()
        same(host(resample.block_reduce(cuda.to_device(a), factor, func, edge=edge, cval=cval)),
             resample.block_reduce(a, factor, func, edge=edge, cval=cval))
        assert launches in ([cuda_blocks.reduce2], ["cpp"])
    launches.clear()
    a = data((3, 10, 11), dtype)
    same(host(resample.decimate(cuda.to_device(a), (1, 3, 2))), resample.decimate(a, (1, 3, 2)))
    assert launches in ([cuda_blocks.take2], ["cpp"])


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.float32],
                         ids=lambda d: np.dtype(d).name)
def test_pyramid_level_is_one_launch(dtype, monkeypatch):
    # images and stacks: one pyr2 launch per level; integers exactly the CPU's (the exact sum
    # rounded once, ties to even), floats to round-off; every boundary mode
    from stencilkit.backends import cuda_blocks, cuda_resample

    launches = []
    real = cuda_blocks._launch2
    monkeypatch.setattr(cuda_blocks, "_launch2",
                        lambda kernel, *a: launches.append(kernel) or real(kernel, *a))
    real_cpp = cuda_resample.run_pyramid  # on a GPU with the C++ path: its kernel instead

    def cpp(*args, **kw):
        ran = real_cpp(*args, **kw)
        if ran:
            launches.append(cuda_blocks.pyr2)
        return ran

    monkeypatch.setattr(cuda_resample, "run_pyramid", cpp)
    a = data((2, 13, 10), dtype, seed=4)
    for mode in ["mirror", "reflect", "nearest", "wrap", "constant"]:
        launches.clear()
        got = [host(x) for x in resample.pyramid_down(cuda.to_device(a), 2, mode=mode)]
        assert launches == [cuda_blocks.pyr2] * 2
        for g, w in zip(got, resample.pyramid_down(a, 2, mode=mode)):
            if np.dtype(dtype).kind == "f":
                np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-4)
            else:
                same(g, w)
