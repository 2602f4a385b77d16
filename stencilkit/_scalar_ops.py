"""numba's scalar arithmetic, computed in Python on NumPy scalars (for the CUDA simulator).

The simulator runs a kernel as Python, on NumPy scalars, and NumPy promotes differently from
numba: ``int8 + int8`` stays int8 (numba: int64, so no wrap at 127), ``uint64 + int64`` is a
float64 (numba: int64), ``-uint8`` a uint8 (numba: uint64, so ``-x * 2`` does not wrap),
``uint64(2**63 + 1) == int64(2**63 - 1)`` is False (numba compares them as float64s: True),
and ``a if c else b`` has the type of the branch taken (numba: the branches' unified type).
Compiled code on a device follows numba's types, so the simulator alone would pass kernels
that a GPU computes differently.

Here each operator asks numba's own typing context for its signature on the operands' types
(cached per pair of types) and computes in it: the operands converted as numba converts them
(to the integer result type for integer arithmetic, as numba's implementations do; to the
signature's argument types otherwise), then NumPy's operation on equal types, which is
numba's. The simulator's generated source (``codegen.generate_cuda(..., simulator=True)``)
calls these in place of the body's operators; the ``math`` module, builtin ``min``/``max``/
``abs``, NumPy's ufuncs, the shifts (:func:`shl`, :func:`shr`) and the body's numbers are
replaced the same way (``backends.cuda``'s ``_simulator_globals``). What is left to NumPy:
a variable that holds values of different types on paths that merge (numba gives it one
type), and operations numba refuses.

>>> import numpy as np
>>> from stencilkit._scalar_ops import OPS
>>> OPS.add(np.int8(100), np.int8(100)), OPS.add(np.uint64(1), np.int64(1))
(np.int64(200), np.int64(2))
"""

from __future__ import annotations

import functools
import math
import operator
import threading
import types

import numpy as np

# NumPy's scalar types whose operations with their own type are numba's: no conversion needed.
_NATIVE = frozenset((np.int64, np.uint64, np.float32, np.float64))
_LOCK = threading.Lock()  # (numba's typing context is not made for concurrent use)


@functools.cache
def _typing():
    from numba.core.registry import cpu_target

    ctx = cpu_target.typing_context
    ctx.refresh()
    return ctx


@functools.cache
def _numba_type(pytype):
    """The numba type of values of Python type ``pytype`` (a Python int: int64), or None."""
    from numba.core import types as nt
    from numba.np.numpy_support import from_dtype

    if pytype is bool:
        return nt.boolean
    if pytype is int:
        return nt.int64
    if pytype is float:
        return nt.float64
    if isinstance(pytype, type) and issubclass(pytype, (np.bool_, np.integer, np.floating)):
        try:
            return from_dtype(np.dtype(pytype))
        except NotImplementedError:  # (a dtype numba lacks)
            return None
    return None


def _scalar_type(ty):
    return np.dtype(str(ty)).type


@functools.cache
def _plan(fn, pytypes):
    """``(conversions, result)`` to compute ``fn`` on values of ``pytypes`` as numba does.

    None where numba has no signature for them (NumPy's operation then runs as it is, and
    raises where numba refuses to compile).
    """
    from numba.core import types as nt

    tys = tuple(_numba_type(t) for t in pytypes)
    if None in tys:
        return None
    with _LOCK:
        try:
            sig = _typing().resolve_function_type(fn, tys, {})
        except Exception:
            sig = None
    if sig is None or not isinstance(sig.return_type, (nt.Integer, nt.Boolean, nt.Float)):
        return None
    result = _scalar_type(sig.return_type)
    if len(tys) == 1 and isinstance(tys[0], nt.Integer):
        # numba negates (inverts) an integer in its own type, then widens the result:
        # -uint8(3) is the uint64 253, -int8(-128) the int64 -128
        return (_scalar_type(tys[0]),), result
    if isinstance(sig.return_type, nt.Integer) and all(
            isinstance(t, (nt.Integer, nt.Boolean)) for t in tys):
        # numba's integer operators convert both operands to the result type and compute
        # there (uint64 ** int64 is an int64 power, not NumPy's float64)
        return (result,) * len(tys), result
    args = sig.args
    if len(args) == 1 < len(tys) and isinstance(args[0], nt.BaseTuple):
        args = args[0].types  # (min/max of several: their tuple)
    return tuple(_scalar_type(a) for a in args), result


