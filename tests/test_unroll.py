"""Loops over constant ranges unrolled for the CPU (stencilkit._unroll), against the reference.

Each kernel loops over a window; the CPU compiles it written out (or, where it may not be,
as a loop), and the results must be the element-wise NumPy reference's (tests/reference.py)
in every mode, bit for bit (floats too: the additions keep the loop's order).
"""

import numpy as np
import pytest
from kernels import sample
from reference import apply_reference

import stencilkit as sk
from stencilkit import StencilError, _unroll
from stencilkit.backends import cpu

R = 2
W = tuple(np.float64(w) for w in (1, 4, 6, 4, 1))  # (float64: NumPy's and numba's products agree)


@sk.stencil(neighborhood=((-R, R), (-R, R)))
def box(x):  # nested loops over global bounds; i and j are used after the loops too
    s = 0
    for i in range(-R, R + 1):
        for j in range(-R, R + 1):
            s += x[i, j]
    return s // 25 + 3 * i - j


@sk.stencil(neighborhood=((-2, 2), (-2, 2)))
def binomial(x):  # weights from a global tuple, indexed by the loop variables
    s = 0.0
    for i in range(5):
        for j in range(5):
            s += W[i] * W[j] * x[i - 2, j - 2]
    return s / 256


@sk.stencil(neighborhood=((-2, 2), (0, 0)))
def triangle(x):  # an inner range from the outer index, a negative step, an empty range
    s = 0
    for i in range(-2, 3):
        for k in range(i, -3, -1):
            s += x[k, 0] * (i + 3)
    for _e in range(3, 3):
        s += 1000
    return s


@sk.stencil(neighborhood=((-2, 2), (-2, 2)))
def kept(x, n):  # loops that stay loops: a parameter's range, break, an assigned variable
    s = 0
    for i in range(n):
        s += x[i - 2, 0]
    for j in range(-2, 3):
        if x[0, j] > 100:
            break
        s += x[0, j]
    for m in range(3):
        m = m * 2
        s += m
    return s


@sk.stencil(neighborhood=((-1, 1), (-1, 1)))
def too_far(x):  # reads beyond the declared neighborhood at two of its iterations
    s = 0
    for i in range(-2, 3):
        s += x[i, 0]
    return s


