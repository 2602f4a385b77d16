"""The generated C++ box extremes of 8/16-bit images (stencilkit.backends.cuda_minmax), no GPU.

Every module is compiled for the host by g++ (``-DSK_HOST``) and its launches run thread by
thread (tests/cpp_host.py). Reference: NumPy (the padded array's windows, their minimum or
maximum: an independent computation, and no numba compile per window), and the CPU backend
end to end.
"""

import numpy as np
import pytest
from kernels import sample

from stencilkit import filters, modes
from stencilkit.backends import cuda_cpp, cuda_minmax, cuda_sweeps

cpp_host = pytest.importorskip("cpp_host")
pytestmark = pytest.mark.skipif(cpp_host.CXX is None, reason="needs a C++ compiler (g++)")

MODES = ["reflect", "mirror", "nearest", "wrap", "constant"]
NUMPY_MODES = {"reflect": "symmetric", "mirror": "reflect", "nearest": "edge", "wrap": "wrap"}


def numpy_extreme(x, size, origin=(0, 0), mode="reflect", cval=0, is_max=True):
    lo = [s // 2 + o for s, o in zip(size, origin)]
    pads = [(0, 0)] * (x.ndim - 2) + [(lo[d], size[d] - 1 - lo[d]) for d in (0, 1)]
    padded = (np.pad(x, pads, constant_values=cval) if mode == "constant" else
              np.pad(x, pads, NUMPY_MODES[mode]))
    windows = np.lib.stride_tricks.sliding_window_view(padded, size, axis=(-2, -1))
    return (windows.max if is_max else windows.min)(axis=(-2, -1))


def host_extreme(x, size, origin=(0, 0), mode="reflect", cval=0, is_max=True,
                 rows=cpp_host.ROWS):
    kv, kh = size
    box = (kv, kv // 2 + origin[0], kh, kh // 2 + origin[1], is_max)
    mod = cuda_minmax.generate(x.dtype, *box, idx64=False,
                                 rowmap=cuda_sweeps.rows_mapped(mode))
    i32 = np.int32
    return cpp_host.run_sweep(
        mod, x, x.dtype, lambda shape, strip, k0, k1: (
            *(i32(v) for v in (*shape, strip, k0, k1)),
            i32(modes.mode_code(mode)), i32(int(cval) if mode == "constant" else 0)),
        fill=99, rows=rows)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.bool_, np.uint16, np.int16],
                         ids=lambda d: np.dtype(d).name)
def test_extremes_equal_numpy(dtype):
    """Maximum and minimum, every mode, a stack; boxes from 1 x 2 to 16 x 32, origins; the
    16-bit data across the whole range (the signed lanes' bias)."""
    a = sample((2, 21, 44), dtype, seed=4)
    if np.dtype(dtype).itemsize == 2:
        info = np.iinfo(dtype)
        a = np.random.default_rng(4).integers(info.min, info.max, a.shape, endpoint=True,
                                              dtype=dtype)
    cval = True if dtype == np.bool_ else -100 if np.dtype(dtype).kind == "i" else 250
    for mode in MODES:
        for is_max in (True, False):
            np.testing.assert_array_equal(
                host_extreme(a, (3, 3), mode=mode, cval=cval, is_max=is_max),
                numpy_extreme(a, (3, 3), mode=mode, cval=cval, is_max=is_max),
                err_msg=f"{mode} {is_max}")
    for size, origin in [((9, 9), (0, 0)), ((1, 7), (0, 2)), ((5, 1), (-1, 0)),
                         ((16, 32), (3, -5)), ((2, 2), (0, 0)), ((15, 4), (0, 1))]:
        for mode in ("mirror", "constant"):
            np.testing.assert_array_equal(
                host_extreme(a, size, origin, mode=mode, cval=cval, is_max=size[0] % 2 == 1),
                numpy_extreme(a, size, origin, mode=mode, cval=cval, is_max=size[0] % 2 == 1),
                err_msg=f"{size} {origin} {mode}")