def to(value, kind):
    """``value`` converted to NumPy scalar type ``kind`` as C converts (wrapping integers)."""
    if type(value) is kind:
        return value
    if isinstance(value, np.generic):
        return value.astype(kind)
    return np.asarray(value).astype(kind)[()]


def binary(fn):
    """``fn(a, b)`` (an :mod:`operator` function) with numba's types."""
    if fn is operator.pow:
        return _power

    def call(a, b):
        ta, tb = type(a), type(b)
        if ta is tb and ta in _NATIVE:
            return fn(a, b)
        plan = _plan(fn, (ta, tb))
        if plan is None:
            return fn(a, b)
        (ka, kb), result = plan
        r = fn(to(a, ka), to(b, kb))
        return r if type(r) is result else to(r, result)

    call.__name__ = call.__qualname__ = fn.__name__
    return call


def _power(a, b):
    """``a ** b`` as numba computes it: for an integer exponent, by squaring in the result type.

    numba's ``int_power_impl``: ``1e30 ** 3`` is ``1e30 * (1e30 * 1e30)`` rounded twice, not
    the correctly rounded power NumPy's ``pow`` gives; an integer base to a negative power is
    0 (1 and -1 excepted).
    """
    plan = _plan(operator.pow, (type(a), type(b)))
    if plan is None or not _integral(b):
        r = operator.pow(a, b) if plan is None else operator.pow(*(
            to(v, k) for v, k in zip((a, b), plan[0])))
        return r if plan is None or type(r) is plan[1] else to(r, plan[1])
    kind = plan[1]
    base, exp = to(a, kind), int(b)
    one = kind(1)
    if exp < 0 and issubclass(kind, np.integer):
        return kind(0) if base not in (1, -1) else (one if exp % 2 == 0 else base)
    r, e = one, abs(exp)
    if e > 0x10000:  # (numba's cutoff: the generic pow)
        return to(math.pow(float(base), float(exp)), kind)
    with np.errstate(all="ignore"):
        while e:
            if e & 1:
                r = r * base
            e >>= 1
            base = base * base
        return one / r if exp < 0 else r


def unary(fn):
    """``fn(a)`` (``operator.neg``, ``pos``, ``invert``, or ``abs``) with numba's types."""
    def call(a):
        ta = type(a)
        if ta in _NATIVE:
            return fn(a)
        plan = _plan(fn, (ta,))
        if plan is None:
            return fn(a)
        (ka,), result = plan
        r = fn(to(a, ka))
        return r if type(r) is result else to(r, result)

    call.__name__ = call.__qualname__ = getattr(fn, "__name__", "unary")
    return call


def extreme(pick):
    """Builtin ``min``/``max`` (``pick``) as numba's.

    Python's choice (the first of equals, NaN kept only when first), in the type numba unifies
    the arguments to (``max(int64, float64)`` a float64; ``max(uint8, int8)`` an int16).
    """
    def call(*args):
        if len(args) == 1:  # (an iterable: as Python does)
            return pick(*args)
        plan = _plan(pick, tuple(type(a) for a in args))
        if plan is None:
            return pick(*args)
        return to(pick(*args), plan[1])

    call.__name__ = call.__qualname__ = pick.__name__
    return call


def select(condition, then, other):
    """``then() if condition else other()`` in the type numba unifies both branches to.

    Both branches are thunks; the one not taken is evaluated too (for its type only: a kernel's
    expressions have no effects), and where it fails the taken one's type stands.
    """
    taken, skipped = (then, other) if condition else (other, then)
    value = taken()
    try:
        with np.errstate(all="ignore"):
            alternative = skipped()
    except Exception:
        return value
    ta, tb = type(value), type(alternative)
    if ta is tb:
        return value
    unified = _unified(ta, tb)
    return value if unified is None else to(value, unified)


