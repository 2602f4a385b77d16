"""Parse a plain-Python stencil kernel into a :class:`KernelSpec`.

This module is the only place that reads a user's kernel. The grammar it accepts:

* ``def name(a, b, ..., p, q, ...)``: plain positional arguments, no defaults, ``*args`` or
  keyword-only arguments. An argument that is ever subscripted is an *array*; the others are
  scalar *parameters*, and every array comes before every parameter.
* An array appears only as ``a[i0, ..., ik-1]``, read, with one index per core axis (the same
  ``k`` for every subscript of every array). Each index is a *relative offset*: an integer
  constant or a constant expression (``-1``, ``2 * R`` with ``R`` a global int). Other index
  expressions (a loop variable, say) need ``neighborhood=`` to declare their reach.
* Arrays are never assigned to, rebound, deleted or used whole (``a.shape``, ``a + 1``).
* The body is otherwise ordinary numba-compilable Python: locals, ``if``, ``for``/``while``
  loops, ``math``/``numpy`` functions, other jitted functions. It must end every path with
  ``return value`` (one scalar per output element); ``yield``, nested functions, ``global`` and
  ``nonlocal`` are refused.
* Names that are not arguments, locals or builtins are looked up once, when the kernel is
  decorated, in the function's globals and closure. Modules, numbers (alone or in tuples),
  NumPy types, ``math``'s and NumPy's functions bound by name (``from math import sqrt``) and
  jitted functions are allowed; anything else (an array, say) must become an argument.

Every rule raises a :class:`StencilError` (a ValueError or TypeError) that names the kernel, the
offending subscript or name, and how to fix it, before anything is compiled.
"""

from __future__ import annotations

import ast
import builtins
import functools
import hashlib
import inspect
import math
import textwrap
import threading
import types
from dataclasses import dataclass, field

import numpy as np

from ._errors import StencilError, StencilTypeError

RESERVED_PREFIX = "_sk_"


@dataclass(frozen=True)
class Access:
    """One subscript of an array argument: ``array[offsets]``.

    ``offsets[d]`` is an int for a constant offset, or the index's source text when it is only
    known at run time (allowed with ``neighborhood=``).
    """

    array: str
    offsets: tuple
    node: ast.Subscript = field(compare=False, repr=False)

    @property
    def text(self) -> str:
        """The subscript as written in the kernel."""
        return ast.unparse(self.node)


@dataclass
class KernelSpec:
    """Everything stencilkit knows about a kernel after parsing it."""

    name: str
    source: str
    tree: ast.FunctionDef
    arrays: tuple
    params: tuple
    ndim: int
    accesses: tuple
    radius: tuple
    dynamic: bool
    globals: dict
    global_keys: dict

    @property
    def signature(self) -> str:
        """The gufunc signature of the kernel, e.g. ``"(n,m),()->(n,m)"``."""
        core = "(" + ",".join(_DIM_NAMES[: self.ndim]) + ")"
        ins = [core] * len(self.arrays) + ["()"] * len(self.params)
        return ",".join(ins) + "->" + core

    @property
    def digest(self) -> str:
        """A hash of everything that determines the generated code."""
        h = hashlib.sha256()
        h.update(self.source.encode())
        h.update(repr(sorted(self.global_keys.items())).encode())
        h.update(repr(self.radius).encode())
        return h.hexdigest()


_DIM_NAMES = ("n", "m", "p", "q", "r", "s", "t", "u", "v", "w")

_NUMBER_TYPES = (bool, int, float, complex, np.number, np.bool_)
_ALLOWED_GLOBAL_TYPES = (*_NUMBER_TYPES, np.dtype, type)


def kernel_source(fn) -> tuple[str, dict]:
    """Return the dedented source of ``fn`` and the names visible to it (globals, closure)."""
    try:
        source = inspect.getsource(fn)
    except (OSError, TypeError) as exc:
        raise StencilError(
            f"stencil: cannot read the source of {getattr(fn, '__name__', fn)!r} ({exc}); "
            "stencilkit compiles kernels from their source, so define the kernel in a file or "
            "notebook cell, not with exec() or at an interactive prompt without history"
        ) from None
    scope = dict(getattr(fn, "__globals__", {}))
    code = getattr(fn, "__code__", None)
    if code is not None and fn.__closure__:
        for name, cell in zip(code.co_freevars, fn.__closure__):
            try:
                scope[name] = cell.cell_contents
            except ValueError:  # an empty cell: the name is assigned later
                pass
    return textwrap.dedent(source), scope


