"""The generated C++ separable sweep (stencilkit.backends.cuda_sep) without a GPU.

Every module is compiled for the host by g++ (``-DSK_HOST``, no fused multiply-adds, as NVRTC
with ``--fmad=false``) and its launches run thread by thread (tests/cpp_host.py). Two
references: a plain NumPy evaluation in the kernel's own order of operations (horizontal sums
left to right, then vertical ones top to bottom, each operation rounded in the data's type),
which it must equal bit for bit; and the CPU backend's ``gaussian_filter`` (which sums the
other way round), which it must equal to round-off.
"""

import numpy as np
import pytest
from filter_table import assert_device_result
from kernels import sample
from reference import pad_index

from stencilkit import filters
from stencilkit._passes import Sep2
from stencilkit.backends import cpu, cuda_cpp, cuda_sep

cpp_host = pytest.importorskip("cpp_host")
pytestmark = pytest.mark.skipif(cpp_host.CXX is None, reason="needs a C++ compiler (g++)")

MODES = ["reflect", "mirror", "nearest", "wrap", "constant"]


def in_order(a, wv, lov, wh, loh, mode, cval):
    """The kernel's arithmetic in NumPy: pad by the mode, horizontal then vertical sums."""
    dtype = a.dtype
    n0, n1 = a.shape[-2:]
    kv, kh = len(wv), len(wh)
    rows = [pad_index(k, n0, mode) for k in range(-lov, n0 + kv - 1 - lov)]
    cols = [pad_index(k, n1, mode) for k in range(-loh, n1 + kh - 1 - loh)]
    padded = np.full((*a.shape[:-2], len(rows), len(cols)), cval, dtype)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            if r is not None and c is not None:
                padded[..., i, j] = a[..., r, c]
    wv, wh = np.asarray(wv, dtype), np.asarray(wh, dtype)
    h = wh[0] * padded[..., :, 0:n1]
    for c in range(1, kh):
        h = h + wh[c] * padded[..., :, c:c + n1]
    s = wv[0] * h[..., 0:n0, :]
    for k in range(1, kv):
        s = s + wv[k] * h[..., k:k + n0, :]
    return s


def host_sep(x, p, mode, cval, *, rows=cpp_host.ROWS, idx64=False):
    """The pass ``p`` over the last two axes of ``x``, launched as on a GPU, on the host."""
    mod = cuda_sep.generate(x.dtype, p.wv, p.lov, p.wh, p.loh, idx64=idx64)
    return cpp_host.run_sweep(
        mod, x, x.dtype, lambda shape, strip, c0, c1: cuda_sep.scalars(
            mod, shape, strip, c0, c1, mode, cval), fill=np.nan, rows=rows)


WEIGHTS = [
    ((0.25, 0.5, 0.25), 1, (0.1, 0.2, 0.4, 0.2, 0.1), 2),
    ((1.0, -2.0, 1.0, 0.5), 0, (0.3, 0.7), 1),  # origins off centre
    (tuple(np.exp(-np.arange(-8, 9) ** 2 / 8.0) / 7.0), 8, (0.5,), 0),  # one tap across
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("w", range(len(WEIGHTS)))
def test_sweep_equals_its_order_of_operations_bit_for_bit(dtype, w):
    wv, lov, wh, loh = WEIGHTS[w]
    p = Sep2(1, wv, lov, wh, loh, np.dtype(dtype))
    for shape in [(2, 41, 37), (1, 5, 3), (1, 70, 9)]:
        a = sample(shape, dtype, seed=w)
        for mode in MODES:
            want = in_order(a, wv, lov, wh, loh, mode, 1.5)
            for rows in (1, cpp_host.ROWS, None):
                got = host_sep(a, p, mode, 1.5, rows=rows)
                np.testing.assert_array_equal(got, want, err_msg=f"{shape} {mode} {rows}")
    got = host_sep(a, p, "wrap", 0.0, idx64=True)
    np.testing.assert_array_equal(got, in_order(a, wv, lov, wh, loh, "wrap", 0.0))


@pytest.mark.parametrize("sigma", [1.0, 2.0, (0.7, 3.0)])
def test_gaussian_pass_agrees_with_the_cpu(monkeypatch, sigma):
    """The Sep2 pass gaussian_filter plans (caught on its way to the CPU backend)."""
    a = sample((48, 53), np.float32, seed=3)
    for mode in MODES:
        seen = []

        def spy(passes, arr, out, seen=seen, real=cpu.BACKEND.run_passes):
            seen.append(passes)
            return real(passes, arr, out)

        monkeypatch.setattr(cpu.BACKEND, "run_passes", spy, raising=False)
        want = filters.gaussian_filter(a, sigma, mode=mode, cval=2.0)
        monkeypatch.undo()
        ((p,),) = [plan.passes for plan in seen]
        assert isinstance(p, Sep2) and cuda_sep.fits(p, a.dtype)
        got = host_sep(a, p, mode, seen[0].cval)
        assert_device_result(got, want, exact=False)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6 * np.abs(want).max())


