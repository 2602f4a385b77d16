"""The CUDA backend: generated kernels against the CPU backend, bit for bit.

Without a GPU these run under numba's CUDA simulator (tests/conftest.py sets
NUMBA_ENABLE_CUDASIM=1), which executes the generated kernels as Python on NumPy scalars: the
arrays stay small. `NUMBA_ENABLE_CUDASIM=0 make test` runs them on a real device.
"""

import numpy as np
import pytest
from kernels import (
    CONVERSIONS,
    CONVERTED,
    SHIFT_COUNTS,
    amplify,
    asym2,
    blend,
    box5,
    builtin_types,
    conversions,
    converted,
    integer_roundings,
    lap3,
    math_edges,
    named_functions,
    narrow_types,
    numpy_ufuncs,
    sample,
    scaled,
    scoped_numbers,
    shift,
    shifted,
    shifts,
    skew1,
    smooth,
)

import stencilkit as sk
from stencilkit.backends import cuda as cuda_backend

ok, why = sk.cuda_available(explain=True)
pytestmark = pytest.mark.skipif(not ok, reason=f"no CUDA: {why}")

numba_cuda = pytest.importorskip("numba.cuda")


MODES = list(sk.MODES)
DTYPES = [np.bool_, np.uint8, np.int16, np.uint32, np.int64, np.float32, np.float64]


FALLBACK_ULPS = 8
"""On a real GPU the numba.cuda fallback fuses multiply-adds (numba-cuda has no switch against
it): its float results agree with the CPU's to this many ulps of the result's largest
magnitude. The generated CUDA C++ (--fmad=false) and the simulator give the CPU's bits."""

_LAST_PATH = []


def cpu(st, *args, **kw):
    return st(*args, **kw)


def gpu(st, *args, **kw):
    _LAST_PATH[:] = [_path(st, args, kw)]
    return st(*args, target="cuda", **kw)


def _path(st, args, kw):
    if cuda_backend.simulated():
        return "simulator"
    from stencilkit.backends import cuda_cpp

    plan, params, _, _ = cuda_backend.plan_call(st, args, kw)
    return cuda_cpp.choose(st, plan, params).path


def same(a, b):
    """``a`` (the GPU's, from gpu()) equals ``b`` (the CPU's): exactly, or within the
    fallback's ulp bound for floats the numba.cuda kernel computed on a real GPU."""
    assert type(a) is np.ndarray and type(b) is np.ndarray
    assert a.dtype == b.dtype and a.shape == b.shape
    path = _LAST_PATH[0] if _LAST_PATH else "simulator"
    _LAST_PATH[:] = []
    if path == "numba" and b.dtype.kind in "fc" and b.size:
        eps = np.finfo(b.dtype).eps
        scale = float(np.nanmax(np.abs(b)))
        np.testing.assert_allclose(a, b, rtol=FALLBACK_ULPS * eps,
                                   atol=FALLBACK_ULPS * eps * scale)
        return
    np.testing.assert_array_equal(a, b)


def test_available_says_what_it_found():
    assert ok is True
    assert isinstance(why, str) and why
    if cuda_backend.simulated():
        assert "simulator" in why


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_smooth_every_mode_and_dtype(mode, dtype):
    a = sample((9, 21), dtype, seed=3)
    kw = {"mode": mode}
    if mode in ("constant", "skip"):
        kw["cval"] = 1
    same(gpu(smooth, a, **kw), cpu(smooth, a, **kw))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("st", [skew1, asym2, lap3, scaled, box5],
                         ids=["skew1", "asym2", "lap3", "scaled", "box5"])
def test_kernels_every_mode(st, mode):
    shape = {1: (37,), 2: (7, 18), 3: (4, 5, 9)}[st.ndim]
    dtypes = (np.int16, np.float32, np.complex128) if st is scaled else (np.int16, np.float32)
    for dtype in dtypes:
        a = sample(shape, dtype, seed=1)
        same(gpu(st, a, mode=mode), cpu(st, a, mode=mode))


