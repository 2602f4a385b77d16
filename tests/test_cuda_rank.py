"""The generated C++ median kernels for large windows (stencilkit.backends.cuda_rank), no GPU.

Each module is compiled for the host by g++ (``-DSK_HOST``) and its launches run thread by
thread (tests/cpp_host.py). Reference: the CPU backend's ``median_filter`` (its Huang
histograms and its quickselect), bit for bit: signed zeros compared as bits, NaN wins.
"""


import numpy as np
import pytest
from filter_table import cpu_passes
from kernels import sample

from stencilkit import filters
from stencilkit._passes import Rank
from stencilkit.backends import cuda_cpp, cuda_rank

cpp_host = pytest.importorskip("cpp_host")
pytestmark = pytest.mark.skipif(cpp_host.CXX is None, reason="needs a C++ compiler (g++)")

MODES = ["reflect", "mirror", "nearest", "wrap", "constant"]


def host_rank(p, x, mode, cval, idx64=False):
    """The Rank pass ``p`` over ``x`` as the CUDA backend launches it, run on the host."""
    mod, work_shape = cuda_rank.module_for(p, x.dtype, x.ndim, idx64)
    wshape = work_shape(x.shape)
    src = np.ascontiguousarray(x).reshape(wshape)
    dst = np.full(wshape, 99, x.dtype)  # stale values must all be overwritten
    scratch = np.full(mod.scratch_size(wshape), 77, x.dtype)
    lib = cpp_host.build(mod.source)
    for kname, grid, block in mod.launches(wshape):
        cpp_host.launch(lib, mod.source, kname, grid, block,
                        [src, dst, *([scratch] if mod.window else []),
                         *mod.scalars(wshape, mode, cval)])
    return mod, dst.reshape(x.shape)


def bits(a):
    """``a`` as unsigned integers of its bits (-0.0 and 0.0 differ, NaNs compare equal)."""
    a = np.asarray(a)
    if a.dtype.kind != "f":
        return a
    u = a.view(np.uint32 if a.itemsize == 4 else np.uint64).copy()
    u[np.isnan(a)] = 1
    return u


def check(monkeypatch, x, size, kernel, footprint=None, idx64=False, fn=filters.median_filter,
          **kw):
    for mode in MODES:
        args = dict(kw, mode=mode, cval=kw.get("cval", 0) if mode == "constant" else 0.0)
        want, plan = cpu_passes(monkeypatch, fn, x, size, footprint=footprint, **args)
        (p,) = plan.passes
        assert isinstance(p, Rank)
        mod, got = host_rank(p, x, mode, plan.cval, idx64)
        assert mod.kernel == kernel
        np.testing.assert_array_equal(bits(got), bits(want), err_msg=f"{size} {mode}")


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])  # (bool: as uint8; NVRTC test below)
def test_histogram_medians_equal_the_cpu(monkeypatch, dtype):
    """8-bit boxes over the last two axes: strips cut by the array's end, a stack, a window
    taller than the array, origins, a cval the CPU converts (300 -> 44 for uint8); 8-bit and
    16-bit counts."""
    x = sample((2, 150, 41), dtype, seed=1)
    check(monkeypatch, x, (1, 9, 9), "sk_huang", cval=300 if dtype == np.uint8 else 1)
    check(monkeypatch, x[0, :40], (57, 2), "sk_huang", origin=(3, -1), cval=-3)
    check(monkeypatch, x[1], (17, 17), "sk_huang")  # 289 elements: 16-bit counts
    check(monkeypatch, x[1], (9, 9), "sk_huang", idx64=True)  # 64-bit indices
    from stencilkit import codegen_cpp

    with monkeypatch.context() as m:  # a grid of one row of blocks: each walks every strip
        m.setattr(codegen_cpp, "MAX_GRID_YZ", 1)
        check(monkeypatch, x, (1, 9, 9), "sk_huang")


def test_other_ranks_equal_the_cpu(monkeypatch):
    """rank_filter and percentile_filter take the same kernels with their rank: histograms for
    8/16-bit boxes (a rank near the bottom, a percentile near the top), selection otherwise;
    the CPU's own result checked against scipy once."""
    import scipy.ndimage as ndi

    def rank(k):
        return lambda a, size, **kw: filters.rank_filter(a, k, size, **kw)

    def percentile(q):
        return lambda a, size, **kw: filters.percentile_filter(a, q, size, **kw)

    x = sample((2, 40, 41), np.uint8, seed=3)
    np.testing.assert_array_equal(rank(5)(x, (1, 9, 9)), ndi.rank_filter(x, 5, (1, 9, 9)))
    check(monkeypatch, x, (1, 9, 9), "sk_huang", fn=rank(5), cval=7)
    check(monkeypatch, smooth16((40, 41), np.uint16, seed=4), (7, 9), "sk_huang",
          fn=percentile(-12.5))
    f = sample((30, 33), np.float32, seed=5)
    f[3, 4] = np.nan
    check(monkeypatch, f, (8, 8), "sk_select", fn=rank(-5), origin=(1, -2))


