"""Generate the source of a compiled stencil module from a :class:`~stencilkit.kernel.KernelSpec`.

One generated module serves every dtype, boundary mode and cval of a kernel: the mode is an
integer argument, cval and the accumulator are typed scalar arguments, and numba specialises on
the argument types. What it contains, for a kernel with ``k`` core axes (arrays are handed in
with the batch axes flattened to one leading axis, ``(B, n0, ..., nk-1)``):

``_sk_pt_rows``
    the kernel body with every ``x[d0, ..., dk-1]`` rewritten to read the flat C-contiguous
    array at ``row base + span counter + constant``, all unsigned, so the interior loop has no
    boundary logic and no negative-index test and LLVM vectorises it (measured for the 3 x 3
    int8 mean on 8000^2: 0.72-0.91 x memcpy, against 0.03 x with signed 2-D indexing). Row
    bases come from the rows' indices along the leading core axes: plain in interior rows,
    mapped by the mode in border rows, so those run the same loop. Used when the offsets along
    all but the last axis are constants; ``_sk_pt_direct`` (plain n-D indexing) otherwise.
``_sk_pt_edge``
    the body for the few columns at either end of a row: only the column is mapped by the mode;
    and for every column of a row of outputs that reads rows outside the array (the constant
    mode's), told by a flag per row which rows give cval.
``_sk_pt_border``
    for kernels with run-time offsets along a leading axis only: the body with every read going
    through the mode's index map (``_sk_map``) on every axis.
``_sk_run_par`` / ``_sk_run_ser``
    the loop nest: one ``prange`` over rows (batch x all-but-last core axes; 1-D kernels also
    split the row into column blocks); per row an interior span and edge columns on either side.
    The two are the same text under two names because numba's cache index does not key on the
    ``parallel`` flag.
``_sk_gufunc``
    the kernel as a gufunc core (for ``Stencil.gufunc``), with the decorator's default options.
"""

from __future__ import annotations

import ast
import builtins
import copy
import math
import types
from typing import NamedTuple

import numpy as np

from . import _narrow, modes
from .kernel import KernelSpec, with_ast_lock

INLINE_NODES = 350
"""Users' kernels whose syntax tree has more nodes than this have their interior point function
inlined by numba (``inline='always'``) rather than left to LLVM's inliner, which refused a 7 x
7 sum followed by a division (49 reads: the loop then calls a function per element and does
not vectorise; 4000^2 uint8, ``s // 49``: 57 ms, inlined 3.1 ms; the 7 x 7 sum alone, or 36
reads with the division, were inlined anyway). A 3 x 3 kernel has about 100 nodes, a 5 x 5 sum
with its division 300, a 7 x 7 one 580. Inlining costs compile time (0.2-0.8 s a module),
hence the bound; the filters' generated kernels are left as they are measured
(``Stencil._cpu_rewrites``)."""

BLOCK = 1 << 14
"""Columns per parallel work item: splits long 1-D signals, never a row of a normal image."""


def _enc(offset: int) -> str:
    return f"m{-offset}" if offset < 0 else f"p{offset}"


def _literal(value) -> str:
    """Python source for a scalar constant, including non-finite floats."""
    if isinstance(value, (bool, np.bool_)):
        return repr(bool(value))
    if isinstance(value, (int, np.integer)):
        return repr(int(value))
    if isinstance(value, (complex, np.complexfloating)):
        return f"complex({_literal(value.real)}, {_literal(value.imag)})"
    value = float(value)
    if math.isnan(value):
        return "_sk_np.nan"
    if math.isinf(value):
        return "_sk_np.inf" if value > 0 else "(-_sk_np.inf)"
    return repr(value)


class _Rewriter(ast.NodeTransformer):
    """Replace every array subscript of the kernel body by a read for one code context."""

    def __init__(self, spec: KernelSpec, context: str, debug: bool):
        self.spec = spec
        self.context = context
        self.debug = debug
        self.rows: dict = {}  # (array, leading offsets) -> row variable name
        self.maps: dict = {}  # (axis, offset) -> mapped index variable name (border)

    def index(self, d: int, off) -> str:
        if isinstance(off, int):
            return f"_sk_i{d} + {off}" if off else f"_sk_i{d}"
        if self.debug:
            lo, hi = -self.spec.radius[d][0], self.spec.radius[d][1]
            off = f"_sk_chk({off}, {lo}, {hi})"
        return f"_sk_i{d} + ({off})"

    def visit_Subscript(self, node):
        if not (isinstance(node.value, ast.Name) and node.value.id in self.spec.arrays):
            return self.generic_visit(node)
        name = node.value.id
        # _attach_offsets has made every constant offset an ast.Constant; the rest are run-time
        # expressions, which may themselves read arrays (data-dependent offsets).
        offsets = [
            item.value if isinstance(item, ast.Constant) else ast.unparse(self.visit(item))
            for item in _items(node)
        ]
        k = self.spec.ndim
        last = k - 1
        if self.context == "rows":
            # Interior reads index the flat (C-contiguous) array with unsigned integers: the row's
            # base, plus the span counter, plus a non-negative constant (the offset shifted by
            # the radius before). numba's negative-index wraparound test then disappears and the
            # loop vectorises (measured: 16x faster than signed 2-D indexing for the 3 x 3 mean,
            # and 2x faster than 1-D row views on 100 x 100 frames, which pay per-row view set-up).
            lead = tuple(offsets[:last])
            row = self.rows.setdefault(
                (name, lead), f"_sk_r_{name}_" + "_".join(_enc(o) for o in lead)
            )
            off, shift = offsets[last], self.spec.radius[last][0]
            if isinstance(off, int):
                c = off + shift
                index = f"{row} + _sk_j" + (f" + _sk_np.uint64({c})" if c else "")
            else:
                if self.debug:
                    lo, hi = -self.spec.radius[last][0], self.spec.radius[last][1]
                    off = f"_sk_chk({off}, {lo}, {hi})"
                index = f"{row} + _sk_j + _sk_np.uint64({shift} + ({off}))"
            text = f"_sk_widen(_sk_f_{name}[{index}], _sk_acc)"
        elif self.context == "edge":
            # Left and right edge columns of a row, and every column of the constant mode's
            # rows next to the array: only the column is mapped by the mode (once per offset,
            # in the prologue); -1 means cval.
            lead = tuple(offsets[:last])
            row = self.rows.setdefault(
                (name, lead), f"_sk_r_{name}_" + "_".join(_enc(o) for o in lead)
            )
            # With leading axes, a flag per row says whether the row lies inside the array
            # (False only in the constant mode's rows outside it: its reads give cval). Each
            # read calls a helper (inlined by LLVM) rather than spelling out the conditional:
            # half the edge function's compile time, as fast.
            valid = _row_flag(lead) if lead else None
            off = offsets[last]
            if isinstance(off, int):
                c = self.maps.setdefault((last, off), f"_sk_m{last}_{_enc(off)}")
            else:
                c = f"_sk_map({self.index(last, off)}, _sk_n{last}, _sk_mode)"
            if valid:
                text = f"_sk_read_flag(_sk_f_{name}, {row}, {c}, {valid}, _sk_cval, _sk_acc)"
            else:
                text = f"_sk_read_flat(_sk_f_{name}, {row}, {c}, _sk_cval, _sk_acc)"
        elif self.context == "direct":
            idx = ", ".join(["_sk_b"] + [self.index(d, o) for d, o in enumerate(offsets)])
            text = f"_sk_widen({name}[{idx}], _sk_acc)"
        elif all(isinstance(o, int) for o in offsets):
            # Border, constant offsets: each (axis, offset) is mapped once per element (the
            # maps are computed at the top of the point function), and reads test them inline.
            qs = []
            for d, o in enumerate(offsets):
                qs.append(self.maps.setdefault((d, o), f"_sk_m{d}_{_enc(o)}"))
            test = " and ".join(f"{q} >= 0" for q in qs)
            text = (f"(_sk_widen({name}[_sk_b, {', '.join(qs)}], _sk_acc) if {test} "
                    "else _sk_cval)")
        else:
            idx = ", ".join(self.index(d, o) for d, o in enumerate(offsets))
            lens = ", ".join(f"_sk_n{d}" for d in range(k))
            text = f"_sk_read({name}, _sk_b, {idx}, {lens}, _sk_mode, _sk_cval, _sk_acc)"
        return ast.parse(text, mode="eval").body