def test_strips_and_small_shapes():
    """Strips of one row (the remainder loop), of several unrolled steps and the GPU's own;
    arrays narrower than a thread's word and its halo (all border)."""
    for shape in [(4, 4), (9, 8), (40, 12), (3, 36)]:
        a = sample(shape, np.uint8, seed=5)
        for rows in (1, 3, 11, None):
            for mode in ("wrap", "constant"):
                np.testing.assert_array_equal(host_extreme(a, (5, 5), mode=mode, cval=7,
                                                           rows=rows),
                                              numpy_extreme(a, (5, 5), mode=mode, cval=7),
                                              err_msg=f"{shape} {rows} {mode}")


def test_wide_windows_take_two_words_a_thread(monkeypatch):
    """By default (``UNITS`` None) windows of 9 columns or more take two words a thread (the
    9 x 9 and 15 x 15 maxima faster on an H100), narrower ones one, and so do windows of more
    than 400 elements (two words would take 150 registers); ``UNITS`` overrides."""
    def words(kh, kv=3):
        mod = cuda_minmax.generate(np.uint8, kv, 1, kh, kh // 2, True, idx64=False,
                                   rowmap=True)
        assert mod.units == cuda_minmax.units_for(kh, kv)
        return mod.units

    assert [words(kh) for kh in (1, 3, 8, 9, 15, 32)] == [1, 1, 1, 2, 2, 2]
    assert [words(kh, kv) for kv, kh in ((15, 15), (12, 32), (15, 32), (16, 32))] == [2, 2, 1, 1]
    monkeypatch.setattr(cuda_minmax, "UNITS", 1)
    assert words(15) == 1


@pytest.mark.parametrize("dtype", [np.uint8, np.int16])
def test_one_word_a_thread_equal_numpy(monkeypatch, dtype):
    """``cuda_minmax.UNITS = 1`` for wide windows too (the default gives them two): NumPy's
    extremes, every mode, strips of one row and longer."""
    monkeypatch.setattr(cuda_minmax, "UNITS", 1)
    a = sample((2, 19, 72), dtype, seed=9)
    for size, origin in [((9, 9), (0, 0)), ((4, 32), (1, -3)), ((2, 15), (0, 3))]:
        for mode in MODES:
            for rows in (1, None):
                np.testing.assert_array_equal(
                    host_extreme(a, size, origin, mode=mode, cval=7, rows=rows),
                    numpy_extreme(a, size, origin, mode=mode, cval=7),
                    err_msg=f"{size} {mode} {rows}")


@pytest.mark.parametrize("dtype", [np.uint8, np.int16])
def test_two_words_a_thread_equal_numpy(monkeypatch, dtype):
    """``cuda_minmax.UNITS = 2`` for narrow windows too (the default gives them one): NumPy's
    extremes, every mode, windows one column wide to 32, strips of one row and longer."""
    monkeypatch.setattr(cuda_minmax, "UNITS", 2)
    a = sample((2, 19, 72), dtype, seed=9)
    for size, origin in [((3, 3), (0, 0)), ((5, 1), (0, 0)), ((4, 32), (1, -3))]:
        for mode in MODES:
            for rows in (1, None):
                np.testing.assert_array_equal(
                    host_extreme(a, size, origin, mode=mode, cval=7, rows=rows, is_max=False),
                    numpy_extreme(a, size, origin, mode=mode, cval=7, is_max=False),
                    err_msg=f"{size} {mode} {rows}")


