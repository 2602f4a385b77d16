"""Loops over constant ranges in a kernel, unrolled for the CPU backend.

A window written as a loop, ``for i in range(-2, 3): for j in range(-2, 3): s += x[i, j]``,
reads at run-time offsets: every read goes through the general path (the row's base plus an
offset computed per element), and a uint8 5 x 5 sum on 8000^2 took 61 ms, against 6.6 ms for
the same 25 reads written out (6.8 ms unrolled), whose constant offsets take the vectorised
row path (:mod:`stencilkit.codegen`). So before the CPU compiles a kernel, every ``for`` over
``range()`` whose arguments are constant (literals, global ints, and the indices of loops
already unrolled around it) is written out, iteration by iteration, with the loop variable
replaced by its value in each copy of the body, and assigned its last value after them (as
Python leaves it). The operations, and their order, are the loop's, so the results are its
results bit for bit; integer sums written out also get bounded ranges, so the CPU may hold
them in 16 bits (:mod:`stencilkit._narrow`; a loop-carried sum's range widens to int64's).

Left as loops: a range that is not constant, a loop with ``else``, ``break`` or ``continue``,
one whose body assigns its variable or holds a comprehension or lambda, and loops whose copies
would make the body longer than ``MAX_STATEMENTS`` (compile time). A kernel whose unrolled
reads would fall outside its declared ``neighborhood=`` keeps its loops too (its reads stay
checked at run time under ``debug=True``, as before). The other backends compile the kernel as
written.
"""

from __future__ import annotations

import ast
import copy

from .kernel import KernelSpec, _fold, _NotIntIndex, parse, with_ast_lock

MAX_STATEMENTS = 256
"""The most statements an unrolled body may have: a 15 x 15 window's sum (241) is written out,
a 16 x 16 one (273) stays a loop. Compile time grows with the reads: 4000^2 uint8 box sums,
first call (compile) and then a call, loop -> unrolled: 5 x 5 1.6 s, 15 ms -> 2.4 s, 1.7 ms;
9 x 9 1.2 s, 134 ms -> 3.3 s, 80 ms; 15 x 15 1.6 s, 334 ms -> 8.2 s, 174 ms (the machine code
is cached on disk: the compile is paid once)."""

ENABLED = True


@with_ast_lock
def unrolled(spec: KernelSpec, neighborhood) -> KernelSpec:
    """``spec`` with its constant-range loops unrolled, or ``spec`` itself if none is."""
    if not ENABLED or not any(isinstance(n, ast.For) for n in ast.walk(spec.tree)):
        return spec
    fdef = copy.deepcopy(spec.tree)
    bound = {n.id for n in ast.walk(fdef) if isinstance(n, ast.Name)
             and not isinstance(n.ctx, ast.Load)} | {a.arg for a in fdef.args.args}
    scope = {k: v for k, v in spec.globals.items() if k not in bound}
    # (a global np.integer bound would type the index by its type, uint64 say: not unrolled)
    scope = {k: v for k, v in scope.items() if type(v) is int}
    unroll = _Unroll(scope, "range" not in spec.globals and "range" not in bound
                     and "int" not in spec.globals and "int" not in bound, spec.arrays)
    changed = False
    while True:  # (an inner loop's range may use an outer loop's index: again until none)
        unroll.changed = False
        fdef.body = unroll.statements(fdef.body)
        if not unroll.changed:
            break
        changed = True
        if _count(fdef.body) > MAX_STATEMENTS:
            return spec
    if not changed:
        return spec
    try:
        return parse(ast.unparse(fdef), spec.globals, neighborhood)
    except Exception:  # noqa: BLE001 (an unrolled read outside the declared neighborhood:
        return spec    # the loops stay, checked at run time under debug=True)


def _count(stmts) -> int:
    return sum(1 for s in stmts for n in ast.walk(s) if isinstance(n, ast.stmt))


class _Unroll:
    def __init__(self, scope: dict, builtin_range: bool, arrays):
        self.scope = scope
        self.builtin_range = builtin_range
        self.arrays = arrays
        self.changed = False

    def statements(self, stmts: list) -> list:
        out = []
        for stmt in stmts:
            for field in ("body", "orelse", "finalbody"):
                if isinstance(getattr(stmt, field, None), list):
                    setattr(stmt, field, self.statements(getattr(stmt, field)))
            copies = self._unroll(stmt) if isinstance(stmt, ast.For) else None
            if copies is None:
                out.append(stmt)
            else:
                out.extend(copies)
                self.changed = True
        return out

    def _values(self, loop: ast.For):
        it = loop.iter
        if not (self.builtin_range and isinstance(it, ast.Call)
                and isinstance(it.func, ast.Name) and it.func.id == "range"
                and 1 <= len(it.args) <= 3 and not it.keywords):
            return None
        try:
            args = [_fold(a, self.scope) for a in it.args]
        except _NotIntIndex:
            return None
        if any(a is None for a in args) or (len(args) == 3 and args[2] == 0):
            return None
        return range(*args)

    def _unroll(self, loop: ast.For):
        if loop.orelse or not isinstance(loop.target, ast.Name):
            return None
        values = self._values(loop)
        if values is None or len(values) * _count(loop.body) > MAX_STATEMENTS:
            return None
        name = loop.target.id
        for node in (n for s in loop.body for n in ast.walk(s)):
            if isinstance(node, (ast.Break, ast.Continue, ast.Lambda, ast.comprehension)):
                return None
            if isinstance(node, ast.Name) and node.id == name \
                    and not isinstance(node.ctx, ast.Load):
                return None
        out = []
        for v in values:
            for stmt in loop.body:
                out.append(_Substitute(name, v, self.arrays).visit(copy.deepcopy(stmt)))
        if len(values):  # (Python leaves the variable at its last value)
            out.append(ast.Assign(targets=[ast.Name(id=name, ctx=ast.Store())],
                                  value=_int(values[-1]), lineno=loop.lineno))
        return [ast.fix_missing_locations(s) for s in out]


class _Substitute(ast.NodeTransformer):
    """The loop variable's loads replaced by its value.

    ``int(v)`` in general, typed int64 as the variable is (a bare literal would be typed a
    literal, and numba specialises some operations on those: ``x ** 3`` multiplies where
    ``x ** i`` squares); a bare ``v`` in an array's subscript (an offset, folded by the parser)
    and in ``range()``'s arguments (an inner loop's bounds, folded here).
    """

    def __init__(self, name: str, value: int, arrays):
        self.name, self.value, self.arrays = name, value, arrays
        self.offset = False

    def visit_Subscript(self, node):
        if isinstance(node.value, ast.Name) and node.value.id in self.arrays:
            outer, self.offset = self.offset, True
            node.slice = self.visit(node.slice)
            self.offset = outer
            return node
        return self.generic_visit(node)

    def visit_Call(self, node):
        if isinstance(node.func, ast.Name) and node.func.id == "range":  # (an inner loop's
            outer, self.offset = self.offset, True                       # bounds: folded)
            node.args = [self.visit(a) for a in node.args]
            self.offset = outer
            return node
        return self.generic_visit(node)

    def visit_Name(self, node):
        if node.id == self.name and isinstance(node.ctx, ast.Load):
            value = ast.Constant(self.value) if self.offset else _int(self.value)
            return ast.copy_location(value, node)
        return node


def _int(value: int) -> ast.expr:
    return ast.Call(func=ast.Name(id="int", ctx=ast.Load()), args=[ast.Constant(value)],
                    keywords=[])

