"""Which integer variables of a user's kernel the CPU code holds in 16 or 32 bits.

numba computes with small integers in int64 (the reads of 8-bit data are widened to the int64
accumulator, and ``int16 + int16`` is int64 too), so a kernel's loop vectorises in 64-bit lanes,
8 to a 512-bit register, unless LLVM sees that only the low bits of a value are used (a result
truncated into an 8-bit output). A clamp (``0 if v < 0 else (255 if v > 255 else v)``, ``min(max(v,
0), 255)``) uses every bit, and the loop runs at half of memory speed (a clamped uint8 Sobel-like
kernel on 8000^2: 5.1 ms, the copy 2.8 ms). Saying that the value fits (``v = np.int16(v)``, an
exact conversion then) lets LLVM compute it in 16-bit lanes (2.8 ms).

:func:`decide` finds such variables for a call's dtypes, and :mod:`stencilkit.codegen` writes the
conversions into that call's module. The body is typed by numba as the GPU's C++ translation types
it (:func:`stencilkit._cpp_body.typed_ir`) and its integer intervals propagated from the reads'
ranges (the data type's, and cval for the constant mode) by the same analysis
(:class:`stencilkit._cpp_body._Translator`). A variable is held in int16 (int32) where

* every value assigned to it, in every version numba's SSA gives it, is an int64 within
  ``[-32767, 32767]`` (``[-(2**31 - 1), 2**31 - 1]``: symmetric, so ``abs`` of it fits too), and
* every use gives the same result for the narrow value as for the int64 one: an operand of an
  arithmetic, bitwise, shift or comparison operator whose other operand is a signed integer (or
  a float64, not for bitwise operators and shifts): numba computes those in int64 or float64
  whatever the width (a float32 operand would turn an int64 product into float64 but an int16
  one into float32); of a unary operator, a branch's condition, the returned value (stored by
  value), a conversion (``float``, ``np.float32``, ...), or of ``min``, ``max``, ``abs``,
  ``int`` or a copy whose result (of the narrow type then) is used so itself; never an index,
  a tuple or any other call (NumPy's ufuncs keep an int16's type, and ``np.square`` of it
  would wrap).

The conversions are exact, so the results are those of the int64 code. Integer literals among
the arguments of ``min``/``max`` and the branches of conditional expressions that hold such a
variable are converted too (``min(max(v, np.int16(0)), np.int16(255))``): with an int64 literal
beside it the narrow value is widened again, and the clamp stays 64-bit.

``ENABLED = False`` turns it off (A/B timing); the decision is part of the module's text, so the
on-disk cache keeps the two apart.
"""

from __future__ import annotations

import ast
import builtins
import operator

import numpy as np

ENABLED = True

TYPES = (("int16", (1 << 15) - 1), ("int32", (1 << 31) - 1))
"""The types a variable may be held in, narrowest first, and the bound of its values' magnitude."""

_ARITH = {operator.add, operator.iadd, operator.sub, operator.isub, operator.mul, operator.imul,
          operator.floordiv, operator.ifloordiv, operator.mod, operator.imod, operator.truediv,
          operator.itruediv, operator.lt, operator.le, operator.gt, operator.ge, operator.eq,
          operator.ne}
_BITWISE = {operator.and_, operator.iand, operator.or_, operator.ior, operator.xor,
            operator.ixor, operator.lshift, operator.ilshift, operator.rshift, operator.irshift}
"""(Shifts: the CPU's ``_sk_shl``/``_sk_shr`` of an int16 and an int64 compute in int64.)"""
_UNARY = {operator.neg, operator.pos, operator.invert, operator.not_}


def decide(spec, acc, input_dtypes: dict, cval, param_types: tuple) -> tuple:
    """``((name, "int16" | "int32"), ...)``: the body's variables held narrow, sorted by name.

    ``acc``: the accumulator dtype (only int64, the integer data's default, is narrowed);
    ``input_dtypes``: each array's dtype as compiled code receives it; ``cval``: the constant
    mode's value in the accumulator, None for the other modes; ``param_types``: numba types of
    the scalar parameters. Empty where nothing is narrowed or the body is outside what the
    analysis covers (the call then runs the general module, as before).
    """
    names = _assigned(spec) if ENABLED and np.dtype(acc) == np.int64 else set()
    if not names:
        return ()
    try:
        return _narrowed(_typed(spec, acc, input_dtypes, cval, param_types), names)
    except Exception:  # noqa: BLE001 (an optimisation: whatever the analysis cannot follow,
        return ()      # the general module computes; test_narrow.py pins what it decides)


