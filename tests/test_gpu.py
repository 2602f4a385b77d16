"""Checks that need a real CUDA GPU (and CuPy); each skips cleanly without one.

Run them on a GPU machine with `NUMBA_ENABLE_CUDASIM=0 .venv/bin/python -m pytest -m gpu` after
`pip install -e '.[gpu,test]'`.
"""

import numpy as np
import pytest
from kernels import (
    FLOAT_LOOPS,
    INT_LOOPS,
    PREDICATE_LOOPS,
    asym2,
    blend,
    box5,
    diffuse,
    float_helpers,
    float_loops,
    helpers,
    int_loops,
    lap3,
    life,
    loop_pairs,
    named_functions,
    narrow_types,
    numpy_ufuncs,
    numpy_ufuncs_inexact,
    predicate_loops,
    sample,
    scoped_numbers,
    shift,
    skew1,
    smooth,
    square_negative,
    tuple_loops,
    unpacking,
    variable_diffusion,
    window_spread,
)

import stencilkit as sk
from stencilkit import filters, resample
from stencilkit.backends import cuda as cuda_backend

pytestmark = pytest.mark.gpu


def real_gpu():
    ok, why = sk.cuda_available(explain=True)
    if not ok or cuda_backend.simulated():
        pytest.skip(f"needs a real CUDA GPU ({why})")


@pytest.fixture
def cupy():
    real_gpu()
    return pytest.importorskip("cupy")


@sk.stencil
def heat(u):
    return u[0, 0] + np.float32(0.1) * (u[-1, 0] + u[1, 0] + u[0, -1] + u[0, 1]
                                        - np.float32(4) * u[0, 0])


FALLBACK_ULPS = 8
"""numba.cuda fuses multiply-adds (no switch against it in numba-cuda 0.30): on the fallback
path float results agree with the CPU's to this many ulps of the result's largest magnitude."""


def close(got, want, ulps):
    eps = np.finfo(want.dtype).eps if want.dtype.kind in "fc" else 0
    if not eps:
        np.testing.assert_array_equal(got, want)
        return
    scale = float(np.nanmax(np.abs(want))) if want.size else 0.0
    np.testing.assert_allclose(got, want, rtol=ulps * eps, atol=ulps * eps * scale)


def test_float32_subnormals_are_kept_on_the_gpu(cupy):
    """The kernels compile with --ftz=false (cupy.RawModule would add -ftz=true, under which
    float32 arithmetic and comparisons read subnormals as zero): sums, products, extremes and
    medians of subnormal data are the CPU's bit for bit, a Gaussian and a box to round-off."""
    rng = np.random.default_rng(3)
    tiny = np.finfo(np.float32).smallest_subnormal
    a = (rng.integers(-40, 40, (67, 130)) * tiny).astype(np.float32)  # all subnormal or zero
    d = cupy.asarray(a)
    for fn in (lambda x: blend(x, x, np.float32(0.5)), lambda x: heat(x),
               lambda x: filters.minimum_filter(x, 3), lambda x: filters.maximum_filter(x, 9),
               lambda x: filters.median_filter(x, 3), lambda x: filters.median_filter(x, 5)):
        want = fn(a)
        assert np.count_nonzero(want), "the check needs subnormal results"
        np.testing.assert_array_equal(fn(d).get().view(np.uint32), want.view(np.uint32))
    # weighted sums (fused multiply-adds on the GPU): the CPU's to a few roundings, each at
    # most half the smallest subnormal here; flushed, most would be zero
    for fn in (lambda x: filters.gaussian_filter(x, 1.0),
               lambda x: filters.uniform_filter(x, 5)):
        want, got = fn(a), fn(d).get()
        assert np.count_nonzero(want) > a.size // 2 and np.count_nonzero(got) > a.size // 2
        assert np.abs(got.astype(np.float64) - want).max() <= 16 * float(tiny)


CPP_CASES = [
    (smooth, [np.int8, np.uint8, np.int16, np.float32, np.float64, np.bool_, np.uint64],
     [(300, 517), (257, 1024), (3, 64, 100)]),
    (heat, [np.float32], [(513, 1000)]),
    (skew1, [np.int16, np.float32], [(7, 1001)]),
    (lap3, [np.int8, np.float64], [(20, 31, 64)]),
    (box5, [np.uint8, np.float32], [(61, 130)]),
    (helpers, [np.int16, np.uint8], [(300, 517)]),
    (float_helpers, [np.float32, np.float64], [(257, 300)]),
    (unpacking, [np.int16, np.float32], [(3, 5000)]),
    (tuple_loops, [np.int16, np.float32], [(3, 5000)]),
    (scoped_numbers, [np.float32], [(3, 5000)]),
    (narrow_types, [np.int16, np.int64], [(3, 5000)]),
    (named_functions, [np.float32], [(3, 5000)]),
    (square_negative, [np.float32, np.int16], [(3, 5000)]),
]


