"""The generated C++ one-sweep kernels (stencilkit.backends.cuda_sep) without a GPU.

Every module is compiled for the host by g++ (``-DSK_HOST``, no fused multiply-adds but the
explicit ``fmaf`` of float32 weighted sums, as NVRTC with ``--fmad=false``) and its launches
run thread by thread (tests/cpp_host.py). References: a plain NumPy evaluation in the kernel's
own order of operations (horizontal sums left to right, then vertical ones top to bottom, each
operation rounded in the data's type, float32 multiply-adds once: ``reference.fma32``), which
the weighted and box sums must equal bit for bit; the CPU backend's ``gaussian_filter`` and float
``uniform_filter`` (which sum in another order), to round-off; and the CPU's
``maximum_filter`` / ``minimum_filter``, which the extremes must equal exactly, NaN included.
"""

import numpy as np
import pytest
from filter_table import assert_device_result, cpu_passes
from kernels import sample
from reference import fma32, pad_index

from stencilkit import filters, modes
from stencilkit._passes import Box2, Extreme, Sep2
from stencilkit.backends import cuda_cpp, cuda_sep, cuda_sweeps

cpp_host = pytest.importorskip("cpp_host")
pytestmark = pytest.mark.skipif(cpp_host.CXX is None, reason="needs a C++ compiler (g++)")

MODES = ["reflect", "mirror", "nearest", "wrap", "constant"]


def in_order(a, wv, lov, wh, loh, mode, cval, divisor=None, fused=None):
    """The kernel's arithmetic in NumPy: pad by the mode, horizontal then vertical sums.

    ``fused``: each step ``s + w * x`` rounded once (``fmaf``); default: the kernels' rule for
    weighted float32 sums (a box's weights of one add the same either way).
    """
    if fused is None:
        fused = cuda_sep.FMA and a.dtype == np.float32
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

    def step(s, w, x):  # float32 weighted sums: products fused (cuda_sep.fused_products)
        return fma32(w, x, s) if fused else s + w * x

    h = wh[0] * padded[..., :, 0:n1]
    for c in range(1, kh):
        h = step(h, wh[c], padded[..., :, c:c + n1])
    s = wv[0] * h[..., 0:n0, :]
    for k in range(1, kv):
        s = step(s, wv[k], h[..., k:k + n0, :])
    return s if divisor is None else s * dtype.type(1 / divisor)


def sep_sweep(p):
    """The weighted sweep of the ``Sep2`` pass ``p``."""
    return cuda_sep.Sweep("sum", len(p.wv), p.lov, len(p.wh), p.loh, tuple(p.wv), tuple(p.wh))


def host_sep(x, sw, mode, cval, *, rows=cpp_host.ROWS, idx64=False, out_dtype=None, vec=False):
    """The sweep ``sw`` over the last two axes of ``x``, launched as on a GPU, on the host.

    ``vec``: the interior's vector loads (``x``'s rows must allow them).
    """
    if isinstance(sw, Sep2):
        sw = sep_sweep(sw)
    out_dtype = np.dtype(out_dtype or x.dtype)
    mod = cuda_sep.generate(x.dtype, sw, idx64=idx64, out_dtype=out_dtype,
                            rowmap=cuda_sweeps.rows_mapped(mode), vec=vec)
    assert mod.vec == vec
    return cpp_host.run_sweep(
        mod, x, out_dtype, lambda shape, strip, c0, c1: cuda_sep.scalars(
            mod, shape, strip, c0, c1, mode, cval),
        fill=np.nan if out_dtype.kind == "f" else 99, rows=rows)


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


@pytest.mark.parametrize("dtype,sigma", [(np.float32, 2.0), (np.float32, 1.0),
                                         (np.float64, 1.0), (np.uint8, 2.0), (np.uint8, 1.0),
                                         (np.int16, 1.0)])