def test_float32_arithmetic_follows_numba_not_numpy_scalars():
    # x * 0.25 is float64 in compiled code (numba types the literal as float64); the simulator
    # would keep float32 without the explicit literal types in the generated CUDA source
    a = (np.arange(40, dtype=np.float32) / 7).reshape(4, 10)
    same(gpu(scaled, a), cpu(scaled, a))


def test_numbers_from_the_kernels_scope_follow_numba_not_numpy_scalars():
    # WEIGHT = 0.1 and DIVISOR = 3 at module level (and TAPS' ints): float64 arithmetic with a
    # float32 x in compiled code, float32 in the simulator unless given as NumPy scalars
    a = (np.arange(200, dtype=np.float32) / 7).reshape(4, 50)
    same(gpu(scoped_numbers, a), cpu(scoped_numbers, a))


@pytest.mark.parametrize("alpha", [0.3, 2, np.float32(0.3)])
def test_two_inputs_and_scalar_parameters(alpha):
    a = sample((6, 11), np.float32, seed=4)
    b = sample((6, 11), np.float32, seed=5)
    same(gpu(blend, a, b, alpha), cpu(blend, a, b, alpha))


def test_run_time_offsets():
    a = sample((8, 9), np.int32)
    for di, dj in [(0, 0), (-3, 2), (3, -3)]:
        same(gpu(shift, a, di, dj, mode="wrap"), cpu(shift, a, di, dj, mode="wrap"))


def test_float_to_integer_output_saturates_like_the_cpu():
    a = np.array([-1.0, 0.1, 0.9, 1.0, np.nan, np.inf, -np.inf, 1e30, 0.5], np.float64)
    same(gpu(amplify, a), cpu(amplify, a))
    assert gpu(amplify, a).dtype == np.uint8


@pytest.mark.parametrize("cpp", ["1", "0"], ids=["cpp", "numba"])
def test_float_to_int_conversions_in_a_body_saturate_like_the_cpu(cpp, monkeypatch):
    """``int()``, ``np.uint8()``, ``math.floor`` and the rest of out-of-range floats and NaN:
    saturated, NaN 0, on both kernel paths (on a GPU the device's conversion saturates where
    x86's gives the integer indefinite, so only the explicit rule makes them agree)."""
    monkeypatch.setenv("STENCILKIT_CUDA_CPP", cpp)
    for dtype in (np.float64, np.float32):
        x = CONVERTED.astype(dtype)
        for k in range(len(CONVERSIONS)):
            same(gpu(conversions, x, k), converted(x, k))
    for dtype in (np.int64, np.uint64):  # of integers: the integer itself (all differences 0)
        x = sample((40,), dtype)
        same(gpu(integer_roundings, x), np.zeros_like(x))
    x = sample((40,), np.int64)  # of integers into narrower ones: wrapped, as numba converts
    for k in range(len(CONVERSIONS) - 4):
        same(gpu(conversions, x, k), cpu(conversions, x, k))
    # math's domain and range errors: NaN and infinities, as compiled code gives them
    x = np.array([-4.0, -1.0, 0.0, -0.0, 1.0, 9.0, 20.0, np.nan, np.inf, -np.inf])
    same(gpu(math_edges, x), cpu(math_edges, x))
    # builtins' result types (the simulator's Python max returned an int64 unconverted)
    for x in (sample((40,), np.int64), sample((40,), np.float32)):
        same(gpu(builtin_types, x), cpu(builtin_types, x))
    # float reads into an integer accumulator (a read alone: each read's conversion, checked
    # against the exact reference below)
    x = np.array([[1.7, -2.5, 40000.0, -1e9], [np.nan, np.inf, 3.0, 2.0**40]])
    for dj in (0, 1):
        got = gpu(shift, x, 0, dj, acc=np.int16, mode="wrap")
        same(got, cpu(shift, x, 0, dj, acc=np.int16, mode="wrap"))
        reads = converted(x.ravel(), 2).reshape(2, 4)  # (int16, truncated)
        np.testing.assert_array_equal(got, np.roll(reads, -dj, axis=1))