# CPython 3.11 keeps the AST constructor's recursion depth per interpreter, not per thread, so
# two threads building or converting ASTs at once can fail with "SystemError: AST constructor
# recursion depth mismatch" (python/cpython#106905). It happened here in a dask.distributed
# worker (unpickling a kernel on the comm thread while the task thread generated code), so all
# of stencilkit's AST work takes this lock.
AST_LOCK = threading.RLock()


def with_ast_lock(fn):
    """Decorator: run ``fn`` holding :data:`AST_LOCK`."""

    @functools.wraps(fn)
    def locked(*args, **kwargs):
        with AST_LOCK:
            return fn(*args, **kwargs)

    return locked


@with_ast_lock
def parse(source: str, scope: dict, neighborhood=None) -> KernelSpec:
    """Parse the source of one kernel function; ``scope`` resolves its global names."""
    module = ast.parse(source)
    defs = [n for n in module.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    if len(defs) != 1 or isinstance(defs[0], ast.AsyncFunctionDef):
        raise StencilError("stencil: expected the source of exactly one plain 'def' function")
    fdef = defs[0]
    fdef.decorator_list = []
    name = fdef.name
    where = f"stencil kernel {name!r}"
    _check_signature(fdef, where)
    argnames = [a.arg for a in fdef.args.args]
    for arg in argnames:
        if arg.startswith(RESERVED_PREFIX):
            raise StencilError(f"{where}: argument {arg!r} uses the reserved prefix "
                               f"{RESERVED_PREFIX!r}; rename it")

    # Which arguments are arrays: those that are subscripted anywhere.
    subscripts = [
        n for n in ast.walk(fdef)
        if isinstance(n, ast.Subscript) and isinstance(n.value, ast.Name) and n.value.id in argnames
    ]
    arrays = [a for a in argnames if any(s.value.id == a for s in subscripts)]
    if not arrays:
        raise StencilError(
            f"{where}: no argument is read with a relative index such as x[0, 1]; a stencil "
            "kernel reads its input arrays by offsets from the current element"
        )
    params = [a for a in argnames if a not in arrays]
    first_param = min((argnames.index(p) for p in params), default=len(argnames))
    if any(argnames.index(a) > first_param for a in arrays):
        raise StencilError(
            f"{where}: array arguments must come before scalar parameters, but "
            f"{params[0]!r} (never subscripted, so a parameter) comes before an array; "
            f"reorder the arguments as ({', '.join(arrays + params)})"
        )

    _check_statements(fdef, set(arrays), where)
    ndim, accesses, dynamic = _collect_accesses(fdef, subscripts, scope, where)
    radius = _radius(accesses, ndim, neighborhood, dynamic, where)
    globals_, keys = _resolve_globals(fdef, set(argnames), scope, where)
    return KernelSpec(
        name=name,
        source=ast.unparse(fdef),
        tree=fdef,
        arrays=tuple(arrays),
        params=tuple(params),
        ndim=ndim,
        accesses=tuple(accesses),
        radius=radius,
        dynamic=dynamic,
        globals=globals_,
        global_keys=keys,
    )


def _check_signature(fdef: ast.FunctionDef, where: str) -> None:
    a = fdef.args
    if a.vararg or a.kwarg or a.kwonlyargs or a.posonlyargs or a.defaults:
        raise StencilError(
            f"{where}: use plain positional arguments (arrays, then scalar parameters) without "
            "defaults, *args, **kwargs or keyword-only arguments"
        )
    if not a.args:
        raise StencilError(f"{where}: the kernel takes no arguments; it needs at least one array")


def _check_statements(fdef: ast.FunctionDef, arrays: set, where: str) -> None:
    returns = []
    for node in ast.walk(fdef):
        if node is fdef:
            continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            raise StencilError(f"{where}: nested functions, lambdas and classes are not "
                               "supported in a kernel; move them out and decorate them with "
                               "numba.njit")
        if isinstance(node, (ast.Yield, ast.YieldFrom, ast.Await)):
            raise StencilError(f"{where}: a kernel returns one value per element; 'yield' and "
                               "'await' are not allowed")
        if isinstance(node, (ast.Global, ast.Nonlocal)):
            raise StencilError(f"{where}: 'global'/'nonlocal' are not allowed in a kernel")
        if isinstance(node, ast.Return):
            returns.append(node)
            if node.value is None:
                raise StencilError(
                    f"{where}: 'return' without a value at line {node.lineno}; every path of a "
                    "kernel must return the output element's value"
                )
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) \
                and node.value.id in arrays and not isinstance(node.ctx, ast.Load):
            raise StencilError(
                f"{where}: {ast.unparse(node)} is assigned to; a kernel must not write into its "
                "inputs: compute the value in a local variable and return it"
            )
        if isinstance(node, ast.Name) and node.id in arrays:
            if not isinstance(node.ctx, ast.Load):
                raise StencilError(
                    f"{where}: the array argument {node.id!r} is rebound; use another name for "
                    "the local variable"
                )
        if isinstance(node, ast.Name) and node.id.startswith(RESERVED_PREFIX):
            raise StencilError(f"{where}: the name {node.id!r} uses the reserved prefix "
                               f"{RESERVED_PREFIX!r}; rename it")
    # An array name must only appear as the value of a subscript.
    for node in ast.walk(fdef):
        for child in ast.iter_child_nodes(node):
            if (isinstance(child, ast.Name) and child.id in arrays
                    and isinstance(child.ctx, ast.Load)):
                if not (isinstance(node, ast.Subscript) and node.value is child):
                    raise StencilError(
                        f"{where}: the array argument {child.id!r} is used whole in "
                        f"{ast.unparse(node)!r}; a kernel reads single elements by relative "
                        f"index, e.g. {child.id}[0, 0] for the current element"
                    )
    if not returns:
        raise StencilError(f"{where}: the kernel never returns a value; end it with "
                           "'return <value of the output element>'")