def _row_flag(lead: tuple) -> str:
    """The edge functions' name for whether the row at leading offsets ``lead`` is inside."""
    return "_sk_v_" + "_".join(_enc(o) for o in lead)


def _items(sub: ast.Subscript):
    return sub.slice.elts if isinstance(sub.slice, ast.Tuple) else [sub.slice]


class _StrongLiterals(ast.NodeTransformer):
    """Make every int and float literal an explicit ``int64``/``float64`` scalar.

    numba types a literal as int64 or float64, so ``x * 0.5`` with a float32 ``x`` is float64 in
    compiled code; NumPy (the CUDA simulator runs kernels on NumPy scalars) treats a Python
    literal as "weak" (NEP 50) and keeps float32. Spelling the literal's numba type out gives
    the compiled backends' promotion in the simulator too, and changes nothing on a device.
    """

    def visit_Constant(self, node):
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return node
        if isinstance(value, int) and not -(2**63) <= value < 2**63:
            return node
        kind = "int64" if isinstance(value, int) else "float64"
        return ast.parse(f"_sk_np.{kind}({_literal(value)})", mode="eval").body


class _SimulatorOps(ast.NodeTransformer):
    """Route the body's operators through ``_sk_ops`` (:mod:`stencilkit._scalar_ops`).

    For the CUDA simulator only, whose NumPy scalars promote NumPy's way: ``a + b`` becomes
    ``_sk_ops.add(a, b)`` (numba's signature for the operands' types), ``-a``
    ``_sk_ops.neg(a)``, a comparison of two operands ``_sk_ops.lt(a, b)``, ``s += v`` ``s =
    _sk_ops.add(s, v)`` and ``a if c else b`` ``_sk_ops.select(c, lambda: a, lambda: b)`` (the
    branches' unified type). Subscripts' indices (the reads' offsets) and negated number
    literals stay as they are.
    """

    _OPS = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "truediv",
            ast.FloorDiv: "floordiv", ast.Mod: "mod", ast.Pow: "pow", ast.BitAnd: "and_",
            ast.BitOr: "or_", ast.BitXor: "xor", ast.LShift: "lshift", ast.RShift: "rshift",
            ast.USub: "neg", ast.UAdd: "pos", ast.Invert: "invert", ast.Lt: "lt",
            ast.LtE: "le", ast.Eq: "eq", ast.NotEq: "ne", ast.Gt: "gt", ast.GtE: "ge"}

    @classmethod
    def _call(cls, op, *args):
        name = op if isinstance(op, str) else cls._OPS[type(op)]
        return ast.Call(func=ast.Attribute(value=ast.Name(id="_sk_ops", ctx=ast.Load()),
                                           attr=name, ctx=ast.Load()),
                        args=list(args), keywords=[])

    def visit_Subscript(self, node):
        node.value = self.visit(node.value)  # (the index: offsets, left to the rewriter)
        return node

    def visit_BinOp(self, node):
        self.generic_visit(node)
        return self._call(node.op, node.left, node.right) if type(node.op) in self._OPS \
            else node

    def visit_UnaryOp(self, node):
        if isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
            return node
        self.generic_visit(node)
        return self._call(node.op, node.operand) if type(node.op) in self._OPS else node

    def visit_Compare(self, node):
        self.generic_visit(node)
        if len(node.ops) == 1 and type(node.ops[0]) in self._OPS:
            return self._call(node.ops[0], node.left, node.comparators[0])
        return node

    def visit_AugAssign(self, node):
        self.generic_visit(node)
        if not isinstance(node.target, ast.Name) or type(node.op) not in self._OPS:
            return node
        load = ast.Name(id=node.target.id, ctx=ast.Load())
        return ast.copy_location(
            ast.Assign(targets=[node.target], value=self._call(node.op, load, node.value)),
            node)

    def visit_IfExp(self, node):
        self.generic_visit(node)

        def thunk(body):
            return ast.Lambda(args=ast.arguments(posonlyargs=[], args=[], kwonlyargs=[],
                                                 kw_defaults=[], defaults=[]), body=body)

        return self._call("select", node.test, thunk(node.body), thunk(node.orelse))


class _IntegerOps(ast.NodeTransformer):
    """Route the body's conversions to integers and its shifts through :mod:`stencilkit._casts`.

    ``int(x)``, ``np.uint8(x)`` (any NumPy or numba integer type), ``math.floor``/``ceil``/
    ``trunc(x)`` and ``round(x)`` become ``_sk_int(x)``, ``_sk_to_int(x, np.uint8)``,
    ``_sk_floor_int(x)`` and friends: the same value for an integer or bool ``x``, and for a
    float one truncated (floored, rounded) toward the integer, saturated at the type's limits,
    NaN 0, on every backend; numba's own conversion is undefined there (x86 and CUDA differ).
    ``a << b`` and ``a >> b`` (and ``<<=``, ``>>=``) become ``_sk_shl(a, b)``/``_sk_shr(a,
    b)``: NumPy's shifts, a count outside 0..63 giving 0 (a negative ``a`` shifted right: -1),
    where numba's is undefined (its vector loop gave 0, its scalar remainder x86's count
    modulo 64, in one call). The C++ path computes both the same way (``sk_f2i_*``,
    ``sk_shl_*``/``sk_shr_*`` in :mod:`stencilkit.codegen_cpp`).
    """

    _SHIFTS = {ast.LShift: "_sk_shl", ast.RShift: "_sk_shr"}

    _CALLS = {int: "_sk_int", round: "_sk_round_int", math.floor: "_sk_floor_int",
              math.ceil: "_sk_ceil_int", math.trunc: "_sk_trunc_int"}
    IMPORTS = ("from stencilkit._casts import to_int as _sk_to_int, int_ as _sk_int, "
               "round_int as _sk_round_int, floor_int as _sk_floor_int, "
               "ceil_int as _sk_ceil_int, trunc_int as _sk_trunc_int, shl as _sk_shl, "
               "shr as _sk_shr")

    def __init__(self, spec: KernelSpec, fdef: ast.FunctionDef):
        self.globals = spec.globals
        self.local = {a.arg for a in ast.walk(fdef) if isinstance(a, ast.arg)} | {
            n.id for n in ast.walk(fdef)
            if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}

    def named(self, node):
        """The object a name or dotted name of the body stands for (None: a local, unknown)."""
        if isinstance(node, ast.Name):
            if node.id in self.local:
                return None
            if node.id in self.globals:
                return self.globals[node.id]
            return getattr(builtins, node.id, None)
        if isinstance(node, ast.Attribute):
            owner = self.named(node.value)
            if isinstance(owner, types.ModuleType):
                return getattr(owner, node.attr, None)
        return None

    def visit_BinOp(self, node):
        self.generic_visit(node)
        name = self._SHIFTS.get(type(node.op))
        if name is None:
            return node
        return ast.Call(func=ast.Name(id=name, ctx=ast.Load()), args=[node.left, node.right],
                        keywords=[])

    def visit_AugAssign(self, node):
        self.generic_visit(node)
        name = self._SHIFTS.get(type(node.op))
        if name is None or not isinstance(node.target, ast.Name):
            return node
        value = ast.Call(func=ast.Name(id=name, ctx=ast.Load()),
                         args=[ast.Name(id=node.target.id, ctx=ast.Load()), node.value],
                         keywords=[])
        return ast.Assign(targets=[node.target], value=value, lineno=node.lineno)

    def visit_Call(self, node):
        self.generic_visit(node)
        if len(node.args) != 1 or node.keywords or isinstance(node.args[0], ast.Starred):
            return node
        fn = self.named(node.func)
        try:
            name = self._CALLS.get(fn)
        except TypeError:  # (unhashable)
            return node
        if name is not None:
            return ast.Call(func=ast.Name(id=name, ctx=ast.Load()), args=node.args,
                            keywords=[])
        if _integer_type(fn):
            return ast.Call(func=ast.Name(id="_sk_to_int", ctx=ast.Load()),
                            args=[node.args[0], node.func], keywords=[])
        return node