def test_vector_loads_equal_scalar_loads(monkeypatch, dtype, sigma):
    """Rows read as vectors of a thread's columns (float2 / float4 / double2; 2 or 4 bytes of
    8-bit data, 4 or 8 of 16-bit): the same values, so bit for bit the scalar loads' result,
    every mode (g++ checks each vector load's alignment); and the CPU's. The filters take them
    where the rows allow (``cuda_sep.aligned``)."""
    a = sample((2, 29, 48), dtype, seed=8)
    for mode in MODES:
        want, plan = cpu_passes(monkeypatch, filters.gaussian_filter, a, (0, sigma, sigma),
                                mode=mode, cval=2)
        sw = cuda_sep.sweep_of(plan.passes, a.dtype, plan.out_dtype, a.ndim, mode, plan.cval)
        cols = cuda_sep.columns_per_thread(sw.kv, sw.kh, np.dtype(sw.acc or dtype))
        assert cols > 1 and cuda_sep.vector_ok(cols, sw.kh, a.itemsize)
        assert cuda_sep.aligned(sw, a.dtype, a.shape[-1], a.ctypes.data)
        assert not cuda_sep.aligned(sw, a.dtype, a.shape[-1], a.ctypes.data + a.itemsize)
        assert not cuda_sep.aligned(sw, a.dtype, a.shape[-1] - 1, a.ctypes.data)
        got = host_sep(a, sw, mode, plan.cval, vec=True)
        np.testing.assert_array_equal(got, host_sep(a, sw, mode, plan.cval), err_msg=mode)
        assert_device_result(got, want, exact=np.dtype(dtype).kind != "f")
    assert not cuda_sep.vector_ok(4, 15, 4) and cuda_sep.vector_ok(2, 15, 4)  # 14 / 4: a read past
    assert not cuda_sep.vector_ok(4, 9, 8)  # 32 bytes


@pytest.mark.parametrize("dtype,sigma", [(np.float32, 2.0), (np.float32, (0.8, 3.0)),
                                         (np.float64, 1.0), (np.uint8, 2.0)])
def test_next_row_ahead_equals_the_walk(monkeypatch, dtype, sigma):
    """``cuda_sep.AHEAD`` (each step loads the next row's values while it sums its own):
    bit for bit the plain walk's result, every mode, vector and scalar loads, strips of one
    row (the row after each strip's last, clamped where rows are not mapped) and longer; the
    box and the extremes too."""
    a = sample((2, 37, 44), dtype, seed=9)
    for mode in MODES:
        _, plan = cpu_passes(monkeypatch, filters.gaussian_filter, a, (0, *np.broadcast_to(
            sigma, 2)), mode=mode, cval=2)
        sws = [cuda_sep.sweep_of(plan.passes, a.dtype, plan.out_dtype, a.ndim, mode,
                                 plan.cval)]
        if dtype == np.float32:
            sws += [cuda_sep.Sweep("sum", 5, 2, 7, 3, divisor=35),
                    cuda_sep.Sweep("max", 4, 1, 9, 4)]
        for sw in sws:
            vecs = (False, True) if sw.wv is not None and sw.kh == sw.kv else (False,)
            for vec, rows in [(v, r) for v in vecs for r in (1, cpp_host.ROWS)]:
                monkeypatch.setattr(cuda_sep, "AHEAD", False)
                want = host_sep(a, sw, mode, plan.cval, rows=rows, vec=vec)
                monkeypatch.setattr(cuda_sep, "AHEAD", True)
                assert "pf0" in cuda_sep.generate(a.dtype, sw, idx64=False).source
                got = host_sep(a, sw, mode, plan.cval, rows=rows, vec=vec)
                np.testing.assert_array_equal(got, want, err_msg=f"{mode} {sw.op} {vec} {rows}")