@pytest.mark.parametrize("st,dtypes,shapes", CPP_CASES,
                         ids=[st.__name__ for st, _, _ in CPP_CASES])
def test_generated_cpp_on_the_gpu_equals_the_cpu_bit_for_bit(cupy, st, dtypes, shapes):
    # floats included: NVRTC compiles with --fmad=false, so nothing is fused
    for dtype in dtypes:
        for k, shape in enumerate(shapes):
            a = sample(shape, dtype, seed=k)
            d = cupy.asarray(a)
            assert "generated CUDA C++" in st.explain(d)
            for mode in sk.MODES:
                kw = {"mode": mode, **({"cval": 1} if mode in ("constant", "skip") else {})}
                r = st(d, **kw)
                assert isinstance(r, cupy.ndarray)
                np.testing.assert_array_equal(r.get(), st(a, **kw), err_msg=f"{dtype} {mode}")


def test_parameters_run_time_offsets_and_out_on_the_gpu(cupy):
    a = sample((100, 130), np.float32, seed=1)
    b = sample((100, 130), np.float32, seed=2)
    for alpha in (0.3, 2, np.float32(0.3)):
        np.testing.assert_array_equal(blend(cupy.asarray(a), cupy.asarray(b), alpha).get(),
                                      blend(a, b, alpha))
    i = sample((50, 66), np.int32)
    np.testing.assert_array_equal(shift(cupy.asarray(i), -3, 2, mode="wrap").get(),
                                  shift(i, -3, 2, mode="wrap"))
    out = cupy.empty((300, 517), np.uint8)
    x = sample((300, 517), np.uint8)
    assert smooth(cupy.asarray(x), out=out) is out
    np.testing.assert_array_equal(out.get(), smooth(x))


def test_iterate_on_the_gpu_is_exact(cupy):
    u = sample((257, 300), np.float32)
    for mode in ("wrap", "reflect", "constant"):
        r = heat.iterate(cupy.asarray(u), steps=25, mode=mode)
        np.testing.assert_array_equal(r.get(), heat.iterate(u, steps=25, mode=mode))


def test_tiled_iterate_on_the_gpu_is_exact(cupy):
    """Temporal blocking (stencilkit.codegen_tiled): shared memory and barriers, which the host
    harness runs phase by phase; here on the device, against the CPU step by step."""
    u = sample((2, 300, 517), np.float32, seed=3)
    g = (sample((1, 129, 250), np.uint8, seed=4) % 2).astype(np.uint8)
    for mode in ["reflect", "mirror", "nearest", "wrap", "constant", "skip"]:
        for steps, block in [(13, 4), (16, 8)]:
            got = diffuse.iterate(cupy.asarray(u), 0.2, steps=steps, block_steps=block,
                                  mode=mode)
            np.testing.assert_array_equal(
                got.get(), diffuse.iterate(u, 0.2, steps=steps, mode=mode),
                err_msg=f"diffuse {mode} {steps}/{block}")
        got = life.iterate(cupy.asarray(g), steps=21, block_steps=8, mode=mode)
        np.testing.assert_array_equal(got.get(), life.iterate(g, steps=21, mode=mode),
                                      err_msg=f"life {mode}")
        k = np.full(u.shape, 0.2, np.float32)  # a fixed second array
        got = variable_diffusion.iterate(cupy.asarray(u), cupy.asarray(k), np.float32(0.5),
                                         steps=9, block_steps=4, mode=mode)
        np.testing.assert_array_equal(
            got.get(), variable_diffusion.iterate(u, k, np.float32(0.5), steps=9, mode=mode),
            err_msg=f"variable_diffusion {mode}")


def test_numba_device_arrays_take_the_cpp_path(cupy):
    from numba import cuda

    a = sample((200, 300), np.uint8)
    d = cuda.to_device(a)
    assert "generated CUDA C++" in smooth.explain(d)
    r = smooth(d)
    assert cuda_backend.is_device_array(r) and not isinstance(r, cupy.ndarray)
    np.testing.assert_array_equal(r.copy_to_host(), smooth(a))


def test_cupy_in_cupy_out(cupy):
    a = sample((300, 517), np.uint8)
    for mode in sk.MODES:
        r = smooth(cupy.asarray(a), mode=mode)
        assert isinstance(r, cupy.ndarray)
        np.testing.assert_array_equal(r.get(), smooth(a, mode=mode))
    r = smooth(cupy.asarray(sample((3, 40, 50), np.float16)), axes=(0, 2))
    np.testing.assert_array_equal(r.get(), smooth(sample((3, 40, 50), np.float16), axes=(0, 2)))