def _integer_type(obj) -> bool:
    """Whether ``obj`` is a NumPy integer scalar type or a numba integer type."""
    if isinstance(obj, type):
        return issubclass(obj, np.integer)
    from numba.core import types as nb_types

    return isinstance(obj, nb_types.Integer)


def _body(spec: KernelSpec, context: str, debug: bool, strong_literals: bool = False,
          narrow: tuple = ()):
    fdef = copy.deepcopy(spec.tree)
    _attach_offsets(spec, fdef)
    fdef = _IntegerOps(spec, fdef).visit(fdef)
    fdef = _narrow.Rewrite(narrow, spec).apply(fdef)
    rewriter = _Rewriter(spec, context, debug)
    new = rewriter.visit(fdef)
    if strong_literals:
        new = _StrongLiterals().visit(new)
    prologue = [
        f"{var} = _sk_map(_sk_i{d} + {o}, _sk_n{d}, _sk_mode)"
        for (d, o), var in sorted(rewriter.maps.items())
    ]
    return "\n".join("    " + line for line in prologue + _stmts(new)), rewriter.rows


def _attach_offsets(spec: KernelSpec, fdef: ast.FunctionDef) -> None:
    """Write the parser's folded offsets into the deep-copied subscripts.

    Subscripts are matched in walk order, since a deep copy loses node identity.
    """
    originals = [
        n for n in ast.walk(spec.tree)
        if isinstance(n, ast.Subscript) and isinstance(n.value, ast.Name)
        and n.value.id in spec.arrays
    ]
    copies = [
        n for n in ast.walk(fdef)
        if isinstance(n, ast.Subscript) and isinstance(n.value, ast.Name)
        and n.value.id in spec.arrays
    ]
    by_node = {id(a.node): a for a in spec.accesses}
    for orig, dup in zip(originals, copies):
        access = by_node[id(orig)]
        dup.slice = ast.Tuple(
            elts=[
                ast.Constant(o) if isinstance(o, int) else ast.parse(o, mode="eval").body
                for o in access.offsets
            ],
            ctx=ast.Load(),
        )


def _stmts(fdef: ast.FunctionDef):
    return "\n".join(ast.unparse(s) for s in fdef.body).splitlines()


def _names(spec: KernelSpec):
    """The generated code's names for a kernel: arrays, parameters, indices, lengths, radii."""
    k = spec.ndim
    return types.SimpleNamespace(
        k=k,
        last=k - 1,
        arrays=list(spec.arrays),
        params=list(spec.params),
        A=", ".join(spec.arrays),
        P="".join(f", {p}" for p in spec.params),
        IX=[f"_sk_i{d}" for d in range(k)],
        N=[f"_sk_n{d}" for d in range(k)],
        all_n=", ".join(f"_sk_n{d}" for d in range(k)),
        rb=[r[0] for r in spec.radius],
        ra=[r[1] for r in spec.radius],
    )


def _preamble(spec: KernelSpec, target: str) -> list[str]:
    """The generated module's first lines: what it is, and the kernel's own source."""
    return [
        f"# Generated by stencilkit{target} from kernel {spec.name!r}; do not edit.",
        "# The kernel's source, for reference:",
        *("#   " + line for line in spec.source.splitlines()),
    ]


def _read_function(k: int) -> list[str]:
    """``_sk_read``: one element read through the mode's index map on every axis (cval outside)."""
    all_n = ", ".join(f"_sk_n{d}" for d in range(k))
    return [
        "@_sk_njit",
        f"def _sk_read(a, _sk_b, {', '.join(f'k{d}' for d in range(k))}, {all_n}, _sk_mode, "
        "_sk_cval, _sk_acc):",
        *(f"    q{d} = _sk_map(k{d}, _sk_n{d}, _sk_mode)" for d in range(k)),
        "    if " + " or ".join(f"q{d} < 0" for d in range(k)) + ":",
        "        return _sk_cval",
        f"    return _sk_widen(a[_sk_b, {', '.join(f'q{d}' for d in range(k))}], _sk_acc)",
        "",
    ]


def _row_order(rb, ra, last: int) -> list[int]:
    """The leading core axes from the slowest-varying row index to the fastest.

    The axis the kernel reaches furthest along varies fastest, so consecutive rows share most
    of their input rows while those are in cache; ties keep C order (the last varies fastest).
    In C order a kernel reaching along an outer axis reads each input row again only a plane
    later, from memory: a 17-tap sum of 8-bit data along axis 0 of a 64 x 2048 x 2048 volume
    took 118 ms, 40 ms in this order. Each output is computed as before.
    """
    return sorted(range(last), key=lambda d: (rb[d] + ra[d], d))


def _split_row(row: str, IX, N, order) -> list[str]:
    """Lines (in a loop body) that split a row number into ``_sk_b`` and the leading indices.

    ``order``: the leading axes from the slowest-varying to the fastest.
    Fresh names at each step: numba's parfors refuse reassignments derived from the loop index.
    """
    lines = []
    prev = row
    for d in reversed(order):
        nxt = f"_sk_q{d}"
        lines += [f"        {nxt} = {prev} // {N[d]}",
                  f"        {IX[d]} = {prev} - {nxt} * {N[d]}"]
        prev = nxt
    return lines + [f"        _sk_b = {prev}"]