MODES = ["reflect", "constant", "wrap", "nearest"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("st, dtype, params", [
    (box, np.uint8, ()), (box, np.int16, ()), (binomial, np.float32, ()),
    (binomial, np.float64, ()), (triangle, np.int8, ()), (kept, np.uint8, (4,)),
], ids=lambda v: getattr(v, "__name__", str(v)))
def test_unrolled_loops_equal_the_reference(st, dtype, params, mode):
    a = sample((6, 23), dtype, seed=3)
    kw = {"mode": mode, **({"cval": 7} if mode == "constant" else {})}
    want = apply_reference(st.__wrapped__, [a], params, ndim=2, **kw)
    np.testing.assert_array_equal(st(a, *params, **kw), want)


def test_which_loops_are_written_out():
    for st in (box, binomial, triangle):
        spec = cpu.cpu_spec(st)
        assert spec is not st._spec and not spec.dynamic  # every read at a constant offset
        assert "for " not in spec.source
        assert spec.radius == st._spec.radius
        assert "loops over constant ranges unrolled" in st.explain(np.zeros((4, 9), np.uint8))
    src = cpu.cpu_spec(box).source
    assert src.count("s += x[") == 25 and "x[-2, -2]" in src and "x[2, 2]" in src
    assert src.rstrip().endswith("return s // 25 + 3 * i - j") and "i = int(2)" in src
    # kept: the parameter's range, the break and the reassigned m stay loops
    assert cpu.cpu_spec(kept).source.count("for ") == 3
    # too_far: written out it would read outside its neighborhood: the loops stay
    assert cpu.cpu_spec(too_far) is too_far._spec


@pytest.mark.parametrize("dtype", [np.float32, np.int16])
def test_unrolled_equals_the_loop_bit_for_bit(dtype, monkeypatch):
    a = sample((6, 40), dtype, seed=5)
    got = binomial(a)
    monkeypatch.setattr(_unroll, "ENABLED", False)
    loop = sk.stencil(neighborhood=((-2, 2), (-2, 2)))(binomial.__wrapped__)
    assert cpu.cpu_spec(loop) is loop._spec
    np.testing.assert_array_equal(got, loop(a))


def test_a_read_beyond_the_neighborhood_still_raises_under_debug():
    a = np.arange(30, dtype=np.int16).reshape(5, 6)
    with pytest.raises(IndexError, match="outside its declared neighborhood"):
        too_far(a, debug=True)


def test_long_loops_stay_loops(monkeypatch):
    monkeypatch.setattr(_unroll, "MAX_STATEMENTS", 24)  # (box needs 25 + 6)
    assert _unroll.unrolled(box._spec, ((-R, R), (-R, R))).source.count("for ") == 1
    monkeypatch.setattr(_unroll, "ENABLED", False)
    assert _unroll.unrolled(binomial._spec, ((-2, 2), (-2, 2))) is binomial._spec


def test_the_written_out_kernel_is_the_one_compiled_and_narrowed():
    a = sample((7, 40), np.uint8, seed=1)
    box(a)
    assert "s held in int16" in box.explain(a)  # (a loop-carried sum's range is int64's)
    with pytest.raises(StencilError, match="neighborhood"):
        sk.stencil(too_far.__wrapped__)  # (no neighborhood: the loop's offsets are unknown)


@sk.stencil(neighborhood=((0, 0), (-2, 2)))
def powers(x):  # the index as an exponent: int64, squared as in the loop (a literal multiplies)
    s = 0.0
    for i in range(1, 6):
        s += x[0, i - 3] ** i
    return s


def test_the_index_keeps_its_type(monkeypatch):
    a = sample((3, 50), np.float64, seed=9) * 1.37
    got = powers(a)
    spec = cpu.cpu_spec(powers)
    assert "x[0, 5 - 3] ** int(5)" in spec.source and not spec.dynamic
    monkeypatch.setattr(_unroll, "ENABLED", False)
    np.testing.assert_array_equal(got, sk.stencil(neighborhood=((0, 0), (-2, 2)))(
        powers.__wrapped__)(a))


@sk.stencil(neighborhood=((-3, 3), (-3, 3)))
def mean7(x):  # 49 reads and a division: LLVM's inliner left its point function a call
    s = 0
    for i in range(-3, 4):
        for j in range(-3, 4):
            s += x[i, j]
    return s // 49


@sk.stencil
def pair(x):
    return x[0, -1] + x[0, 1]


def test_a_large_body_is_inlined_by_numba():
    from stencilkit import codegen

    a = sample((9, 40), np.uint8, seed=2)
    for mode in ("reflect", "constant"):
        np.testing.assert_array_equal(mean7(a, mode=mode),
                                      apply_reference(mean7.__wrapped__, [a], ndim=2, mode=mode))
    gu = {"mode": 0, "cval": 0, "acc": None}

    def rows_decorator(spec):
        src = codegen.generate(spec, fastmath=False, debug=False, cache=False, gufunc=gu)
        return src.splitlines()[src.splitlines().index(next(
            line for line in src.splitlines() if line.startswith("def _sk_pt_rows"))) - 1]

    assert "inline='always'" in rows_decorator(cpu.cpu_spec(mean7))
    assert rows_decorator(cpu.cpu_spec(pair)) == "@_sk_njit"


def test_the_filters_kernels_are_left_to_llvms_inliner(monkeypatch):
    from stencilkit import _passes, codegen

    seen = []
    generate = codegen.generate
    monkeypatch.setattr(codegen, "generate", lambda *a, **k: seen.append(k) or generate(*a, **k))
    taps = " + ".join(f"a[{i}, {j}]" for i in range(-3, 4) for j in range(-3, 4))
    st = _passes.compiled(f"def f_test_big(a):\n    return ({taps}) // 49\n")
    cpu.module(st, False, False)
    cpu.module(mean7, False, True)  # (debug: a variant not compiled before)
    assert [k["inline_large"] for k in seen] == [False, True]
