"""Random kernels: the C++ path's translation, run by the host build, against the CPU.

The C++ translator re-derives numba's arithmetic from the typed IR and narrows integer work by
an interval analysis (32-bit operations, unsigned divisions by constants, lifted dividends,
shifts by counts known in range); a wrong interval gives wrong integers for some data only,
which hand-written kernels find by luck. Here hypothesis draws expression trees over reads,
literals and a parameter (arithmetic, bitwise operations, shifts, min/max, conditionals,
conversions, ``math.floor`` and friends, NumPy's ufuncs on scalars), for every integer
dtype, float32 and float64 and several accumulators, with data spanning each type's range
(its extremes, and NaN, infinities and signed zeros for floats), and every output must equal
the CPU's bit for bit (signed zeros included). The numba.cuda fallback runs them under the
simulator too (its operators and ufuncs computed in numba's types and loops:
stencilkit._scalar_ops). It found the two bugs of 2026-11-29 (kernels ``mixed_signedness``
and ``integer_roundings`` in tests/test_cuda_cpp.py and tests/kernels.py).

Expressions whose signed arithmetic could overflow are not drawn: numba compiles it as
no-signed-wrap, so the CPU's result there is undefined (the README says so). Each drawn node
carries numba's type for it (numba's own typing context decides: ``uint8 - uint8`` is uint64,
``min(uint64, int64)`` float64, ``abs(int8)`` int8) and the interval of its value; an operation
whose signed result could leave its type is not drawn, an unsigned one that could wraps to its
type's whole range. ``STENCILKIT_RANDOM_KERNELS=500 pytest tests/test_cuda_cpp_random.py -n0``
draws more examples than the suite's few, and new ones at each run.
"""

import importlib.util
import itertools
import math
import operator
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, reject, settings
from hypothesis import strategies as st
from kernels import sample
from numba.core import types as nt
from numba.core.registry import cpu_target

import stencilkit as sk
from stencilkit._cpp_body import Unsupported

cpp_host = pytest.importorskip("cpp_host")
pytestmark = pytest.mark.property

DTYPES = [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64]
ACCS = [None, np.int64, np.uint64, np.int32, np.uint32, np.int16]
FLOATS = [np.float32, np.float64]
LITERALS = [0, 1, 2, 3, 5, 7, 9, 16, 31, 255, 1000, 65537, 2**31 - 1, 2**33 + 1,
            -1, -2, -7, -128, -(2**35)]
FLOAT_LITERALS = [0.5, -2.25, 3.0, 1e10, 1e-3, -0.0]
CONVERSIONS = ["int8", "uint8", "int16", "uint32", "int64", "float32", "float64"]
MATH = ["math.floor", "math.ceil", "math.trunc", "round", "math.sqrt", "int"]
SPECIALS = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e30, -1e30, 1e-30, 2.5, -2.5, 0.5, 65535.5]
_TYPING = cpu_target.typing_context
_TYPING.refresh()


def _range(ty):
    info = np.iinfo(np.dtype(str(ty)))
    return int(info.min), int(info.max)


def _typed(fn, *tys):
    """numba's result type of ``fn(*tys)``, or None where numba refuses it."""
    try:
        sig = _TYPING.resolve_function_type(fn, tys, {})
    except Exception:
        return None
    return None if sig is None else sig.return_type


class Node:
    """An expression's text, numba's type for it and its value's interval (None: a float)."""

    def __init__(self, text, ty, iv=None):
        self.text, self.ty = text, ty
        self.iv = iv if isinstance(ty, nt.Integer) else None

    def within(self, ty):
        """The interval of this value converted to integer type ``ty``."""
        lo, hi = _range(ty)
        if self.iv is not None and lo <= self.iv[0] and self.iv[1] <= hi:
            return self.iv
        return lo, hi


def _result(text, ty, lo, hi, can_overflow=True):
    """The node of an integer result ``ty`` whose exact value lies in [lo, hi], or None where
    a signed result could overflow (undefined in numba's code)."""
    rlo, rhi = _range(ty)
    if rlo <= lo and hi <= rhi:
        return Node(text, ty, (lo, hi))
    if ty.signed and can_overflow:
        return None
    return Node(text, ty, (rlo, rhi))  # (unsigned: wraps around; or any value of the type)


