"""The generated C++ 3 x 3 median (stencilkit.backends.cuda_median) against the CPU, bit for bit.

Without a GPU: every module is compiled for the host by g++ (``-DSK_HOST``) and its launches run
block by block and thread by thread (tests/cpp_host.py); the reference is the CPU backend's
``median_filter`` (the generated sorting network). NVRTC compiles the same modules for the
device.
"""

import numpy as np
import pytest
from kernels import sample

from stencilkit import filters, modes
from stencilkit.backends import cuda_cpp, cuda_median, cuda_sweeps

cpp_host = pytest.importorskip("cpp_host")
pytestmark = pytest.mark.skipif(cpp_host.CXX is None, reason="needs a C++ compiler (g++)")

MODES = ["reflect", "mirror", "nearest", "wrap", "constant"]


def host_med3(x, mode, cval, origin=(0, 0), *, words, rows=cpp_host.ROWS):
    """The 3 x 3 median of the last two axes of ``x``, launched as on a GPU, on the host."""
    lo0, lo1 = 1 + origin[0], 1 + origin[1]
    mod = cuda_median.generate(x.dtype, lo0, lo1, words=words, idx64=False,
                             rowmap=cuda_sweeps.rows_mapped(mode))
    return cpp_host.run_sweep(
        mod, x, x.dtype, lambda shape, strip, k0, k1: cuda_median.scalars(
            mod, shape, strip, k0, k1, mode, cval), fill=99, rows=rows), mod


def cpu(x, mode, cval=0, origin=(0, 0)):
    size = (1,) * (x.ndim - 2) + (3, 3)
    return filters.median_filter(x, size, mode=mode, cval=cval,
                                 origin=(0,) * (x.ndim - 2) + tuple(origin))


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint16, np.int16, np.int32, np.bool_],
                         ids=lambda d: np.dtype(d).name)
def test_median_equals_the_cpu_every_mode(dtype):
    """A stack, every mode (constant with a cval inside the dtype), 8/16-bit rows as words and
    as elements; values drawn from few levels, so that windows hold ties."""
    a = sample((2, 29, 44), dtype, seed=3)
    if np.dtype(dtype).kind in "iu":
        a = (a // 16 * 16).astype(dtype)  # ties
    cval = 1 if dtype == np.bool_ else 5
    for mode in MODES:
        want = cpu(a, mode, cval)
        for words in ((True, False) if a.itemsize < 4 else (False,)):
            got, mod = host_med3(a, mode, cval, words=words)
            np.testing.assert_array_equal(got, want, err_msg=f"{mode} words={words}")
            assert mod.per == (4 // a.itemsize if words and a.itemsize < 4 else 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_float_medians_are_the_cpus_bits(dtype):
    """Floats: the sorted columns where the window holds no NaN and the median is not zero;
    else the CPU's network. Bit for bit the CPU's (compared as integers): NaNs of several
    payloads, +0.0 and -0.0 mixed (which zero the network returns depends on its order),
    infinities, ties; every mode, cval -0.0 and NaN for constant, origins off centre."""
    rng = np.random.default_rng(9)
    a = rng.choice(np.array([-2.5, -0.0, 0.0, 1.0, 3.0, np.inf, -np.inf], dtype), (2, 27, 30))
    a[0, 3:9, 4:12] = rng.standard_normal((6, 8))  # distinct values
    bits = a.view(np.uint32 if a.itemsize == 4 else np.uint64)
    nan = np.array([np.nan], dtype).view(bits.dtype)[0]
    bits[1, 5, 7] = nan | 1  # a NaN of another payload
    bits[1, 20, 2] = nan | 0x3
    a[0, 15, 15] = np.nan
    for mode in MODES:
        for cval, origin in [(-0.0, (0, 0)), (np.nan, (0, 0)), (2.0, (1, -1))]:
            if mode != "constant" and cval != -0.0:
                continue
            want = cpu(a, mode, cval, origin)
            got, mod = host_med3(a, mode, cval, origin, words=False)
            np.testing.assert_array_equal(got.view(bits.dtype), want.view(bits.dtype),
                                          err_msg=f"{mode} {cval} {origin}")
    assert "sk_fnet" in mod.source and np.isnan(want).any() and (want == 0).any()
    assert np.signbit(want[want == 0]).any() and not np.signbit(want[want == 0]).all()


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.float32],
                         ids=lambda d: np.dtype(d).name)