def numpy_window(fn, x, size, mode, cval):
    """NumPy's median / minimum / maximum over the padded image's windows (exact for integers;
    no numba compile of a CPU kernel per window on the GPU machine's clock)."""
    pads = [(s // 2, s - 1 - s // 2) for s in size]
    padded = (np.pad(x, pads, constant_values=cval) if mode == "constant" else
              np.pad(x, pads, {"mirror": "reflect", "reflect": "symmetric"}[mode]))
    windows = np.lib.stride_tricks.sliding_window_view(padded, size).reshape(*x.shape, -1)
    if fn is filters.median_filter:
        return np.sort(windows, axis=-1)[..., windows.shape[-1] // 2]
    return windows.max(-1) if fn is filters.maximum_filter else windows.min(-1)


def test_cupy_filters_and_resampling(cupy):
    a = sample((257, 301), np.uint8)
    d = cupy.asarray(a)
    np.testing.assert_array_equal(filters.uniform_filter(d, 15).get(),
                                  filters.uniform_filter(a, 15))
    np.testing.assert_array_equal(filters.median_filter(d, 5).get(), filters.median_filter(a, 5))
    w = np.ascontiguousarray(a[:, :300])  # rows of whole 32-bit words: the 8-bit kernels
    i16 = w.astype(np.int16) * 200 - 25000
    for fn, size, x in [(filters.maximum_filter, (3, 3), w), (filters.minimum_filter, (9, 9), w),
                        (filters.maximum_filter, (2, 15), i16),  # box extremes: one sweep
                        (filters.median_filter, (5, 5), w), (filters.median_filter, (3, 4), w),
                        (filters.median_filter, (3, 3), a), (filters.median_filter, (3, 3), w),
                        (filters.median_filter, (3, 3), i16)]:  # networks, sorted columns
        for mode in ("mirror", "constant"):
            np.testing.assert_array_equal(fn(cupy.asarray(x), size, mode=mode, cval=3).get(),
                                          numpy_window(fn, x, size, mode, 3),
                                          err_msg=f"{fn.__name__} {size} {x.dtype} {mode}")
    # float 3 x 3 medians: sorted columns, the CPU's network for NaN windows and zero medians:
    # the CPU's bits (signed zeros, NaN payloads)
    rng = np.random.default_rng(5)
    for dt, ut in [(np.float32, np.uint32), (np.float64, np.uint64)]:
        f = rng.choice(np.array([-1.5, -0.0, 0.0, 2.0, np.inf, np.nan], dt), (131, 140))
        f.view(ut)[7, 9] |= 1  # another NaN payload
        for mode in ("reflect", "constant"):
            got = filters.median_filter(cupy.asarray(f), 3, mode=mode, cval=-0.0).get()
            want = filters.median_filter(f, 3, mode=mode, cval=-0.0)
            np.testing.assert_array_equal(got.view(ut), want.view(ut), err_msg=f"{dt} {mode}")
    np.testing.assert_array_equal(resample.block_reduce(d, 2).get(), resample.block_reduce(a, 2))
    for factor in (3, 9, (16, 12), 32, (17, 40)):  # medians: generated C++ (beyond numba's
        # 64 elements; beyond 256: windows in a scratch array, selected)
        np.testing.assert_array_equal(resample.block_reduce(d, factor, "median").get(),
                                      resample.block_reduce(a, factor, "median"),
                                      err_msg=f"median {factor}")
    f = sample((3, 70, 90), np.float32)  # (NaN blocks, a volume's blocks across planes)
    f[1, 5, 7] = np.nan
    for factor in ((1, 20, 20), (2, 15, 11), (3, 13, 17)):
        np.testing.assert_array_equal(resample.block_reduce(cupy.asarray(f), factor, "median",
                                                            edge="pad", cval=0.5).get(),
                                      resample.block_reduce(f, factor, "median", edge="pad",
                                                            cval=0.5), err_msg=f"{factor}")
    r = np.ascontiguousarray(a[:, :288])  # rows of whole 16-byte words: 16 bytes a thread
    for x in (r, r.astype(np.float32) / 3):
        for func in ("mean", "sum", "min", "max"):
            np.testing.assert_array_equal(resample.block_reduce(cupy.asarray(x), 2, func).get(),
                                          resample.block_reduce(x, 2, func),
                                          err_msg=f"{func} {x.dtype}")
        np.testing.assert_array_equal(resample.decimate(cupy.asarray(x), 2).get(),
                                      resample.decimate(x, 2))
    for got, want in zip(resample.pyramid_down(d, 2), resample.pyramid_down(a, 2)):
        np.testing.assert_array_equal(got.get(), want)  # (four outputs a thread inside)
    v = sample((9, 33, 40), np.uint8)  # a volume's 2 x 2 x 2 blocks: one C++ launch
    for func in ("mean", "max", "median"):
        np.testing.assert_array_equal(resample.block_reduce(cupy.asarray(v), 2, func).get(),
                                      resample.block_reduce(v, 2, func))
    v = sample((9, 33, 48), np.uint8)  # (rows of whole 16-byte words: 16 bytes a thread)
    for func in ("mean", "sum", "min"):
        np.testing.assert_array_equal(resample.block_reduce(cupy.asarray(v), 2, func).get(),
                                      resample.block_reduce(v, 2, func))
    # 8-bit Gaussian: float32 sums checked near ties (stencilkit.backends.cuda_sep), the CPU's
    np.testing.assert_array_equal(filters.gaussian_filter(d, 1.0).get(),
                                  filters.gaussian_filter(a, 1.0))
    w = np.array([[0.25, 1.5, 0.25], [1.0, -2.0, 1.0], [0.125, 0.5, 0.125]])
    got = filters.correlate(d, w).get().astype(int)
    assert np.abs(got - filters.correlate(a, w).astype(int)).max() <= 1
    g = filters.gaussian_filter(cupy.asarray(a.astype(np.float32)), 2.0).get()
    np.testing.assert_allclose(g, filters.gaussian_filter(a.astype(np.float32), 2.0), rtol=1e-5)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint16, np.int16, np.int32])
def test_box_kernel_on_the_gpu_equals_the_cpu(cupy, dtype):
    """The generated C++ box (stencilkit.backends.cuda_box): words and elements, every mode,
    windows wider than a thread's columns, odd shapes, a stack and an offset view."""
    a = sample((2, 131, 260), dtype, seed=5)
    for size in [(1, 15, 15), (1, 4, 9), (1, 1, 40), (1, 31, 2)]:
        for mode in ["reflect", "mirror", "nearest", "wrap", "constant"]:
            got = filters.uniform_filter(cupy.asarray(a), size, mode=mode, cval=9).get()
            np.testing.assert_array_equal(got, filters.uniform_filter(a, size, mode=mode, cval=9),
                                          err_msg=f"{size} {mode}")
    v = a[0, 3:, 1:258]  # rows not 4-byte aligned: the element kernel
    np.testing.assert_array_equal(filters.uniform_filter(cupy.asarray(a)[0, 3:, 1:258], 15).get(),
                                  filters.uniform_filter(v, 15))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_separable_sweep_on_the_gpu_agrees_with_the_cpu(cupy, dtype):
    """The generated C++ Gaussian sweep (stencilkit.backends.cuda_sep): every mode, a stack,
    windows wider than the image; round-off only (it sums horizontally first, the CPU
    vertically; tests/test_cuda_sep.py checks its own order bit for bit on the host)."""
    eps = np.finfo(dtype).eps
    for shape, sigma in [((2, 131, 260), (0, 1.0, 2.0)), ((2, 131, 260), (0, 7.0, 0.7)),
                         ((1, 20, 30), (0, 6.0, 6.0))]:
        a = sample(shape, dtype, seed=7)
        for mode in ["reflect", "mirror", "nearest", "wrap", "constant"]:
            got = filters.gaussian_filter(cupy.asarray(a), sigma, mode=mode, cval=2.0).get()
            want = filters.gaussian_filter(a, sigma, mode=mode, cval=2.0)
            np.testing.assert_allclose(got, want, rtol=0, atol=8 * eps * np.abs(want).max(),
                                       err_msg=f"{sigma} {mode}")
            # a mean of 9 x 15: the orders of its sums differ by up to 9 + 15 roundings of
            # values up to max|a| (an H200 was 1.07e-13 off in float64, 8.6 eps max|want|)
            got = filters.uniform_filter(cupy.asarray(a), (1, 9, 15), mode=mode, cval=2).get()
            want = filters.uniform_filter(a, (1, 9, 15), mode=mode, cval=2)
            np.testing.assert_allclose(got, want, rtol=0, atol=24 * eps * np.abs(a).max(),
                                       err_msg=f"uniform {mode}")


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32])
def test_integer_gaussian_on_the_gpu_equals_the_cpu(cupy, dtype):
    """Integer data: float32 (8-bit) or float64 sums, each near a tie summed again in the
    CPU's float64 order (cuda_sep ``sk_exact``): the CPU's integers, every mode."""
    a = sample((2, 131, 260), dtype, seed=9)
    a[0, 20:60, 30:90] = 100  # flat: integer sums
    for sigma in [(0, 2.0, 2.0), (0, 5.0, 1.0)]:
        for mode in ["reflect", "mirror", "nearest", "wrap", "constant"]:
            got = filters.gaussian_filter(cupy.asarray(a), sigma, mode=mode, cval=3).get()
            np.testing.assert_array_equal(
                got, filters.gaussian_filter(a, sigma, mode=mode, cval=3), err_msg=f"{mode}")
    b = sample((1000, 1000), np.uint8, seed=10)  # enough sums near a tie to take the branch
    np.testing.assert_array_equal(filters.gaussian_filter(cupy.asarray(b), 3.0).get(),
                                  filters.gaussian_filter(b, 3.0))