def _jitted(signature: str, body: str) -> list[str]:
    """Lines of one generated ``@_sk_njit`` function (after a blank line)."""
    return ["", "@_sk_njit", f"def {signature}:", body]


class _Points(NamedTuple):
    """The point functions of a CPU module, and how the runner calls them."""

    lines: list  # the jitted point functions' source
    use_rows: bool  # row-based reads (constant offsets along the leading axes) or direct ones
    interior_call: str
    edge_call: str | None
    row_index: list  # row bases of an interior row
    row_mapped: list  # ... of a border row (mapped by the mode)
    rows_ok: str  # whether every mapped row lies inside the array (constant mode: may not)
    row_setup: list
    outside_setup: list = []  # bases and flags of a row that reads rows outside the array
    outside_call: str | None = None  # the edge function for such a row's columns


@with_ast_lock
def generate(spec: KernelSpec, *, fastmath: bool, debug: bool, cache: bool, gufunc: dict,
             narrow: tuple = (), inline_large: bool = True) -> str:
    """Return the source of the module that compiles ``spec``.

    ``gufunc`` holds the defaults baked into ``_sk_gufunc``: ``mode`` (int code), ``cval``,
    ``acc`` (dtype or None for the default policy). The module, step by step: the shared
    helpers (:func:`_cpu_header`), the point functions that compute one output
    (:func:`_cpu_points`), the element-wise border path of kernels with run-time offsets along
    a leading axis (:func:`_cpu_border`), the parallel and serial runners
    (:func:`_cpu_runners`) and the gufunc's inner loop (:func:`_cpu_gufunc`).

    ``narrow``: the body's integer variables held in 16 or 32 bits
    (:func:`stencilkit._narrow.decide`), valid only for the dtypes it was decided for; such a
    module has no gufunc (whose loops serve every dtype). ``inline_large``: a body of more than
    :data:`INLINE_NODES` syntax nodes inlined by numba.
    """
    nm = _names(spec)
    points = _cpu_points(spec, nm, debug, narrow, inline_large)
    held = [f"# held narrow for the dtypes of the calls it serves: "
            f"{', '.join(f'{n} {t}' for n, t in narrow)}"] if narrow else []
    return "\n".join([
        *_cpu_header(spec, nm, fastmath, debug, cache),
        *held,
        *points.lines,
        *([] if points.use_rows else _cpu_border(spec, nm, debug, narrow)),
        *_cpu_runners(spec, nm, points),
        *([] if narrow else _cpu_gufunc(spec, nm, gufunc)),
    ])


def _cpu_header(spec, nm, fastmath, debug, cache) -> list[str]:
    """Imports, compiler options, the mode's index map and the read helpers."""
    return [
        *_preamble(spec, ""),
        "import numpy as _sk_np",
        "import numba as _sk_numba",
        "from stencilkit._casts import widen as _sk_widen, store_cast as _sk_store_cast",
        "from stencilkit._casts import default_acc as _sk_default_acc",
        _IntegerOps.IMPORTS,
        "",
        f"_sk_opts = dict(cache={cache}, fastmath={fastmath}, boundscheck={debug}, "
        "error_model='numpy', nogil=True)",
        # the helpers are called from the runners only: no CPython or cfunc wrappers (building
        # them was a tenth of a module's compile time)
        "_sk_njit = _sk_numba.njit(no_cpython_wrapper=True, no_cfunc_wrapper=True, **_sk_opts)",
        modes.MAP_SOURCE,
        "",
        "@_sk_njit",
        "def _sk_chk(v, lo, hi):",
        "    if v < lo or v > hi:",
        "        raise IndexError('stencil kernel read outside its declared neighborhood')",
        "    return v",
        "",
        "",
        "@_sk_njit",
        "def _sk_read_flat(f, row, c, _sk_cval, _sk_acc):",
        "    if c < 0:",
        "        return _sk_cval",
        "    return _sk_widen(f[row + _sk_np.uint64(c)], _sk_acc)",
        "",
        "",
        "@_sk_njit",
        "def _sk_read_flag(f, row, c, v, _sk_cval, _sk_acc):",
        "    if c < 0 or not v:",
        "        return _sk_cval",
        "    return _sk_widen(f[row + _sk_np.uint64(c)], _sk_acc)",
        "",
        "",
        *_read_function(nm.k),
    ]


def _strides(nm) -> list[str]:
    # Element strides of the C-contiguous (B, n0, ..., nk-1) arrays; row bases are built from
    # them in the runner.
    return [f"_sk_S{d}" for d in range(nm.k)]


def _cpu_points(spec, nm, debug, narrow=(), inline_large=True) -> _Points:
    """The kernel body as point functions that compute one output each.

    Per row of reads (interior and edge columns) when the offsets along the leading axes are
    constants, else one function that indexes directly.
    """
    last, A, P, IX, N = nm.last, nm.A, nm.P, nm.IX, nm.N
    flat = ", ".join(f"_sk_f_{a}" for a in nm.arrays)
    strides = _strides(nm)
    lines = []
    use_rows = all(isinstance(o, int) for a in spec.accesses for o in a.offsets[:last])
    if not use_rows:
        body, _ = _body(spec, "direct", debug, narrow=narrow)
        lines += _jitted(f"_sk_pt_direct({A}, _sk_b, {', '.join(IX)}, _sk_acc{P})", body)
        # The span loop counts from the span's start _sk_s; direct indexing wants the column.
        cols = ", ".join(IX[:last] + [f"_sk_s + {IX[last]}"])
        interior_call = f"_sk_pt_direct({A}, _sk_b, {cols}, _sk_acc{P})"
        return _Points(lines, False, interior_call, None, [], [], "True", [])
    body, rows = _body(spec, "rows", debug, narrow=narrow)
    row_names = list(rows.values())
    lines += _jitted(f"_sk_pt_rows({flat}, {', '.join(row_names)}, _sk_j, _sk_acc{P})",
                     body)
    if inline_large and sum(1 for _ in ast.walk(spec.tree)) > INLINE_NODES:
        lines[-3] = ("@_sk_numba.njit(inline='always', no_cpython_wrapper=True, "
                     "no_cfunc_wrapper=True, **_sk_opts)")
    # One flag per row of reads (by its leading offsets): whether it lies inside the array.
    row_leads = list(dict.fromkeys(lead for _, lead in rows)) if last else []
    flags = [_row_flag(lead) for lead in row_leads]
    body, _ = _body(spec, "edge", debug, narrow=narrow)
    lines += _jitted(f"_sk_pt_edge({flat}, {', '.join(row_names + flags)}, {IX[last]}, "
                     f"{N[last]}, _sk_mode, _sk_cval, _sk_acc{P})", body)
    # Row indices along the leading core axes: plain in interior rows, mapped by the mode in
    # border rows (so border rows run the same vectorised span loop). Only the constant mode
    # has rows outside the array (mapped to -1); a row of outputs that reads one runs the edge
    # function in every column, told which rows give cval. (An element-wise path that maps
    # every axis, as _sk_pt_border does, compiled the body a third time: a third of a
    # module's compile time.)
    leads = sorted({(d, o) for lead in (key[1] for key in rows) for d, o in enumerate(lead)})
    qname = {(d, o): f"_sk_q{d}_{_enc(o)}" for d, o in leads}
    row_index = [f"{qname[d, o]} = {IX[d]} + {o}" for d, o in leads]
    row_mapped = [
        f"{qname[d, o]} = _sk_map({IX[d]} + {o}, {N[d]}, _sk_mode)" for d, o in leads
    ]
    rows_ok = " and ".join(f"{q} >= 0" for q in qname.values()) or "True"
    bases = [rname.replace("_sk_r_", "_sk_R_", 1) for rname in row_names]

    def base_of(lead, index):
        return ("_sk_np.uint64(_sk_b * _sk_SB"
                + "".join(f" + {index(qname[d, o])} * {strides[d]}" for d, o in enumerate(lead))
                + ")")

    row_setup = [f"{base} = {base_of(lead, str)}"
                 for ((arr, lead), rname), base in zip(rows.items(), bases)]
    # the outside rows' bases point at row 0 (never read: their flag is False); fresh names,
    # as parfors want
    outside = [b.replace("_sk_R_", "_sk_Z_", 1) for b in bases]
    outside_setup = [
        f"{z} = {base_of(lead, lambda q: f'max({q}, 0)')}"
        for ((arr, lead), rname), z in zip(rows.items(), outside)
    ] + [
        f"{flag} = " + (" and ".join(f"{qname[d, o]} >= 0" for d, o in enumerate(lead)))
        for flag, lead in zip(flags, row_leads)
    ]
    shifted = ", ".join(f"{b} + _sk_sh" for b in bases)
    interior_call = f"_sk_pt_rows({flat}, {shifted}, _sk_j, _sk_acc{P})"
    inside = ["_sk_np.bool_(True)"] * len(flags)  # (a literal True would compile it twice)
    edge_call = (f"_sk_pt_edge({flat}, {', '.join(bases + inside)}, _sk_jj, {N[last]}, "
                 f"_sk_mode, _sk_cval, _sk_acc{P})")
    outside_call = (f"_sk_pt_edge({flat}, {', '.join(outside + flags)}, _sk_jj, {N[last]}, "
                    f"_sk_mode, _sk_cval, _sk_acc{P})")
    return _Points(lines, True, interior_call, edge_call, row_index, row_mapped, rows_ok,
                   row_setup, outside_setup, outside_call)