@functools.cache
def _unified(ta, tb):
    from numba.core import types as nt

    na, nb = _numba_type(ta), _numba_type(tb)
    if na is None or nb is None:
        return None
    with _LOCK:
        ty = _typing().unify_pairs(na, nb)
    return _scalar_type(ty) if isinstance(ty, (nt.Integer, nt.Boolean, nt.Float)) else None


def shl(a, b):
    """``_casts.shl`` (``a << b``, a count outside 0..63 giving 0) as its overload computes it.

    The simulator's generated source imports these in place of :mod:`stencilkit._casts`'
    Python bodies, whose NumPy scalars promote NumPy's way (that module's text is part of
    every CPU module's cache key, so it stays as it is).
    """
    if not (_integral(a) and _integral(b)):
        return a << b
    c = to(b, np.uint64)  # (as the overload: a negative count is a huge one)
    ok = c < np.uint64(64)
    r = OPS.lshift(a, c if ok else np.uint64(0))
    return r if ok else OPS.sub(r, r)


def shr(a, b):
    """``_casts.shr`` (``a >> b``; a count outside 0..63: 0, or -1 for a negative ``a``)."""
    if not (_integral(a) and _integral(b)):
        return a >> b
    c = to(b, np.uint64)
    ok = c < np.uint64(64)
    r = OPS.rshift(a, c if ok else np.uint64(63))
    return r if ok or not isinstance(a, np.unsignedinteger) else OPS.sub(r, r)


def _integral(v) -> bool:
    return isinstance(v, (int, np.integer, np.bool_))


BINARY = {name: binary(getattr(operator, name)) for name in (
    "add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "and_", "or_", "xor", "lshift",
    "rshift", "lt", "le", "eq", "ne", "gt", "ge")}
UNARY = {name: unary(getattr(operator, name)) for name in ("neg", "pos", "invert")}

#: What the simulator's generated source calls as ``_sk_ops.add(a, b)`` and so on.
OPS = types.SimpleNamespace(**BINARY, **UNARY, select=select)


def ufunc(uf):
    """NumPy ufunc ``uf`` on scalars as numba computes it.

    The loop numba picks for the operands' types: ``np.hypot(float32, int64)`` runs ``ff->f``,
    a float32, where NumPy 2 computes a float64. The loop itself is NumPy's, which numba's
    own follows but at some edges, done here as numba's loops do them (``numba.np.npyfuncs``):
    ``maximum`` of equals is the first; integer ``fmod`` the unsigned remainder of the bits
    (``fmod(int8(-8), int8(7))`` is 3); integer ``sign`` compares the bits as signed (of a
    uint8 200: 255); integer ``floor_divide`` and ``remainder`` give 0 for a zero divisor and
    for the minimum by -1; float ``floor_divide`` is ``floor(a / b)`` (``1.0 // -inf`` -0.0,
    NumPy's -1.0), float ``remainder`` the C remainder plus the divisor where the signs differ
    (a zero result +0.0, NumPy's takes the divisor's sign).

    >>> f = ufunc(np.fmod)
    >>> f(np.int8(-8), np.int8(7)), ufunc(np.sign)(np.uint8(200))
    (np.int8(3), np.uint8(255))
    """
    def call(*args, **kwargs):
        plan = None if kwargs else _loop(uf, tuple(type(a) for a in args))
        if plan is None:
            return uf(*args, **kwargs)
        inputs, result = plan
        ops = [to(a, k) for a, k in zip(args, inputs)]
        own = _NUMBA_LOOPS.get((uf, np.dtype(inputs[0]).kind))
        if uf in _FIRST_OF_EQUALS and ops[0] == ops[1]:
            r = ops[0]  # (numba's select keeps the first of equals: -0.0 in max(-0.0, 0.0))
        elif own is not None:
            with np.errstate(all="ignore"):
                r = own(*ops)
        else:
            r = uf(*ops)
        return r if type(r) is result else to(r, result)

    call.__name__ = call.__qualname__ = uf.__name__
    return call