def _fold(node: ast.expr, scope: dict):
    """Return the int value of a constant index expression, or None if it is not constant."""
    if isinstance(node, ast.Constant):
        v = node.value
        if isinstance(v, bool) or not isinstance(v, int):
            raise _NotIntIndex(node)
        return v
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _fold(node.operand, scope)
        return None if v is None else (-v if isinstance(node.op, ast.USub) else v)
    if isinstance(node, ast.BinOp) and isinstance(
        node.op, (ast.Add, ast.Sub, ast.Mult, ast.FloorDiv, ast.Mod)
    ):
        left, right = _fold(node.left, scope), _fold(node.right, scope)
        if left is None or right is None:
            return None
        if isinstance(node.op, (ast.FloorDiv, ast.Mod)) and right == 0:
            raise _NotIntIndex(node)
        return {
            ast.Add: lambda: left + right, ast.Sub: lambda: left - right,
            ast.Mult: lambda: left * right, ast.FloorDiv: lambda: left // right,
            ast.Mod: lambda: left % right,
        }[type(node.op)]()
    if isinstance(node, ast.Name) and node.id in scope:
        v = scope[node.id]
        if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
            return int(v)
    return None


class _NotIntIndex(Exception):
    def __init__(self, node):
        self.node = node


def _collect_accesses(fdef, subscripts, scope, where):
    # Names bound inside the kernel shadow globals of the same name in index expressions.
    local = {n.id for n in ast.walk(fdef)
             if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    fold_scope = {k: v for k, v in scope.items() if k not in local}
    ndim = None
    accesses = []
    dynamic = False
    for sub in subscripts:
        text = ast.unparse(sub)
        index = sub.slice
        items = index.elts if isinstance(index, ast.Tuple) else [index]
        for item in items:
            if isinstance(item, (ast.Slice, ast.Starred)) or (
                isinstance(item, ast.Constant) and item.value is Ellipsis
            ):
                raise StencilError(
                    f"{where}: {text} takes a slice; a kernel reads one element per subscript, "
                    "e.g. x[-1, 0]"
                )
        if ndim is None:
            ndim, first = len(items), text
        elif len(items) != ndim:
            raise StencilError(
                f"{where}: {text} has {len(items)} indices but {first} has {ndim}; every "
                "subscript needs one relative offset per core axis"
            )
        offsets = []
        for item in items:
            try:
                v = _fold(item, fold_scope)
            except _NotIntIndex as exc:
                raise StencilError(
                    f"{where}: the index {ast.unparse(exc.node)!r} in {text} is not an integer "
                    "offset; indices are integer offsets from the current element"
                ) from None
            if v is None:
                dynamic = True
                offsets.append(ast.unparse(item))
            else:
                offsets.append(v)
        accesses.append(Access(sub.value.id, tuple(offsets), sub))
    return ndim, accesses, dynamic


def _radius(accesses, ndim, neighborhood, dynamic, where):
    if neighborhood is not None:
        try:
            nb = tuple((int(lo), int(hi)) for lo, hi in neighborhood)
            ok = all(
                float(lo) == int(lo) and float(hi) == int(hi)
                for lo, hi in neighborhood
            )
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise StencilError(
                f"{where}: neighborhood must be one (low, high) pair of ints per core axis, "
                f"e.g. ((-2, 2), (-2, 2)); got {neighborhood!r}"
            )
        if len(nb) != ndim:
            raise StencilError(
                f"{where}: neighborhood has {len(nb)} axes but the subscripts have {ndim}"
            )
        for lo, hi in nb:
            if lo > hi:
                raise StencilError(f"{where}: neighborhood pair ({lo}, {hi}) has low > high")
        for acc in accesses:
            for d, off in enumerate(acc.offsets):
                if isinstance(off, int) and not nb[d][0] <= off <= nb[d][1]:
                    raise StencilError(
                        f"{where}: {acc.text} reads offset {off} on axis {d}, outside the "
                        f"declared neighborhood {nb[d]}; widen the neighborhood"
                    )
        return tuple((max(0, -lo), max(0, hi)) for lo, hi in nb)
    if dynamic:
        acc = next(a for a in accesses if any(isinstance(o, str) for o in a.offsets))
        bad = next(o for o in acc.offsets if isinstance(o, str))
        raise StencilError(
            f"{where}: the index {bad!r} in {acc.text} is not a constant, so the kernel's reach "
            "is unknown; pass neighborhood=((low, high), ...) with the offset range per axis, "
            f"e.g. neighborhood={tuple((-1, 1) for _ in range(ndim))}"
        )
    radius = []
    for d in range(ndim):
        offs = [a.offsets[d] for a in accesses]
        radius.append((max(0, -min(offs)), max(0, max(offs))))
    return tuple(radius)


def _resolve_globals(fdef, argnames, scope, where):
    bound = set(argnames)
    for node in ast.walk(fdef):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    resolved, keys = {}, {}
    for node in ast.walk(fdef):
        if not (isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)):
            continue
        name = node.id
        if name in bound or name in resolved:
            continue
        if name not in scope:
            if hasattr(builtins, name):
                continue
            raise StencilError(f"{where}: the name {name!r} is not defined where the kernel "
                               "is defined")
        value = scope[name]
        if isinstance(value, types.ModuleType):
            key = ("module", value.__name__)
        elif _is_jitted(value):
            key = ("jit", _jitted_key(value))
        elif isinstance(value, _ALLOWED_GLOBAL_TYPES):
            key = ("const", type(value).__name__, repr(value))
        elif library := library_function(value):  # (from math import sqrt)
            key = ("function", library, value.__name__)
        elif isinstance(value, tuple) and value and all(
                isinstance(x, _NUMBER_TYPES) for x in value):
            # (weights, say: a constant of the compiled code; repr tells 1, 1.0, True and
            # np.float32(1.0) apart)
            key = ("const", "tuple", repr(value))
        else:
            raise StencilTypeError(
                f"{where}: the global {name!r} is a {type(value).__name__}; a kernel may use "
                "modules, numbers, tuples of numbers, NumPy types, math's and NumPy's "
                "functions and numba-jitted functions from its scope. Pass arrays as kernel "
                "arguments and other values as scalar parameters"
            )
        resolved[name] = value
        keys[name] = key
    return resolved, keys


def library_function(value) -> str | None:
    """``"math"`` or ``"numpy"`` for a function of theirs bound by name, else None."""
    if isinstance(value, type) or not callable(value):
        return None
    if isinstance(value, np.ufunc):
        return "numpy"
    module = getattr(value, "__module__", None) or ""
    if module == "math" and getattr(math, getattr(value, "__name__", ""), None) is value:
        return "math"
    if module.split(".")[0] == "numpy" and getattr(np, getattr(value, "__name__", ""),
                                                    None) is value:
        return "numpy"
    return None


def _is_jitted(value) -> bool:
    return hasattr(value, "py_func") and hasattr(value, "targetoptions")


def _jitted_key(dispatcher) -> str:
    try:
        src = inspect.getsource(dispatcher.py_func)
    except (OSError, TypeError):
        src = dispatcher.py_func.__qualname__
    return hashlib.sha256(src.encode()).hexdigest()[:16]