def test_rows_are_read_ahead_by_default_where_measured_faster(monkeypatch):
    """``AHEAD`` None: float32 weighted sums of at most 17 taps an axis read ahead (the
    Gaussians of sigma 1 and 2 on an H100); not the uint8 Gaussian, the float box, the
    extremes, float64, or sigma 3's 25 taps."""
    a = sample((2, 37, 44), np.float32, seed=9)

    def sweep(arr, sigma):
        _, plan = cpu_passes(monkeypatch, filters.gaussian_filter, arr, sigma)  # (undoes)
        return cuda_sep.sweep_of(plan.passes, arr.dtype, plan.out_dtype, arr.ndim, "reflect",
                                 plan.cval), arr.dtype

    f32 = np.dtype(np.float32)
    yes = [sweep(a, (0, 2, 2)), sweep(a, (0, 1, 1)), sweep(a, (0, 0.5, 2))]
    no = [sweep(a, (0, 3, 3)), sweep(a, (0, 1, 3)), sweep(a.astype(np.float64), (0, 1, 1)),
          sweep((a * 99).astype(np.uint8), (0, 2, 2)),
          (cuda_sep.Sweep("sum", 5, 2, 7, 3, divisor=35), f32),
          (cuda_sep.Sweep("max", 3, 1, 3, 1), f32)]

    def ahead(sw, dtype):
        got = cuda_sep.reads_ahead(sw, dtype, sw.acc or dtype)
        assert got == ("pf0" in cuda_sep.generate(dtype, sw, idx64=False).source)
        return got

    for setting, want in [(None, None), (False, False), (True, True)]:
        monkeypatch.setattr(cuda_sep, "AHEAD", setting)
        assert all(ahead(*c) == (True if want is None else want) for c in yes), setting
        assert all(ahead(*c) == (False if want is None else want) for c in no), setting


def test_sweeps_of_weights_minus_zero_and_zero_stay_apart():
    """The remembered sweeps and modules tell a weight -0.0 from 0.0 (Python's == does not):
    the emitted literal's sign decides the sign of an all-zero sum."""
    neg = Sep2(0, (1.0, -0.0, 1.0), 1, (0.5, 0.5), 0, np.dtype(np.float64))
    pos = neg._replace(wv=(1.0, 0.0, 1.0))
    a = cuda_sep.sweep_of((neg,), np.float64, np.float64, 2)
    b = cuda_sep.sweep_of((pos,), np.float64, np.float64, 2)
    assert np.signbit(a.wv[1]) and not np.signbit(b.wv[1])
    ma, mb = (cuda_sep.module_for(sw, np.float64, False) for sw in (a, b))
    assert "-0x0.0p+0" in ma.source and "-0x0.0p+0" not in mb.source


@pytest.mark.parametrize("sigma", [1.0, 2.0, (0.7, 3.0)])
def test_gaussian_pass_agrees_with_the_cpu(monkeypatch, sigma):
    """The Sep2 pass gaussian_filter plans (caught on its way to the CPU backend)."""
    a = sample((48, 53), np.float32, seed=3)
    for mode in MODES:
        want, plan = cpu_passes(monkeypatch, filters.gaussian_filter, a, sigma, mode=mode,
                                cval=2.0)
        (p,) = plan.passes
        assert isinstance(p, Sep2)
        assert cuda_sep.sweep_of((p,), a.dtype, a.dtype, a.ndim) == sep_sweep(p)
        got = host_sep(a, p, mode, plan.cval)
        assert_device_result(got, want, exact=False)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6 * np.abs(want).max())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_box_is_one_sweep_of_sums_divided_once(monkeypatch, dtype):
    a = sample((2, 33, 47), dtype, seed=8)
    for size in [(1, 15, 15), (1, 4, 9), (1, 30, 2)]:
        for mode in MODES:
            want, plan = cpu_passes(monkeypatch, filters.uniform_filter, a, size, mode=mode, cval=2)
            sw = cuda_sep.sweep_of(plan.passes, a.dtype, plan.out_dtype, a.ndim)
            assert sw.op == "sum" and sw.wv is None and sw.divisor == size[1] * size[2]
            got = host_sep(a, sw, mode, plan.cval)
            ones = (1.0,) * sw.kv, (1.0,) * sw.kh
            np.testing.assert_array_equal(
                got, in_order(a, ones[0], sw.lov, ones[1], sw.loh, mode, plan.cval,
                              sw.divisor), err_msg=f"{size} {mode}")
            assert_device_result(got, want, exact=False)