def _assigned(spec) -> set:
    """Names the body assigns with ``=``, ``+=`` or an annotation, and nothing else binds."""
    names, other = set(), set(spec.arrays) | set(spec.params)
    for node in ast.walk(spec.tree):
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            for target in (node.targets if isinstance(node, ast.Assign) else [node.target]):
                if isinstance(target, ast.Name):
                    names.add(target.id)
                else:
                    other |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.For, ast.comprehension, ast.withitem, ast.NamedExpr)):
            target = getattr(node, "target", None) or getattr(node, "optional_vars", None)
            if target is not None:
                other |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            other |= set(node.names)
    return names - other


def _typed(spec, acc, input_dtypes, cval, param_types):
    """The body's typed IR with its integer intervals (a :class:`_cpp_body._Translator`)."""
    from . import _cpp_body as cb

    def span(a):  # the data type's range, widened by the constant mode's cval
        iv = cb.read_range(input_dtypes[a], acc)
        if iv is not None and cval is not None:
            iv = (min(iv[0], int(cval)), max(iv[1], int(cval)))
        return iv

    tr = cb.translator(spec, acc, span, param_types)[0]
    tr.scan()
    tr.intervals()
    return tr


def _narrowed(tr, names: set) -> tuple:
    from numba.core import types

    ir = tr.ir
    uses: dict = {}  # var -> [(kind, detail)]
    for block in tr.fir.blocks.values():
        for stmt in block.body:
            if isinstance(stmt, ir.Assign):
                v, target = stmt.value, stmt.target.name
                if isinstance(v, ir.Var):
                    uses.setdefault(v.name, []).append(("copy", target))
                elif isinstance(v, ir.Expr):
                    for var in v.list_vars():
                        uses.setdefault(var.name, []).append(("expr", (v, target)))
            elif isinstance(stmt, ir.Branch):
                uses.setdefault(stmt.cond.name, []).append(("branch", None))
            elif isinstance(stmt, ir.Return):
                uses.setdefault(stmt.value.name, []).append(("return", None))
            elif not isinstance(stmt, (ir.Del, ir.Jump)):
                for var in stmt.list_vars():
                    uses.setdefault(var.name, []).append(("other", None))

    def other_ok(t, bitwise: bool) -> bool:
        t = types.unliteral(t)
        if isinstance(t, types.Integer):
            return t.signed
        return t == types.float64 and not bitwise

    def safe(var, seen) -> bool:
        if var in seen:
            return True
        seen.add(var)
        for kind, detail in uses.get(var, ()):
            if kind in ("branch", "return"):
                continue
            if kind == "copy":
                if not safe(detail, seen):
                    return False
                continue
            if kind == "other":
                return False
            expr, target = detail
            if expr.op in ("binop", "inplace_binop"):
                bitwise = expr.fn in _BITWISE
                if expr.fn not in _ARITH and not bitwise:
                    return False
                for operand in (expr.lhs, expr.rhs):
                    if operand.name != var and not other_ok(tr.ty(operand.name), bitwise):
                        return False
            elif expr.op == "unary":
                if expr.fn not in _UNARY:
                    return False
            elif expr.op == "cast":
                continue  # (the returned value)
            elif expr.op == "call":
                if expr.kws or expr.vararg is not None or expr.func.name == var:
                    return False
                fn = tr.consts.get(expr.func.name)
                if fn in (min, max, abs, int, np.abs, np.absolute):
                    if not safe(target, seen):
                        return False
                elif fn in (float, bool) or isinstance(
                        types.unliteral(tr.ty(expr.func.name)), types.NumberClass):
                    continue
                else:
                    return False
            else:
                return False
        return True

    groups: dict = {}
    for var in tr.typemap:
        base = var.split(".", 1)[0]
        if base in names:
            groups.setdefault(base, []).append(var)
    out = []
    for name, versions in sorted(groups.items()):
        if any(types.unliteral(tr.ty(v)) not in (types.int16, types.int32, types.int64)
               for v in versions):
            continue  # (a user's own np.int16 counts: its min/max literals are converted)
        ivs = [tr.iv.get(v) for v in versions]
        if any(iv is None for iv in ivs):
            continue
        if len({iv for iv in ivs}) == 1 and ivs[0][0] == ivs[0][1]:
            continue  # (a constant: numba folds it; an unrolled loop's index, say)
        size = max(max(abs(iv[0]), abs(iv[1])) for iv in ivs)
        kind = next((k for k, bound in TYPES if size <= bound), None)
        if kind is None:
            continue
        seen: set = set()
        if all(safe(v, seen) for v in versions):
            out.append((name, kind))
    return tuple(out)


# -- the rewrite (used by stencilkit.codegen) ---------------------------------------------------