def test_filters_on_device_arrays_take_the_sweep(fake_gpu):
    """End to end: minimum_filter / maximum_filter -> CudaBackend -> cuda_minmax, for boxes
    run as passes (more than DIRECT_TAPS elements) and as one stencil (fewer); other dtypes,
    footprints and rows not whole words keep their routes. Reference: the CPU backend."""
    from numba import cuda

    a = sample((2, 24, 40), np.uint8, seed=6)
    for x in (a, a.astype(np.int16) * 100 - 12000):
        for fn, size in [(filters.maximum_filter, (1, 3, 3)), (filters.minimum_filter, (1, 9, 9)),
                         (filters.maximum_filter, (1, 2, 7))]:
            fake_gpu.launched.clear()
            got = fn(cuda.to_device(x), size, mode="nearest")
            np.testing.assert_array_equal(got.copy_to_host(),
                                          numpy_extreme(x[:, None], size[1:], mode="nearest",
                                                        is_max=fn is filters.maximum_filter)
                                          [:, 0])
            assert fake_gpu.launched == ["sk_minmax_fused"], (fn, size)
    out = cuda.device_array(a.shape, np.uint8)
    assert filters.maximum_filter(cuda.to_device(a), (1, 3, 3), output=out) is out
    np.testing.assert_array_equal(out.copy_to_host(), filters.maximum_filter(a, (1, 3, 3)))
    i16 = np.ascontiguousarray(a[:, :, :38]).astype(np.int16)  # 38 16-bit columns: words
    fake_gpu.launched.clear()
    got = filters.minimum_filter(cuda.to_device(i16), (1, 5, 5), mode="wrap")
    np.testing.assert_array_equal(got.copy_to_host(), numpy_extreme(
        i16[:, None], (5, 5), mode="wrap", is_max=False)[:, 0])
    assert fake_gpu.launched == ["sk_minmax_fused"]
    fake_gpu.launched.clear()
    cross = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)
    for call in (lambda x: filters.maximum_filter(x, footprint=cross[None]),  # not a box
                 lambda x: filters.maximum_filter(x, (1, 3, 3), output=np.int16)):
        np.testing.assert_array_equal(call(cuda.to_device(a)).copy_to_host(), call(a))
    odd = np.ascontiguousarray(a[:, :, :37])  # rows not whole words
    np.testing.assert_array_equal(filters.maximum_filter(cuda.to_device(odd), (1, 3, 3))
                                  .copy_to_host(), filters.maximum_filter(odd, (1, 3, 3)))
    assert not any(k.startswith("sk_minmax") for k in fake_gpu.launched)


def test_modules_compile_with_nvrtc():
    cpp_host.needs_nvrtc()
    for dtype, box in [(np.uint8, (3, 1, 3, 1, True)), (np.int8, (16, 7, 32, 16, False)),
                       (np.bool_, (1, 0, 5, 2, True)), (np.int16, (9, 4, 9, 4, False))]:
        mod = cuda_minmax.generate(dtype, *box, idx64=dtype == np.int8, rowmap=True)
        ptx = cuda_cpp.ptx(mod.source, "compute_90")
        assert ".entry sk_minmax_fused(" in ptx and ".entry sk_minmax_border(" in ptx


@pytest.mark.parametrize("rowmap", [True, False])
def test_border_strips_shorten_to_fill_the_gpu(rowmap, monkeypatch):
    """The border kernel's side bands are a few columns of many rows: on a large image their
    strips shorten (down to a row) until the launch has the GPU's worth of threads, and every
    row of the bands is still some thread's (the launch's strip argument is what the kernel
    walks); on a stack of many small images they stay 16 rows long. (A border kernel of its
    own: ``cuda_sweeps.FUSED`` off.)"""
    monkeypatch.setattr(cuda_sweeps, "FUSED", False)
    mod = cuda_minmax.generate(np.dtype(np.uint8), 15, 7, 15, 7, True, idx64=False,
                               rowmap=rowmap)
    for shape, want in [((1, 8192, 8192), 1), ((4000, 300, 200), cuda_sweeps.BORDER_ROWS)]:
        B, n0, n1 = shape
        (_, _, _, (_, k0, k1)), (kname, grid, block, (strip, *_)) = mod.launches(shape)
        assert kname == "sk_minmax_border" and strip == want
        band = n1 - 4 * (k1 - k0)
        lo0, hi0 = (0, 0) if rowmap else (7, 7)
        inner = n0 - lo0 - hi0
        threads = cuda_sweeps.border_threads(B, n0, n1, lo0, hi0, band, strip)
        assert threads == B * (band * -(-inner // strip) + (0 if rowmap else 2 * n1))
        assert grid[0] * block[0] >= min(threads, cuda_sweeps.codegen_cpp.TARGET_THREADS)
