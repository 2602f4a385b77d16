"""Integer variables held in 16 or 32 bits on the CPU (stencilkit._narrow).

Which variables each kernel's module converts for a call's dtypes (the decisions written out
here by hand from the data's range), and the results of those modules against the element-wise
NumPy reference (tests/reference.py) at the data types' extremes, where a conversion that
did not fit, or a use whose result depends on the width, would show.
"""

import os

import numpy as np
import pytest
from reference import apply_reference

import stencilkit as sk
from stencilkit import _narrow, _unroll, codegen
from stencilkit.backends import cpu


@sk.stencil
def clamp_tern(x):  # a Sobel-like difference clamped by conditional expressions
    v = x[-1, -1] + 2 * x[0, -1] + x[1, -1] - x[-1, 1] - 2 * x[0, 1] - x[1, 1]
    return 0 if v < 0 else (255 if v > 255 else v)


@sk.stencil
def clamp_minmax(x):  # a sharpening clamped by min and max, a negative literal among them
    v = 5 * x[0, 0] - x[-1, 0] - x[1, 0] - x[0, -1] - x[0, 1]
    return min(max(v, -20), 255)


@sk.stencil
def versions(x, k):  # versions in branches, an augmented assignment, abs, an int parameter
    v = x[0, -1] - x[0, 1]
    if v < -3:
        v = -v - 3
    v += x[1, 0]
    w = abs(v) // 2
    return w * k if k > 0 else max(w, -7)


@sk.stencil
def unsafe(x, alpha):  # a ufunc keeping int16 (np.square would wrap), a float parameter
    a = x[0, 0] + x[0, 1]
    b = x[0, 0] - x[1, 0]
    c = x[1, 1] * 3  # (a shift computes in int64: c << 6 leaves int16 for uint8 data)
    m = min(a, 7)  # held only if its result's uses allow it: np.square does not
    return np.square(m) + b * alpha + (c << 6) + (1 << (c & 7)) + (c >> 1)


@sk.stencil
def big_literal(x):  # literals beyond int16 beside an int16 value: left int64
    v = x[0, 0] - x[0, 1]
    return max(v, -40000) + min(v, 40000) + min(v, 3)


@sk.stencil
def copied(x):  # v's copies (a conditional's value, another name) reach np.square: int64
    v = x[0, 0] - x[0, 1]
    u = v if v > 0 else 1
    return np.square(u) + np.square(v if v < 0 else -1)


@sk.stencil(neighborhood=((-1, 1), (-1, 1)))
def indexed(x):  # a loop-carried sum (not bounded), a variable used as an offset
    s = 0
    for i in range(3):
        s += x[0, i - 1]
    d = x[0, 0] % 3 - 1
    return min(s, 255) + x[d, 0]


@sk.stencil
def boundary(x):  # int16 data: v spans [-32768, 32767], one too wide for int16 held symmetric
    v = x[0, 0] + 0
    w = x[0, 0] // 2
    return min(max(v - w, -5), 5) + abs(w) + abs(v)  # (abs of int16's -32768 wraps)


@sk.stencil
def hinted(x):  # the user's own np.int16: min's and max's literals converted beside it
    v = np.int16(x[-1, 0] + x[1, 0] - 2 * x[0, 0])
    return min(max(v, 0), 255)


U8, I8, I16, U16, I32 = (np.dtype(t) for t in (np.uint8, np.int8, np.int16, np.uint16, np.int32))
I64 = np.dtype(np.int64)


def decide(st, dtype, cval=None, params=()):
    import numba

    spec = st._spec
    return _narrow.decide(spec, I64, {a: np.dtype(dtype) for a in spec.arrays}, cval,
                          tuple(numba.typeof(p) for p in params))


@pytest.mark.parametrize("st, dtype, cval, params, expected", [
    (clamp_tern, U8, None, (), (("v", "int16"),)),
    (clamp_tern, I8, None, (), (("v", "int16"),)),  # |v| <= 8 * 128
    (clamp_tern, I16, None, (), (("v", "int32"),)),
    (clamp_tern, U16, None, (), (("v", "int32"),)),  # 4 * 65535 > 32767
    (clamp_tern, I32, None, (), ()),  # 8 * 2**31 fits only int64
    (clamp_tern, U8, -1000, (), (("v", "int16"),)),  # 4 * (255 + 1000)
    (clamp_tern, U8, 10000, (), (("v", "int32"),)),  # 4 * 10000 + 2 * 255 * ...
    (clamp_tern, U8, 2**40, (), ()),
    (clamp_minmax, U8, None, (), (("v", "int16"),)),
    (clamp_minmax, I16, None, (), (("v", "int32"),)),
    (versions, U8, None, (3,), (("v", "int16"), ("w", "int16"))),
    (versions, I16, None, (3,), (("v", "int32"), ("w", "int32"))),
    (versions, U8, None, (2**63,), (("v", "int16"),)),  # w * k: a uint64 k
    (unsafe, U8, None, (np.float32(0.5),), (("c", "int16"),)),
    (unsafe, U8, None, (0.5,), (("b", "int16"), ("c", "int16"))),  # int16 * float64: float64
    (indexed, U8, None, (), ()),
    (big_literal, U8, None, (), (("v", "int16"),)),
    (copied, U8, None, (), ()),
    (boundary, I16, None, (), (("v", "int32"), ("w", "int16"))),
    (boundary, I8, None, (), (("v", "int16"), ("w", "int16"))),
    (hinted, U8, None, (), (("v", "int16"),)),
    (hinted, I16, None, (), (("v", "int32"),)),  # np.int16 wraps: -32768 is possible
])
def test_decisions(st, dtype, cval, params, expected):
    assert decide(st, dtype, cval, params) == expected


