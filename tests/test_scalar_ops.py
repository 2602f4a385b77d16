"""The simulator's operators (stencilkit._scalar_ops) against numba's compiled ones.

For operands of every scalar type a kernel meets (NumPy's bool, integers and floats, and
Python's bool, int and float), each operator of ``_scalar_ops`` must give what a function
compiled by numba gives for the same operands: the same value (signed zeros and NaN included)
in the type numba's signature returns. Operands whose signed integer result would overflow are
not drawn (undefined in numba's code, as in C), nor shifts by counts outside 0..63 (likewise),
nor divisions by zero (numba's CPU code raises there; the GPU gives 0, as NumPy does).
"""

import operator
import os

import numba
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from stencilkit import _casts, _scalar_ops
from stencilkit._scalar_ops import BINARY, BUILTINS, OPS, to, ufunc

pytestmark = pytest.mark.property

SCALARS = [np.bool_, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64,
           np.uint64, np.float32, np.float64, bool, int, float]
SYMBOLS = {"add": "+", "sub": "-", "mul": "*", "truediv": "/", "floordiv": "//", "mod": "%",
           "pow": "**", "and_": "&", "or_": "|", "xor": "^", "lshift": "<<", "rshift": ">>",
           "lt": "<", "le": "<=", "eq": "==", "ne": "!=", "gt": ">", "ge": ">="}


def _compiled(source, params="a, b"):
    """``lambda params: source`` compiled by numba (one each: it compiles once per types)."""
    if source not in _COMPILED:
        names = {}
        exec(f"def f({params}):\n    return {source}\n", {"_casts": _casts, "np": np}, names)
        _COMPILED[source] = numba.njit(names["f"])
    return _COMPILED[source]


_COMPILED = {}
# STENCILKIT_SCALAR_OPS=2000 draws that many (new ones each run) instead of the suite's few.
_MORE = int(os.environ.get("STENCILKIT_SCALAR_OPS", "0"))


def _settings(examples):
    return settings(max_examples=_MORE or examples, deadline=None, derandomize=not _MORE)


@st.composite
def values(draw, kind):
    """A value of scalar type ``kind``: its extremes, small numbers, and for floats NaN,
    infinities and signed zeros."""
    if kind in (bool, np.bool_):
        return kind(draw(st.booleans()))
    if kind is float or issubclass(kind, np.floating):
        v = draw(st.sampled_from([0.0, -0.0, 1.0, -2.5, 0.5, 3.0, 1e30, -7.0, np.nan, np.inf,
                                  -np.inf, 255.0, 2.0**63]))
        return kind(v)
    info = np.iinfo(np.int64 if kind is int else kind)
    v = draw(st.sampled_from([0, 1, 2, 3, 7, 63, 64, 100, -1, -2, -100, info.min, info.max,
                              info.max - 1, info.min + 1]) | st.integers(info.min, info.max))
    return kind(min(max(v, info.min), info.max))


def _integral(v):
    return isinstance(v, (int, np.integer, np.bool_))


def _numba_return_type(f, *args):
    """numba's return type of ``f`` for ``args`` (from the compiled signature)."""
    argtypes = tuple(numba.typeof(a) for a in args)
    return [s for s in f.nopython_signatures if s.args == argtypes][0].return_type


def _same(got, want, want_type, what):
    assert np.dtype(type(got)) == np.dtype(str(want_type)), what
    if isinstance(got, (float, np.floating)):
        want = np.float64(want)
        assert (np.isnan(got) and np.isnan(want)) or (
            got == want and np.signbit(got) == np.signbit(want)), what
    else:
        assert int(got) == int(want), what


@_settings(150)
@given(data=st.data(), op=st.sampled_from(sorted(BINARY)),
       ta=st.sampled_from(SCALARS), tb=st.sampled_from(SCALARS))
def test_binary_operators_equal_numbas(data, op, ta, tb):
    a, b = data.draw(values(ta)), data.draw(values(tb))
    f = _compiled(f"a {SYMBOLS[op]} b")
    try:
        argtypes = (numba.typeof(a), numba.typeof(b))
        f.compile(argtypes)
    except numba.core.errors.TypingError:
        return  # (numba refuses: nothing the simulator must match)
    want_type = _numba_return_type(f, a, b)
    if op == "pow" and _integral(b):  # (numba's power by a negative integer raises, as by
        assume(0 <= int(b) < 64)       # a huge one it takes long)
    if op == "pow":
        assume(not (a == 0 and b < 0))  # (ZeroDivisionError)
    if op in ("lshift", "rshift"):  # (numba's own shift of a count beyond 63 is undefined;
        assume(0 <= int(b) < 64)     # kernels' shifts go through _casts.shl/shr: below)
    if op in ("truediv", "floordiv", "mod"):
        assume(b != 0)  # (numba's CPU code raises ZeroDivisionError)
    if isinstance(want_type, numba.types.Integer) and _integral(a) and _integral(b):
        kind = np.dtype(str(want_type)).type
        x, y = int(to(a, kind)), int(to(b, kind))  # (numba's operands: both in its type)
        if want_type.signed and op in ("add", "sub", "mul", "pow"):
            exact = {"add": operator.add, "sub": operator.sub, "mul": operator.mul,
                     "pow": operator.pow}[op](x, y)
            info = np.iinfo(kind)
            assume(info.min <= exact <= info.max)
    with np.errstate(all="ignore"):
        got = BINARY[op](a, b)
    _same(got, f(a, b), want_type, f"{a!r} {SYMBOLS[op]} {b!r}")