def test_origins_and_strips_of_every_kind_equal_the_cpu(dtype):
    """The CPU's medians bit for bit, every mode, words and elements, origins (a window
    ending at its output's row), strips of one row (the remainder loop) and longer."""
    a = sample((2, 23, 40), dtype, seed=7)
    if np.dtype(dtype).kind in "iu":
        a = (a // 16 * 16).astype(dtype)  # ties
    for mode in MODES:
        for origin in ((0, 0), (1, -1)):
            want = cpu(a, mode, 5, origin)
            for words, rows in [(True, 1), (True, None), (False, 2)]:
                got, _ = host_med3(a, mode, 5, origin, words=words and a.itemsize < 4,
                                   rows=rows)
                np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8),
                                              err_msg=f"{mode} {origin} {words} {rows}")


@pytest.mark.parametrize("dtype", [np.uint8, np.int16], ids=lambda d: np.dtype(d).name)
def test_four_words_a_thread_equal_the_cpu(monkeypatch, dtype):
    """``cuda_median.UNITS = 4`` (as fast as 2 on an H100, more registers): the CPU's medians
    bit for bit, every mode, words and elements, origins, strips of one row and longer."""
    monkeypatch.setattr(cuda_median, "UNITS", 4)
    a = (sample((2, 19, 72), dtype, seed=10) // 16 * 16).astype(dtype)
    for mode in MODES:
        for origin in ((0, 0), (-1, 1)):
            want = cpu(a, mode, 5, origin)
            for words, rows in [(True, 1), (True, None), (False, 4)]:
                got, _ = host_med3(a, mode, 5, origin, words=words, rows=rows)
                np.testing.assert_array_equal(got, want, err_msg=f"{mode} {origin} {words}")


@pytest.mark.parametrize("origin", [(1, -1), (-1, 1), (0, 1)])
def test_origins(origin):
    a = sample((31, 40), np.uint8, seed=4)
    for mode in ("reflect", "constant"):
        got, _ = host_med3(a, mode, 7, origin, words=True)
        np.testing.assert_array_equal(got, cpu(a, mode, 7, origin), err_msg=f"{mode}")


@pytest.mark.parametrize("dtype", [np.uint8, np.int16], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", [(1, 4), (2, 8), (5, 7), (3, 200), (16, 13), (40, 12),
                                   (9, 18)])
def test_small_and_odd_shapes_and_strips(shape, dtype):
    """Arrays narrower or shorter than a thread's columns (all border), rows not whole words,
    strips of one row (the remainder loop) and of several steps of three rows."""
    a = sample(shape, dtype, seed=1)
    words = (shape[-1] * a.itemsize) % 4 == 0
    for mode in MODES:
        want = cpu(a, mode, 3)
        for rows in (1, 2, 7, None):
            got, _ = host_med3(a, mode, 3, words=words, rows=rows)
            np.testing.assert_array_equal(got, want, err_msg=f"{mode} rows={rows}")


@pytest.mark.parametrize("dtype", [np.int16, np.uint16, np.uint8, np.int8])
def test_the_median_of_nine_is_exact_for_every_order(dtype):
    """The column identity on windows of every relative order: random permutations of nine
    values and windows of many ties, tiled into one image (8/16-bit by the 16x2 SIMD path;
    signed values both sides of zero, uint16 both sides of 2**15)."""
    rng = np.random.default_rng(5)
    shift = -4 if np.dtype(dtype).kind == "i" else 0
    scale = 7000 if np.dtype(dtype).itemsize == 2 else 1
    windows = [(rng.permutation(9) + shift) * scale for _ in range(300)]
    windows += [(rng.integers(0, 3, 9) + shift) * scale for _ in range(300)]
    img = np.zeros((3 * 25, 3 * 24), dtype)
    for n, w in enumerate(windows):
        r, c = divmod(n, 24)
        img[3 * r:3 * r + 3, 3 * c:3 * c + 3] = np.asarray(w).reshape(3, 3)
    got, _ = host_med3(img, "nearest", 0, words=True)
    np.testing.assert_array_equal(got, cpu(img, "nearest"))
    centres = got[1::3, 1::3].ravel()
    np.testing.assert_array_equal(centres, [int(np.median(w)) for w in windows])