def _cpu_border(spec, nm, debug, narrow=()) -> list[str]:
    """The element-wise border path: every read mapped by the mode (or cval, or skipped).

    Only for kernels whose offsets along a leading axis are computed at run time (the others'
    border rows run the row and edge functions, :func:`_cpu_points`).
    """
    last, A, P, IX, all_n = nm.last, nm.A, nm.P, nm.IX, nm.all_n
    lead_i = "".join(f", {i}" for i in IX[:last])
    body, _ = _body(spec, "border", debug, narrow=narrow)
    return _jitted(f"_sk_pt_border({A}, _sk_b, {', '.join(IX)}, {all_n}, _sk_mode, "
                   f"_sk_cval, _sk_acc{P})", body) + [
        "",
        "",
        "@_sk_njit",
        f"def _sk_border({A}, _sk_fo, _sk_orow, _sk_b{lead_i}, _sk_ja, _sk_jb, {all_n}, "
        f"_sk_mode, _sk_cval, _sk_cvout, _sk_acc{P}):",
        f"    for {IX[last]} in range(_sk_ja, _sk_jb):",
        f"        _sk_at = _sk_orow + _sk_np.uint64({IX[last]})",
        f"        if _sk_mode == {modes.SKIP}:",
        "            _sk_fo[_sk_at] = _sk_cvout",
        "        else:",
        f"            _sk_fo[_sk_at] = _sk_store_cast(_sk_pt_border({A}, _sk_b, {', '.join(IX)}, "
        f"{all_n}, _sk_mode, _sk_cval, _sk_acc{P}), _sk_fo)",
        "",
    ]


def _cpu_runners(spec, nm, points: _Points) -> list[str]:
    """``_sk_run_par`` and ``_sk_run_ser``: the loop nest over (batch, rows, column spans)."""
    k, last, arrays, A, P, IX, N, all_n, rb, ra = (
        nm.k, nm.last, nm.arrays, nm.A, nm.P, nm.IX, nm.N, nm.all_n, nm.rb, nm.ra)
    lead_i = "".join(f", {i}" for i in IX[:last])
    strides = _strides(nm)
    interior_call = points.interior_call
    border_args = lambda ja, jb: (  # noqa: E731
        f"_sk_border({A}, _sk_fo, _sk_orow, _sk_b{lead_i}, {ja}, {jb}, {all_n}, _sk_mode, "
        f"_sk_cval, _sk_cvout, _sk_acc{P})"
    )
    interior_rows = " and ".join(
        f"{rb[d]} <= {IX[d]} < {N[d]} - {ra[d]}" for d in range(last)
    ) or "True"
    run = [
        f"def _sk_run_NAME({A}, _sk_out, _sk_mode, _sk_cval, _sk_cvout, _sk_acc{P}):",
        "    # Every array arrives C-contiguous with shape (B, n0, ..., nk-1).",
        "    _sk_B = _sk_out.shape[0]",
        *(f"    {N[d]} = _sk_out.shape[{d + 1}]" for d in range(k)),
        f"    {strides[last]} = 1",
        *(f"    {strides[d]} = {N[d + 1]} * {strides[d + 1]}" for d in reversed(range(last))),
        f"    _sk_SB = {N[0]} * {strides[0]}",
        *(f"    _sk_f_{a} = {a}.reshape(-1)" for a in arrays),
        "    _sk_fo = _sk_out.reshape(-1)",
        f"    _sk_lo = min({rb[last]}, {N[last]})",
        f"    _sk_hi = max({N[last]} - {ra[last]}, _sk_lo)",
    ]
    # The parallel loop runs over rows (batch x all but the last core axis). Only 1-D kernels
    # also split the row into column blocks, so that one long signal still uses every core; for
    # the others the divisions that would decompose a block index cost more than they give
    # (integer division dominates the per-row overhead of 100 x 100 frames).
    # Fresh names at each step: parfors refuse any reassignment derived from the loop index.
    if k == 1:
        run += [
            f"    _sk_nblk = ({N[last]} + {BLOCK - 1}) // {BLOCK}",
            "    for _sk_t in _sk_numba.prange(_sk_B * _sk_nblk):",
            "        _sk_b = _sk_t // _sk_nblk",
            "        _sk_ja = (_sk_t - _sk_b * _sk_nblk) * " + str(BLOCK),
            f"        _sk_jb = min(_sk_ja + {BLOCK}, {N[last]})",
        ]
    else:
        run += [
            "    for _sk_t in _sk_numba.prange(_sk_B * "
            + " * ".join(N[d] for d in range(last)) + "):",
            *_split_row("_sk_t", IX, N, _row_order(rb, ra, last)),
            "        _sk_ja = 0",
            f"        _sk_jb = {N[last]}",
        ]
    run += [
        "        _sk_orow = _sk_np.uint64(_sk_b * _sk_SB"
        + "".join(f" + {IX[d]} * {strides[d]}" for d in range(last)) + ")",
        "        _sk_s = max(_sk_ja, _sk_lo)",
        "        _sk_e = min(_sk_jb, _sk_hi)",
        "        _sk_le = min(_sk_jb, _sk_lo)",
        "        _sk_rs = max(_sk_ja, _sk_hi, _sk_lo)",
        f"        _sk_inner = {interior_rows}",
    ]
    if points.use_rows:
        def edge_loop(lo, hi, value, indent=16):
            return [
                " " * indent + f"for _sk_jj in range({lo}, {hi}):",
                " " * indent + f"    _sk_fo[_sk_orow + _sk_np.uint64(_sk_jj)] = {value}",
            ]

        edge_value = f"_sk_store_cast({points.edge_call}, _sk_fo)"
        run += [
            "        if _sk_inner:",
            *(f"            {x}" for x in points.row_index or ["pass"]),
            f"        elif _sk_mode != {modes.SKIP}:",
            *(f"            {x}" for x in points.row_mapped or ["pass"]),
            f"        if _sk_inner or (_sk_mode != {modes.SKIP} and {points.rows_ok}):",
            *(f"            {x}" for x in points.row_setup),
            "            if _sk_e > _sk_s:",
            f"                _sk_sh = _sk_np.uint64(_sk_s - {rb[last]})",
            "                _sk_ob = _sk_orow + _sk_np.uint64(_sk_s)",
            f"                for {IX[last]} in range(_sk_e - _sk_s):",
            f"                    _sk_j = _sk_np.uint64({IX[last]})",
            f"                    _sk_fo[_sk_ob + _sk_j] = _sk_store_cast({interior_call}, _sk_fo)",
            f"            if _sk_mode == {modes.SKIP}:",
            *edge_loop("_sk_ja", "_sk_le", "_sk_cvout"),
            *edge_loop("_sk_rs", "_sk_jb", "_sk_cvout"),
            "            else:",
            *edge_loop("_sk_ja", "_sk_le", edge_value),
            *edge_loop("_sk_rs", "_sk_jb", edge_value),
            f"        elif _sk_mode == {modes.SKIP}:",
            *edge_loop("_sk_ja", "_sk_jb", "_sk_cvout", 12),
            "        else:",
            *(f"            {x}" for x in points.outside_setup),
            *edge_loop("_sk_ja", "_sk_jb", f"_sk_store_cast({points.outside_call}, _sk_fo)",
                       12),
        ]
    else:
        run += [
            "        if _sk_inner:",
            "            if _sk_e > _sk_s:",
            "                _sk_ob = _sk_orow + _sk_np.uint64(_sk_s)",
            f"                for {IX[last]} in range(_sk_e - _sk_s):",
            f"                    _sk_j = _sk_np.uint64({IX[last]})",
            f"                    _sk_fo[_sk_ob + _sk_j] = _sk_store_cast({interior_call}, _sk_fo)",
            f"            {border_args('_sk_ja', '_sk_le')}",
            f"            {border_args('_sk_rs', '_sk_jb')}",
            "        else:",
            f"            {border_args('_sk_ja', '_sk_jb')}",
        ]
    run += ["", ""]
    run_text = "\n".join(run)
    return [
        "",
        "@_sk_numba.njit(parallel=True, **_sk_opts)",
        run_text.replace("NAME", "par"),
        "@_sk_numba.njit(**_sk_opts)",  # (called from Python: wrapped)
        run_text.replace("NAME", "ser"),
    ]