EXTREMES = [((1, 11, 13), 0), ((1, 1, 29), 0), ((1, 29, 1), 0), ((1, 6, 30), (0, 1, -2))]


@pytest.mark.parametrize("k,dtype", list(enumerate([np.float32, np.float64, np.int32,
                                                    np.uint64])))
def test_extremes_equal_the_cpu(monkeypatch, k, dtype):
    a = sample((2, 40, 45), dtype, seed=9)
    if a.dtype.kind == "f":
        a[0, 5, 7] = a[1, 30, 44] = np.nan  # NaN wins, as NumPy's maximum
    # each dtype: a maximum over one window and a minimum over another; every window gets
    # both over the four dtypes (each module is a g++ build of its own in a cold run)
    for fn, (size, origin) in [(filters.maximum_filter, EXTREMES[k % 4]),
                               (filters.minimum_filter, EXTREMES[(k + 2) % 4])]:
        for mode in MODES:
            want, plan = cpu_passes(monkeypatch, fn, a, size, mode=mode, cval=3, origin=origin)
            sw = cuda_sep.sweep_of(plan.passes, a.dtype, plan.out_dtype, a.ndim)
            assert sw.op == ("max" if fn is filters.maximum_filter else "min")
            got = host_sep(a, sw, mode, plan.cval)
            np.testing.assert_array_equal(got, want, err_msg=f"{fn.__name__} {size} {mode}")


# integer data: (dtype, sigma, cval); the sums in float32 (8-bit) or float64, each near a tie
# summed again in the CPU's float64 order (35 taps: beyond the CPU's unrolled sweep)
INTEGER = [(np.uint8, (0, 2.0, 2.0), 7), (np.int8, (0, 1.0, 3.0), -3),
           (np.uint16, (0, 1.5, 1.5), 0), (np.int32, (0, 4.0, 1.0), 5)]


@pytest.mark.parametrize("k", range(len(INTEGER)))
def test_integer_weights_equal_the_cpu_bit_for_bit(monkeypatch, k):
    dtype, sigma, cval = INTEGER[k]
    a = sample((2, 37, 44), dtype, seed=k)
    a[0, 10:20, 5:25] = np.iinfo(dtype).max  # flat patches: sums of integers times sum(w)
    for mode in MODES:
        want, plan = cpu_passes(monkeypatch, filters.gaussian_filter, a, sigma, mode=mode,
                                cval=cval)
        (p,) = plan.passes
        sw = cuda_sep.sweep_of(plan.passes, a.dtype, plan.out_dtype, a.ndim, mode, plan.cval)
        assert sw.acc == ("float32" if a.itemsize == 1 else "float64")
        assert sw.check[2] == (mode == "constant" or max(len(p.wv), len(p.wh)) > 33)
        got = host_sep(a, sw, mode, plan.cval)
        np.testing.assert_array_equal(got, want, err_msg=f"{mode}")
        if mode in ("reflect", "constant"):  # every sum through the float64 recomputation
            got = host_sep(a, sw._replace(check=(0.0, 0.0, sw.check[2])), mode, plan.cval)
            np.testing.assert_array_equal(got, want, err_msg=f"{mode}, every sum again")