def host_network(x, size=None, footprint=None, origin=(0, 0), mode="reflect", cval=0,
                 rows=cpp_host.ROWS, rank=None):
    """The median (or the element of ``rank``) over a window of the last two axes by the
    network kernel, on the host."""
    fp = np.ones(size, bool) if footprint is None else np.asarray(footprint, bool)
    cells = tuple(zip(*(v.tolist() for v in np.nonzero(fp))))
    lo0, lo1 = fp.shape[0] // 2 + origin[0], fp.shape[1] // 2 + origin[1]
    rank = len(cells) // 2 if rank is None else rank
    mod = cuda_median.generate_network(x.dtype, cells, rank, lo0, lo1,
                                       idx64=False, rowmap=cuda_sweeps.rows_mapped(mode))
    ints = np.int32
    return cpp_host.run_sweep(
        mod, x, x.dtype, lambda shape, strip, k0, k1: (
            *(ints(v) for v in (*shape, strip, k0, k1)),
            ints(modes.mode_code(mode)), ints(int(cval) if mode == "constant" else 0)),
        fill=99, rows=rows)


NUMPY_MODES = {"reflect": "symmetric", "mirror": "reflect", "nearest": "edge", "wrap": "wrap"}


def numpy_median(x, size=None, footprint=None, origin=(0, 0), mode="reflect", cval=0,
                 rank=None):
    """An independent reference (and no numba compile of a large sorting network): the window's
    elements of the padded array sorted, the middle one (or ``rank``) taken (exact for
    integers)."""
    fp = np.ones(size, bool) if footprint is None else np.asarray(footprint, bool)
    lo = [s // 2 + o for s, o in zip(fp.shape, origin)]
    pads = [(0, 0)] * (x.ndim - 2) + [(lo[d], fp.shape[d] - 1 - lo[d]) for d in (0, 1)]
    if mode == "constant":
        padded = np.pad(x, pads, constant_values=cval)
    else:
        padded = np.pad(x, pads, NUMPY_MODES[mode])
    windows = np.lib.stride_tricks.sliding_window_view(padded, fp.shape, axis=(-2, -1))
    values = np.sort(windows[..., fp], axis=-1)
    return values[..., int(fp.sum()) // 2 if rank is None else rank].astype(x.dtype)


DISK = np.add.outer(np.arange(-3, 4) ** 2, np.arange(-3, 4) ** 2) <= 10  # 37 elements


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.bool_, np.uint16, np.int16],
                         ids=lambda d: np.dtype(d).name)
def test_network_medians_equal_the_cpu(dtype):
    """8/16-bit windows by the sorting network on 16x2 pairs: a 5 x 5 box in every mode (a
    stack, values on few levels: ties; 16-bit ones across the dtype's range), a disk, a 7 x 7
    box (49 elements), even sizes with origins."""
    a = sample((2, 23, 40), dtype, seed=6)
    if a.dtype.kind in "iu":
        info = np.iinfo(dtype)
        step = 8 if a.itemsize == 1 else 2048
        a = np.random.default_rng(6).integers(info.min // step, info.max // step, a.shape,
                                              endpoint=True).astype(dtype) * step
    cval = 1 if dtype == np.bool_ else -3 if np.dtype(dtype).kind == "i" else 9
    for mode in MODES:
        np.testing.assert_array_equal(host_network(a, (5, 5), mode=mode, cval=cval),
                                      numpy_median(a, (5, 5), mode=mode, cval=cval), err_msg=mode)
    for kw in [dict(footprint=DISK), dict(size=(7, 7)), dict(size=(4, 6), origin=(1, -2)),
               dict(size=(2, 3), origin=(-1, 1)), dict(size=(1, 9))]:
        for mode in ("mirror", "constant"):
            np.testing.assert_array_equal(host_network(a[1], mode=mode, cval=cval, **kw),
                                          numpy_median(a[1], mode=mode, cval=cval, **kw),
                                          err_msg=f"{kw} {mode}")


@pytest.mark.parametrize("dtype", [np.uint8, np.int16], ids=lambda d: np.dtype(d).name)
def test_network_other_ranks_equal_numpy(dtype):
    """The network kernel returns any rank (rank_filter, percentile_filter): the lowest but
    one, a quartile, the highest but one."""
    a = sample((2, 19, 40), dtype, seed=9)
    for size, rank in [((5, 5), 1), ((3, 4), 3), ((7, 7), 47)]:
        for mode in ("reflect", "constant"):
            np.testing.assert_array_equal(
                host_network(a, size, mode=mode, cval=5, rank=rank),
                numpy_median(a, size, mode=mode, cval=5, rank=rank), err_msg=f"{size} {mode}")