@pytest.mark.parametrize("cpp", ["1", "0"], ids=["cpp", "numba"])
def test_numpy_ufuncs_on_scalars_on_every_path(cpp, monkeypatch):
    """np.sqrt, np.abs, np.floor, np.square, np.power... on scalars: numba-cuda's CUDA target
    lacks them (a KeyError lowering the kernel on a device); the numba.cuda fallback takes them
    from stencilkit's additions (stencilkit.backends.cuda_ufuncs), with numba's loops."""
    monkeypatch.setenv("STENCILKIT_CUDA_CPP", cpp)
    for dtype in (np.float32, np.int16):
        x = sample((40,), dtype)
        same(gpu(numpy_ufuncs, x), cpu(numpy_ufuncs, x))


@pytest.mark.parametrize("cpp", ["1", "0"], ids=["cpp", "numba"])
def test_narrow_and_mixed_integers_follow_numba_not_numpy_scalars(cpp, monkeypatch):
    """int8 + int8 in int64, -uint8 a uint64, uint64 + int64 an int64, a selection of uint64
    and int64 a float64, ``*=`` of int16s in int64, ufuncs by numba's loops: numba's types on
    every path (the simulator's NumPy scalars would wrap, refuse ``&``, keep the taken
    branch's type or compute a ufunc in float64)."""
    monkeypatch.setenv("STENCILKIT_CUDA_CPP", cpp)
    for dtype in (np.int16, np.int64):
        x = sample((40,), dtype)
        same(gpu(narrow_types, x), cpu(narrow_types, x))
    # NumPy's ufuncs run numba's loop: hypot(float32, int64) is ff->f (NumPy 2's: a float64)
    for dtype in (np.float32, np.int16):
        x = sample((40,), dtype)
        same(gpu(named_functions, x), cpu(named_functions, x))


@pytest.mark.parametrize("cpp", ["1", "0"], ids=["cpp", "numba"])
def test_shifts_beyond_the_width_follow_numpys_rule(cpp, monkeypatch):
    """Counts outside 0..63 shift everything out on both kernel paths, as on the CPU."""
    monkeypatch.setenv("STENCILKIT_CUDA_CPP", cpp)
    x = (np.arange(-40, 40) * 7919).astype(np.int64)
    for k in SHIFT_COUNTS:
        same(gpu(shifts, x, k, mode="wrap"), shifted(x, k))


@pytest.mark.parametrize("options", [
    {"out_dtype": np.float32}, {"acc": np.float64}, {"out_dtype": np.int8},
    {"mode": "constant", "cval": -5},
])
def test_options(options):
    a = sample((5, 13), np.int16, seed=6)
    same(gpu(smooth, a, **options), cpu(smooth, a, **options))


def test_batch_axes_and_axes_option():
    stack = sample((3, 6, 7), np.uint8)
    same(gpu(smooth, stack), cpu(smooth, stack))
    same(gpu(smooth, stack, axes=(0, 2)), cpu(smooth, stack, axes=(0, 2)))
    same(gpu(skew1, stack, axes=(1,)), cpu(skew1, stack, axes=(1,)))


def test_float16_is_computed_in_float32_and_rounded_once():
    a = sample((5, 6), np.float16)
    same(gpu(smooth, a), cpu(smooth, a))


def test_layouts_and_byte_order():
    base = sample((10, 12), np.int32)
    for a in (base.T, base[::2, ::-3], base.astype(">i4"), np.asfortranarray(base)):
        same(gpu(smooth, a), cpu(smooth, np.ascontiguousarray(a)))


def test_empty_and_tiny_arrays():
    for shape in [(0, 5), (1, 1), (1, 7), (2, 1)]:
        a = np.ones(shape, np.float32)
        for mode in MODES:
            same(gpu(smooth, a, mode=mode), cpu(smooth, a, mode=mode))


