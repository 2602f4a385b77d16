"""The generated C++ box kernel (stencilkit.backends.cuda_box) against the CPU, bit for bit.

Without a GPU: every module is compiled for the host by g++ (``-DSK_HOST``) and its launches run
block by block and thread by thread (tests/cpp_host.py), on the ``Box2`` pass that
``filters.uniform_filter`` plans for the array (caught on its way to the CPU backend), and
compared with the CPU's result. NVRTC compiles the same modules for the device.
"""

import itertools

import numpy as np
import pytest
import scipy.ndimage as ndi
from filter_table import cpu_passes
from kernels import sample

from stencilkit import filters
from stencilkit._passes import Box2
from stencilkit.backends import cuda_box, cuda_cpp, cuda_sweeps

cpp_host = pytest.importorskip("cpp_host")
pytestmark = pytest.mark.skipif(cpp_host.CXX is None, reason="needs a C++ compiler (g++)")

MODES = ["reflect", "mirror", "nearest", "wrap", "constant"]


def planned(monkeypatch, a, size, **kw):
    """``(the CPU's uniform_filter of a, its Box2 pass, its Passes)``."""
    want, plan = cpu_passes(monkeypatch, filters.uniform_filter, a, size, **kw)
    (p,) = plan.passes
    assert type(p).__name__ == "Box2"
    return want, p, plan


def host_box(x, p, mode, cval, *, words, rows=cpp_host.ROWS, idx64=False):
    """The pass ``p`` over the last two axes of ``x``, launched as on a GPU, on the host."""
    mod = cuda_box.generate(x.dtype, p.dtype, p.lo0, p.hi0, p.lo1, p.hi1, p.divisor, p.clip,
                            words=words, idx64=idx64, rowmap=cuda_sweeps.rows_mapped(mode))
    return cpp_host.run_sweep(
        mod, x, p.dtype, lambda shape, strip, k0, k1: cuda_box.scalars(
            mod, shape, strip, k0, k1, mode, cval), fill=99, rows=rows), mod


# each dtype with two window shapes, each shape with two dtypes (every module is a g++ build
# of its own in a cold run: the whole product cost half a minute more)
CASES = [(np.uint8, (15, 15)), (np.uint8, (28, 2)), (np.int8, (6, 11)), (np.int8, (9, 4)),
         (np.uint16, (3, 10)), (np.uint16, (15, 15)), (np.int16, (2, 28)), (np.int16, (6, 11)),
         (np.int32, (9, 4)), (np.int32, (3, 10)), (np.uint32, (28, 2)), (np.uint32, (2, 28))]


@pytest.mark.parametrize("dtype,size", CASES,
                         ids=[f"{np.dtype(d).name}-{a}x{b}" for d, (a, b) in CASES])