@pytest.mark.parametrize("idx64", [False, True])
def test_sums_near_a_tie_are_listed_then_summed_again(monkeypatch, idx64):
    """The list of sums near a tie, launch by launch. A check flagging the sums a third or
    more from an integer, the list long enough: the sweep's other outputs are already the
    CPU's; ``sk_sep_ties`` alone writes every listed output (each made stale) with the CPU's
    integer, and no other (one made stale stays so). A check flagging every output (bound 0),
    the list shorter (``TIE_MIN``): the first ``cap`` go on it (distinct, in range), the count
    goes on past it, and ``sk_sep_ties`` then writes every output (all made stale)."""
    a = sample((2, 33, 28), np.uint8, seed=21)
    for mode, cval in [("reflect", 0.0), ("constant", 3.0)]:
        want, plan = cpu_passes(monkeypatch, filters.gaussian_filter, a, (0, 1.5, 1.5),
                                mode=mode, cval=cval)
        for tie, most in [(0.3, 1 << 20), (0.0, 700)]:
            monkeypatch.setattr(cuda_sep, "TIE_SHARE", 1 << 30)  # (after cpu_passes' undo)
            monkeypatch.setattr(cuda_sep, "TIE_MIN", most)
            sw = cuda_sep.sweep_of(plan.passes, a.dtype, plan.out_dtype, a.ndim, mode,
                                   plan.cval)
            sw = sw._replace(check=(0.0, tie, sw.check[2]))
            mod = cuda_sep.generate(a.dtype, sw, idx64=idx64,
                                    rowmap=cuda_sweeps.rows_mapped(mode))
            lib = cpp_host.build(mod.source)
            dst = np.full(a.shape, 99, np.uint8)
            n, dt = mod.scratch(a.shape)
            assert (n, dt) == (most + 1, np.dtype(np.uint64 if idx64 else np.uint32))
            ties = np.full(n, 12345, dt)
            calls = mod.launches(a.shape, cpp_host.ROWS)
            assert [c[0] for c in calls] == ["sk_sep_reset", *mod.kernels[:-2], "sk_sep_ties"]

            def run(calls, lib=lib, mod=mod, dst=dst, ties=ties, mode=mode, cval=plan.cval):
                for kname, grid, block, (strip, c0, c1) in calls:
                    cpp_host.launch(lib, mod.source, kname, grid, block,
                                    [a, dst, *cuda_sep.scalars(mod, a.shape, strip, c0, c1,
                                                               mode, cval), ties])

            run(calls[:-1])
            flat = dst.reshape(-1)
            count = int(ties[0])
            listed = ties[1:1 + min(count, most)].astype(np.int64)
            assert len(set(listed)) == len(listed) and 0 <= listed.min() <= listed.max() < a.size
            rest = np.ones(a.size, bool)
            rest[listed] = False
            if tie:  # the list holds them all
                assert 0.2 * a.size < count < 0.8 * a.size
                np.testing.assert_array_equal(flat[rest], want.reshape(-1)[rest])
                flat[listed] = 99
                other = np.flatnonzero(rest)[5]
                flat[other] = want.reshape(-1)[other] ^ 1
                run(calls[-1:])
                assert flat[other] == want.reshape(-1)[other] ^ 1  # not listed: not written
                flat[other] ^= 1
            else:  # overflowed: every output again
                assert count == a.size and len(listed) == most
                flat[:] = 99
                run(calls[-1:])
            np.testing.assert_array_equal(dst, want, err_msg=f"{mode} {tie}")


def exact_sums(sw, a, mode, cval):
    """``sk_exact`` at every element of ``a`` (B, n0, n1), through a host wrapper."""
    import ctypes

    mod = cuda_sep.generate(a.dtype, sw, idx64=False, out_dtype=np.uint8)
    t = "sk_" + {"i": "i", "u": "u"}[a.dtype.kind] + str(8 * a.itemsize)
    lib = cpp_host.build(mod.source + f"""
extern "C" void sk_exact_all(const {t}* src, double* out, int B, int n0, int n1, int mode,
                             double cval) {{
  for (int b = 0; b < B; ++b) for (int i = 0; i < n0; ++i) for (int j = 0; j < n1; ++j)
    out[(b * n0 + i) * n1 + j] = sk_exact(src + b * n0 * n1, n0, n1, i, j, mode, cval);
}}
""")
    out = np.empty(a.shape, np.float64)
    lib.sk_exact_all.restype = None
    lib.sk_exact_all(ctypes.c_void_p(a.ctypes.data), ctypes.c_void_p(out.ctypes.data),
                     *(ctypes.c_int(v) for v in a.shape), ctypes.c_int(modes.mode_code(mode)),
                     ctypes.c_double(cval))
    return out