def smooth16(shape, dtype, seed):
    """16-bit images whose windows' medians stay in one high byte for a while, then cross
    into the next (a ramp over 256-value boundaries plus a little noise), with full-range
    speckles: the fine bins both kept up to date and rebuilt."""
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    base = np.linspace(-700, 700, shape[-2])[:, None] + np.linspace(0, 300, shape[-1])
    if dtype == np.uint16:
        base = base + 1000
    a = np.broadcast_to(base, shape) + rng.integers(-20, 21, shape)
    speckle = rng.random(shape) < 0.05
    a = np.where(speckle, rng.integers(info.min, info.max, shape, endpoint=True), a)
    return np.clip(a, info.min, info.max).astype(dtype)


@pytest.mark.parametrize("dtype", [np.uint16, np.int16])
def test_two_level_histogram_medians_of_16_bit_data_equal_the_cpu(monkeypatch, dtype):
    """16-bit boxes over the last two axes (coarse bins of the high bytes, fine bins of the
    median's coarse bin): full-range noise (the median changes coarse bin almost every row),
    smooth ramps across 256-value boundaries (the fine bins slide), the extremes of the
    dtype, 8- and 16-bit counts, strips cut by the array's end, a stack, origins, a cval."""
    noise = sample((2, 150, 41), dtype, seed=7)
    ramp = smooth16((2, 150, 41), dtype, seed=8)
    for x in (noise, ramp):
        check(monkeypatch, x, (1, 9, 9), "sk_huang", cval=-5 if dtype == np.int16 else 70000)
        check(monkeypatch, x[0, :40], (57, 2), "sk_huang", origin=(3, -1), cval=3)
        check(monkeypatch, x[1], (17, 17), "sk_huang")  # 289 elements: 16-bit counts
    flat = np.full((70, 30), np.iinfo(dtype).max, dtype)
    flat[::7, ::3] = np.iinfo(dtype).min
    check(monkeypatch, flat, 11, "sk_huang", cval=np.iinfo(dtype).min)
    check(monkeypatch, ramp[1], (9, 9), "sk_huang", idx64=True)
    from stencilkit import codegen_cpp

    with monkeypatch.context() as m:  # a grid of one row of blocks: each walks every strip
        m.setattr(codegen_cpp, "MAX_GRID_YZ", 1)
        check(monkeypatch, ramp, (1, 9, 9), "sk_huang")


@pytest.mark.parametrize("dtype", [np.uint32, np.float64])  # (the CPU kernels the suite has)
def test_selection_medians_equal_the_cpu(monkeypatch, dtype):
    """Other dtypes and footprints: the same quickselect over the same order of elements (the
    same one of equal values: signed zeros compared as bits; a NaN wins)."""
    x = sample((33, 40), dtype, seed=2)
    if x.dtype.kind == "f":
        x[::3, ::2] = 0.0
        x[1::3, ::2] = -0.0
        x[5, 7] = np.nan
    check(monkeypatch, x, 9, "sk_select", cval=2)
    check(monkeypatch, x, 9, "sk_select", idx64=True)
    disk = np.add.outer(np.arange(-4, 5) ** 2, np.arange(-4, 5) ** 2) <= 18  # 61 elements
    check(monkeypatch, x, None, "sk_select", footprint=disk, origin=(1, 0))
    if dtype == np.float64:  # three axes, and a footprint along two of three
        # the windows in shared memory, 128, 64 (9 x 9 float64) and 32 threads a block
        assert [cuda_rank.select_threads(n, dtype) for n in (48, 81, 169)] == [128, 64, 32]
        check(monkeypatch, x, 13, "sk_select", cval=-0.0)
        cube = sample((12, 9, 10), dtype, seed=3)
        check(monkeypatch, cube, (3, 5, 5), "sk_select")
        check(monkeypatch, cube, (1, 8, 8), "sk_select")