def test_network_small_shapes_and_strips():
    for shape in [(3, 4), (9, 8), (30, 12), (4, 36)]:
        a = sample(shape, np.uint8, seed=2)
        for rows in (1, 5, None):
            for mode in ("wrap", "constant"):
                np.testing.assert_array_equal(host_network(a, (5, 5), mode=mode, cval=4,
                                                           rows=rows),
                                              numpy_median(a, (5, 5), mode=mode, cval=4),
                                              err_msg=f"{shape} {rows} {mode}")


@pytest.mark.parametrize("dtype", [np.uint32, np.int64, np.uint64], ids=lambda d: np.dtype(d).name)
def test_wide_integers(dtype):
    """32/64-bit data, element by element, values at the dtype's ends (NumPy reference)."""
    info = np.iinfo(dtype)
    rng = np.random.default_rng(7)
    a = rng.choice(np.array([info.min, info.min + 1, 0, info.max - 1, info.max], dtype),
                   (2, 17, 21))
    for mode in ("reflect", "constant"):
        got, mod = host_med3(a, mode, info.max, words=False)
        np.testing.assert_array_equal(got, numpy_median(a, (3, 3), mode=mode, cval=info.max),
                                      err_msg=mode)
        assert mod.per == 1


def test_median_filter_on_a_device_array_takes_the_kernel(fake_gpu):
    """End to end: filters.median_filter -> CudaBackend.rank_kernel -> cuda_median -> (stand-in)
    CuPy; other windows and float data keep the generated sorting network."""
    from numba import cuda

    a = sample((3, 30, 44), np.uint8, seed=2)
    for mode in MODES:
        got = filters.median_filter(cuda.to_device(a), (1, 3, 3), mode=mode, cval=9)
        np.testing.assert_array_equal(got.copy_to_host(),
                                      filters.median_filter(a, (1, 3, 3), mode=mode, cval=9))
        assert fake_gpu.launched[-1:] == ["sk_med3_fused"]
    im = a[0]
    out = cuda.device_array(im.shape, np.uint8)
    assert filters.median_filter(cuda.to_device(im), 3, output=out) is out
    np.testing.assert_array_equal(out.copy_to_host(), filters.median_filter(im, 3))
    assert fake_gpu.launched[-1] == "sk_med3_fused"
    fake_gpu.launched.clear()
    got = filters.median_filter(cuda.to_device(im), 3, output=np.int16)  # another dtype
    np.testing.assert_array_equal(got.copy_to_host(), numpy_median(im, (3, 3)))
    i16 = im.astype(np.int16) * 200 - 25000  # 16-bit data: the network on pairs too
    got = filters.median_filter(cuda.to_device(i16), 5)
    np.testing.assert_array_equal(got.copy_to_host(), numpy_median(i16, (5, 5)))
    assert fake_gpu.launched[-1:] == ["sk_net2x_fused"]
    fake_gpu.launched.clear()
    i32 = im.astype(np.int32) - 100  # 32-bit data: 3 x 3 only
    got = filters.median_filter(cuda.to_device(i32), 5)
    np.testing.assert_array_equal(got.copy_to_host(), numpy_median(i32, (5, 5)))
    assert not any(k.startswith(("sk_med3", "sk_net2x")) for k in fake_gpu.launched)
    fake_gpu.launched.clear()
    for size in ((5, 5), (3, 4)):  # 8-bit windows: the network kernel (rows of whole words)
        got = filters.median_filter(cuda.to_device(im), size, mode="nearest")
        np.testing.assert_array_equal(got.copy_to_host(), numpy_median(im, size, mode="nearest"))
        assert fake_gpu.launched[-1:] == ["sk_net2x_fused"]
    odd = np.ascontiguousarray(im[:, :43])  # 43 columns: not whole words, the stencil
    fake_gpu.launched.clear()
    np.testing.assert_array_equal(filters.median_filter(cuda.to_device(odd), 5).copy_to_host(),
                                  numpy_median(odd, (5, 5)))
    assert not any(k.startswith("sk_net2x") for k in fake_gpu.launched)
    f = sample((20, 24), np.float32, seed=3)
    f[4, 5] = np.nan
    np.testing.assert_array_equal(filters.median_filter(cuda.to_device(f), 3).copy_to_host(),
                                  filters.median_filter(f, 3))
    assert fake_gpu.launched[-1] == "sk_med3_fused"  # floats too (sorted columns, checked)
    fake_gpu.launched.clear()
    f16 = f.astype(np.float16)  # (float16: the network, in float32)
    np.testing.assert_array_equal(filters.median_filter(cuda.to_device(f16), 3).copy_to_host(),
                                  filters.median_filter(f16, 3))
    assert not any(k.startswith("sk_med3") for k in fake_gpu.launched)