def test_recomputed_sums_are_the_cpu_float64_sweep_bit_for_bit():
    """The float64 sums of the CPU's sweep (``sep2_pass`` into float64), in both of its orders:
    random weights make any other order of operations differ in the last bits."""
    from stencilkit.backends.cpu_lines import sep2_pass

    rng = np.random.default_rng(4)
    a = sample((1, 23, 29), np.int16, seed=5)
    for kv, kh, grouped_modes in [(9, 6, ("constant",)), (35, 5, MODES)]:
        wv, wh = rng.uniform(-1, 1, kv), rng.uniform(-1, 1, kh)
        lov, loh = kv // 2 - 1, kh // 2
        for mode in MODES:
            want = sep2_pass(a, wv, lov, wh, loh, mode, 3.0, np.float64)
            for grouped in (False, True):
                sw = cuda_sep.Sweep("sum", kv, lov, kh, loh, tuple(wv), tuple(wh),
                                    acc="float64", check=(0.0, 0.0, grouped))
                got = exact_sums(sw, a, mode, 3.0)
                if grouped == (mode in grouped_modes):
                    np.testing.assert_array_equal(got, want, err_msg=f"{kv}x{kh} {mode}")
                else:  # the other order differs somewhere: the comparison can fail
                    assert (got != want).any() and np.allclose(got, want, 1e-12, 1e-9)


def test_what_fits():
    wv = (0.25, 0.5, 0.25)
    f32 = np.dtype(np.float32)

    def fits(p, dtype, out=None, ndim=2):
        return cuda_sep.sweep_of((p,), np.dtype(dtype), np.dtype(out or dtype), ndim) is not None

    assert fits(Sep2(0, wv, 1, wv, 1, f32), f32)
    u8 = np.dtype(np.uint8)
    assert fits(Sep2(0, wv, 1, wv, 1, u8), u8)  # float32 sums, checked near ties
    assert fits(Sep2(0, wv, 1, wv, 1, f32), u8, f32)  # float64 sums into float32
    assert not fits(Sep2(0, wv, 1, wv, 1, np.dtype(np.int64)), np.int64)
    assert not fits(Sep2(0, wv, 1, wv, 1, np.dtype(np.uint64)), u8, np.uint64)
    assert not fits(Sep2(0, (1e300,) * 3, 1, wv, 1, u8), u8)  # no useful bound
    assert not fits(Sep2(0, wv, 1, wv, 1, np.dtype(np.float64)), f32, np.float64)
    assert not fits(Sep2(0, (1.0,) * 65, 32, wv, 1, f32), f32)  # more than MAX_TAPS
    assert not fits(Sep2(0, (np.inf,), 0, wv, 1, f32), f32)
    assert not fits(Box2(0, 1, 1, 1, 1, 9, np.dtype(np.uint8), (0, 255)), np.uint8)  # cuda_box
    assert fits(Box2(0, 1, 1, 1, 1, 9, f32, None), f32)
    assert not fits(Extreme(0, 5, 5, True), np.uint8)  # 8-bit: the word passes
    assert fits(Extreme(1, 5, 5, True), np.int32)
    assert not fits(Extreme(0, 5, 5, True), np.int32, ndim=3)  # not one of the last two axes
    assert cuda_sep.sweep_of((Extreme(0, 1, 1, True), Extreme(1, 2, 2, False)), f32, f32, 2) \
        is None  # a maximum and a minimum


