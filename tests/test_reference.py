"""Every mode x dtype x kernel rank against references that do not use stencilkit."""

import numba
import numpy as np
import pytest
import scipy.ndimage as ndi
from kernels import ALL_DTYPES, KERNELS, blend, blend_py, box5, sample, smooth
from reference import apply_reference, fma32

import stencilkit as sk

MODES = ["reflect", "mirror", "nearest", "wrap", "constant", "skip"]

SHAPES = {
    "smooth": [(7, 9), (1, 1), (2, 3), (3, 2, 5)],
    "skew1": [(11,), (1,), (2,), (2, 4)],
    "asym2": [(4, 7), (1, 2)],
    "lap3": [(3, 4, 5), (1, 1, 2)],
    "deep3": [(7, 4, 5), (1, 2, 3), (2, 5, 3, 4)],
}


def check(got, want):
    assert got.dtype == want.dtype
    assert got.shape == want.shape
    if want.dtype.kind == "f":
        np.testing.assert_allclose(got, want, rtol=1e-6 if want.dtype == np.float32 else 1e-13,
                                   atol=0)
    else:
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", list(KERNELS))
def test_modes_and_shapes(name, mode):
    """Every mode on normal, tiny (smaller than the kernel) and batched shapes."""
    st, py = KERNELS[name]
    for shape in SHAPES[name]:
        for dtype in (np.int16, np.float64):
            a = sample(shape, dtype, seed=len(shape))
            cval = 3 if mode in ("constant", "skip") else None
            want = apply_reference(py, [a], ndim=st.ndim, mode=mode, cval=cval or 0,
                                   radius=st.radius)
            check(st(a, mode=mode, cval=cval), want)


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", ["smooth", "skew1"])
def test_dtypes(name, dtype):
    """Every numeric dtype, extremes included, in two modes; output keeps the input's dtype."""
    st, py = KERNELS[name]
    a = sample((6, 7) if st.ndim == 2 else (13,), dtype)
    for mode in ("reflect", "constant"):
        got = st(a, mode=mode)
        assert got.dtype == np.dtype(dtype)
        check(got, apply_reference(py, [a], ndim=st.ndim, mode=mode))


def test_float16_complex_and_byte_order():
    a = sample((5, 6), np.float64)
    for dtype in (np.float16, ">f4", "<f8", ">i2", ">u4", np.complex64, np.complex128):
        x = (a * (1 + 1j) if np.dtype(dtype).kind == "c" else a).astype(dtype)
        got = KERNELS["asym2"][0](x)
        want = apply_reference(KERNELS["asym2"][1], [x], ndim=2)
        assert got.dtype == np.dtype(dtype).newbyteorder("=")
        if np.dtype(dtype).kind in "fc":
            np.testing.assert_allclose(got, want, rtol=1e-3 if x.dtype == np.float16 else 1e-6)
        else:
            np.testing.assert_array_equal(got, want)


def test_classic_int8_mean_does_not_wrap():
    a = np.full((4, 4), 120, np.int8)
    np.testing.assert_array_equal(smooth(a), a)  # nine 120s sum to 1080, then // 9