def test_device_array_in_device_array_out():
    a = sample((6, 9), np.int16)
    d = numba_cuda.to_device(a)
    r = smooth(d)
    assert cuda_backend.is_device_array(r) and not isinstance(r, np.ndarray)
    same(r.copy_to_host(), cpu(smooth, a))
    np.testing.assert_array_equal(d.copy_to_host(), a)  # the input is untouched
    # a transposed view and a dtype change go through the host for numba arrays: same bits
    r = smooth(numba_cuda.to_device(sample((3, 5, 6), np.float16)), axes=(0, 2))
    same(r.copy_to_host(), cpu(smooth, sample((3, 5, 6), np.float16), axes=(0, 2)))


def test_target_cpu_copies_device_input_to_the_host():
    a = sample((6, 9), np.int16)
    same(smooth(numba_cuda.to_device(a), target="cpu"), cpu(smooth, a))


def test_out_on_the_device_and_in_place():
    a = sample((7, 8), np.float32)
    d = numba_cuda.to_device(a)
    out = numba_cuda.device_array(a.shape, np.float32)
    assert smooth(d, out=out) is out
    same(out.copy_to_host(), cpu(smooth, a))
    assert smooth(d, out=d) is d  # in place: computed aside, then copied
    same(d.copy_to_host(), cpu(smooth, a))
    host_out = np.empty_like(a)
    assert smooth(a, out=host_out, target="cuda") is host_out
    same(host_out, cpu(smooth, a))


def test_iterate_stays_on_the_device():
    a = sample((9, 10), np.float64)
    for mode in ("wrap", "reflect", "constant"):
        same(smooth.iterate(a, steps=5, mode=mode, target="cuda"),
             smooth.iterate(a, steps=5, mode=mode))
    d = numba_cuda.to_device(a)
    r = smooth.iterate(d, steps=4)
    same(r.copy_to_host(), smooth.iterate(a, steps=4))
    zero = smooth.iterate(d, steps=0)
    assert zero is not d
    same(zero.copy_to_host(), a)
    h = sample((4, 5), np.float16)
    same(smooth.iterate(h, steps=2, target="cuda"), smooth.iterate(h, steps=2))


def test_gufunc_path_is_not_needed_for_stacks_on_the_device():
    stack = numba_cuda.to_device(sample((2, 5, 6), np.int8))
    same(smooth(stack).copy_to_host(), cpu(smooth, stack.copy_to_host()))


def test_errors():
    a = np.ones((4, 4))
    with pytest.raises(sk.StencilError, match="debug=True checks reads on the CPU"):
        smooth(a, target="cuda", debug=True)
    with pytest.raises(sk.StencilTypeError, match="NumPy array for host input"):
        smooth(a, target="cuda", out=numba_cuda.device_array((4, 4)))
    with pytest.raises(sk.StencilTypeError, match="device array for device input"):
        smooth(numba_cuda.to_device(a), out=np.empty((4, 4)))
    with pytest.raises(sk.StencilError, match="out has shape"):
        smooth(numba_cuda.to_device(a), out=numba_cuda.device_array((4, 5)))
    with pytest.raises(sk.StencilError, match="unknown target"):
        smooth(a, target="gpu")


def test_unavailable_cuda_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(cuda_backend, "_probe", lambda: (False, "no GPU here (test)"))
    with pytest.raises(sk.StencilError, match=r"CUDA backend is not available: no GPU here"):
        smooth(np.ones((3, 3)), target="cuda")


def test_launches_cover_huge_arrays(monkeypatch):
    monkeypatch.setattr(cuda_backend, "simulated", lambda: False)
    shape = (1, 3 * 2**20, 2**20)  # 3 * 2**40 elements
    (name, grid, block, (rows, c0, c1)), border = cuda_backend.launches(smooth.radius, shape)
    assert name == "_sk_cuda_interior" and grid[1] <= 65535 and grid[2] <= 65535
    assert grid[0] * block[0] >= c1 - c0 == 2**20 - 2  # one thread per interior column
    assert grid[1] * block[1] * rows >= 3 * 2**20 - 2  # strips cover the interior rows
    assert border[0] == "_sk_cuda_border" and border[1][0] <= 1 << 20  # grid-stride
    (name, grid, block, _), *_ = cuda_backend.launches(skew1.radius, (1, 2**33))
    assert grid[0] * block[0] >= 2**33 - 3