def test_switches_on_the_gpu_equal_the_plain_kernels(cupy, monkeypatch):
    """The switches tools/gpu_profile.py times (rows read a step ahead, cuda_sep.AHEAD: on by
    default for float32 weights, here forced on and off for uint8 too; two words a thread for
    the 8/16-bit extremes, cuda_minmax.UNITS; the tiled iterate's runs of rows,
    codegen_tiled.COLUMNS), on the device: the plain kernels' results bit for bit, every
    mode, vector and word loads, strips cut by the array's end."""
    from stencilkit import codegen_tiled
    from stencilkit.backends import cuda_minmax, cuda_sep

    f = sample((2, 131, 260), np.float32, seed=12)
    u8 = sample((2, 131, 260), np.uint8, seed=13)
    calls = [(cuda_sep, "AHEAD", (False, True),
              lambda x, m: filters.gaussian_filter(x, (0, 2, 2), mode=m, cval=2), f),
             (cuda_sep, "AHEAD", (False, True),
              lambda x, m: filters.gaussian_filter(x, (0, 1, 1), mode=m, cval=2), u8),
             (cuda_minmax, "UNITS", (1, 2),
              lambda x, m: filters.maximum_filter(x, (1, 3, 15), mode=m, cval=9), u8),
             (codegen_tiled, "COLUMNS", (False, True), lambda x, m: diffuse.iterate(
                 x, 0.2, steps=13, block_steps=8, mode=m), f[0])]
    for module, name, (plain, switched), fn, a in calls:
        for mode in ["reflect", "wrap", "constant"]:
            monkeypatch.setattr(module, name, plain)
            want = fn(cupy.asarray(a), mode).get()
            monkeypatch.setattr(module, name, switched)
            got = fn(cupy.asarray(a), mode).get()
            np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8),
                                          err_msg=f"{module.__name__}.{name} {mode}")


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float32])
def test_large_medians_on_the_gpu_equal_the_cpu(cupy, dtype):
    """cuda_rank: Huang histograms in shared memory (8-bit boxes; 16-bit ones in two levels)
    and the quickselect per element (other dtypes), every mode, strips cut by the array's
    end, a stack."""
    a = sample((2, 150, 301), dtype, seed=11)
    for size in [(1, 9, 9), (1, 15, 15), (1, 3, 40)]:
        for mode in ["reflect", "mirror", "nearest", "wrap", "constant"]:
            got = filters.median_filter(cupy.asarray(a), size, mode=mode, cval=7).get()
            np.testing.assert_array_equal(got, filters.median_filter(a, size, mode=mode, cval=7),
                                          err_msg=f"{size} {mode}")