@_settings(60)
@given(data=st.data(), op=st.sampled_from(["neg", "pos", "invert", "abs"]),
       ta=st.sampled_from(SCALARS))
def test_unary_operators_equal_numbas(data, op, ta):
    a = data.draw(values(ta))
    f = _compiled({"neg": "-a", "pos": "+a", "invert": "~a", "abs": "abs(a)"}[op], "a")
    try:
        f.compile((numba.typeof(a),))
    except numba.core.errors.TypingError:
        return
    mine = BUILTINS["abs"] if op == "abs" else getattr(OPS, op)
    with np.errstate(all="ignore"):
        got = mine(a)
    _same(got, f(a), _numba_return_type(f, a), f"{op}({a!r})")


@_settings(60)
@given(data=st.data(), op=st.sampled_from(["min", "max", "select", "shl", "shr"]),
       ta=st.sampled_from(SCALARS), tb=st.sampled_from(SCALARS), flag=st.booleans())
def test_builtins_selections_and_shifts_equal_numbas(data, op, ta, tb, flag):
    """``min``/``max``, ``a if c else b`` (both branches' unified type) and the shifts
    (``_scalar_ops.shl``/``shr`` against the compiled ``_casts.shl``/``shr``: NumPy's rule for
    counts out of range, numba's types)."""
    a, b = data.draw(values(ta)), data.draw(values(tb))
    source = {"min": "min(a, b)", "max": "max(a, b)", "select": "a if c else b",
              "shl": "_casts.shl(a, b)", "shr": "_casts.shr(a, b)"}[op]
    f = _compiled(source, "a, b, c" if op == "select" else "a, b")
    args = (a, b, flag) if op == "select" else (a, b)
    try:
        f.compile(tuple(numba.typeof(v) for v in args))
    except numba.core.errors.TypingError:
        return
    with np.errstate(all="ignore"):
        if op == "select":
            got = OPS.select(flag, lambda: a, lambda: b)
        elif op in ("shl", "shr"):
            got = getattr(_scalar_ops, op)(a, b)
        else:
            got = BUILTINS[op](a, b)
    _same(got, f(*args), _numba_return_type(f, *args), f"{source}: {args!r}")


UFUNCS = ["hypot", "maximum", "fmin", "arctan2", "add", "floor_divide", "greater",
          "bitwise_and", "left_shift", "sqrt", "rint", "negative", "abs", "exp", "isnan"]
INEXACT = ("hypot", "arctan2", "exp")  # (libm's and NumPy's own may differ in the last bit)


@_settings(60)
@given(data=st.data(), name=st.sampled_from(UFUNCS),
       ta=st.sampled_from(SCALARS), tb=st.sampled_from(SCALARS))
def test_ufuncs_on_scalars_equal_numbas(data, name, ta, tb):
    """NumPy's ufuncs on scalars run the loop numba picks (``hypot(float32, int64)``:
    ``ff->f``; NumPy 2's own: float64), exactly (transcendental ones: the type exactly, the
    value within 2 ulp)."""
    uf = getattr(np, name)
    args = (data.draw(values(ta)), data.draw(values(tb)))[:uf.nin]
    if name == "floor_divide":  # (numba's CPU code raises for 0; for floats numba's loop is
        # its own, not NumPy's: -0.0 for 1 // -inf, 8421505 for float32 2**31 // 255, where
        # NumPy's gives -1.0 and 8421504; the simulator computes NumPy's, as _scalar_ops says)
        assume(args[1] != 0 and all(_integral(v) for v in args))
        assume(not (args[1] == -1 and int(args[0]) == np.iinfo(np.result_type(*args)).min))
    if name == "left_shift":  # (beyond the loop type's width: undefined in numba's code)
        assume(_integral(args[1]) and 0 <= int(args[1]) < 8)
    f = _compiled(f"np.{name}({', '.join('ab'[:uf.nin])})", ", ".join("ab"[:uf.nin]))
    try:
        f.compile(tuple(numba.typeof(v) for v in args))
    except numba.core.errors.TypingError:
        return
    with np.errstate(all="ignore"):
        got = ufunc(uf)(*args)
    want, want_type = f(*args), _numba_return_type(f, *args)
    if name in INEXACT and np.isfinite(want) and want != got:
        assert np.dtype(type(got)) == np.dtype(str(want_type))
        eps = np.finfo(type(got)).eps
        want = got if abs(got - want) <= 2 * eps * abs(want) else want
    _same(got, want, want_type, f"np.{name}{args!r}")


def test_the_differences_from_numpy_that_matter():
    """A few of NumPy's promotions that numba's compiled code does not share."""
    with np.errstate(all="ignore"):
        assert OPS.add(np.int8(100), np.int8(100)) == 200  # (NumPy: int8 -56)
        assert type(OPS.add(np.uint64(1), np.int64(1))) is np.int64  # (NumPy: float64)
        assert OPS.neg(np.uint8(3)) == 253 and type(OPS.neg(np.uint8(3))) is np.uint64
        assert not OPS.lt(np.uint64(2**63), np.int64(0))
        assert type(OPS.select(True, lambda: np.int8(1), lambda: np.float32(0))) is np.float32
        assert type(OPS.mul(np.int32(3), np.float32(2))) is np.float64  # (NumPy too)
        assert type(OPS.mul(np.int16(3), np.float32(2))) is np.float32
