"""The temporal-blocking kernel (stencilkit.codegen_tiled) without a GPU.

Each module is compiled for the host by g++ (``-DSK_HOST``): its blocks run one at a time and
each block's threads phase by phase between the barriers, so the shared-memory tiles, the
halo, the shrinking rows and columns of each step and every mode's region edges run as on a
GPU. Reference: the CPU backend's ``iterate``, one step after another, bit for bit.
"""


import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kernels import asym2, diffuse, life, sample, smooth, variable_diffusion

import stencilkit as sk
from stencilkit import codegen_tiled
from stencilkit.backends import cpu, cuda_cpp
from stencilkit.backends import cuda as cuda_backend
from stencilkit.backends.cpu import from_work

cpp_host = pytest.importorskip("cpp_host")
pytestmark = pytest.mark.skipif(cpp_host.CXX is None, reason="needs a C++ compiler (g++)")

MODES = ["reflect", "mirror", "nearest", "wrap", "constant", "skip"]


def tiled_module(st, x, block_steps, *args, idx64=None, **kw):
    """The tiled module a CUDA ``iterate`` would run, its plan and work arrays.

    ``args``: the fixed arrays, then the parameters.
    """
    fixed = list(args[:len(st.arrays) - 1])
    params = args[len(st.arrays) - 1:]
    plan, params, _, overrides = cuda_backend.plan_call(st, (x, *fixed, *params), kw)
    plan, work = cpu.BACKEND.prepare(st, [x, *fixed], list(params), None, overrides)
    assert codegen_tiled.unsupported(st._spec, plan.work_dtypes, plan.wout, plan.mode) is None
    types, wide, narrow = cuda_cpp._variant(st, plan, params)
    idx64 = wide if idx64 is None else idx64
    steps, _ = codegen_tiled.fits(st.radius, plan.wout.itemsize, block_steps)
    mod = codegen_tiled.generate(st._spec, plan.work_dtypes, plan.wout, plan.acc0.dtype, types,
                                 idx64=idx64, narrow=narrow, steps=steps)
    return mod, plan, work, params


def host_iterate(st, x, steps, block_steps, *params, idx64=None, **kw):
    """``st.iterate(x, *params, steps=steps, block_steps=block_steps)`` as the CUDA backend
    runs it with the tiled kernel, launched on the host."""
    mod, plan, work, params = tiled_module(st, x, block_steps, *params, idx64=idx64, **kw)
    lib = cpp_host.build(mod.source)
    cur = np.ascontiguousarray(work[0])
    fixed = [np.ascontiguousarray(f) for f in work[1:]]
    remaining = steps
    while remaining:
        n = min(mod.steps, remaining)
        nxt = np.full(plan.wshape, 99, plan.wout)  # stale values must all be overwritten
        for kname, grid, block in mod.launches(plan.wshape):
            scalars = mod.scalars(plan.wshape, n, plan.mode, plan.cval_acc, plan.cval_out,
                                  params)
            cpp_host.launch(lib, mod.source, kname, grid, block, [cur, *fixed, nxt, *scalars])
        cur, remaining = nxt, remaining - n
    return from_work(cur, plan)


# (kernel, dtype, parameters): integer and float bodies, a one-sided reach, a parameter
CASES = [(smooth, np.int16, ()), (asym2, np.int32, ()), (diffuse, np.float32, (0.2,)),
         (diffuse, np.float64, (0.15,)), (life, np.uint8, ())]


@pytest.mark.parametrize("k", range(len(CASES)))
def test_tiled_iterate_equals_step_by_step_bit_for_bit(k):
    st, dtype, params = CASES[k]
    for shape in [(1, 45, 77), (2, 9, 5), (1, 70, 130)]:
        x = sample(shape, dtype, seed=k)
        if st is life:
            x = (x % 2).astype(dtype)
        elif dtype == np.int16:
            x //= 4  # room for the sums
        for mode in MODES:
            kw = {"mode": mode, "cval": 3} if mode in ("constant", "skip") else {"mode": mode}
            want = st.iterate(x, *params, steps=7, **kw)
            got = host_iterate(st, x, 7, 3, *params, **kw)
            np.testing.assert_array_equal(got, want, err_msg=f"{shape} {mode}")


@pytest.mark.parametrize("k", range(len(CASES)))
@pytest.mark.parametrize("columns", [True, False])
def test_runs_of_rows_equal_step_by_step(monkeypatch, k, columns):
    """``codegen_tiled.COLUMNS`` (on by default): a thread's run of rows, ``UNROLL`` at a time
    from one set of reads, in regions away from the array's edges (an array tall and wide
    enough to have them; every region with ``wrap``), bit for bit the CPU's steps; runs that
    end partway (the rows left after whole groups) included. Off: rows strided by the block's
    height, each value read afresh."""
    monkeypatch.setattr(codegen_tiled, "COLUMNS", columns)
    st, dtype, params = CASES[k]
    x = sample((1, 131, 203), dtype, seed=k)
    x = (x % 2).astype(dtype) if st is life else x // 4 if dtype == np.int16 else x
    assert ("r += 4)" in tiled_module(st, x, 8, *params)[0].source) == columns
    for mode in ("reflect", "wrap", "constant"):
        kw = {"mode": mode, "cval": 3} if mode == "constant" else {"mode": mode}
        for block_steps in (8, 3):
            np.testing.assert_array_equal(host_iterate(st, x, 9, block_steps, *params, **kw),
                                          st.iterate(x, *params, steps=9, **kw),
                                          err_msg=f"{mode} {block_steps}")