def test_integer_outputs_on_the_gpu_follow_the_rule(cupy):
    """Backend.saturate on CuPy arrays (cupy.rint/where/clip): rank filters into a narrower
    integer output, float running sums and a float Gaussian into integers, equal to the CPU's
    (which tests/test_filters.py checks against exact references)."""
    i16 = sample((2, 90, 130), np.int16, seed=13)
    f32 = sample((90, 130), np.float32, seed=14)
    f32[5, 6:9] = [2.5, -0.5, np.nan]
    for a, out, fn in [(i16, np.uint8, lambda x, o: filters.maximum_filter(x, 3, output=o)),
                       (i16, np.uint8, lambda x, o: filters.median_filter(x, (1, 9, 9),
                                                                          output=o)),
                       (f32, np.int16, lambda x, o: filters.median_filter(x, 3, output=o)),
                       (f32, np.uint8, lambda x, o: filters.uniform_filter(x, 7, output=o)),
                       (f32, np.uint64, lambda x, o: filters.gaussian_filter(x, 1.5,
                                                                             output=o))]:
        want = fn(a, out)
        np.testing.assert_array_equal(fn(cupy.asarray(a), out).get(), want)
        into = cupy.zeros(a.shape, out)
        assert fn(cupy.asarray(a), into) is into
        np.testing.assert_array_equal(into.get(), want)


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.uint64])
def test_extreme_sweep_on_the_gpu_equals_the_cpu(cupy, dtype):
    a = sample((2, 131, 260), dtype, seed=8)
    if a.dtype.kind == "f":
        a[0, 50, 60] = np.nan
    for fn in (filters.maximum_filter, filters.minimum_filter):
        for size in [(1, 11, 13), (1, 1, 40), (1, 31, 1)]:
            for mode in ["reflect", "mirror", "nearest", "wrap", "constant"]:
                got = fn(cupy.asarray(a), size, mode=mode, cval=3).get()
                np.testing.assert_array_equal(got, fn(a, size, mode=mode, cval=3),
                                              err_msg=f"{fn.__name__} {size} {mode}")