@pytest.mark.parametrize("mode", ["reflect", "mirror", "nearest", "wrap", "constant"])
@pytest.mark.parametrize("shape", [(9, 11), (1, 1), (2, 3), (1, 7)])
def test_against_scipy_uniform(mode, shape):
    """The int 3x3 mean and a 5x5 box sum equal scipy.ndimage on the same mode."""
    a = sample(shape, np.int16).astype(np.int64) // 4
    box = ndi.correlate(a, np.ones((3, 3), np.int64), mode=mode, cval=5)
    np.testing.assert_array_equal(smooth(a, mode=mode, cval=5 if mode == "constant" else None),
                                  box // 9)
    f = a.astype(np.float64)
    want = ndi.uniform_filter(f, 5, mode=mode) * 25
    np.testing.assert_allclose(box5(f, mode=mode), want, rtol=1e-12, atol=1e-9)


def test_classic_numba_stencil_equals_skip():
    """DESIGN.md's classic example, run by numba.stencil itself, equals mode='skip' exactly.

    Written out here rather than imported from stencilkit.demo: the reference stays independent.
    """

    @numba.stencil
    def _smooth(x):
        return (x[-1, -1] + x[-1, 0] + x[-1, 1] +
                x[0, -1] + x[0, 0] + x[0, 1] +
                x[1, -1] + x[1, 0] + x[1, 1]) // 9

    @numba.njit
    def classic(x):
        return _smooth(x)

    x = np.random.default_rng(1).integers(-128, 127, (100, 100), dtype=np.int8, endpoint=True)
    np.testing.assert_array_equal(smooth(x, mode="skip"), classic(x))


def test_two_arrays_and_a_parameter():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((2, 5, 6))
    b = rng.standard_normal((2, 5, 6))
    for mode in MODES:
        got = blend(a, b, 0.25, mode=mode)
        want = apply_reference(blend_py, [a, b], (0.25,), ndim=2, mode=mode, radius=blend.radius)
        np.testing.assert_allclose(got, want, rtol=1e-14)
    assert blend.signature == "(n,m),(n,m),()->(n,m)"


@pytest.mark.parametrize("mode", MODES)
def test_runtime_offsets_match_a_shift(mode):
    """Offsets computed at run time (neighborhood=) go through the same border maps."""
    from kernels import shift

    a = sample((4, 5), np.int32)
    for di in (-3, 0, 2):
        for dj in (-1, 3):
            want = apply_reference(lambda x, di=di, dj=dj: x[di, dj], [a], ndim=2, mode=mode,
                                   cval=0,
                                   radius=shift.radius)
            np.testing.assert_array_equal(shift(a, di, dj, mode=mode), want)


def test_parallel_equals_serial():
    a = sample((3, 300, 301), np.uint8)
    for mode in MODES:
        np.testing.assert_array_equal(
            smooth(a, mode=mode, parallel=True), smooth(a, mode=mode, parallel=False)
        )
    deep3 = KERNELS["deep3"][0]  # rows walked along axis 0 fastest (its longest reach)
    v = sample((40, 30, 20), np.int16)
    for mode in MODES:
        np.testing.assert_array_equal(deep3(v, mode=mode, parallel=True),
                                      deep3(v, mode=mode, parallel=False))
    long1 = sample((100_000,), np.float32)  # a 1-D signal is split into column blocks
    skew1 = KERNELS["skew1"][0]
    np.testing.assert_array_equal(skew1(long1, parallel=True), skew1(long1, parallel=False))


def test_gufunc_matches_call():
    a = sample((3, 6, 7), np.uint8)
    g = smooth.gufunc
    assert g.signature == "(n,m)->(n,m)" and (g.nin, g.nout) == (1, 1)
    np.testing.assert_array_equal(g(a), smooth(a))
    assert isinstance(g.for_dtype(np.uint8).ufunc, np.ufunc)
    np.testing.assert_array_equal(g(a[:, ::2, ::-1]), smooth(a[:, ::2, ::-1]))  # strided cores
    with pytest.raises(sk.StencilTypeError, match="the gufunc has loops for"):
        g(a.astype(np.complex64))
    assert sk.stencil(blend_py).gufunc.signature == "(n,m),(n,m),()->(n,m)"


def _fmaf_exact(w, x, s):
    """``w * x + s`` rounded once to float32, by rational arithmetic (ties to even)."""
    from fractions import Fraction

    v = Fraction(float(w)) * Fraction(float(x)) + Fraction(float(s))
    near = np.float32(float(v))
    cands = [near, np.nextafter(near, np.float32(np.inf)), np.nextafter(near, np.float32(-np.inf))]
    return min(cands, key=lambda c: (abs(Fraction(float(c)) - v), int(c.view(np.uint32)) & 1))


def test_fma32_rounds_once():
    """The tests' fused multiply-add (the generated sweeps' ``fmaf``) against exact rational
    arithmetic, on random operands and on sums whose float64 value lies halfway between two
    float32 values with a remainder below float64's precision (rounding twice, through
    float64, gets half of those wrong)."""
    rng = np.random.default_rng(3)
    n = 3000
    a = rng.integers(1, 300, n)
    w = (1 + a * 2.0**-23).astype(np.float32)
    x = (1 - a * 2.0**-23).astype(np.float32)  # w * x = 1 - (a * 2**-23)**2
    s = (2.0**24 + 2 * rng.integers(0, 2**22, n)).astype(np.float32)
    cases = [(rng.standard_normal(n).astype(np.float32), rng.random(n).astype(np.float32),
              rng.standard_normal(n).astype(np.float32)), (w, x, s), (w, -x, -s)]
    twice = 0
    for w, x, s in cases:
        got = fma32(w, x, s)
        assert got.dtype == np.float32
        want = np.array([_fmaf_exact(*v) for v in zip(w, x, s)], np.float32)
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
        twice += int(((w.astype(np.float64) * x + s).astype(np.float32) != want).sum())
    assert twice > n // 4  # the cases do reach the double rounding
    assert np.isnan(fma32(np.inf, 0, 1)) and np.signbit(fma32(-0.0, 1, -0.0))
    assert not np.signbit(fma32(-0.0, 1, 0.0))