_FIRST_OF_EQUALS = frozenset((np.maximum, np.minimum, np.fmax, np.fmin))


def _bits(v, kind):
    """Integer scalar ``v``'s bits as the signed (``"i"``) or unsigned (``"u"``) type."""
    return np.asarray(v).view(f"{kind}{v.itemsize}")[()]


def _int_fmod(a, b):
    t = type(a)
    return t(0) if b == 0 else _bits(_bits(a, "u") % _bits(b, "u"), np.dtype(t).kind)


def _int_sign(a):
    s = _bits(a, "i")
    return type(a)(0) if s == 0 else (type(a)(1) if s > 0 else _bits(type(s)(-1), a.dtype.kind))


def _int_divide_or_zero(uf):
    def loop(a, b):
        lowest = np.iinfo(type(a)).min
        if b == 0 or (lowest < 0 and b == -1 and (a == lowest or uf is np.remainder)):
            return type(a)(0)
        return uf(a, b)
    return loop


def _float_remainder(a, b):
    r = np.fmod(a, b)
    fix = (r < 0 or r > 0) and ((b < 0) != (r < 0))
    return r + (b if fix else type(r)(0))


_NUMBA_LOOPS = {
    **{(np.fmod, k): _int_fmod for k in "iu"}, **{(np.sign, k): _int_sign for k in "iu"},
    **{(uf, k): _int_divide_or_zero(uf) for uf in (np.floor_divide, np.remainder) for k in "iu"},
    (np.floor_divide, "f"): lambda a, b: np.floor(a / b), (np.remainder, "f"): _float_remainder}


@functools.cache
def _loop(uf, pytypes):
    """``(input types, output type)`` of the loop numba runs ``uf`` with, or None."""
    from numba.np.numpy_support import ufunc_find_matching_loop

    tys = tuple(_numba_type(t) for t in pytypes)
    if None in tys or uf.nout != 1 or len(tys) != uf.nin:
        return None
    try:
        loop = ufunc_find_matching_loop(uf, tys)
    except Exception:  # (numba has no loop for them: NumPy's, which raises as numba would)
        return None
    if not loop:
        return None
    return tuple(_scalar_type(t) for t in loop.inputs), _scalar_type(loop.outputs[0])


class _NumpyModule:
    """``numpy`` as a kernel sees it under the simulator: its ufuncs as :func:`ufunc`."""

    def __getattr__(self, name):
        value = getattr(np, name)
        if isinstance(value, np.ufunc):
            value = ufunc(value)
        setattr(self, name, value)  # (once)
        return value


@functools.cache
def numpy_module():
    """The ``numpy`` module as a kernel sees it under the simulator (see :func:`ufunc`)."""
    return _NumpyModule()


def _ieee(name, fn):
    """``math`` function ``fn`` as compiled code computes it.

    NaN or infinity where Python raises ValueError or OverflowError (``math.sqrt(-1.0)``,
    ``math.exp(1000.0)``), and a float result in numba's type: float32 where every argument
    is float32, float64 otherwise (Python's is a double).
    """
    fallback = getattr(np, _NUMPY_NAMES.get(name, name), None)

    def call(*args):
        try:
            r = fn(*args)
        except (ValueError, OverflowError):
            if fallback is None:
                raise
            with np.errstate(all="ignore"):
                r = fallback(*args)
        if isinstance(r, (float, np.floating)):
            single = all(isinstance(a, np.float32) for a in args)
            return np.float32(r) if single else np.float64(r)
        return r

    return call


_NUMPY_NAMES = {"acos": "arccos", "asin": "arcsin", "acosh": "arccosh", "atanh": "arctanh",
                "pow": "power"}


@functools.cache
def math_module():
    """The ``math`` module as a kernel sees it under the simulator (see :func:`_ieee`)."""
    return types.SimpleNamespace(**{
        name: _ieee(name, value) if callable(value) else value
        for name, value in vars(math).items() if not name.startswith("_")})


#: Builtins a kernel's body calls whose types differ between NumPy and numba.
BUILTINS = {"min": extreme(min), "max": extreme(max), "abs": unary(abs)}