def test_dask_with_cupy_chunks(cupy):
    da = pytest.importorskip("dask.array")
    a = sample((4, 300, 200), np.int16)
    x = da.from_array(a, chunks=(1, 128, 96)).map_blocks(cupy.asarray)
    y = smooth(x, mode="reflect")
    out = y.compute()
    assert isinstance(out, cupy.ndarray)
    np.testing.assert_array_equal(out.get(), smooth(a))
    np.testing.assert_array_equal(smooth.iterate(x, steps=4).compute().get(),
                                  smooth.iterate(a, steps=4))
    c = sk.chain(smooth, asym2)  # stages of one core rank
    np.testing.assert_array_equal(c(x).compute().get(), c(a))
    g = filters.uniform_filter(x, 5).compute()
    assert isinstance(g, cupy.ndarray)
    np.testing.assert_array_equal(g.get(), filters.uniform_filter(a, 5))
    # line passes: each region through the CUDA backend's kernels (box, sweep, medians)
    u8 = sample((2, 300, 200), np.uint8, seed=4)
    y = da.from_array(u8, chunks=(1, 128, 96)).map_blocks(cupy.asarray)
    for fn, arg in [(filters.uniform_filter, 15), (filters.gaussian_filter, 2.0),
                    (filters.median_filter, (1, 9, 9)), (filters.maximum_filter, 11)]:
        got = fn(y, arg).compute()
        assert isinstance(got, cupy.ndarray)
        np.testing.assert_array_equal(got.get(), fn(u8, arg), err_msg=fn.__name__)


def test_more_than_2_31_elements(cupy):
    # numba #9229: cuda.grid() overflows 32 bits past 2**31 threads; the generated kernels
    # compute indices in 64 bits. 2**31 + 2**20 int8 elements in and out: about 4.3 GB.
    free, _ = cupy.cuda.runtime.memGetInfo()
    n1 = 2**20
    n0 = 2**11 + 1
    if free < 3 * n0 * n1:
        pytest.skip("not enough GPU memory")

    @sk.stencil(mode="wrap")
    def east(x):
        return x[0, 1]

    a = cupy.arange(n0 * n1, dtype=cupy.int8).reshape(n0, n1)
    r = east(a)
    assert r.size > 2**31
    # the last row lies past element 2**31: each element is its east neighbour, wrapping
    np.testing.assert_array_equal(r[-1, :-1].get(), a[-1, 1:].get())
    assert int(r[-1, -1].get()) == int(a[-1, 0].get())
    np.testing.assert_array_equal(r[0, :-1].get(), a[0, 1:].get())
    del r
    # the filters' own kernels (their 64-bit index variants: sorted columns, networks, box
    # extremes) at the array's far corner and its first, against NumPy's windows of slices
    # (a slice's cut edges are left out of the comparison)
    for fn, size in [(filters.median_filter, (3, 3)), (filters.median_filter, (5, 5)),
                     (filters.maximum_filter, (3, 3)), (filters.minimum_filter, (9, 9))]:
        r = fn(a, size, mode="mirror")
        h, w = size[0] // 2, size[1] // 2
        for rows, cols, keep in [(slice(-16, None), slice(-4096, None), (slice(h, None),
                                                                          slice(w, None))),
                                 (slice(0, 16), slice(0, 4096), (slice(0, -h), slice(0, -w)))]:
            want = numpy_window(fn, a[rows, cols].get(), size, "mirror", 0)[keep]
            np.testing.assert_array_equal(r[rows, cols].get()[keep], want,
                                          err_msg=f"{fn.__name__} {size}")
        del r


# last: numba.cuda compiles each kernel on the GPU (minutes in all), so that a timed run
# (tools/gpu_check.sh) reaches the C++ paths' tests first
@pytest.mark.parametrize("st,dtypes,shapes", CPP_CASES,
                         ids=[st.__name__ for st, _, _ in CPP_CASES])
def test_numba_cuda_fallback_on_the_gpu(cupy, monkeypatch, st, dtypes, shapes):
    monkeypatch.setenv("STENCILKIT_CUDA_CPP", "0")
    for dtype in dtypes:
        a = sample(shapes[0], dtype, seed=3)
        d = cupy.asarray(a)
        assert "numba.cuda (the fallback)" in st.explain(d)
        for mode in ("reflect", "constant", "skip"):
            kw = {"mode": mode, **({"cval": 1} if mode in ("constant", "skip") else {})}
            close(st(d, **kw).get(), st(a, **kw), FALLBACK_ULPS)


def test_numpy_ufuncs_on_the_numba_fallback_on_the_gpu(cupy, monkeypatch):
    """NumPy's ufuncs on scalars that numba-cuda's CUDA target lacks (np.sqrt, np.exp,
    np.abs, np.floor, np.power...), through stencilkit.backends.cuda_ufuncs: compiled and
    within the fallback's ulp bound of the CPU."""
    monkeypatch.setenv("STENCILKIT_CUDA_CPP", "0")
    for st in (numpy_ufuncs, numpy_ufuncs_inexact):
        for dtype in (np.float32, np.float64, np.int16):
            a = sample((3, 5000), dtype, seed=5)
            for mode in ("reflect", "constant"):
                close(st(cupy.asarray(a), mode=mode, cval=1).get(),
                      st(a, mode=mode, cval=1), FALLBACK_ULPS)