def test_box_equals_the_cpu_every_mode(monkeypatch, dtype, size):
    a = sample((2, 37, 52), dtype, seed=size[0])
    for mode in MODES:
        kw = {"mode": mode, **({"cval": 5} if mode == "constant" else {})}
        want, p, plan = planned(monkeypatch, a, (1, *size), **kw)
        for words in (True, False):
            got, mod = host_box(a, p, mode, plan.cval, words=words)
            np.testing.assert_array_equal(got, want, err_msg=f"{mode} words={words}")
            assert mod.per == (4 // a.itemsize if words and a.itemsize < 4 else 1)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint16, np.int32])
def test_windows_at_their_row_and_one_row_tall_equal_the_cpu(monkeypatch, dtype):
    """The CPU's result bit for bit, every mode, words and elements, strips of one row and
    longer, windows that start at their output's row and windows one row tall (a box along
    the rows, as run_passes makes it)."""
    a = sample((2, 23, 40), dtype, seed=4)
    for size, origin in [((15, 15), 0), ((2, 30), (0, -1, 0)), ((6, 11), 0)]:
        for mode in MODES:
            kw = {"mode": mode, "origin": origin, **({"cval": 5} if mode == "constant" else {})}
            want, p, plan = planned(monkeypatch, a, (1, *size), **kw)
            assert p.lo0 == (0 if origin else size[0] // 2)
            cases = [(want, p, plan.cval)]
            if size[0] == 2:  # one row tall (a box along the rows, as run_passes makes it)
                info = np.iinfo(dtype)
                cases.append((filters.uniform_filter(a, (1, 1, 31), **kw | {"origin": 0}),
                              Box2(1, 0, 0, 15, 15, 31, np.dtype(dtype), (info.min, info.max)),
                              plan.cval))
            for (want, p, cval), words, rows in itertools.product(
                    cases, (True, False), (1, cpp_host.ROWS, None)):
                got, _ = host_box(a, p, mode, cval, words=words, rows=rows)
                np.testing.assert_array_equal(got, want, err_msg=f"{p} {mode} {words} {rows}")


@pytest.mark.parametrize("dtype", [np.uint8, np.int16])
def test_four_words_a_thread_equal_the_cpu(monkeypatch, dtype):
    """``cuda_box.UNITS = 4`` (16 outputs of 8-bit data a thread; slower than 2 on an H100):
    the CPU's result bit for bit, every mode, words and elements, strips of one row, rows a
    thread's words cut short."""
    a = sample((2, 23, 76), dtype, seed=8)
    for size in [(15, 15), (7, 5), (4, 30)]:
        for mode in MODES:
            kw = {"mode": mode, **({"cval": 5} if mode == "constant" else {})}
            want, p, plan = planned(monkeypatch, a, (1, *size), **kw)
            monkeypatch.setattr(cuda_box, "UNITS", 4)
            for words, rows in [(True, 1), (True, None), (False, cpp_host.ROWS)]:
                got, mod = host_box(a, p, mode, plan.cval, words=words, rows=rows)
                np.testing.assert_array_equal(got, want, err_msg=f"{size} {mode} {words}")
    monkeypatch.setattr(cuda_box, "UNITS", 2)  # a module launches as it was emitted
    (_, _, _, (_, k0, k1)), = mod.launches((1, 64, 4096))
    assert mod.units == 4 and (k1 - k0) % 4 == 0 and (k1 - k0) // 4 > 200


@pytest.mark.parametrize("shape", [(5, 7), (16, 16), (40, 9), (3, 200), (33, 36)])
def test_small_and_odd_shapes(monkeypatch, shape):
    """Arrays narrower or shorter than the window (all border), rows not whole words, and
    strips of one row and of the GPU's own length."""
    a = sample(shape, np.uint8, seed=1)
    for size, origin in [((15, 15), 0), ((4, 8), (1, -2)), ((2, 30), 0)]:
        for mode in MODES:
            want, p, plan = planned(monkeypatch, a, size, mode=mode, origin=origin)
            words = cuda_box.words_ok(a.dtype, shape[-1], 0)
            for rows in (1, cpp_host.ROWS, None):
                got, _ = host_box(a, p, mode, plan.cval, words=words, rows=rows)
                np.testing.assert_array_equal(got, want, err_msg=f"{size} {mode} {rows}")


def test_output_types_saturate_and_round_ties_to_even(monkeypatch):
    a = sample((24, 40), np.int16, seed=3)
    for output in (np.uint8, np.int8):  # negatives saturate to 0; both ends saturate
        want, p, plan = planned(monkeypatch, a, (4, 8), output=output)  # divisor 32: ties
        got, _ = host_box(a, p, "reflect", plan.cval, words=True)
        np.testing.assert_array_equal(got, want, err_msg=str(output))
    bits = (np.random.default_rng(4).random((24, 64)) < 0.5).astype(np.uint8)
    want, p, plan = planned(monkeypatch, bits, (8, 4))  # 32 cells: a sum of 16 is a tie
    got, _ = host_box(bits, p, "reflect", plan.cval, words=True)
    np.testing.assert_array_equal(got, want)
    sums = np.rint(ndi.uniform_filter(bits.astype(np.float64), (8, 4)) * 32).astype(int)
    assert (sums == 16).sum() > 20 and (want[sums == 16] == 0).all()  # 0.5: to even, 0
    assert p.divisor == 32


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint16, np.int16])
def test_sums_at_the_ends_of_the_dtype(monkeypatch, dtype):
    """The interior's rounding (``sk_box_in``: shifted to non-negative sums, one unsigned
    division, ties back to even) at the least and greatest sums the dtype allows, and halfway:
    images of only the dtype's extremes, windows with an even divisor (ties) and an odd one;
    8-bit words take the packed column sums (int8 lanes biased by 128)."""
    info = np.iinfo(dtype)
    rng = np.random.default_rng(8)
    a = np.where(rng.random((2, 30, 48)) < 0.5, info.min, info.max).astype(dtype)
    a[0, :, :24] = info.min
    a[1, :, :24] = info.max
    for size in ((1, 4, 8), (1, 5, 7)):
        want, p, plan = planned(monkeypatch, a, size, mode="nearest")
        got, mod = host_box(a, p, "nearest", plan.cval, words=True)
        np.testing.assert_array_equal(got, want, err_msg=f"{size}")
        assert ("sk_u32 cp0" in mod.source) == (a.itemsize == 1)


def test_bool_images(monkeypatch):
    a = sample((19, 40), np.bool_, seed=5)
    for output in (np.uint64,):  # (clip limits beyond the sums' int32, clamped)
        want, p, plan = planned(monkeypatch, a, (3, 10), output=output)
        for words in (True, False):
            got, _ = host_box(a, p, "reflect", plan.cval, words=words)
            np.testing.assert_array_equal(got, want, err_msg=f"{output} {words}")


def test_64_bit_sums_and_indices(monkeypatch):
    """32-bit data whose window sums need 64 bits, and the 64-bit index variant."""
    a = np.full((20, 24), 2**31 - 1, np.int32)
    a[::3] = -2**31
    want, p, plan = planned(monkeypatch, a, (9, 9), mode="nearest")
    for idx64 in (False, True):
        got, mod = host_box(a, p, "nearest", plan.cval, words=False, idx64=idx64)
        np.testing.assert_array_equal(got, want)
    assert "sk_i64 cs0 = 0" in mod.source and "typedef sk_i64 sk_idx" in mod.source


