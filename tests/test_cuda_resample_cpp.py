"""``block_reduce`` and ``decimate`` through the generated C++ kernel (backends.cuda_resample),
without a GPU: the calls go through the CUDA backend with a stand-in CuPy whose kernels g++
builds for the host (tests/cpp_host.py), and must equal the CPU's bit for bit, as the
numba.cuda kernel does (tests/test_cuda_resample.py)."""

import itertools

import numpy as np
import pytest
from test_cuda_resample import DTYPES, data

from stencilkit import resample
from stencilkit.backends import cuda_cpp, cuda_rank, cuda_resample

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


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32, np.float64],
                         ids=lambda d: np.dtype(d).name)
def test_large_block_medians_select_in_a_scratch_array_equal_to_the_cpu(fake_gpu, monkeypatch,
                                                                        dtype):
    """Blocks beyond a thread's buffer (MEDIAN_MAX): windows in a scratch array, selected
    (the rank filters' quickselect). Data of three values (ties everywhere), sorted and
    reversed blocks, a NaN, edge blocks down to one element, a volume's blocks; and a scratch
    array so small that each thread strides over columns, rows and planes."""
    rng = np.random.default_rng(9)
    few = rng.integers(0, 3, (2, 35, 52)).astype(dtype)
    rows = np.broadcast_to(np.arange(52, dtype=dtype), (2, 35, 52)).copy()
    reversed_ = rows[..., ::-1].copy()
    spread = data((2, 35, 52), dtype, seed=10)
    if spread.dtype.kind == "f":
        spread[1, 20, 30] = np.nan
    volume = data((7, 12, 13), dtype, seed=11)
    wide = data((1, 17, 700), dtype, seed=13)  # (42 output columns: more than a block's 32)
    cases = [(few, (1, 17, 17), "partial"), (few, (1, 16, 20), "pad"),
             (rows, (1, 20, 16), "trim"), (reversed_, (1, 17, 26), "partial"),
             (spread, (1, 18, 17), "pad"), (spread, (2, 17, 17), "partial"),
             (volume, (3, 10, 10), "partial"), (volume, (4, 9, 8), "pad"),
             (wide, (1, 17, 17), "partial")]
    for small in (False, True):
        if small:  # (one block of 32 threads' windows: the grid strides over every axis)
            monkeypatch.setattr(cuda_rank, "SCRATCH_BYTES", 1)
        for a, factor, edge in cases:
            kw = {"edge": edge, **({"cval": 2} if edge == "pad" else {})}
            want = resample.block_reduce(a, factor, "median", **kw)
            got = resample.block_reduce(cuda.to_device(a), factor, "median", **kw)
            np.testing.assert_array_equal(got.copy_to_host(), want,
                                          err_msg=f"{factor} {edge} {small}")
            kernel, grid, block = fake_gpu.grids[-1]
            assert kernel == "sk_blocks" and block == cuda_resample.SCRATCH_BLOCK
            assert not small or grid == (1, 1, 1), grid
    for f1, window in [(16, 0), (17, 272)]:  # (256 elements: a thread's buffer, sorted)
        mod = cuda_resample.module_for(np.dtype(dtype), np.float64, np.dtype(dtype), 16, f1,
                                       "median", False, 0, 0, False)
        assert mod.window == window and ("pivot" in mod.source) == bool(window)


def test_block_medians_beyond_the_scratch_arrays_say_so(fake_gpu):
    import stencilkit as sk

    d = cuda.to_device(np.zeros((2, 3, 4), np.uint8))
    with pytest.raises(sk.StencilError, match=r"at most 262144 elements .* \(factor \(2, 512, "
                                              r"257\), 263168 elements\); copy the array"):
        resample.block_reduce(d, (2, 512, 257), "median")


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
        cpp_host.launch(lib, mod.source, kname, grid, block,
                        [a, dst, *cuda_resample.scalars(mod, a.shape, dst.shape, 0)])
    np.testing.assert_array_equal(dst, resample.block_reduce(a, (1, 2, 2), "mean"))


@pytest.mark.parametrize("idx64", [False, True], ids=["32-bit", "64-bit"])
def test_large_block_medians_in_either_index_width(idx64):
    """The scratch array's medians launched directly, 32- and 64-bit indices (arrays past
    2^31 elements take the latter): the CPU's medians."""
    a = data((2, 40, 37), np.float32, seed=12)
    mod = cuda_resample.generate(np.float32, np.float64, np.float32, 17, 18, "median",
                                 pad=False, idx64=idx64)
    assert mod.window == 17 * 18
    lib = cpp_host.build(mod.source)
    dst = np.full((2, 3, 3), 99, np.float32)
    scratch = np.full(mod.scratch_size(dst.shape), np.nan)
    for kname, grid, block, _ in mod.launches(a.shape, dst.shape):
        cpp_host.launch(lib, mod.source, kname, grid, block,
                        [a, dst, scratch, *cuda_resample.scalars(mod, a.shape, dst.shape, 0)])
    np.testing.assert_array_equal(dst, resample.block_reduce(a, (1, 17, 18), "median"))


