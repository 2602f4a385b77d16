"""``block_reduce`` and ``decimate`` through the generated C++ kernel (backends.cuda_resample),
without a GPU: the calls go through the CUDA backend with a stand-in CuPy whose kernels g++
builds for the host (tests/cpp_host.py), and must equal the CPU's bit for bit, as the
numba.cuda kernel does (tests/test_cuda_resample.py)."""

import ctypes
import itertools

import numpy as np
import pytest
from test_cuda_resample import DTYPES, data

from stencilkit import resample
from stencilkit.backends import cuda_cpp, cuda_resample

cpp_host = pytest.importorskip("cpp_host")
cuda = pytest.importorskip("numba.cuda")

CASES = [  # (func, factor, edge): every func and edge rule, whole and partial blocks
    ("mean", (2, 2), "partial"), ("sum", (3, 2), "pad"), ("min", (2, 5), "trim"),
    ("max", (3, 3), "partial"), ("mean", (1, 4), "pad"), ("max", (4, 1), "trim"),
]


@pytest.mark.parametrize("k,dtype", list(enumerate(DTYPES)))
def test_block_reduce_takes_the_cpp_kernel_equal_to_the_cpu(fake_gpu, k, dtype):
    a = data((2, 13, 17), dtype, seed=1)
    # each dtype: three of the cases, each case with two dtypes (a g++ build per module)
    for func, factor, edge in [CASES[(k + 2 * i) % len(CASES)] for i in range(3)]:
        kw = {"edge": edge, **({"cval": 7} if edge == "pad" else {})}
        want = resample.block_reduce(a, (1, *factor), func, **kw)
        got = resample.block_reduce(cuda.to_device(a), (1, *factor), func, **kw)
        np.testing.assert_array_equal(got.copy_to_host(), want, err_msg=f"{func} {factor} {edge}")
        assert fake_gpu.launched[-1] == "sk_blocks", (func, factor, edge)
    got = resample.decimate(cuda.to_device(a), (1, 3, 2))
    np.testing.assert_array_equal(got.copy_to_host(), resample.decimate(a, (1, 3, 2)))


def test_block_medians_take_the_cpp_kernel_equal_to_the_cpu(fake_gpu):
    """np.median of each block in float64 (mean of the two middle values, a NaN wins), rounded
    for integer results: blocks beyond the numba kernel's 64 elements too."""
    for dtype in (np.uint8, np.int16, np.float64):
        a = data((2, 21, 34), dtype, seed=5)
        if a.dtype.kind == "f":
            a[0, 3, 4] = np.nan
        for factor, edge in [((2, 2), "partial"), ((3, 5), "pad"), ((9, 9), "trim"),
                             ((16, 16), "partial"), ((8, 10), "pad")]:
            kw = {"edge": edge, **({"cval": 7} if edge == "pad" else {})}
            want = resample.block_reduce(a, (1, *factor), "median", **kw)
            got = resample.block_reduce(cuda.to_device(a), (1, *factor), "median", **kw)
            np.testing.assert_array_equal(got.copy_to_host(), want,
                                          err_msg=f"{dtype} {factor} {edge}")
            assert fake_gpu.launched[-1] == "sk_blocks"
    f = data((20, 20), np.float32, seed=6)  # float32: the two middle values' float64 mean
    got = resample.block_reduce(cuda.to_device(f), 4, "median")
    np.testing.assert_array_equal(got.copy_to_host(), resample.block_reduce(f, 4, "median"))


def test_negative_means_round_ties_to_even(fake_gpu):
    """Integer means of negative sums: the nearest integer, ties to even (floor division
    underneath, as in the kernel)."""
    x = np.array([[-1, -2, 3, 0, -5, -6], [0, -1, 1, 0, -7, -2], [-3, -3, 2, 2, 9, -9]],
                 np.int16)
    for factor, edge in [((2, 2), "partial"), ((1, 4), "pad"), ((3, 3), "trim")]:
        want = resample.block_reduce(x, factor, "mean", edge=edge)
        got = resample.block_reduce(cuda.to_device(x), factor, "mean", edge=edge)
        np.testing.assert_array_equal(got.copy_to_host(), want, err_msg=f"{factor} {edge}")
    assert resample.block_reduce(x, (1, 4), "mean", edge="pad")[0, 0] == 0  # -0.5 -> 0


def test_grid_smaller_than_the_output_walks_the_rows():
    """Fewer rows of threads than output rows: each thread strides down the rows."""
    mod = cuda_resample.generate(np.uint8, np.int64, np.uint8, 2, 2, "mean", pad=False,
                                 lo=0, hi=255, idx64=False)
    lib = cpp_host.build(mod.source)
    a = data((3, 41, 36), np.uint8, seed=4)
    dst = np.full((3, 21, 18), 99, np.uint8)
    for kname, grid, block, _ in mod.launches(a.shape, dst.shape, rows=3):
        assert grid[1] * block[1] < dst.shape[1]
        fn = getattr(lib, f"{kname}_host")
        fn.restype = None
        fn(*(ctypes.c_uint(v) for v in (*grid, *block)), ctypes.c_void_p(a.ctypes.data),
           ctypes.c_void_p(dst.ctypes.data),
           *(cpp_host._CTYPES[np.asarray(v).dtype](v.item())
             for v in cuda_resample.scalars(mod, a.shape, dst.shape, 0)))
    np.testing.assert_array_equal(dst, resample.block_reduce(a, (1, 2, 2), "mean"))


def test_modules_compile_with_nvrtc():
    cpp_host.needs_nvrtc()
    for (dtype, acc, out), op, pad in itertools.product(
            [(np.uint8, np.int64, np.uint8), (np.float32, np.float64, np.float32)],
            ["mean", "max", "take", "median"], [False, True]):
        mod = cuda_resample.generate(dtype, acc, out, 2, 2, op, pad=pad, lo=0, hi=255,
                                     idx64=False)
        assert ".entry sk_blocks(" in cuda_cpp.ptx(mod.source, "compute_90")


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float64])
def test_pyramid_level_takes_the_cpp_kernel_equal_to_numba_and_the_cpu(fake_gpu, monkeypatch,
                                                                         dtype):
    """Bit for bit the numba.cuda kernel's results (the same float64 sums in the same order),
    so integers exactly the CPU's (rounded once, ties to even) and floats to its round-off.
    Edges through the mapped indices."""
    a = data((2, 13, 10), dtype, seed=4)
    if np.dtype(dtype).kind == "i":
        a = a - np.asarray(100, dtype)  # negative sums: floor division, then ties to even
    for mode in ["mirror", "reflect", "nearest", "wrap", "constant"]:
        launched = len(fake_gpu.launched)
        got = [x.copy_to_host() for x in resample.pyramid_down(cuda.to_device(a), 2, mode=mode)]
        assert fake_gpu.launched[launched:] == ["sk_pyramid"] * 2
        with monkeypatch.context() as m:
            m.setattr(cuda_cpp, "available", lambda: (False, "numba's kernel (test)"))
            numba_ = [x.copy_to_host()
                      for x in resample.pyramid_down(cuda.to_device(a), 2, mode=mode)]
        for g, n, w in zip(got, numba_, resample.pyramid_down(a, 2, mode=mode)):
            np.testing.assert_array_equal(g, n, err_msg=mode)
            if np.dtype(dtype).kind == "f":
                np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-4)
            else:
                np.testing.assert_array_equal(g, w, err_msg=mode)