@pytest.mark.parametrize("cpp", ["1", "0"], ids=["cpp", "numba"])
def test_numpy_ufunc_loops_on_the_gpu(cupy, monkeypatch, cpp):
    """NumPy's ufuncs on scalars by numba's loops in the data's type (the C++ path's
    ``ufunc_loop``; on the fallback numba-cuda's and stencilkit.backends.cuda_ufuncs' loops):
    the CPU's results on every pair each loop is defined on, integers bit for bit; floats
    within the fallback's bound (np.power, np.float_power: CUDA's pow, not correctly rounded,
    within it on the C++ path too)."""
    monkeypatch.setenv("STENCILKIT_CUDA_CPP", cpp)
    for st, fns, dtypes in ((int_loops, INT_LOOPS, [np.int8, np.uint16, np.int64, np.uint64]),
                            (float_loops, FLOAT_LOOPS, [np.float32, np.float64]),
                            (predicate_loops, PREDICATE_LOOPS, [np.int16, np.float32])):
        for dtype in dtypes:
            for k, fn in enumerate(fns):
                a, b = loop_pairs(fn, dtype)
                with np.errstate(all="ignore"):
                    want = st(a, b, k, acc=dtype)
                got = st(cupy.asarray(a), cupy.asarray(b), k, acc=dtype).get()
                if np.dtype(dtype).kind != "f" or cpp == "1" and fn not in (
                        np.power, np.float_power):
                    np.testing.assert_array_equal(got, want, err_msg=f"np.{fn.__name__}")
                    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
                else:  # (each a single operation: relative to the element itself)
                    np.testing.assert_allclose(got, want, err_msg=f"np.{fn.__name__}",
                                               rtol=FALLBACK_ULPS * np.finfo(dtype).eps)


def test_morphology_on_the_gpu(cupy):
    """stencilkit.morphology on CuPy arrays (the min/max filters' kernels, a non-flat
    structure's kernel, the compositions' sums, binary iterations until nothing changes and
    masks): the CPU's results, which equal scipy's (tests/test_morphology.py)."""
    from stencilkit import morphology

    a = sample((2, 70, 90), np.uint8, seed=14)
    d = cupy.asarray(a)
    s = np.array([[0, 1, 0], [2, 3, 1], [0, -1, 2]])
    for name, kw in (("grey_opening", {"size": (1, 5, 4)}),
                     ("morphological_gradient", {"footprint": np.eye(3, dtype=bool),
                                                 "axes": (1, 2)}),
                     ("white_tophat", {"structure": s, "axes": (1, 2), "mode": "constant"}),
                     ("morphological_laplace", {"size": 3, "output": np.int16})):
        want = getattr(morphology, name)(a, **kw)
        np.testing.assert_array_equal(getattr(morphology, name)(d, **kw).get(), want,
                                      err_msg=name)
    b = a > 100
    mask = a < 200
    for name, kw in (("binary_erosion", {"iterations": 0}),
                     ("binary_opening", {"iterations": 2, "border_value": 1}),
                     ("binary_dilation", {"mask": mask, "iterations": 3})):
        want = getattr(morphology, name)(b, **kw)
        dkw = {k: (cupy.asarray(v) if k == "mask" else v) for k, v in kw.items()}
        np.testing.assert_array_equal(getattr(morphology, name)(cupy.asarray(b), **dkw).get(),
                                      want, err_msg=name)


def _line_sum(line, result, scale):
    for i in range(result.size):
        result[i] = (line[i] + line[i + 1] + line[i + 2]) * scale