def test_fixed_arrays_are_read_where_each_region_element_lies():
    """A second array stays fixed (a diffusivity field, of another dtype): read from device
    memory through the mode's map at the element's place in the array, exact at every edge."""
    u = sample((2, 45, 77), np.float64, seed=6)
    k = (np.abs(sample((2, 45, 77), np.float32, seed=7)) / 400).astype(np.float32)
    for mode in MODES:
        kw = {"mode": mode, "cval": 0.5} if mode == "constant" else {"mode": mode}
        want = variable_diffusion.iterate(u, k, 0.1, steps=6, **kw)
        got = host_iterate(variable_diffusion, u, 6, 4, k, 0.1, **kw)
        np.testing.assert_array_equal(got, want, err_msg=mode)
    small = sample((1, 7, 5), np.float64, seed=8)  # regions wrap around the array
    ks = np.full((1, 7, 5), 0.01, np.float32)
    np.testing.assert_array_equal(host_iterate(variable_diffusion, small, 9, 9, ks, 0.1,
                                               mode="wrap"),
                                  variable_diffusion.iterate(small, ks, 0.1, steps=9, mode="wrap"))


def test_the_halo_reaches_past_small_arrays_and_every_launch_size():
    """More steps a launch than the array is wide (the region is the whole array, or wraps
    around it more than once), and each launch size from 1 to the module's most."""
    x = sample((1, 6, 11), np.float32, seed=3)
    for mode in MODES:
        for steps in (1, 2, 5, 9):
            want = diffuse.iterate(x, 0.2, steps=steps, mode=mode)
            np.testing.assert_array_equal(host_iterate(diffuse, x, steps, 9, 0.2, mode=mode), want,
                                          err_msg=f"{mode} {steps}")
    np.testing.assert_array_equal(host_iterate(diffuse, x, 5, 4, 0.2, idx64=True),
                                  diffuse.iterate(x, 0.2, steps=5))  # 64-bit indices


@settings(max_examples=25, deadline=None)
@given(n0=st.integers(1, 70), n1=st.integers(1, 140), batch=st.integers(1, 2),
       mode=st.sampled_from(MODES), steps=st.integers(1, 11), block=st.sampled_from([3, 5]),
       seed=st.integers(0, 2**16))
def test_any_shape_mode_and_step_count_equals_step_by_step(n0, n1, batch, mode, steps, block,
                                                           seed):
    """Property: for any array shape (tiles cut anywhere, arrays smaller than the halo), mode
    and number of steps, the tiled launches equal the CPU's steps bit for bit."""
    x = sample((batch, n0, n1), np.float32, seed=seed)
    kw = {"mode": mode, "cval": 1.5} if mode == "constant" else {"mode": mode}
    np.testing.assert_array_equal(host_iterate(diffuse, x, steps, block, 0.2, **kw),
                                  diffuse.iterate(x, 0.2, steps=steps, **kw))


def test_what_fits_and_what_is_covered():
    assert codegen_tiled.fits(((1, 1), (1, 1)), 4, 8) == (8, (32, 64))
    steps, tile = codegen_tiled.fits(((1, 1), (1, 1)), 8, 8)  # float64: fewer steps fit
    assert 2 <= steps < 8 and 2 * (tile[0] + 2 * steps) * (tile[1] + 2 * steps) * 8 <= 48 * 1024
    assert codegen_tiled.fits(((40, 40), (40, 40)), 8, 8) is None
    f32 = [np.dtype(np.float32)]
    assert codegen_tiled.unsupported(diffuse._spec, f32, f32[0], 0) is None
    assert codegen_tiled.unsupported(diffuse._spec, f32, f32[0], sk.MODES.index("skip")) is None
    from kernels import blend, lap3, shift

    assert "3 core axes" in codegen_tiled.unsupported(lap3._spec, f32, f32[0], 0)
    assert codegen_tiled.unsupported(blend._spec, f32 * 2, f32[0], 0) is None
    x = np.zeros((40, 40), np.float32)
    with pytest.raises(Exception, match="run-time offsets"):
        tiled_module(shift, x, 4, 1, 1)


def test_tiled_module_compiles_with_nvrtc():
    cpp_host.needs_nvrtc()
    x = np.zeros((64, 64), np.float32)
    mod, *_ = tiled_module(diffuse, x, 8, 0.2)
    ptx = cuda_cpp.ptx(mod.source, "compute_90")
    assert ".shared" in ptx and "bar.sync" in ptx and "fma" not in ptx