def _cpu_gufunc(spec, nm, gufunc) -> list[str]:
    """``_sk_gufunc``: the inner loop of the kernel's generalized ufunc (one core array)."""
    arrays, A, P = nm.arrays, nm.A, nm.P
    cval = gufunc["cval"]
    acc = gufunc["acc"]
    acc_expr = f"_sk_np.{np.dtype(acc).name}(0)" if acc is not None else \
        f"_sk_default_acc({arrays[0]})"
    batched = ", ".join(f"_sk_np.ascontiguousarray({a})[None]" for a in arrays)
    return [
        "",
        "# gufunc inner loops may hand in strided core arrays; the runner wants C-contiguous ones.",
        f"def _sk_gufunc({A}{P}, _sk_out):",
        f"    _sk_acc = {acc_expr}",
        "    _sk_tmp = _sk_np.empty(_sk_out.shape, _sk_out.dtype)",
        f"    _sk_run_ser({batched}, _sk_tmp[None], {gufunc['mode']}, "
        f"_sk_widen({_literal(cval)}, _sk_acc), _sk_store_cast({_literal(cval)}, _sk_out), "
        f"_sk_acc{P})",
        "    _sk_out[...] = _sk_tmp",
        "",
    ]


class _NumpyCalls(ast.NodeTransformer):
    """Route calls of NumPy functions the CUDA target lacks to stencilkit's device versions."""

    def __init__(self, spec: KernelSpec):
        self.numpy = {name for name, value in spec.globals.items() if value is np}
        self.rint = {name for name, value in spec.globals.items() if value is np.rint}

    def visit_Call(self, node):
        self.generic_visit(node)
        f = node.func
        if (isinstance(f, ast.Attribute) and f.attr == "rint" and isinstance(f.value, ast.Name)
                and f.value.id in self.numpy) or (isinstance(f, ast.Name) and f.id in self.rint):
            node.func = ast.Name(id="_sk_rint", ctx=ast.Load())
        return node


def _cuda_body(spec: KernelSpec, context: str, simulator: bool):
    """The body rewritten for one context, with the CUDA target's NumPy replacements."""
    fdef = copy.deepcopy(spec.tree)
    _attach_offsets(spec, fdef)
    fdef = _IntegerOps(spec, fdef).visit(fdef)
    if simulator:
        fdef = _SimulatorOps().visit(fdef)
    rewriter = _Rewriter(spec, context, False)
    new = _StrongLiterals().visit(_NumpyCalls(spec).visit(rewriter.visit(fdef)))
    prologue = [
        f"{var} = _sk_map(_sk_i{d} + {o}, _sk_n{d}, _sk_mode)"
        for (d, o), var in sorted(rewriter.maps.items())
    ]
    return "\n".join("    " + line for line in prologue + _stmts(new))


def _cuda_point(spec: KernelSpec, simulator: bool):
    """``_sk_point(values..., params)``: the body over its constant reads' values."""
    from ._cpp_body import point_source

    source, reads = point_source(spec)
    tree = ast.parse(source)
    tree = _IntegerOps(spec, tree.body[0]).visit(tree)
    if simulator:
        tree = _SimulatorOps().visit(tree)
    tree = _StrongLiterals().visit(_NumpyCalls(spec).visit(tree))
    ast.fix_missing_locations(tree)
    return ast.unparse(tree), reads