def test_modules_compile_with_nvrtc_and_divide_by_multiplying(monkeypatch):
    """The interior kernel alone (the fused one has the border's index maps, with divisions
    for ``wrap``)."""
    cpp_host.needs_nvrtc()
    from stencilkit._passes import Box2

    monkeypatch.setattr(cuda_sweeps, "FUSED", False)

    for dtype, words in [(np.uint8, True), (np.int16, True), (np.int32, False),
                         (np.uint8, False)]:
        p = Box2(0, 7, 7, 7, 7, 225, np.dtype(dtype), (0, 255))
        mod = cuda_box.generate(dtype, dtype, 7, 7, 7, 7, 225, (0, 255), words=words,
                                idx64=False)
        ptx = cuda_cpp.ptx(mod.source, "compute_90")
        body = ptx[ptx.index(".entry sk_box_interior("):]
        body = body[:body.index("\n}\n")]
        assert "ld.global.nc" in body
        for slow in ("div.s32", "rem.s32", "div.s64", "rem.s64", "div.u32", "rem.u32",
                     "div.u64", "rem.u64"):
            assert slow not in body, (dtype, slow)
        if words:
            assert "ld.global.nc.u32" in body and "st.global.u32" in body
        assert p.lo0 == 7


def test_uniform_filter_on_a_device_array_takes_the_box_kernel(fake_gpu):
    """End to end: filters -> CudaBackend.run_passes -> cuda_box -> (stand-in) CuPy launch."""
    from numba import cuda

    a = sample((3, 30, 44), np.uint8, seed=2)
    for size in [(1, 15, 15), (1, 5, 9), (1, 1, 31), (1, 29, 1)]:
        for mode in MODES:
            want = filters.uniform_filter(a, size, mode=mode, cval=7)
            got = filters.uniform_filter(cuda.to_device(a), size, mode=mode, cval=7)
            np.testing.assert_array_equal(got.copy_to_host(), want, err_msg=f"{size} {mode}")
    assert set(fake_gpu.launched) == {"sk_box_fused"}
    # a cval that the mode does not use is ignored, even one no integer holds (as scipy)
    np.testing.assert_array_equal(
        filters.uniform_filter(cuda.to_device(a), 15, mode="wrap", cval=np.nan).copy_to_host(),
        filters.uniform_filter(a, 15, mode="wrap"))
    out = cuda.device_array(a.shape, np.uint8)
    assert filters.uniform_filter(cuda.to_device(a), 15, output=out) is out
    np.testing.assert_array_equal(out.copy_to_host(), filters.uniform_filter(a, 15))


def test_an_output_off_word_boundaries_takes_the_element_kernel(fake_gpu, monkeypatch):
    """output= is written directly: one that starts off a 4-byte boundary must not get 32-bit
    word stores (a misaligned address on a GPU)."""
    from numba import cuda

    words = []
    real = cuda_box.module_for
    monkeypatch.setattr(cuda_box, "module_for",
                        lambda p, dtype, w, *rest: words.append(w) or real(p, dtype, w, *rest))
    a = sample((12, 40), np.uint8, seed=7)
    big = cuda.to_device(np.zeros(12 * 40 + 1, np.uint8))
    out = big[1:].reshape(12, 40)
    assert filters.uniform_filter(cuda.to_device(a), 15, output=out) is out
    np.testing.assert_array_equal(out.copy_to_host(), filters.uniform_filter(a, 15))
    aligned = cuda.device_array((12, 40), np.uint8)
    filters.uniform_filter(cuda.to_device(a), 15, output=aligned)
    np.testing.assert_array_equal(aligned.copy_to_host(), filters.uniform_filter(a, 15))
    # (the second call's replay of the first asks for its module too, finds another: declines)
    assert words[0] is False and words[1:] and all(words[1:])


def test_a_fractional_cval_is_not_truncated(fake_gpu):
    """constant mode with a cval between integers: the running sums' exact path adds integers
    (it truncated the cval, on the CPU too); float sums give the exact mean, rounded."""
    from numba import cuda

    a = sample((20, 33), np.uint8, seed=9)
    for cval in (2.5, 0.1, -7.75):
        for size in (15, (3, 4)):
            want = filters.uniform_filter(a, size, mode="constant", cval=cval)
            got = filters.uniform_filter(cuda.to_device(a), size, mode="constant", cval=cval)
            np.testing.assert_array_equal(got.copy_to_host(), want, err_msg=f"{cval} {size}")
    flat = np.full((6, 6), 10, np.uint8)  # edge windows: (6 * 10 + 3 * 2.5) / 9 = 7.5 -> 8
    got = filters.uniform_filter(cuda.to_device(flat), 3, mode="constant", cval=2.5)
    np.testing.assert_array_equal(got.copy_to_host()[0], [6, 8, 8, 8, 8, 6])