def test_rank_filters_on_a_device_array_take_the_kernels_for_their_rank(fake_gpu):
    """rank_filter and percentile_filter on device arrays: the network kernel with their rank
    for 8/16-bit data, never the 3 x 3 sorted columns (a median's), the extremes' kernels at
    rank 0 and n - 1; each equal to the CPU's result."""
    from numba import cuda

    im = sample((30, 44), np.uint8, seed=4)
    d = cuda.to_device(im)

    def same(fn, *args, kernel=None, **kw):
        fake_gpu.launched.clear()
        got = fn(d, *args, **kw).copy_to_host()
        np.testing.assert_array_equal(got, fn(im, *args, **kw), err_msg=f"{args} {kw}")
        if kernel:
            assert fake_gpu.launched[-1:] == [kernel]
        return fake_gpu.launched

    same(filters.rank_filter, 2, 3, kernel="sk_net2x_fused")
    same(filters.percentile_filter, 80, (5, 5), mode="constant", cval=3, kernel="sk_net2x_fused")
    same(filters.rank_filter, -1, 3, mode="wrap", kernel="sk_minmax_fused")
    np.testing.assert_array_equal(filters.rank_filter(im, 2, 3), numpy_median(im, (3, 3), rank=2))
    f = sample((20, 24), np.float32, seed=3)
    fake_gpu.launched.clear()
    got = filters.percentile_filter(cuda.to_device(f), 25, 3).copy_to_host()
    np.testing.assert_array_equal(got, filters.percentile_filter(f, 25, 3))
    assert not any(k.startswith("sk_med3") for k in fake_gpu.launched)


def test_small_rank_passes_on_the_cuda_backend(fake_gpu):
    """A region's small median as a pass (Dask stacks of CuPy chunks): CudaBackend.run_passes
    takes the kernels for it (floats too), and the sorting network for what they do not take
    (float16)."""
    from numba import cuda

    from stencilkit._passes import Passes, Rank
    from stencilkit.backends import cuda as cuda_backend

    box = ((True,) * 3,) * 3
    a = sample((20, 24), np.uint8, seed=8)
    plan = Passes((Rank(box, (1, 1), 4, True),), "wrap", 0, np.dtype(np.uint8), "test")
    got = cuda_backend.BACKEND.run_passes(plan, cuda.to_device(a), None)
    np.testing.assert_array_equal(got.copy_to_host(), numpy_median(a, (3, 3), mode="wrap"))
    assert fake_gpu.launched[-1] == "sk_med3_fused"
    f = sample((20, 24), np.float32, seed=8)
    plan = Passes((Rank(box, (1, 1), 4, True),), "wrap", 0, np.dtype(np.float32), "test")
    got = cuda_backend.BACKEND.run_passes(plan, cuda.to_device(f), None)
    np.testing.assert_array_equal(got.copy_to_host(), filters.median_filter(f, 3, mode="wrap"))
    assert fake_gpu.launched[-1] == "sk_med3_fused"
    h = f.astype(np.float16)
    plan = Passes((Rank(box, (1, 1), 4, True),), "wrap", 0, np.dtype(np.float16), "test")
    got = cuda_backend.BACKEND.run_passes(plan, cuda.to_device(h), None)
    np.testing.assert_array_equal(got.copy_to_host(), filters.median_filter(h, 3, mode="wrap"))
    assert not fake_gpu.launched[-1].startswith("sk_med3")


def test_modules_compile_with_nvrtc():
    cpp_host.needs_nvrtc()
    for dtype, words in [(np.uint8, True), (np.int16, True), (np.int32, False),
                         (np.bool_, False), (np.uint64, False), (np.float32, False),
                         (np.float64, False)]:
        mod = cuda_median.generate(dtype, 1, 1, words=words, idx64=dtype == np.uint64,
                                 rowmap=True)
        ptx = cuda_cpp.ptx(mod.source, "compute_90")
        assert ".entry sk_med3_fused(" in ptx and ".entry sk_med3_border(" in ptx