@pytest.mark.parametrize("dtype", [np.uint32, np.float64])
def test_windows_beyond_a_threads_buffer_select_in_scratch(monkeypatch, dtype):
    """Windows of more than SELECT_BYTES: the same quickselect over windows in a scratch
    array (sk_select_scratch), the CPU's element bit for bit; a scratch array holding fewer
    windows than there are outputs, so that each thread strides over several."""
    x = sample((23, 26), dtype, seed=6)
    if x.dtype.kind == "f":
        x[::3, ::2] = 0.0
        x[1::3, ::2] = -0.0
        x[5, 7] = np.nan
    size = 23 if dtype == np.uint32 else 17  # 2116 / 2312 bytes of window
    check(monkeypatch, x, size, "sk_select_scratch", cval=2)
    monkeypatch.setattr(cuda_rank, "SCRATCH_BYTES", 1)  # one block of threads
    mod, got = host_rank(filters_rank(size), x, "reflect", 0.0)
    assert mod.launches(x.shape)[0][1] == (1, 1, 1) and x.size > mod.block[0]
    np.testing.assert_array_equal(bits(got), bits(filters.median_filter(x, size)))


@pytest.mark.parametrize("dtype", [np.int32, np.float32])  # (8/16-bit boxes: histograms)
def test_boxes_beyond_the_offsets_table_count_their_offsets(monkeypatch, dtype):
    """Boxes of more offsets than a table holds (OFFSETS_MAX): counted by nested loops in the
    table's order, the CPU's element bit for bit (a 2-D box of 8281 elements, a 3-D one of
    3 x 40 x 41: 14760 offsets); a small box too (9 x 8: sk_select, its loops the same)."""
    x = sample((2, 21, 23), dtype, seed=7)
    if x.dtype.kind == "f":
        x[0, ::2, ::3] = -0.0
        x[1, 4, 5] = np.nan
    for size in [(1, 91, 91), (3, 40, 41), (1, 9, 8)]:  # (every mode: check's)
        check(monkeypatch, x, size, "sk_select" if size[-1] == 8 else "sk_select_scratch",
              cval=1.5)
    check(monkeypatch, x, (1, 91, 91), "sk_select_scratch", idx64=True)  # 64-bit indices