def test_modules_compile_with_nvrtc_fusing_only_float32_weighted_sums(monkeypatch):
    """``--fmad=false``: no multiply-add but the float32 weighted sums' own ``fmaf`` (one per
    tap after each sum's first, horizontal and vertical, interior and border); with
    ``cuda_sep.FMA`` off none, as in float64 sums and box sums."""
    cpp_host.needs_nvrtc()
    wv, lov, wh, loh = WEIGHTS[2]
    u8 = cuda_sep.sweep_of((Sep2(0, wv, lov, wh, loh, np.dtype(np.uint8)),), np.uint8,
                           np.uint8, 2, "constant", 1.0)
    box = cuda_sep.Sweep("sum", 5, 2, 3, 1, divisor=15)
    for fma in (True, False):
        monkeypatch.setattr(cuda_sep, "FMA", fma)
        for dtype, sw, fused in [(np.float32, None, fma), (np.float64, None, False),
                                 (np.uint8, u8, fma), (np.float32, box, False)]:
            sw = sw or cuda_sep.Sweep("sum", len(wv), lov, len(wh), loh, wv, wh)
            mod = cuda_sep.generate(dtype, sw, idx64=False)
            assert mod.fma == fused
            ptx = cuda_cpp.ptx(mod.source, "compute_90")
            body = ptx[ptx.index(f".entry {mod.kernels[0]}("):]
            body = body[:body.index("\n}\n")]
            assert "ld.global.nc" in body and ("fma.rn.f32" in body) == fused
            assert "fma.rn.f64" not in body
            if fused and dtype == np.float32:  # (fused: interior and border in one kernel)
                taps = len(wv) - 1 + len(wh) - 1
                assert body.count("fma.rn.f32") >= 2 * taps
            if sw is not box:
                assert "fma" in cuda_cpp.ptx(mod.source, "compute_90", fastmath=True)
    # the source grows with the taps, not with their square: each kernel emits its horizontal
    # sum once (an unrolled prologue of 63 of them made NVRTC take 36 s at 64 x 64 taps)
    w64 = tuple(np.ones(64) / 64)
    big = cuda_sep.generate(np.float32, cuda_sep.Sweep("sum", 64, 32, 64, 32, w64, w64),
                            idx64=False).source
    assert big.count(f"h63 = {float(np.float32(1 / 64)).hex()}f *") == 2


def test_integer_sweeps_of_every_dtype_compile_with_nvrtc():
    """The host tests build a few of the integer modules; NVRTC must take every dtype pair."""
    cpp_host.needs_nvrtc()
    wv, lov, wh, loh = WEIGHTS[0]
    cases = [(np.uint8, np.int32, "constant"), (np.int16, np.uint8, "reflect")]
    for dtype in (np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32):
        cases += [(dtype, dtype, "reflect"), (dtype, np.float32, "constant")]
    for dtype, out, mode in cases:
        p = Sep2(0, wv, lov, wh, loh, np.dtype(out))
        sw = cuda_sep.sweep_of((p,), np.dtype(dtype), np.dtype(out), 2, mode, 2.0)
        assert sw is not None, (dtype, out)
        mod = cuda_sep.generate(dtype, sw, idx64=mode == "constant", out_dtype=out)
        cuda_cpp.ptx(mod.source, "compute_90")