def test_generated_source_uses_64_bit_thread_indices_and_unsigned_offsets():
    from stencilkit import codegen

    source = codegen.generate_cuda(smooth._spec, fastmath=False, cache=False, idx64=False)
    assert "cuda.grid(" not in source  # 32-bit block * thread products (numba #9229)
    assert "_sk_np.int64(_sk_cuda.blockIdx.x) * _sk_cuda.blockDim.x" in source
    assert "_sk_np.uint32(" in source  # flat offsets: no negative-index test per read
    assert "_sk_np.uint64(" in codegen.generate_cuda(smooth._spec, fastmath=False, cache=False)
    assert "_sk_cuda_interior" in source and "_sk_cuda_border" in source


@pytest.mark.parametrize("chunks", [(4, 5), ((2, 5), (6, 3)), (2, 2)],
                         ids=["even", "uneven", "smaller-than-halo"])
@pytest.mark.parametrize("mode", ["reflect", "wrap", "constant", "skip"])
def test_dask_chunks_computed_on_the_device(mode, chunks, monkeypatch):
    da = pytest.importorskip("dask.array")
    launches = []  # applications on the device, by either kernel path
    run = cuda_backend.run_plan
    monkeypatch.setattr(cuda_backend, "run_plan", lambda *a: launches.append(1) or run(*a))
    a = sample((7, 9), np.int16)
    x = da.from_array(a, chunks=chunks)
    y = smooth(x, mode=mode, target="cuda")
    assert isinstance(y, da.Array)
    same(y.compute(scheduler="sync"), cpu(smooth, a, mode=mode))
    assert len(launches) == x.npartitions  # one launch per chunk's region
    z = smooth.iterate(x, steps=2, mode=mode, target="cuda")
    same(z.compute(scheduler="sync"), smooth.iterate(a, steps=2, mode=mode))


def test_gpu_benchmark_script_runs_its_code_paths():
    # benchmarks/gpu.py on tiny arrays under the simulator: keeps the script from rotting
    # between GPU sessions (its timings mean nothing here)
    import os
    import subprocess
    import sys

    if not cuda_backend.simulated():
        pytest.skip("the smoke run is for the simulator; on a GPU run the benchmark itself")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, os.path.join(root, "benchmarks", "gpu.py"),
                          "--simulator"], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "NUMBA_ENABLE_CUDASIM": "1"})
    assert out.returncode == 0, out.stderr
    for section in ("3 x 3 int8 mean", "stack", "Gaussian sigma=2", "2 x 2 block mean",
                    "every filter of tests/filter_table.py, float32", "median_filter size=3"):
        assert section in out.stdout
    assert "classic numba.cuda kernel" in out.stdout