def filters_rank(size):
    """The Rank pass of a ``size x size`` median."""
    n = size * size
    return Rank(((True,) * size,) * size, (size // 2, size // 2), n // 2, True)


def test_what_the_kernels_take():
    box = Rank(((True,) * 9,) * 9, (4, 4), 40, True)
    assert cuda_rank.huang_fits(box, np.uint8, 2)
    assert cuda_rank.huang_fits(box, np.uint16, 2)  # two levels of 256 bins
    assert not cuda_rank.huang_fits(box, np.int32, 2)
    assert cuda_rank.select_fits(box, np.int32)
    disk = Rank(((False, True, False), (True,) * 3, (False, True, False)), (1, 1), 2, True)
    assert not cuda_rank.huang_fits(disk, np.uint16, 2)  # a footprint: the selection
    wide = Rank(((True,) * 300,) * 3, (1, 150), 450, True)  # 300 column indices a thread
    assert not cuda_rank.huang_fits(wide, np.uint8, 2)
    assert cuda_rank.module_for(wide, np.uint8, 2, False)[0].kernel == "sk_select"
    big = Rank(((True,) * 33,) * 33, (16, 16), 544, True)  # 1089 elements
    assert cuda_rank.module_for(big, np.uint8, 2, False)[0].kernel == "sk_huang"
    assert cuda_rank.module_for(big, np.uint16, 2, False)[0].kernel == "sk_huang"
    assert cuda_rank.module_for(big, np.int32, 2, False)[0].kernel == "sk_select_scratch"
    assert cuda_rank.module_for(big, np.float32, 2, False)[0].kernel == "sk_select_scratch"
    huge = Rank(((True,) * 91,) * 91, (45, 45), 4140, True)  # 8281 elements x 2 axes
    assert cuda_rank.select_fits(huge, np.float32)  # (a box: its offsets counted)
    mod = cuda_rank.module_for(huge, np.float32, 2, False)[0]
    assert mod.kernel == "sk_select_scratch" and "sk_offsets" not in mod.source
    disk = np.hypot(*np.mgrid[-45:46, -45:46]) <= 45  # 6361 elements x 2 axes: a table
    ring = Rank(tuple(map(tuple, disk)), (45, 45), int(disk.sum()) // 2, True)
    assert not cuda_rank.select_fits(ring, np.float32)
    assert cuda_rank.module_for(ring, np.float32, 2, False) is None
    side = 256  # 65536 elements: beyond BOX_MAX
    assert not cuda_rank.select_fits(Rank(((True,) * side,) * side, (128, 128), 2**15, True),
                                     np.uint32)


def test_median_kernels_compile_with_nvrtc():
    cpp_host.needs_nvrtc()
    box = Rank(((True,) * 9,) * 9, (4, 4), 40, True)
    for dtype in (np.uint8, np.float32):
        mod, _ = cuda_rank.module_for(box, dtype, 2, False)
        ptx = cuda_cpp.ptx(mod.source, "compute_90")
        assert f".entry {mod.kernel}(" in ptx
        # histograms, or (float32) the windows of the selection's block: nothing local
        assert ".shared" in ptx and "local_depot" not in ptx, dtype
    mod, _ = cuda_rank.module_for(Rank(((True,) * 40,) * 5, (2, 20), 100, True), np.float64,
                                  2, False)  # 1600 bytes a window: in local memory
    assert mod.block == cuda_rank.SELECT_BLOCK and cuda_rank.select_threads(200, np.float64) == 0
    ptx = cuda_cpp.ptx(mod.source, "compute_90")
    assert ".shared" not in ptx and "local_depot" in ptx


def test_large_medians_on_device_arrays(fake_gpu):
    """End to end: median_filter -> CudaBackend.run_passes -> cuda_rank -> (stand-in) CuPy,
    with output= (direct, in place, another dtype)."""
    from numba import cuda

    u8 = sample((70, 45), np.uint8, seed=4)
    got = filters.median_filter(cuda.to_device(u8), 9, mode="nearest")
    np.testing.assert_array_equal(got.copy_to_host(), filters.median_filter(u8, 9, mode="nearest"))
    assert fake_gpu.launched[-1] == "sk_huang"
    i16 = sample((40, 33), np.int16, seed=9)
    got = filters.median_filter(cuda.to_device(i16), 11, mode="mirror")
    np.testing.assert_array_equal(got.copy_to_host(), filters.median_filter(i16, 11, mode="mirror"))
    assert fake_gpu.launched[-1] == "sk_huang"
    f = sample((30, 25), np.float32, seed=5)
    out = cuda.device_array(f.shape, np.float32)
    assert filters.median_filter(cuda.to_device(f), 8, output=out) is out
    np.testing.assert_array_equal(out.copy_to_host(), filters.median_filter(f, 8))
    assert fake_gpu.launched[-1] == "sk_select"
    d = cuda.to_device(f)
    assert filters.median_filter(d, 8, output=d) is d
    np.testing.assert_array_equal(d.copy_to_host(), filters.median_filter(f, 8))
    got = filters.median_filter(cuda.to_device(u8), 9, output=np.float32)
    np.testing.assert_array_equal(got.copy_to_host(), filters.median_filter(u8, 9,
                                                                            output=np.float32))
    f64 = sample((20, 19), np.float64, seed=6)  # 289 float64: windows in a scratch array
    got = filters.median_filter(cuda.to_device(f64), 17, mode="wrap")
    np.testing.assert_array_equal(got.copy_to_host(), filters.median_filter(f64, 17, mode="wrap"))
    assert fake_gpu.launched[-1] == "sk_select_scratch"


def test_every_dtype_compiles_with_nvrtc():
    """Each dtype the kernels take (the host tests run a few): NVRTC must accept them all."""
    cpp_host.needs_nvrtc()
    box = Rank(((True,) * 17,) * 17, (8, 8), 144, True)
    for dtype in (np.bool_, np.uint8, np.int8, np.uint16, np.int16):
        for idx64 in (False, True):
            assert cuda_rank.module_for(box, dtype, 2, idx64)[0].kernel == "sk_huang"
            cuda_cpp.ptx(cuda_rank.module_for(box, dtype, 2, idx64)[0].source, "compute_90")
    small = Rank(((True,) * 8,) * 8, (4, 3), 32, False)  # (not over the last two axes)
    for dtype in (np.uint16, np.int16, np.int32, np.uint32, np.int64, np.uint64, np.float32,
                  np.float64):
        mod, _ = cuda_rank.module_for(small, dtype, 2, dtype == np.int64)
        assert mod.kernel == "sk_select"
        cuda_cpp.ptx(mod.source, "compute_90")
    large = Rank(((True,) * 33,) * 33, (16, 16), 544, True)  # 1089 elements
    for dtype, idx64 in ((np.float32, False), (np.int32, True), (np.bool_, False),
                         (np.uint16, True)):
        mod, _ = cuda_rank.module_for(large, dtype, 2, idx64)
        assert mod.kernel == ("sk_huang" if dtype in (np.bool_, np.uint16)
                              else "sk_select_scratch")
        assert f".entry {mod.kernel}(" in cuda_cpp.ptx(mod.source, "compute_90")