def test_decisions_need_an_int64_accumulator_and_can_be_switched_off(monkeypatch):
    spec = clamp_tern._spec
    assert _narrow.decide(spec, np.float64, {"x": U8}, None, ()) == ()
    assert _narrow.decide(spec, I32, {"x": U8}, None, ()) == ()
    monkeypatch.setattr(_narrow, "ENABLED", False)
    assert decide(clamp_tern, U8) == ()


def test_the_module_converts_after_each_assignment_and_the_clamps_literals():
    gu = {"mode": 0, "cval": 0, "acc": None}
    src = codegen.generate(versions._spec, fastmath=False, debug=False, cache=False, gufunc=gu,
                           narrow=(("v", "int16"), ("w", "int16")))
    body = src[src.index("def _sk_pt_rows"):src.index("def _sk_pt_edge")]
    lines = [line.strip() for line in body.splitlines()]
    conv = "v = _sk_to_int(v, _sk_np.int16)"
    # after v = ..., after v = -v - 3 (in the branch), after v += ...
    assert lines.count(conv) == 3
    assert lines[lines.index("v = -v - 3") + 1] == conv
    assert "w = _sk_to_int(w, _sk_np.int16)" in lines
    assert [line for line in lines if line.startswith("return")] == [
        "return w * k if k > 0 else max(w, _sk_to_int(-7, _sk_np.int16))"]
    assert "_sk_gufunc" not in src  # (its loops serve every dtype)
    src = codegen.generate(clamp_tern._spec, fastmath=False, debug=False, cache=False,
                           gufunc=gu, narrow=(("v", "int32"),))
    assert ("return _sk_to_int(0, _sk_np.int32) if v < 0 else _sk_to_int(255, _sk_np.int32) "
            "if v > 255 else v") in src
    plain = codegen.generate(clamp_tern._spec, fastmath=False, debug=False, cache=False,
                             gufunc=gu)
    assert "_sk_to_int" not in plain[plain.index("def _sk_pt_rows"):]


def _extremes(dtype, shape, seed):
    """Data with the type's extremes in runs (windows of all-max, all-min, alternating)."""
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    pool = np.array([info.min, info.max, info.min + 1, info.max - 1, 0, 1], dtype)
    a = pool[rng.integers(0, len(pool), shape)]
    a[:3, :4] = info.max
    a[-3:, -4:] = info.min
    a[:3, -4:] = np.where(np.arange(4) % 2, info.min, info.max)
    return a


CASES = [
    (clamp_tern, ()), (clamp_minmax, ()), (versions, (3,)), (versions, (-1,)),
    (unsafe, (np.float32(0.3),)), (unsafe, (0.3,)), (indexed, ()), (boundary, ()),
    (big_literal, ()), (copied, ()),
    (hinted, ()),
]


@pytest.mark.parametrize("dtype", [U8, I8, I16, U16])
@pytest.mark.parametrize("st, params", CASES, ids=lambda v: getattr(v, "__name__", None))
def test_results_equal_the_reference_at_the_extremes(st, params, dtype):
    a = _extremes(dtype, (7, 70), seed=dtype.itemsize)  # (wide enough for the vector loop)
    info = np.iinfo(dtype)
    # cvals far enough outside the data to need a wider type than the data alone
    for mode, cval in [("reflect", None), ("constant", int(info.min) - 30000),
                       ("constant", int(info.max) + 30000)]:
        # into int64, and into the data's own type (the stored conversion of a narrow value)
        for out in (I64, dtype):
            got = st(a, *params, mode=mode, cval=cval, out_dtype=out)
            want = apply_reference(st.__wrapped__, [a], params, ndim=2, mode=mode,
                                   cval=cval or 0, out_dtype=out)
            np.testing.assert_array_equal(got, want, err_msg=f"{mode} cval={cval} {out}")


def test_a_float32_parameter_keeps_float64_products():
    # b * alpha is float64 for an int64 b, float32 for an int16 one: visible in a float output
    a = _extremes(U8, (5, 40), 3)
    alpha = np.float32(0.3)
    got = unsafe(a, alpha, out_dtype=np.float64)
    want = apply_reference(unsafe.__wrapped__, [a], (alpha,), ndim=2, out_dtype=np.float64)
    np.testing.assert_array_equal(got, want)