def test_generic_filters_on_the_gpu(cupy):
    """generic_filter and generic_filter1d on CuPy arrays: the user's function compiled for
    the device by numba.cuda (extra arguments, keywords bound to their places), the CPU's
    results; NumPy's own functions refused with advice."""
    from stencilkit import StencilTypeError

    a = sample((2, 70, 90), np.uint8, seed=15)
    d = cupy.asarray(a)
    for kw in ({"size": (1, 3, 4), "mode": "constant", "cval": 2.5},
               {"footprint": np.eye(3, dtype=bool), "axes": (1, 2), "origin": (0, -1),
                "mode": "wrap"}):
        for extra in ({"extra_arguments": (0.25,)}, {"extra_keywords": {"weight": -1.5}}):
            for output in (np.float64, np.int16):
                want = filters.generic_filter(a, window_spread, output=output, **kw, **extra)
                got = filters.generic_filter(d, window_spread, output=output, **kw, **extra)
                np.testing.assert_array_equal(got.get(), want, err_msg=f"{kw} {extra}")
    for axis in (1, 2):
        kw = {"axis": axis, "mode": "mirror", "extra_keywords": {"scale": 0.5}}
        np.testing.assert_array_equal(
            filters.generic_filter1d(d, _line_sum, 3, output=np.float32, **kw).get(),
            filters.generic_filter1d(a, _line_sum, 3, output=np.float32, **kw))
    with pytest.raises(StencilTypeError, match="no device version"):
        filters.generic_filter(d, np.median, size=3)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_large_medians_on_the_numba_fallback_on_the_gpu(cupy, monkeypatch, dtype):
    """cuda_lines.run_rank (the CPU's quickselect as a device function) on a real GPU."""
    monkeypatch.setenv("STENCILKIT_CUDA_CPP", "0")
    a = sample((2, 70, 90), dtype, seed=12)
    for size, mode in (((1, 9, 9), "reflect"), ((3, 5, 5), "constant")):
        got = filters.median_filter(cupy.asarray(a), size, mode=mode, cval=7).get()
        np.testing.assert_array_equal(got, filters.median_filter(a, size, mode=mode, cval=7),
                                      err_msg=f"{size} {mode}")
    got = filters.rank_filter(cupy.asarray(a), 60, (1, 9, 9), mode="wrap").get()
    np.testing.assert_array_equal(got, filters.rank_filter(a, 60, (1, 9, 9), mode="wrap"))


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32])
def test_rank_and_percentile_filters_on_the_gpu(cupy, dtype):
    """Ranks other than the median on a real GPU (the network kernel for 8/16-bit windows,
    the generated network for floats, histograms and selection for large windows): the
    CPU's result, which equals scipy's."""
    import scipy.ndimage as ndi

    a = sample((2, 70, 90), dtype, seed=13)
    d = cupy.asarray(a)
    for fn, which, size, mode in ((filters.rank_filter, 2, (1, 3, 3), "reflect"),
                                  (filters.percentile_filter, 80, (1, 5, 5), "constant"),
                                  (filters.rank_filter, -7, (1, 9, 9), "mirror"),
                                  (filters.percentile_filter, 10, (1, 11, 7), "nearest")):
        want = fn(a, which, size, mode=mode, cval=3)
        np.testing.assert_array_equal(want, getattr(ndi, fn.__name__)(a, which, size, mode=mode,
                                                                      cval=3))
        np.testing.assert_array_equal(fn(d, which, size, mode=mode, cval=3).get(), want,
                                      err_msg=f"{fn.__name__} {which} {size} {mode}")


def test_replayed_calls_on_the_gpu_equal_the_cpu(cupy):
    """Calls repeated on CuPy arrays replay their launches (stencilkit.backends.cuda_replay):
    on new data, new outputs and an unaligned view of the same configuration, each result is
    the CPU's (integers bit for bit), and each replay's the full run's."""
    from stencilkit.backends import cuda_replay

    calls = [lambda x, **k: filters.uniform_filter(x, 15, **k),
             lambda x, **k: filters.maximum_filter(x, 3, **k),
             lambda x, **k: filters.median_filter(x, 5, **k),
             lambda x, **k: filters.gaussian_filter(x, 2.0, **k),
             lambda x, **k: filters.sobel(x, **k),
             lambda x, **k: resample.block_reduce(x, 2, "mean")]
    for i, call in enumerate(calls):
        hosts = [sample((130, 200), np.uint8, seed=s) for s in (0, 1, 0)]
        wants = [call(a) for a in hosts]
        before, whole = cuda_replay.REPLAYED[0], cuda_replay.WHOLE[0]
        got = [call(cupy.asarray(a)).get() for a in hosts]
        assert cuda_replay.REPLAYED[0] - before >= 1, f"call {i}: no replay"
        # (the later two calls replayed whole with the real CuPy, as with the tests' stand-in)
        assert cuda_replay.WHOLE[0] - whole == 2, f"call {i}: not replayed whole"
        np.testing.assert_array_equal(got[2], got[0])
        for g, w in zip(got, wants):
            np.testing.assert_array_equal(g, w, err_msg=f"call {i}")
        base = cupy.zeros(hosts[1].size + 4, np.uint8)
        view = base[1:1 + hosts[1].size].reshape(hosts[1].shape)  # one byte off a word
        view[...] = cupy.asarray(hosts[1])
        np.testing.assert_array_equal(call(view).get(), wants[1], err_msg=f"call {i} view")
        if i < 5:
            o = cupy.empty(hosts[1].shape, wants[1].dtype)
            assert call(cupy.asarray(hosts[1]), output=o) is o
            np.testing.assert_array_equal(o.get(), wants[1], err_msg=f"call {i} output")
    u = sample((130, 200), np.float32, seed=2)
    d = cupy.asarray(u)
    for rate in (0.1, 0.2, 0.1):
        close(diffuse(d, rate).get(), diffuse(u, rate), 0)
    with cuda_replay.off():
        close(diffuse(d, 0.2).get(), diffuse(u, 0.2), 0)