@with_ast_lock
def generate_cuda(spec: KernelSpec, *, fastmath: bool, cache: bool, idx64: bool = True,
                  simulator: bool = False) -> str:
    """Return the source of the numba.cuda module that runs ``spec`` (the fallback path).

    The same parsed body as the CPU module, rewritten by the same :class:`_Rewriter` for the
    border and with the same explicit conversions (``_sk_widen`` on every read,
    ``_sk_store_cast`` on every store): under the CUDA simulator these run as Python on NumPy
    scalars, on a device as the numba overloads the CPU uses, so both give the CPU backend's
    bits (up to the multiply-adds a GPU fuses: numba.cuda has no switch against it). With
    ``simulator``, for numba's CUDA simulator, the body's operators are calls of numba's
    signatures (:class:`_SimulatorOps`), which the simulator's NumPy scalars lack. The
    kernels have the shapes of the generated CUDA C++ (:mod:`stencilkit.codegen_cpp`), which
    takes over wherever it covers the kernel and CuPy is installed:

    ``_sk_cuda_interior``
        the interior only, no boundary logic: each thread owns one column of a strip of rows
        and walks down it, keeping the rows it has read in registers (one ring per column
        offset) and indexing the flat arrays with unsigned offsets (32-bit unless
        ``idx64``) advanced a row per step, so numba emits no negative-index test. Kernels
        with run-time offsets read through ``_sk_pt_direct`` instead of rings.
    ``_sk_cuda_border``
        every other element, enumerated flat (border rows whole, then the columns at either
        end of the other rows): reads through the mode's index map; ``skip`` writes cval.

    Indices that can exceed 32 bits (plane and strip numbers, the flat border index) are
    64-bit: ``cuda.grid`` computes ``blockIdx * blockDim`` in 32 bits and overflows past
    2**31 threads (numba #9229).
    """
    nm = _names(spec)
    dynamic = any(isinstance(o, str) for a in spec.accesses for o in a.offsets)
    lines, reads = _cuda_header(spec, nm, fastmath, dynamic, simulator)
    head = _cuda_head(spec, nm)
    lines += _cuda_interior(spec, nm, fastmath, cache, idx64, dynamic, reads, head)
    lines += _cuda_border(spec, nm, fastmath, cache, head)
    return "\n".join(lines)


def _cuda_header(spec, nm, fastmath, dynamic, simulator):
    """Imports, the mode's index map, and the device functions.

    The border's point function and the interior's (``_sk_pt_direct``, or ``_sk_point`` of the
    reads it is given). Returns the lines and the interior's reads (none for run-time offsets).
    """
    k, A, P, IX, all_n = nm.k, nm.A, nm.P, nm.IX, nm.all_n
    lines = [
        *_preamble(spec, " (CUDA)"),
        "import numpy as _sk_np",
        "from numba import cuda as _sk_cuda",
        "from stencilkit._casts import widen as _sk_widen, store_cast as _sk_store_cast",
        "from stencilkit._casts import rint as _sk_rint",
        _IntegerOps.IMPORTS,
        *(["from stencilkit._scalar_ops import shl as _sk_shl, shr as _sk_shr"]
          if simulator else []),
        "",
        f"_sk_njit = _sk_cuda.jit(device=True, fastmath={fastmath})",
        modes.MAP_SOURCE,
        *_read_function(k),
    ]
    lines += ["", "@_sk_njit", f"def _sk_pt_border({A}, _sk_b, {', '.join(IX)}, {all_n}, "
              f"_sk_mode, _sk_cval, _sk_acc{P}):", _cuda_body(spec, "border", simulator)]
    if dynamic:
        lines += ["", "@_sk_njit", f"def _sk_pt_direct({A}, _sk_b, {', '.join(IX)}, _sk_acc{P}):",
                  _cuda_body(spec, "direct", simulator)]
        reads = []
    else:
        point, reads = _cuda_point(spec, simulator)
        lines += ["", "@_sk_njit", point]
    return lines, reads


def _cuda_head(spec, nm) -> list[str]:
    """The first lines of both kernels: shapes, element strides, the flat views."""
    k, last, N = nm.k, nm.last, nm.N
    strides = [f"    _sk_S{last} = 1"] + [f"    _sk_S{d} = {N[d + 1]} * _sk_S{d + 1}"
                                            for d in reversed(range(last))]
    shape = [f"    {N[d]} = _sk_np.int64(_sk_out.shape[{d + 1}])" for d in range(k)]
    return [
        "    _sk_B = _sk_np.int64(_sk_out.shape[0])", *shape, *strides,
        f"    _sk_SB = {N[0]} * _sk_S0",
        *(f"    _sk_f_{a} = {a}.reshape(-1)" for a in spec.arrays),
        "    _sk_fo = _sk_out.reshape(-1)",
    ]


def _cuda_interior(spec, nm, fastmath, cache, idx64, dynamic, reads, head) -> list[str]:
    """``_sk_cuda_interior``: a column per thread walking a strip of rows.

    As :func:`generate_cuda` says, with register rings per (array, plane offsets, column
    offset).
    """
    k, last, A, P, IX, N, rb, ra = nm.k, nm.last, nm.A, nm.P, nm.IX, nm.N, nm.rb, nm.ra
    ix = "_sk_np.uint64" if idx64 else "_sk_np.uint32"
    inner = [f"({N[d]} - {rb[d] + ra[d]})" for d in range(k)]
    lines = ["", "", f"@_sk_cuda.jit(fastmath={fastmath}, cache={cache})",
              f"def _sk_cuda_interior({A}, _sk_out, _sk_rows, _sk_acc{P}):", *head,
              f"    {IX[last]} = ({rb[last]} + _sk_np.int64(_sk_cuda.blockIdx.x) * "
              f"_sk_cuda.blockDim.x + _sk_cuda.threadIdx.x)",
              f"    if {IX[last]} >= {N[last]} - {ra[last]}:",
              "        return"]
    if k == 1:
        lines += ["    for _sk_b in range(_sk_cuda.blockIdx.y, _sk_B, _sk_cuda.gridDim.y):"]
        if dynamic:
            lines += [f"        _sk_out[_sk_b, {IX[0]}] = _sk_store_cast(_sk_pt_direct({A}, _sk_b, "
                      f"{IX[0]}, _sk_acc{P}), _sk_out)"]
        else:
            lines += [f"        _sk_c = _sk_b * _sk_SB + {IX[0]}"]
            vals = [f"_sk_widen(_sk_f_{a}[{ix}(_sk_c + ({o[0]}))], _sk_acc)" for a, o in reads]
            lines += [f"        _sk_fo[{ix}(_sk_c)] = _sk_store_cast(_sk_point("
                      f"{', '.join(vals)}{P}), _sk_fo)"]
    else:
        W = k - 2
        lines += [
            f"    _sk_lo = {rb[W]} + (_sk_np.int64(_sk_cuda.blockIdx.y) * _sk_cuda.blockDim.y "
            "+ _sk_cuda.threadIdx.y) * _sk_rows",
            f"    _sk_hiw = {N[W]} - {ra[W]}",
            "    if _sk_lo >= _sk_hiw:",
            "        return",
            "    _sk_hi = min(_sk_lo + _sk_rows, _sk_hiw)",
            "    _sk_planes = _sk_B" + "".join(f" * {inner[d]}" for d in range(W)),
            f"    _sk_step = {ix}(_sk_S{W})",
            "    for _sk_p in range(_sk_cuda.blockIdx.z, _sk_planes, _sk_cuda.gridDim.z):",
            "        _sk_q = _sk_p",
        ]
        for d in reversed(range(W)):
            lines += [f"        {IX[d]} = {rb[d]} + _sk_q % {inner[d]}",
                      f"        _sk_q = _sk_q // {inner[d]}"]
        lines += ["        _sk_b = _sk_q",
                  "        _sk_base = _sk_b * _sk_SB" + "".join(f" + {IX[d]} * _sk_S{d}"
                                                         for d in range(W))
                  + f" + _sk_lo * _sk_S{W} + {IX[last]}"]
        if dynamic:
            lines += [f"        for {IX[W]} in range(_sk_lo, _sk_hi):",
                      f"            _sk_out[_sk_b, {', '.join(IX)}] = _sk_store_cast(_sk_pt_direct("
                      f"{A}, _sk_b, {', '.join(IX)}, _sk_acc{P}), _sk_out)"]
        else:
            rings = {}
            for a, offs in reads:
                key = (a, tuple(offs[:W]), offs[last])
                lo_, hi_ = rings.get(key, (offs[W], offs[W]))
                rings[key] = (min(lo_, offs[W]), max(hi_, offs[W]))
            name = {key: "_sk_r_" + key[0] + "_" + "_".join(
                [*(_enc(o) for o in key[1]), "c" + _enc(key[2])]) for key in rings}
            for key, (dmin, dmax) in sorted(rings.items()):
                a, po, e = key
                shift = "".join(f" + ({o}) * _sk_S{d}" for d, o in enumerate(po) if o)
                lines.append(f"        {name[key]}_p = {ix}(_sk_base{shift} + ({dmax}) * "
                             f"_sk_S{W} + ({e}))")
                for t in range(dmax - dmin):
                    back = dmax - dmin - t
                    lines.append(f"        {name[key]}_{t} = _sk_widen(_sk_f_{a}[{ix}(_sk_base"
                                 f"{shift} + ({dmax - back}) * _sk_S{W} + ({e}))], _sk_acc)")
            lines += [f"        _sk_o = {ix}(_sk_base)",
                      "        for _sk_i in range(_sk_lo, _sk_hi):"]
            for key, (dmin, dmax) in sorted(rings.items()):
                lines.append(f"            {name[key]}_{dmax - dmin} = _sk_widen(_sk_f_{key[0]}"
                             f"[{name[key]}_p], _sk_acc)")
            vals = []
            for a, offs in reads:
                key = (a, tuple(offs[:W]), offs[last])
                vals.append(f"{name[key]}_{offs[W] - rings[key][0]}")
            lines.append(f"            _sk_fo[_sk_o] = _sk_store_cast(_sk_point({', '.join(vals)}"
                         f"{P}), _sk_fo)")
            for key, (dmin, dmax) in sorted(rings.items()):
                for t in range(dmax - dmin):
                    lines.append(f"            {name[key]}_{t} = {name[key]}_{t + 1}")
                lines.append(f"            {name[key]}_p = {ix}({name[key]}_p + _sk_step)")
            lines.append(f"            _sk_o = {ix}(_sk_o + _sk_step)")
    return lines