class Rewrite:
    """Writes a decision into a copy of the body's syntax tree (see the module docstring).

    After every statement assigning a narrowed name ``v``: ``v = _sk_np.int16(v)``; integer
    literals among the arguments of ``min``/``max`` and the branches of conditional expressions
    whose other values are variables narrowed to one type: converted to that type.
    """

    def __init__(self, narrow: tuple, spec):
        self.types = dict(narrow)
        self.globals = spec.globals
        self.local = {n.id for n in ast.walk(spec.tree)
                      if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}
        self.local |= set(spec.arrays) | set(spec.params)

    def apply(self, fdef: ast.FunctionDef) -> ast.FunctionDef:
        if self.types:
            fdef.body = self._statements(fdef.body)
        return fdef

    # statements
    def _statements(self, stmts: list) -> list:
        out = []
        for stmt in stmts:
            for field in ("body", "orelse", "finalbody"):
                if isinstance(getattr(stmt, field, None), list) and not isinstance(stmt, ast.expr):
                    setattr(stmt, field, self._statements(getattr(stmt, field)))
            self._expressions(stmt)
            out.append(stmt)
            for name in self._targets(stmt):
                out.append(ast.parse(f"{name} = {_convert_text(name, self.types[name])}").body[0])
        return out

    def _targets(self, stmt) -> list:
        if isinstance(stmt, ast.Assign):
            targets = stmt.targets
        elif isinstance(stmt, ast.AugAssign) or (isinstance(stmt, ast.AnnAssign)
                                                 and stmt.value is not None):
            targets = [stmt.target]
        else:
            return []
        return [t.id for t in targets if isinstance(t, ast.Name) and t.id in self.types]

    # expressions
    def _expressions(self, stmt) -> None:
        for field, value in ast.iter_fields(stmt):
            if isinstance(value, ast.expr):
                setattr(stmt, field, self._expr(value))
            elif isinstance(value, list):
                value[:] = [self._expr(v) if isinstance(v, ast.expr) else v for v in value]

    def _expr(self, node):
        kind = self._kind(node)
        if kind not in (None, "literal"):
            return self._convert(node, kind)
        for field, value in ast.iter_fields(node):
            if isinstance(value, ast.expr):
                setattr(node, field, self._expr(value))
            elif isinstance(value, list):
                value[:] = [self._expr(v) if isinstance(v, ast.expr) else v for v in value]
        return node

    def _minmax(self, node) -> bool:
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and len(node.args) >= 2 and not node.keywords
                and not any(isinstance(a, ast.Starred) for a in node.args)):
            return False
        name = node.func.id
        if name in self.local:
            return False
        fn = self.globals.get(name, getattr(builtins, name, None))
        return fn is min or fn is max

    def _parts(self, node):
        """The values a min/max or conditional expression chooses among, else None."""
        if self._minmax(node):
            return node.args
        if isinstance(node, ast.IfExp):
            return [node.body, node.orelse]
        return None

    def _kind(self, node):
        """A narrow type name if the expression is of one, "literal", or None."""
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) \
                and node.id in self.types:
            return self.types[node.id]
        if _literal(node) is not None:
            return "literal"
        parts = self._parts(node)
        if parts is None:
            return None
        kinds = {self._kind(p) for p in parts}
        if None in kinds:
            return None
        kinds.discard("literal")
        if len(kinds) != 1:
            return None if kinds else "literal"
        (kind,) = kinds
        bound = dict(TYPES)[kind]
        if not all(self._fits(p, bound) for p in parts):
            return None
        return kind

    def _fits(self, node, bound) -> bool:
        if _literal(node) is not None:
            return abs(_literal(node)) <= bound
        parts = self._parts(node)
        return parts is None or all(self._fits(p, bound) for p in parts)

    def _convert(self, node, kind):
        if _literal(node) is not None:
            return ast.parse(_convert_text(_literal(node), kind), mode="eval").body
        if self._minmax(node):
            node.args = [self._convert(a, kind) for a in node.args]
        elif isinstance(node, ast.IfExp):
            node.test = self._expr(node.test)
            node.body = self._convert(node.body, kind)
            node.orelse = self._convert(node.orelse, kind)
        return node


def _convert_text(value, kind: str) -> str:
    """Source converting ``value`` to ``kind``, through :func:`stencilkit._casts.to_int`.

    As the body's own conversions are: numba's ``np.int16(v)`` written here instead left a
    clamped uint8 Sobel-like kernel at 5.7 ms on 8000^2, against 3.0 ms.
    """
    return f"_sk_to_int({value}, _sk_np.{kind})"


def _literal(node):
    """The value of an integer literal (``5``, ``-5``), else None."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _literal(node.operand)
        return None if value is None else (-value if isinstance(node.op, ast.USub) else value)
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    return None