def test_the_decision_is_per_call_and_explained():
    a8 = _extremes(U8, (6, 40), 1)
    a16 = _extremes(I16, (6, 40), 1)
    r8, r16 = clamp_tern(a8), clamp_tern(a16)
    keys = [k for k in clamp_tern._modules if isinstance(k, tuple) and len(k) == 3]
    assert (False, False, (("v", "int16"),)) in keys
    assert (False, False, (("v", "int32"),)) in keys
    ref = clamp_tern.__wrapped__
    np.testing.assert_array_equal(r8, apply_reference(ref, [a8], ndim=2))
    np.testing.assert_array_equal(r16, apply_reference(ref, [a16], ndim=2))
    assert "v held in int16" in clamp_tern.explain(a8)
    assert "held in" not in clamp_tern.explain(a8.astype(np.int32))
    # a parameter's numba type is part of the key: 2**63 is a uint64, beside which w stays
    assert "w held in int16" in versions.explain(a8, 3)
    assert "w held" not in versions.explain(a8, 2**63)


def test_iterate_and_dask_use_the_narrow_module():
    da = pytest.importorskip("dask.array")
    a = _extremes(U8, (24, 64), 2)
    steps = [a]
    for _ in range(3):
        steps.append(clamp_minmax(steps[-1], mode="constant", cval=300))
    for block_steps in (1, 3):
        got = clamp_minmax.iterate(a, steps=3, block_steps=block_steps, mode="constant",
                                   cval=300)
        np.testing.assert_array_equal(got, steps[-1])
    lazy = clamp_minmax(da.from_array(a, chunks=(7, 20)), mode="constant", cval=300)
    np.testing.assert_array_equal(lazy.compute(), steps[1])
    np.testing.assert_array_equal(
        steps[1], apply_reference(clamp_minmax.__wrapped__, [a], ndim=2, mode="constant",
                                  cval=300))


# -- random programs (tests/test_cuda_cpp_random.py's), rewritten against the code as written --

try:
    from hypothesis import HealthCheck, assume, given, settings
    from hypothesis import strategies as hst
    from numba.core import types as nt
    from test_cuda_cpp_random import _data, _load, _options, _same, expressions, programs
except ImportError:  # pragma: no cover (the test extras bring hypothesis)
    given = None

RANDOM = int(os.environ.get("STENCILKIT_RANDOM_NARROW", "6"))


if given is not None:
    @hst.composite
    def narrowed_cases(draw):
        """Random programs over integer data with the default (int64) accumulator, for which
        some variable is held narrow (checked before anything compiles)."""
        dtype = draw(hst.sampled_from([np.int8, np.uint8, np.int16, np.uint16, np.int32]))
        body = draw(programs(nt.int64)) if draw(hst.booleans()) else (
            f"    v = {draw(expressions(nt.int64)).text}\n"
            f"    w = {draw(expressions(nt.int64, 2, ())).text}\n"
            f"    return {draw(expressions(nt.int64, 2, ())).text} + (v if w < v else w)\n")
        assume("x[" in body)
        mode = draw(hst.sampled_from(list(sk.MODES)))
        return dtype, body, mode, draw(hst.integers(-100, 100)), draw(hst.integers(0, 999))

    @settings(max_examples=RANDOM, deadline=None,
              derandomize="STENCILKIT_RANDOM_NARROW" not in os.environ,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(case=narrowed_cases())
    def test_random_programs_held_narrow_equal_the_code_as_written(case):
        dtype, body, mode, k, seed = case
        kern, plain = _load(body), _load(body)
        a = _data(dtype, seed)
        kw = _options(None, mode)
        plan = kern._plan([a], None, kw)
        assume(cpu.narrowing(kern, plan, (k,)))
        saved = _narrow.ENABLED, _unroll.ENABLED
        _narrow.ENABLED = _unroll.ENABLED = False  # (the kernel as written: loops stay loops)
        try:
            with np.errstate(all="ignore"):
                want = plain(a, k, **kw)
        finally:
            _narrow.ENABLED, _unroll.ENABLED = saved
        with np.errstate(all="ignore"):
            got = kern(a, k, **kw)
        _same(got, want, f"\n{body}# {dtype.__name__}, {mode}, k={k}, "
                         f"{cpu.narrowing(kern, plan, (k,))}")


def test_the_filters_kernels_narrow_themselves_and_keep_it_through_pickling(monkeypatch):
    import pickle

    from stencilkit import _passes, filters

    def refuse(spec, *args):
        raise AssertionError(f"decided for the filters' kernel {spec.name}")

    monkeypatch.setattr(_narrow, "decide", refuse)
    a = _extremes(U8, (6, 40), 4)
    filters.sobel(a)
    filters.correlate(a, np.array([[1, -2], [3, 1]]), mode="constant", cval=-300)
    st = _passes.compiled("def f_test(a):\n    v = a[0] - a[1]\n    return min(v, 5)\n")
    assert not st._cpu_rewrites and not pickle.loads(pickle.dumps(st))._cpu_rewrites
    assert pickle.loads(pickle.dumps(clamp_tern))._cpu_rewrites