@pytest.mark.parametrize("dtype,factor,row", [
    (np.uint8, (1, 2, 2), 48), (np.int16, (1, 3, 2), 48), (np.float32, (1, 2, 2), 48),
    (np.float64, (1, 2, 1), 48), (np.uint8, (1, 1, 4), 48), (np.uint8, (2, 2, 2), 48),
    (np.float32, (3, 1, 2), 48), (np.uint8, (1, 2, 2), 40), (np.uint8, (2, 2, 2), 44),
    (np.int16, (1, 2, 1), 44)])
def test_aligned_rows_read_a_vector_a_row_equal_to_the_cpu(fake_gpu, dtype, factor, row):
    """Rows of whole 16-byte words (or 8 or 4): each thread reads its outputs' blocks as one
    such load a row (8 outputs of 2 x 2 uint8), the blocks of the last, partial rows (the padded)
    one at a time; every operation and edge rule, NaN included, and ``decimate``, equal to the
    CPU. Volumes: each row of the block's planes along the first axis, combined along it
    first (the last, partial planes one output at a time). A thread's outputs are one store
    where they fill 4, 8 or 16 aligned bytes. The same modules on a copy of the image one
    element off a 16-byte boundary take the one-at-a-time code throughout, and into an output
    one element off store each output alone, and agree."""
    vector = cuda_resample.vector_bytes(row // np.dtype(dtype).itemsize, np.dtype(dtype).itemsize)
    assert vector == {48: 16, 40: 8, 44: 4}[row]  # (rows of 48, 40, 44 bytes)
    per = cuda_resample.outputs_per_thread(dtype, *factor[1:], "sum", factor[:1], vector)
    assert per == vector // (factor[2] * np.dtype(dtype).itemsize) > 1
    n1 = row // np.dtype(dtype).itemsize
    a = data((5, 13, n1), dtype, seed=3)
    if a.dtype.kind == "f":
        a[1, 4, n1 // 2 + 1] = np.nan
    for func, edge in [("mean", "partial"), ("sum", "pad"), ("min", "trim"), ("max", "partial"),
                       ("mean", "pad"), ("take", None)]:
        kw = {"edge": edge, **({"cval": 7} if edge == "pad" else {})}
        x = cuda.to_device(a)
        assert cuda_cpp.as_cupy(x).data.ptr % 16 == 0  # (the premise: an aligned image)
        cuda_resample._MODULES.clear()
        if func == "take":
            want, got = (resample.decimate(v, factor) for v in (a, x))
        else:
            want = resample.block_reduce(a, factor, func, **kw)
            got = resample.block_reduce(x, factor, func, **kw)
        np.testing.assert_array_equal(got.copy_to_host(), want, err_msg=f"{func} {edge}")
        assert fake_gpu.launched[-1] == "sk_blocks"
        (mod,) = cuda_resample._MODULES.values()
        assert mod.per == per
        # the module once more on a copy one element off the boundary, then the aligned image
        # into an output one element off (the vector reads, each output stored alone)
        lib = cpp_host.build(mod.source)
        for src, dst, what in [(off_boundary(a), np.zeros(want.shape, mod.out), "unaligned"),
                               (a, off_boundary(np.zeros(want.shape, mod.out)),
                                "output unaligned")]:
            for kname, grid, block, _ in mod.launches(src.shape, dst.shape):
                cpp_host.launch(lib, mod.source, kname, grid, block,
                                [src, dst, *cuda_resample.scalars(mod, src.shape, dst.shape,
                                                                  kw.get("cval", 0))])
            np.testing.assert_array_equal(dst.astype(want.dtype), want,
                                          err_msg=f"{func} {edge} {what}")


def off_boundary(a):
    """A copy of ``a`` starting one element past a 16-byte boundary."""
    buf = np.zeros(a.size + 16, a.dtype)
    start = (-buf.ctypes.data % 16) // a.itemsize + 1
    off = buf[start:start + a.size].reshape(a.shape)
    off[...] = a
    return off


@pytest.mark.parametrize("lead", [(), (2, 1, 3)], ids=["planes", "volume"])
def test_modules_compile_with_nvrtc(lead):
    cpp_host.needs_nvrtc()
    for (dtype, acc, out), op, pad in itertools.product(
            [(np.uint8, np.int32, np.uint8), (np.int16, np.int64, np.int16),
             (np.float32, np.float64, np.float32)],
            ["mean", "min", "max", "take", "median"], [False, True]):
        for f in (2, 17):  # (17 x 17 medians: windows in a scratch array, selected)
            if f == 17 and op != "median":
                continue
            mod = cuda_resample.generate(dtype, acc, out, f, f, op, pad=pad, lo=0, hi=255,
                                         idx64=False, lead=lead)
            assert ".entry sk_blocks(" in cuda_cpp.ptx(mod.source, "compute_90")


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float64])
def test_pyramid_level_takes_the_cpp_kernel_equal_to_numba_and_the_cpu(fake_gpu, monkeypatch,
                                                                         dtype):
    """Bit for bit the numba.cuda kernel's results (the same float64 sums in the same order),
    so integers exactly the CPU's (rounded once, ties to even) and floats to its round-off.
    Edges through the mapped indices; 41 columns: threads of four outputs inside (each row
    loaded once) and at either edge (one output at a time)."""
    a = data((2, 13, 41), dtype, seed=4)
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