def test_filters_on_device_arrays_take_the_sweeps(fake_gpu):
    """End to end: filters -> CudaBackend.run_passes -> cuda_sep -> (stand-in) CuPy launch,
    results and ``output=`` (written directly, or through a copy when it is the input)."""
    from numba import cuda

    a = sample((2, 30, 41), np.float32, seed=6)
    calls = [(filters.gaussian_filter, (0, 1.5, 2.0), False),
             (filters.uniform_filter, (1, 9, 5), False),
             (filters.maximum_filter, (1, 7, 9), True), (filters.minimum_filter, (1, 1, 29), True)]
    for fn, arg, exact in calls:
        for mode in MODES:
            want = fn(a, arg, mode=mode, cval=1.0)
            got = fn(cuda.to_device(a), arg, mode=mode, cval=1.0)
            assert_device_result(got.copy_to_host(), want, exact=exact)
        assert fake_gpu.launched[-1:] == ["sk_sep_fused"], fn.__name__
        i = a.astype(np.int32)  # an unused cval no int32 holds is ignored (as scipy)
        if fn in (filters.maximum_filter, filters.minimum_filter):
            np.testing.assert_array_equal(
                fn(cuda.to_device(i), arg, mode="nearest", cval=1e30).copy_to_host(),
                fn(i, arg, mode="nearest"))
        want = fn(a, arg)
        out = cuda.device_array(a.shape, np.float32)
        assert fn(cuda.to_device(a), arg, output=out) is out
        assert_device_result(out.copy_to_host(), want, exact)
        d = cuda.to_device(a)
        assert fn(d, arg, output=d) is d  # in place: the sweep writes a new array, then copies
        assert_device_result(d.copy_to_host(), want, exact)


def test_integer_gaussian_on_device_arrays_is_the_cpus(fake_gpu):
    """End to end: the 8-bit Gaussian (and 16-bit, into float32) through the one-sweep
    kernels, with the CPU's integers."""
    from numba import cuda

    a = sample((45, 38), np.uint8, seed=12)
    for mode in MODES:
        got = filters.gaussian_filter(cuda.to_device(a), 2.0, mode=mode, cval=4)
        np.testing.assert_array_equal(got.copy_to_host(),
                                      filters.gaussian_filter(a, 2.0, mode=mode, cval=4))
        assert fake_gpu.launched[-4:] == ["sk_sep_reset", "sk_sep_interior", "sk_sep_border",
                                          "sk_sep_ties"]
    got = filters.gaussian_filter(cuda.to_device(a), 2.0, output=np.int16)  # another dtype
    np.testing.assert_array_equal(got.copy_to_host(),
                                  filters.gaussian_filter(a, 2.0, output=np.int16))
    i16 = sample((45, 38), np.int16, seed=13)
    out = cuda.device_array(i16.shape, np.float32)
    assert filters.gaussian_filter(cuda.to_device(i16), 2.0, output=out) is out
    assert_device_result(out.copy_to_host(), filters.gaussian_filter(i16, 2.0, output=np.float32),
                         exact=False)


def test_an_nvrtc_failure_of_a_sweep_warns_and_falls_back(fake_gpu, monkeypatch):
    """NVRTC rejecting a one-sweep module (a stencilkit bug) warns; the generated passes (or
    numba.cuda's kernels) compute the result instead; the rejection is not retried."""
    from numba import cuda

    tries = []

    def broken(code, options=(), **kw):
        tries.append(code)
        raise fake_gpu.cuda.compiler.CompileException("stencilkit.cu(1): error: (test)")

    monkeypatch.setattr(fake_gpu.cuda.compiler, "compile_using_nvrtc", broken)
    a = sample((20, 30), np.float32, seed=1)
    for fn, arg in [(filters.gaussian_filter, 2.0), (filters.maximum_filter, 9)]:
        for _ in range(2):
            with pytest.warns(RuntimeWarning, match="NVRTC could not compile"):
                got = fn(cuda.to_device(a), arg)
            assert_device_result(got.copy_to_host(), fn(a, arg), fn is filters.maximum_filter)
    b = sample((20, 30), np.uint8, seed=2)
    with pytest.warns(RuntimeWarning, match="NVRTC could not compile"):
        got = filters.uniform_filter(cuda.to_device(b), 15)
    np.testing.assert_array_equal(got.copy_to_host(), filters.uniform_filter(b, 15))
    from stencilkit import resample

    with pytest.warns(RuntimeWarning, match="NVRTC could not compile"):
        got = resample.block_reduce(cuda.to_device(b), 2)
    np.testing.assert_array_equal(got.copy_to_host(), resample.block_reduce(b, 2))
    assert len(tries) == len(set(tries))  # each module was tried once