def test_gpu_benchmark_times_fast_calls_in_a_stream_too():
    """benchmarks/gpu.py's best_times on a stand-in clock: a call's GPU time from events
    around it, and for calls of up to STREAM_MS its share of STREAM queued back to back."""
    import importlib.util
    import os
    import types

    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "benchmarks", "gpu.py")
    spec = importlib.util.spec_from_file_location("sk_bench_gpu", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    clock = [0.0]  # GPU milliseconds

    class Event:
        def record(self):
            self.t = clock[0]

        def synchronize(self):
            pass

    dev = types.SimpleNamespace(sync=lambda: None, cupy=types.SimpleNamespace(
        cuda=types.SimpleNamespace(Event=Event, get_elapsed_time=lambda a, b: b.t - a.t)))
    calls = {"fast": 0, "slow": 0}

    def call(name, ms):
        def fn():
            calls[name] += 1
            clock[0] += ms + (2.0 if calls[name] % 9 == 1 else 0.0)  # (some calls wait)
        return fn

    got = bench.best_times({"fast": call("fast", 1.0), "slow": call("slow", 10.0)}, dev, 3)
    assert calls == {"fast": 1 + 3 * (1 + bench.STREAM), "slow": 1 + 3}
    assert got["fast"][0] == pytest.approx(1e-3) and got["slow"][0] == pytest.approx(1e-2)
    assert got["fast"][2] == pytest.approx(1e-3 + 2e-3 / bench.STREAM)
    assert got["slow"][2] != got["slow"][2]  # NaN: not timed in a stream


def test_chain_on_device_arrays():
    c = sk.chain(smooth, asym2)
    a = sample((6, 10), np.int32)
    r = c(numba_cuda.to_device(a))
    assert cuda_backend.is_device_array(r)
    same(r.copy_to_host(), c(a))


def test_numba_cuda_incompatible_with_numpy_is_named(monkeypatch):
    # numba-cuda 0.30.4 registers np.row_stack, which NumPy 2.5 removed: the first compile
    # fails deep inside numba. stencilkit names the problem instead (and the gpu extra pins
    # numpy<2.5).
    import importlib

    real = importlib.import_module

    def fake(name, *args):
        if name == "numba_cuda.numba.cuda.np.arrayobj":
            raise AttributeError("module 'numpy' has no attribute 'row_stack'")
        return real(name, *args)

    monkeypatch.setattr(cuda_backend, "simulated", lambda: False)
    monkeypatch.delattr(np, "row_stack", raising=False)
    monkeypatch.setattr(importlib, "import_module", fake)
    cuda_backend.fallback_problem.cache_clear()
    try:
        problem = cuda_backend.fallback_problem()
    finally:
        cuda_backend.fallback_problem.cache_clear()
    assert "row_stack" in problem and "numpy<2.5" in problem


def test_a_call_needing_a_broken_fallback_says_why(monkeypatch):
    monkeypatch.setenv("STENCILKIT_CUDA_CPP", "0")  # (on a GPU with CuPy, C++ would run it)
    monkeypatch.setattr(cuda_backend, "fallback_problem", lambda: "numba-cuda X is broken (test)")
    with pytest.raises(sk.StencilError, match=r"needs the numba.cuda kernel .* broken \(test\)"):
        smooth(np.ones((4, 4)), target="cuda")


def test_explain_names_the_kernel_path():
    text = smooth.explain(np.ones((8, 8), np.uint8), target="cuda")
    assert "CUDA backend" in text
    if cuda_backend.simulated():
        assert "numba.cuda (the fallback)" in text and "simulator" in text
    assert "CPU backend" in smooth.explain(np.ones((8, 8), np.uint8))


def test_device_rint_rounds_half_to_even_exactly():
    # stencilkit._casts.rint replaces np.rint on the CUDA target (numba-cuda has none); its
    # overload is target-generic, so compiling it for the CPU checks the same arithmetic
    import numba

    from stencilkit._casts import rint

    ties = np.arange(-6, 7) + 0.5
    for dtype, big in ((np.float64, 2.0**52), (np.float32, 2.0**23)):
        f = numba.njit(lambda x: rint(x))  # one dispatcher per dtype: no float32 -> float64
        x = np.concatenate([ties, [0.0, -0.0, 0.49999999999999994, -0.5000001, 1e-300, -7.25,
                                   big - 0.5, big, big + 2, -big - 2, 1e30, np.nan, np.inf,
                                   -np.inf]]).astype(dtype)
        got = np.array([f(v) for v in x], dtype)
        assert [str(sig.return_type) for sig in f.nopython_signatures] == [np.dtype(dtype).name]
        np.testing.assert_array_equal(got, np.rint(x))
        np.testing.assert_array_equal(np.signbit(got), np.signbit(np.rint(x)))
    f = numba.njit(lambda x: rint(x))
    assert f(np.int64(3)) == 3.0 and str(f.nopython_signatures[0].return_type) == "float64"