VOLUME_CASES = [  # (func, factor, edge) over (3, 5, 7, 9): blocks across the lead axes too
    ("mean", (1, 2, 2, 2), "partial"), ("sum", (2, 1, 3, 2), "pad"),
    ("min", (3, 2, 1, 4), "trim"), ("max", (2, 2, 2, 2), "partial"),
    ("mean", (2, 3, 2, 1), "pad"), ("sum", (1, 4, 1, 1), "partial"),
]


@pytest.mark.parametrize("dtype", [np.uint8, np.float64])
def test_volumes_take_one_cpp_launch_equal_to_the_cpu(fake_gpu, dtype):
    """Blocks across the axes before the last two (a volume's 2 x 2 x 2 mean): one launch of
    the C++ kernel, bit for bit the CPU's, which reduces axis by axis (float sums in its
    order: a float cval of 0.1 and NaN show it), with merged runs of unreduced axes."""
    a = data((3, 5, 7, 9), dtype, seed=2)
    if np.dtype(dtype).kind == "f":
        a[2, 4, 6, 8] = np.nan  # in a partial block
    for func, factor, edge in VOLUME_CASES:
        cval = (0.1 if np.dtype(dtype).kind == "f" else 7) if edge == "pad" else 0
        launched = len(fake_gpu.launched)
        got = resample.block_reduce(cuda.to_device(a), factor, func, edge=edge, cval=cval)
        want = resample.block_reduce(a, factor, func, edge=edge, cval=cval)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got.copy_to_host(), want, err_msg=f"{func} {factor} {edge}")
        assert fake_gpu.launched[launched:] == ["sk_blocks"], (func, factor, edge)
    launched = len(fake_gpu.launched)
    got = resample.decimate(cuda.to_device(a), (2, 1, 3, 2))
    np.testing.assert_array_equal(got.copy_to_host(), resample.decimate(a, (2, 1, 3, 2)))
    assert fake_gpu.launched[launched:] == ["sk_blocks"]


def test_float_volume_sums_follow_the_cpus_axis_order(fake_gpu):
    """Float64 data whose sums depend on the order: the kernel's nesting (first lead axis
    innermost, then the later ones, then rows, then columns) gives the CPU's bits; summing the
    lead axes the other way round would not (checked on the host, so the data does show the
    order)."""
    rng = np.random.default_rng(3)
    a = rng.standard_normal((4, 4, 6, 6)) * 10.0 ** rng.integers(-12, 13, (4, 4, 6, 6))
    factor = (2, 2, 3, 2)
    want = resample.block_reduce(a, factor, "sum")
    got = resample.block_reduce(cuda.to_device(a), factor, "sum").copy_to_host()
    np.testing.assert_array_equal(got, want)
    flipped = np.transpose(a, (1, 0, 2, 3))  # the two lead axes summed the other way
    other = resample.block_reduce(flipped, (2, 2, 3, 2), "sum").transpose(1, 0, 2, 3)
    assert not np.array_equal(other, want)


def test_volume_medians_take_the_cpp_kernel(fake_gpu):
    """Medians of blocks across lead axes (the numba kernels take the last two axes only)."""
    for dtype in (np.uint8, np.float32):
        a = data((5, 6, 7), dtype, seed=8)
        for factor, edge in [((2, 2, 2), "partial"), ((3, 2, 3), "pad"), ((4, 4, 4), "trim"),
                             ((5, 1, 1), "partial")]:
            kw = {"edge": edge, **({"cval": 7} if edge == "pad" else {})}
            got = resample.block_reduce(cuda.to_device(a), factor, "median", **kw)
            np.testing.assert_array_equal(got.copy_to_host(),
                                          resample.block_reduce(a, factor, "median", **kw),
                                          err_msg=f"{dtype} {factor} {edge}")
            assert fake_gpu.launched[-1] == "sk_blocks"