def _cuda_border(spec, nm, fastmath, cache, head) -> list[str]:
    """``_sk_cuda_border``: every non-interior element, enumerated flat, through the mode."""
    k, last, A, P, IX, N, all_n, rb, ra = (
        nm.k, nm.last, nm.A, nm.P, nm.IX, nm.N, nm.all_n, nm.rb, nm.ra)
    lines = ["", "", f"@_sk_cuda.jit(fastmath={fastmath}, cache={cache})",
              f"def _sk_cuda_border({A}, _sk_out, _sk_c0, _sk_c1, _sk_mode, _sk_cval, _sk_cvout, "
              f"_sk_acc{P}):", *head]
    for d in range(last):
        lines += [f"    _sk_I{d} = max({N[d]} - {rb[d] + ra[d]}, 0)",
                  f"    _sk_E{d} = {N[d]} - _sk_I{d}",
                  f"    _sk_lo{d} = min({N[d]}, {rb[d]})"]
    counts = []
    for d in range(last):
        parts = ["_sk_B", *(f"_sk_I{e}" for e in range(d)), f"_sk_E{d}",
                 *(N[e] for e in range(d + 1, last)), N[last]]
        lines.append(f"    _sk_A{d} = {' * '.join(parts)}")
        counts.append(f"_sk_A{d}")
    lines += [f"    _sk_band = _sk_c0 + ({N[last]} - _sk_c1)",
              "    _sk_AB = _sk_B" + "".join(f" * _sk_I{d}" for d in range(last)) + " * _sk_band",
              "    _sk_total = " + " + ".join(counts + ["_sk_AB"]),
              "    _sk_stride = _sk_np.int64(_sk_cuda.gridDim.x) * _sk_cuda.blockDim.x",
              "    for _sk_t in range(_sk_np.int64(_sk_cuda.blockIdx.x) * _sk_cuda.blockDim.x "
              "+ _sk_cuda.threadIdx.x, _sk_total, _sk_stride):",
              "        _sk_u = _sk_t"]
    # the same enumeration as the C++ border kernel: box d has the axes before d interior,
    # axis d on the border and the later axes anything; then the band of the interior rows
    def interior_axes(axes):
        """Lines taking interior indices along ``axes`` (last first) from ``_sk_r``."""
        out = []
        for e in reversed(range(axes)):
            out += [f"            {IX[e]} = {rb[e]} + _sk_r % _sk_I{e}",
                    f"            _sk_r = _sk_r // _sk_I{e}"]
        return out + ["            _sk_b = _sk_r"]

    for d in range(last):
        if d == 0:
            lines.append("        if _sk_u < _sk_A0:")
        else:
            lines += [f"        elif _sk_u - ({' + '.join(counts[:d])}) < _sk_A{d}:",
                      f"            _sk_u = _sk_u - ({' + '.join(counts[:d])})"]
        lines += [f"            {IX[last]} = _sk_u % {N[last]}",
                  f"            _sk_r = _sk_u // {N[last]}"]
        for e in reversed(range(d + 1, last)):
            lines += [f"            {IX[e]} = _sk_r % {N[e]}",
                      f"            _sk_r = _sk_r // {N[e]}"]
        lines += [f"            {IX[d]} = _sk_r % _sk_E{d}",
                  f"            _sk_r = _sk_r // _sk_E{d}",
                  f"            if {IX[d]} >= _sk_lo{d}:",
                  f"                {IX[d]} += _sk_I{d}"]
        lines += interior_axes(d)
    band = [f"            {IX[last]} = _sk_u % _sk_band",
            "            _sk_r = _sk_u // _sk_band",
            f"            if {IX[last]} >= _sk_c0:",
            f"                {IX[last]} += _sk_c1 - _sk_c0",
            *interior_axes(last)]
    if last:
        lines += ["        else:", f"            _sk_u = _sk_u - ({' + '.join(counts)})", *band]
    else:  # 1-D: every row is interior, only the band's columns are left
        lines += [line[4:] for line in band]
    inside = " and ".join(f"{rb[d]} <= {IX[d]} < {N[d]} - {ra[d]}" for d in range(k))
    idx = ", ".join(["_sk_b"] + IX)
    lines += [
        f"        if _sk_mode == {modes.SKIP} and not ({inside}):",
        f"            _sk_out[{idx}] = _sk_cvout",
        "        else:",
        f"            _sk_out[{idx}] = _sk_store_cast(_sk_pt_border({A}, _sk_b, {', '.join(IX)}, "
        f"{all_n}, _sk_mode, _sk_cval, _sk_acc{P}), _sk_out)",
        "",
    ]
    return lines