_BINARY = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
           "//": operator.floordiv, "%": operator.mod, "&": operator.and_, "|": operator.or_,
           "^": operator.xor, ">>": operator.rshift, "<<": operator.lshift, "min": min,
           "max": max}


def _binary(op, a, b):
    ty = _typed(_BINARY[op], a.ty, b.ty)
    text = f"{op}({a.text}, {b.text})" if op in ("min", "max") else f"({a.text} {op} {b.text})"
    if ty is None:
        return None
    if not isinstance(ty, nt.Integer):
        if op in ("min", "max") and any(n.text.startswith(("min(", "max(")) for n in (a, b)):
            return None  # (LLVM folds max(c, max(x, c)) into max(x, c) on the CPU: README)
        return Node(text, ty)  # (float arithmetic: defined everywhere; integer ops refused)
    (alo, ahi), (blo, bhi) = a.within(ty), b.within(ty)
    if op in ("+", "-", "*"):
        f = {"+": operator.add, "-": operator.sub, "*": operator.mul}[op]
        c = [f(p, q) for p in (alo, ahi) for q in (blo, bhi)]
        return _result(text, ty, min(c), max(c))
    if op in ("//", "%"):
        if ty.signed and blo <= -1 <= bhi and alo == _range(ty)[0]:
            return None  # (the type's minimum // -1 overflows)
        if op == "%":
            m = max(abs(blo), abs(bhi))
            return _result(text, ty, -m, m)
        if blo == bhi and blo != 0:
            q = [alo // blo, ahi // blo]
            return _result(text, ty, min(q), max(q))  # (monotonic in the dividend)
        m = max(abs(alo), abs(ahi))
        return _result(text, ty, -m, m)
    if op in ("&", "|", "^"):
        if op == "&" and blo == bhi and blo >= 0:
            return _result(text, ty, 0, blo, False)
        bits = max(abs(v).bit_length() for v in (alo, ahi, blo, bhi))
        lo = 0 if min(alo, blo) >= 0 else -(2**bits)
        return _result(text, ty, lo, 2**bits - 1, False)
    if op == ">>":
        return _result(text, ty, min(alo, 0), max(ahi, 0), False)
    if op == "<<":
        if blo < 0 or bhi > 12:
            return None
        return _result(text, ty, min(alo << bhi, alo), max(ahi << bhi, ahi))
    f = min if op == "min" else max
    return _result(text, ty, f(alo, blo), f(ahi, bhi), False)


def _unary(op, a):
    fn = {"-": operator.neg, "~": operator.invert, "abs": abs}[op]
    ty = _typed(fn, a.ty)
    text = f"abs({a.text})" if op == "abs" else f"({op}{a.text})"
    if ty is None:
        return None
    if not isinstance(ty, nt.Integer):
        return Node(text, ty)
    lo, hi = a.within(ty)
    if op == "-":
        return _result(text, ty, -hi, -lo)
    if op == "~":
        return _result(text, ty, ~hi, ~lo, False)
    return _result(text, ty, 0 if lo <= 0 <= hi else min(abs(lo), abs(hi)),
                   max(abs(lo), abs(hi)))


_UFUNCS = {"add": "+", "subtract": "-", "multiply": "*", "floor_divide": "//",
           "remainder": "%", "bitwise_and": "&", "bitwise_or": "|", "bitwise_xor": "^",
           "fmod": None, "sign": None, "true_divide": None, "greater": None, "logical_xor": None}


def _ufunc(name, a, b):
    """NumPy's ufunc ``name`` on scalars (numba's loop for the arguments' types: the C++
    path's ``ufunc_loop``), with the operator's interval where the loop is the operator's
    in the loop's type (an overflowing signed loop, undefined in numba's code, refused)."""
    fn = getattr(np, name)
    args = (a, b)[:fn.nin]
    ty = _typed(fn, *(n.ty for n in args))
    text = f"np.{name}({', '.join(n.text for n in args)})"
    if ty is None or not isinstance(ty, nt.Integer):
        return None if ty is None else Node(text, ty)
    if _UFUNCS[name] is not None:
        node = _binary(_UFUNCS[name], *(Node(n.text, ty, n.within(ty)) for n in args))
        return node and Node(text, ty, node.iv)
    if name == "sign" and ty.signed:
        return Node(text, ty, (-1, 1))
    return _result(text, ty, *_range(ty), False)  # (fmod: the unsigned remainder of the bits)


@st.composite
def expressions(draw, read_ty, depth=3, names=(), offsets=("-1", "0", "1")):
    """A random integer (or, by numba's promotions, float) expression over the kernel's reads
    ``x[i, j]`` (3 x 3, typed ``read_ty``; ``offsets``: what an index may be, a loop's index
    among them), literals, the parameter ``k`` and ``names`` (the program's variables, as
    Nodes)."""
    if depth == 0 or draw(st.integers(0, 3)) == 0:
        kind = draw(st.sampled_from(["read", "read", "literal", "param"]
                                    + ["name"] * (2 * bool(names))))
        if kind == "name":
            return draw(st.sampled_from(list(names)))
        if kind == "read":
            i, j = draw(st.sampled_from(offsets)), draw(st.sampled_from(offsets))
            return Node(f"x[{i}, {j}]", read_ty, _range(read_ty)
                        if isinstance(read_ty, nt.Integer) else None)
        if kind == "param":
            return Node("k", nt.int64, (-100, 100))
        if draw(st.integers(0, 3)) == 0:
            return Node(f"({draw(st.sampled_from(FLOAT_LITERALS))!r})", nt.float64)
        v = draw(st.sampled_from(LITERALS))
        return Node(f"({v})", nt.int64, (v, v))
    sub = expressions(read_ty, depth - 1, names, offsets)
    a = draw(sub)
    kind = draw(st.sampled_from(["binary", "binary", "binary", "constant", "unary", "select",
                                 "convert", "math", "sum", "ufunc"]))
    if kind == "sum":  # weighted reads over the rows (the emitter regroups such sums by rows)
        node = a
        for _ in range(draw(st.integers(2, 8))):
            i, j = draw(st.integers(-1, 1)), draw(st.integers(-1, 1))
            read = Node(f"x[{i}, {j}]", read_ty, _range(read_ty)
                        if isinstance(read_ty, nt.Integer) else None)
            w = draw(st.sampled_from([1, 1, 2, -1, -2, 3]))
            term = read if w == 1 else _binary("*", Node(f"({w})", nt.int64, (w, w)), read)
            node = (term and _binary(draw(st.sampled_from(["+", "+", "-"])), node, term)) or node
    elif kind == "binary":
        node = _binary(draw(st.sampled_from(sorted(_BINARY))), a, draw(sub))
    elif kind == "constant":  # (a constant right operand: the emitter's special cases)
        op = draw(st.sampled_from(["//", "%", ">>", "<<", "&"]))
        v = draw(st.integers(0, 70) if op == ">>" else st.integers(0, 12) if op == "<<"
                 else st.sampled_from(LITERALS))
        node = _binary(op, a, Node(f"({v})", nt.int64, (v, v)))
    elif kind == "unary":
        node = _unary(draw(st.sampled_from(["-", "~", "abs"])), a)
    elif kind == "ufunc":
        node = _ufunc(draw(st.sampled_from(sorted(_UFUNCS))), a, draw(sub))
    elif kind == "select":
        b, c, d = draw(sub), draw(sub), draw(sub)
        cmp = draw(st.sampled_from(["<", "<=", "==", "!=", ">", ">="]))
        ty = _TYPING.unify_pairs(a.ty, d.ty)
        text = f"({a.text} if {b.text} {cmp} {c.text} else {d.text})"
        if ty is None:
            node = None
        elif isinstance(ty, nt.Integer):
            (alo, ahi), (dlo, dhi) = a.within(ty), d.within(ty)
            node = Node(text, ty, (min(alo, dlo), max(ahi, dhi)))
        else:
            node = Node(text, ty)
    elif kind == "convert":
        name = draw(st.sampled_from(CONVERSIONS))
        ty = getattr(nt, name)
        text = f"np.{name}({a.text})"
        if isinstance(ty, nt.Float):
            node = Node(text, ty)
        else:  # (floats saturate, integers wrap)
            node = Node(text, ty, a.within(ty) if a.iv is not None else _range(ty))
    else:
        name = draw(st.sampled_from(MATH))
        fn = {"round": round, "int": int}.get(name) or getattr(math, name.split(".")[1])
        ty = _typed(fn, a.ty)
        if ty is None:
            node = None
        elif isinstance(ty, nt.Integer):  # (of a float: saturated)
            node = Node(f"{name}({a.text})", ty, a.within(ty) if a.iv is not None
                        else _range(ty))
        else:
            node = Node(f"{name}({a.text})", ty)
    return node if node is not None else a


@st.composite
def programs(draw, read_ty):
    """Statements: a variable ``s`` set, updated in a loop (a constant count, or one the
    parameter decides) from itself, the loop index and reads at it, and perhaps again under a
    condition.

    Integer updates are ``np.T((...) % m)`` for a positive ``m``: whatever the loop count, ``s``
    stays within [0, m) and its type ``T`` (the first value's), so no drawn operation on it
    can overflow; float ones ``np.T(...)``. This is what exercises the interval analysis's
    loops (their fixpoint) and merges of branches.
    """
    first = draw(expressions(read_ty, 2))
    ty = first.ty if isinstance(first.ty, (nt.Integer, nt.Float)) else nt.int64
    m = draw(st.sampled_from([7, 255, 65521, 2**31 - 1]))

    def assign(e):
        if isinstance(ty, nt.Integer):
            return f"np.{ty}(({e.text}) % {m})"
        return f"np.{ty}({e.text})"

    s = Node("s", ty, (0, m - 1) if isinstance(ty, nt.Integer) else None)
    lines = [f"s = {assign(first)}"]
    count = draw(st.sampled_from(["3", "1", "k & 3", "0", "-1, 2"]))
    offsets = ("-1", "0", "1")
    i = Node("i", nt.int64, (0, 2))
    if count == "-1, 2":  # (reads at the loop's index: offsets known at run time only)
        offsets, i = ("-1", "0", "1", "i", "i"), Node("i", nt.int64, (-1, 1))
    lines.append(f"for i in range({count}):")
    lines.append(f"    s = {assign(draw(expressions(read_ty, 2, (s, i), offsets)))}")
    if draw(st.booleans()):
        cond = f"{draw(expressions(read_ty, 1, (s,))).text} < {draw(expressions(read_ty, 1)).text}"
        lines.append(f"if {cond}:")
        lines.append(f"    s = {assign(draw(expressions(read_ty, 2, (s,))))}")
    lines.append(f"return {draw(expressions(read_ty, 2, (s,))).text}")
    return "".join(f"    {line}\n" for line in lines)


_DIR = Path(tempfile.mkdtemp(prefix="stencilkit-random-kernels-"))
_count = itertools.count()


def _load(body: str):
    """The kernel of statements ``body`` as a stencil, from a module file (as a user's is)."""
    path = _DIR / f"random_kernel_{next(_count)}.py"
    path.write_text("import math\n\nimport numpy as np\nimport stencilkit as sk\n\n\n"
                    "@sk.stencil(neighborhood=((-1, 1), (-1, 1)))\n"
                    f"def kern(x, k):\n{body}")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module.kern


@st.composite
def cases(draw):
    dtype = draw(st.sampled_from(DTYPES + FLOATS))
    floats = dtype in FLOATS
    acc = draw(st.sampled_from([None, np.float64, np.float32] if floats
                               else ACCS + [np.float64]))
    read_ty = getattr(nt, np.dtype(acc or (dtype if floats else np.int64)).name)
    body = draw(programs(read_ty)) if draw(st.booleans()) else \
        f"    return {draw(expressions(read_ty)).text}\n"
    assume("x[" in body)  # (a stencil reads its input)
    mode = draw(st.sampled_from(list(sk.MODES)))
    return dtype, acc, body, mode, draw(st.integers(-100, 100)), draw(st.integers(0, 999))


EXAMPLES = int(os.environ.get("STENCILKIT_RANDOM_KERNELS", "12"))


_SETTINGS = dict(deadline=None, derandomize="STENCILKIT_RANDOM_KERNELS" not in os.environ,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def _data(dtype, seed, shape=(5, 40)):  # (rows for a strip walk; widths for words)
    a = sample(shape, dtype, seed=seed)
    if dtype in FLOATS:
        rng = np.random.default_rng(seed)
        a.flat[rng.choice(a.size, len(SPECIALS), replace=False)] = SPECIALS
    return a


def _options(acc, mode):
    return {"mode": mode, **({"acc": acc} if acc is not None else {}),
            **({"cval": 3} if mode in ("constant", "skip") else {})}


def _same(got, want, what):
    assert got.dtype == want.dtype, what
    np.testing.assert_array_equal(got, want, err_msg=what)
    if want.dtype.kind == "f":  # (signed zeros too; a NaN's sign and payload are the
        number = ~np.isnan(want)  # machine's own: x86's 0 * inf is a negative NaN)
        np.testing.assert_array_equal(np.signbit(got) & number, np.signbit(want) & number,
                                      err_msg=what)


@pytest.mark.skipif(cpp_host.CXX is None, reason="needs a C++ compiler (g++)")
@settings(max_examples=EXAMPLES, **_SETTINGS)
@given(case=cases())
def test_random_kernels_equal_the_cpu(case):
    dtype, acc, body, mode, k, seed = case
    kern = _load(body)
    a = _data(dtype, seed)
    kw = _options(acc, mode)
    try:
        got = cpp_host.call(kern, a, k, **kw)
    except Unsupported:  # (the numba.cuda fallback computes it: tests/test_cuda.py's concern)
        reject()
    _same(got, kern(a, k, **kw),
          f"\n{body}# {dtype.__name__}, acc={acc and acc.__name__}, {mode}, k={k}")


@pytest.mark.skipif(os.environ.get("NUMBA_ENABLE_CUDASIM") != "1", reason="the simulator's")
@settings(max_examples=max(EXAMPLES // 2, 1), **_SETTINGS)
@given(case=cases())
def test_random_kernels_on_the_simulated_fallback_equal_the_cpu(case):
    """The numba.cuda fallback's generated source (``codegen.generate_cuda``: its literals,
    conversions and shifts rewritten as the CPU's are) under numba's simulator, against the
    CPU: the rewrites, and the simulator's NumPy scalars made to compute in numba's types
    (:mod:`stencilkit._scalar_ops`, ``backends.cuda._simulator_globals``)."""
    dtype, acc, body, mode, k, seed = case
    kern = _load(body)
    a = _data(dtype, seed, (4, 11))
    kw = _options(acc, mode)
    assert "numba.cuda (the fallback)" in kern.explain(a, k, target="cuda", **kw)
    with np.errstate(all="ignore"):
        got = kern(a, k, target="cuda", **kw)
    _same(got, kern(a, k, **kw),
          f"\n{body}# {dtype.__name__}, acc={acc and acc.__name__}, {mode}, k={k}")


def _real_gpu():
    from stencilkit.backends import cuda as cuda_backend

    ok, why = sk.cuda_available(explain=True)
    return (ok and not cuda_backend.simulated()), why


@pytest.mark.gpu
@pytest.mark.skipif(not _real_gpu()[0], reason=f"needs a real CUDA GPU ({_real_gpu()[1]})")
@settings(max_examples=int(os.environ.get("STENCILKIT_RANDOM_KERNELS_GPU", "40")), **_SETTINGS)
@given(case=cases())
def test_random_kernels_on_a_gpu_equal_the_cpu(case):
    """The same kernels compiled by NVRTC and run on the device (cupy arrays; larger, so the
    launches have many blocks), where the generated C++ takes them, bit for bit."""
    import cupy

    dtype, acc, body, mode, k, seed = case
    kern = _load(body)
    a = _data(dtype, seed, (67, 300))
    kw = _options(acc, mode)
    d = cupy.asarray(a)
    if "generated CUDA C++" not in kern.explain(d, k, **kw):
        reject()  # (the numba.cuda fallback fuses multiply-adds: tests/test_gpu.py's bound)
    _same(kern(d, k, **kw).get(), kern(a, k, **kw),
          f"\n{body}# {dtype.__name__}, acc={acc and acc.__name__}, {mode}, k={k}")