def test_what_fits():
    wv = (0.25, 0.5, 0.25)
    assert cuda_sep.fits(Sep2(0, wv, 1, wv, 1, np.dtype(np.float32)), np.float32)
    assert not cuda_sep.fits(Sep2(0, wv, 1, wv, 1, np.dtype(np.uint8)), np.uint8)  # ties
    assert not cuda_sep.fits(Sep2(0, wv, 1, wv, 1, np.dtype(np.float64)), np.float32)
    assert not cuda_sep.fits(Sep2(0, (1.0,) * 65, 32, wv, 1, np.dtype(np.float32)),
                             np.float32)
    assert not cuda_sep.fits(Sep2(0, (np.inf,), 0, wv, 1, np.dtype(np.float32)), np.float32)


def test_modules_compile_with_nvrtc_without_fused_multiply_adds():
    try:
        from cuda.bindings import nvrtc

        nvrtc.nvrtcVersion()
    except Exception as exc:
        pytest.skip(f"NVRTC not available ({exc})")
    for dtype in (np.float32, np.float64):
        mod = cuda_sep.generate(dtype, *WEIGHTS[2], idx64=False)
        ptx = cuda_cpp.ptx(mod.source, "compute_90")
        body = ptx[ptx.index(".entry sk_sep_interior("):]
        body = body[:body.index("\n}\n")]
        assert "ld.global.nc" in body and "fma" not in body
        assert "fma" in cuda_cpp.ptx(mod.source, "compute_90", fastmath=True)
    # the source grows with the taps, not with their square: each kernel emits its horizontal
    # sum once (an unrolled prologue of 63 of them made NVRTC take 36 s at 64 x 64 taps)
    w64 = tuple(np.ones(64) / 64)
    big = cuda_sep.generate(np.float32, w64, 32, w64, 32, idx64=False).source
    assert big.count(f"h63 = {float(np.float32(1 / 64)).hex()}f *") == 2


def test_gaussian_on_a_device_array_takes_the_sweep(fake_gpu):
    """End to end: filters -> CudaBackend.run_passes -> cuda_sep -> (stand-in) CuPy launch."""
    from numba import cuda

    a = sample((2, 30, 41), np.float32, seed=6)
    for mode in MODES:
        want = filters.gaussian_filter(a, (0, 1.5, 2.0), mode=mode, cval=1.0)
        got = filters.gaussian_filter(cuda.to_device(a), (0, 1.5, 2.0), mode=mode, cval=1.0)
        assert_device_result(got.copy_to_host(), want, exact=False)
    assert set(fake_gpu.launched) == {"sk_sep_interior", "sk_sep_border"}
    out = cuda.device_array(a.shape, np.float32)
    assert filters.gaussian_filter(cuda.to_device(a), (0, 2, 2), output=out) is out
    assert_device_result(out.copy_to_host(), filters.gaussian_filter(a, (0, 2, 2)), False)