def test_every_dtype_compiles_with_nvrtc():
    cpp_host.needs_nvrtc()
    for dtype in (np.bool_, np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32,
                  np.uint64, np.int64, np.float32, np.float64):
        st = life if dtype == np.bool_ else smooth
        mod, *_ = tiled_module(st, np.zeros((40, 40), dtype), 6, idx64=dtype == np.int64)
        cuda_cpp.ptx(mod.source, "compute_90")


def test_iterate_on_device_arrays_takes_the_tiled_kernel(fake_gpu):
    """End to end: Stencil.iterate(block_steps=...) -> CudaBackend.iterate -> cuda_cpp.run_tiled
    -> (stand-in) CuPy launch; without block_steps one launch per step, as before."""
    from numba import cuda

    u = sample((50, 70), np.float32, seed=4)
    want = diffuse.iterate(u, 0.2, steps=10, mode="wrap")
    got = diffuse.iterate(cuda.to_device(u), 0.2, steps=10, block_steps=4, mode="wrap")
    np.testing.assert_array_equal(got.copy_to_host(), want)
    assert fake_gpu.launched.count("diffuse_tiled") == 3  # 4 + 4 + 2 steps
    fake_gpu.launched.clear()
    got = diffuse.iterate(cuda.to_device(u), 0.2, steps=3, mode="wrap")
    np.testing.assert_array_equal(got.copy_to_host(), diffuse.iterate(u, 0.2, steps=3, mode="wrap"))
    assert "diffuse_tiled" not in fake_gpu.launched
    b = sample((30, 20), np.int16, seed=5) // 4  # skip: the border band set to cval each step
    fake_gpu.launched.clear()
    got = smooth.iterate(cuda.to_device(b), steps=4, block_steps=4, mode="skip", cval=-5)
    np.testing.assert_array_equal(got.copy_to_host(),
                                  smooth.iterate(b, steps=4, mode="skip", cval=-5))
    assert fake_gpu.launched == ["smooth_py_tiled"]
    from kernels import shift  # reads at run-time offsets: no tiled kernel, a launch a step

    fake_gpu.launched.clear()
    x = sample((30, 40), np.float32, seed=6)
    got = shift.iterate(cuda.to_device(x), 1, -2, steps=3, block_steps=3, mode="wrap")
    np.testing.assert_array_equal(got.copy_to_host(),
                                  shift.iterate(x, 1, -2, steps=3, mode="wrap"))
    assert fake_gpu.launched and not any(k.endswith("_tiled") for k in fake_gpu.launched)


@sk.stencil
def wide_heat(u):  # reaches two elements along each axis
    return u[0, 0] + np.float32(0.05) * (u[0, -2] + u[0, 2] + u[-2, 0] + u[2, 0]
                                         - np.float32(4) * u[0, 0])


def test_large_states_tile_by_default(fake_gpu, monkeypatch):
    """Without block_steps, states of TILED_BYTES or more of 2-D kernels reaching one element
    take TILED_STEPS steps a launch (here with the threshold lowered to this small state);
    wider kernels, and smaller states, a launch a step. Results as step by step."""
    from numba import cuda

    u = sample((50, 70), np.float32, seed=8)
    monkeypatch.setattr(cuda_backend, "TILED_BYTES", u.nbytes)
    got = diffuse.iterate(cuda.to_device(u), 0.2, steps=10, mode="reflect")
    np.testing.assert_array_equal(got.copy_to_host(),
                                  diffuse.iterate(u, 0.2, steps=10, mode="reflect"))
    assert fake_gpu.launched.count("diffuse_tiled") == 2  # 8 + 2 steps
    fake_gpu.launched.clear()
    small = u[:40]  # (under the threshold: a launch a step)
    got = diffuse.iterate(cuda.to_device(np.ascontiguousarray(small)), 0.2, steps=3)
    np.testing.assert_array_equal(got.copy_to_host(), diffuse.iterate(small, 0.2, steps=3))
    assert "diffuse_tiled" not in fake_gpu.launched
    w = sample((60, 60), np.float32, seed=9)
    monkeypatch.setattr(cuda_backend, "TILED_BYTES", w.nbytes)
    fake_gpu.launched.clear()
    got = wide_heat.iterate(cuda.to_device(w), steps=2)  # a reach of two: not by default
    np.testing.assert_array_equal(got.copy_to_host(), wide_heat.iterate(w, steps=2))
    assert fake_gpu.launched and "wide_heat_tiled" not in fake_gpu.launched
    fake_gpu.launched.clear()  # (though the tiled kernel takes it when asked)
    got = wide_heat.iterate(cuda.to_device(w), steps=2, block_steps=2)
    np.testing.assert_array_equal(got.copy_to_host(), wide_heat.iterate(w, steps=2))
    assert fake_gpu.launched == ["wide_heat_tiled"]
