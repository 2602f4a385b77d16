"""The kernel's arithmetic as a C++ function, from numba's own typing of the kernel (CUDA C++ path).

The CUDA C++ kernels of :mod:`stencilkit.codegen_cpp` compute each output element by calling one
``__host__ __device__`` function, the *body*: the user's kernel with every constant-offset read
turned into an argument (already widened to the accumulator type) and every run-time-offset read
into a call of the array's reader. This module writes that function.

It does not guess types. It hands the body, as a scalar Python function, to numba's own front
end and type inference (the CPU pipeline up to and including type inference and phi removal,
i.e. exactly the IR numba lowers for the CPU backend), then translates that typed IR statement by
statement: every variable gets numba's type, every operation numba's implementation (Python's
floor division and modulo, numba's integer power by repeated squaring, NaN rules of ``min`` and
``np.minimum``, the casts numba inserts at each assignment), so the C++ computes what the CPU
backend computes. Calls of numba-jitted functions are typed and translated the same way, each
into a C++ function of its own (:meth:`_Translator.jitted`). Anything outside the supported
subset (complex numbers, exceptions, recursion, ...) raises
:class:`Unsupported` with the reason, and the caller falls back to the numba.cuda kernel.

Integer intervals are propagated through the IR (flow-insensitively, to a fixed point, widening
loop-carried values to their type's range), so 64-bit values that provably stay within 32 bits
(a sum of nine int8 reads, say) are computed in 32 bits: the same results, without 64-bit
arithmetic (a 64-bit division is a slow software routine on a GPU).

Supported, precisely: bool, integer (8-64 bit) and float32/64 values; arithmetic, comparison,
bitwise and shift operators; ``if``/``else``, conditional expressions, ``and``/``or``/``not``,
``for`` over ``range``, ``while``; tuples of numbers (built, copied, unpacked, iterated over,
indexed by constants and by run-time integers that provably lie within the tuple: one C++
variable per element, a run-time index choosing among them); ``abs``, ``min``, ``max``,
``round`` (one argument), ``int``, ``float``, ``bool`` and NumPy scalar types as conversions (a
float into an integer type saturates, NaN 0: ``sk_f2i_*``, as :func:`stencilkit._casts.to_int`
on the other backends);
the ``math`` functions and NumPy ufuncs listed in ``_MATH``/``_UFUNCS``; numeric constants
from modules (``np.pi``).
"""

from __future__ import annotations

import ast
import copy
import math
import operator
import re
import threading
from dataclasses import dataclass

import numpy as np

from .kernel import KernelSpec, with_ast_lock

KEEP = "_sk_keep_"
"""Integer variables of the body whose names start with this (made by :func:`share_rows`,
never the user's: the ``_sk_`` prefix is reserved) are assigned through ``sk_keep``, the
prelude's opaque copy (an empty asm on the device), so that the compiler neither reassociates
the sums they take part in nor folds them into the expressions that use them, while equal
copies still merge."""

_KEPT = ("sk_i32", "sk_u32", "sk_i64", "sk_u64")

SHARE_ROWS = True
"""Whether sums of reads whose rows repeat each other's weights are regrouped by rows
(:func:`share_rows`), where the accumulator is a signed integer or bool type (numba sums
those in int64; the default accumulator of integer data, and the filters'): a kernel
walking down the rows then computes each row's partial sum once for the outputs that hold
it. SASS instructions an output (``tools/kernel_steps.py``, ptxas 12, sm_90), before ->
after: the uniform 3 x 3 uint8 filter's word kernel 11.4 -> 10.0, Sobel uint8 10.1-10.2 ->
8.3-8.7, the user's 3 x 3 int8 mean (``tests/kernels.py``'s ``smooth``) 14.9 -> 12.0.
Integer sums are exact (wrapping ones too: modular addition is associative), so the values
are the CPU's. False: the sums as written, for A/B timing (``tools/gpu_profile.py``'s "rows
not shared" rows); part of the module caches' keys
(:func:`stencilkit.codegen_cpp.source_settings`)."""


class Unsupported(Exception):
    """The C++ emitter does not cover this kernel; ``str(exc)`` says what it met."""


# -- typing: numba's pipeline up to type inference ---------------------------------------------

_PIPELINE = None
_PIPELINE_LOCK = threading.Lock()


def _pipeline():
    """Numba's nopython pipeline, stopped right after type inference and phi removal."""
    global _PIPELINE
    with _PIPELINE_LOCK:
        if _PIPELINE is not None:
            return _PIPELINE
        from numba.core.compiler import CompilerBase, DefaultPassBuilder, _EarlyPipelineCompletion
        from numba.core.compiler_machinery import FunctionPass, register_pass
        from numba.core.typed_passes import NopythonTypeInference, PreLowerStripPhis

        @register_pass(mutates_CFG=False, analysis_only=True)
        class SkCaptureTypedIR(FunctionPass):
            _name = "stencilkit_capture_typed_ir"

            def __init__(self):
                FunctionPass.__init__(self)

            def run_pass(self, state):
                raise _EarlyPipelineCompletion(
                    (state.func_ir, state.typemap, state.calltypes, state.return_type))

        class TypeOnly(CompilerBase):
            def define_pipelines(self):
                pm = DefaultPassBuilder.define_untyped_pipeline(self.state)
                pm.add_pass(NopythonTypeInference, "nopython frontend")
                pm.add_pass(PreLowerStripPhis, "remove phis nodes")
                pm.add_pass(SkCaptureTypedIR, "capture the typed IR")
                pm.finalize()
                return [pm]

        _PIPELINE = TypeOnly
        return _PIPELINE


def typed_ir(fn, argtypes):
    """``(func_ir, typemap, calltypes, return_type)`` of ``fn`` as numba's CPU target types it."""
    from numba.core import compiler
    from numba.core.compiler_lock import global_compiler_lock
    from numba.core.errors import NumbaError
    from numba.core.registry import cpu_target

    flags = compiler.Flags()
    flags.no_cpython_wrapper = True
    flags.no_cfunc_wrapper = True
    flags.nrt = False
    with global_compiler_lock:
        typingctx = cpu_target.typing_context
        targetctx = cpu_target.target_context
        typingctx.refresh()
        targetctx.refresh()
        try:
            return compiler.compile_extra(typingctx, targetctx, fn, tuple(argtypes), None,
                                          flags, {}, pipeline_class=_pipeline())
        except NumbaError as exc:
            first = str(exc).strip().splitlines()
            raise Unsupported("numba could not type the kernel's body for these dtypes: "
                              + (first[0] if first else type(exc).__name__)) from None


class _Reader:
    """A run-time-offset read ``x[i, j]`` in the typing function: typed as the accumulator."""

    def __init__(self, name, ndim, acc_type):
        from numba.core import types
        from numba.core.typing.templates import AbstractTemplate, signature

        reader = self

        class ReadTemplate(AbstractTemplate):
            key = reader

            def generic(self, args, kws):
                if kws or len(args) != ndim:
                    return None
                if all(isinstance(types.unliteral(a), types.Integer) for a in args):
                    return signature(acc_type, *args)
                return None

        self.name = name
        self.fnty = types.Function(ReadTemplate)


_READER_TYPEOF = []


def _register_reader_typeof():
    if _READER_TYPEOF:
        return
    from numba.extending import typeof_impl

    @typeof_impl.register(_Reader)
    def _typeof_reader(val, c):
        return val.fnty

    _READER_TYPEOF.append(True)


# -- the point function: the kernel body over scalars --------------------------------------------

def _enc(offset: int) -> str:
    return f"m{-offset}" if offset < 0 else f"p{offset}"


def access_name(array: str, offsets: tuple) -> str:
    """A readable C++ name for the read ``array[offsets]``: ``x_m1_p0`` for ``x[-1, 0]``."""
    return array + "_" + "_".join(_enc(o) for o in offsets)


@with_ast_lock
def point_source(spec: KernelSpec, share: bool = False):
    """Python source of the body over scalars, and the constant reads in argument order.

    Constant-offset reads become arguments ``_sk_a<k>``; run-time-offset reads become calls
    ``_sk_rd_<array>(offsets...)``. ``share``: sums of reads regrouped by rows
    (:func:`share_rows`; for integer accumulators only: it reorders the additions). The
    reads' order does not depend on it.
    """
    from .codegen import _attach_offsets

    fdef = copy.deepcopy(spec.tree)
    _attach_offsets(spec, fdef)
    reads: list = []

    class Rewrite(ast.NodeTransformer):
        def visit_Subscript(self, node):
            if not (isinstance(node.value, ast.Name) and node.value.id in spec.arrays):
                return self.generic_visit(node)
            items = node.slice.elts
            if all(isinstance(i, ast.Constant) for i in items):
                key = (node.value.id, tuple(i.value for i in items))
                if key not in reads:
                    reads.append(key)
                return ast.Name(id=f"_sk_a{reads.index(key)}", ctx=ast.Load())
            args = [self.visit(i) for i in items]
            return ast.Call(func=ast.Name(id=f"_sk_rd_{node.value.id}", ctx=ast.Load()),
                            args=args, keywords=[])

    fdef = Rewrite().visit(fdef)
    if share:
        fdef = share_rows(fdef, reads)
    fdef.name = "_sk_point"
    args = [f"_sk_a{i}" for i in range(len(reads))] + list(spec.params)
    fdef.args = ast.arguments(posonlyargs=[], args=[ast.arg(arg=a) for a in args],
                              vararg=None, kwonlyargs=[], kw_defaults=[], kwarg=None,
                              defaults=[])
    fdef.decorator_list = []
    module = ast.Module(body=[fdef], type_ignores=[])
    ast.fix_missing_locations(module)
    return ast.unparse(module), reads


def _signed_terms(node, sign, out) -> None:
    """The terms of a chain of ``+``, ``-`` and unary signs, as ``(sign, node)`` into ``out``."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
        _signed_terms(node.left, sign, out)
        _signed_terms(node.right, -sign if isinstance(node.op, ast.Sub) else sign, out)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        _signed_terms(node.operand, -sign if isinstance(node.op, ast.USub) else sign, out)
    else:
        out.append((sign, node))


def _int_constant(node):
    """The Python int a node is (None for anything else; bools are not ints here)."""
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    return None


def _tap(node, read_names):
    """``(read index, integer weight)`` of a term ``read``, ``c * read`` or ``read * c``."""
    if isinstance(node, ast.Name) and node.id in read_names:
        return read_names[node.id], 1
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
        for a, b in ((node.left, node.right), (node.right, node.left)):
            c = _int_constant(a)
            if c is not None and isinstance(b, ast.Name) and b.id in read_names:
                return read_names[b.id], c
    return None


def _sum(terms):
    """An expression summing ``[(integer coefficient, node)]`` left to right."""
    expr = None
    for c, node in terms:
        term = node if abs(c) == 1 else ast.BinOp(ast.Constant(abs(c)), ast.Mult(), node)
        if expr is None:
            expr = term if c > 0 else ast.UnaryOp(ast.USub(), term)
        else:
            expr = ast.BinOp(expr, ast.Add() if c > 0 else ast.Sub(), term)
    return expr


def shared_rows(taps):
    """Rows of integer ``taps`` (``[(offsets, weight)]``) that repeat another row's weights.

    ``{row: (factor, weights)}``: a row (the offsets but the last) is ``factor`` times a sum
    over the last axis with ``weights`` (``((offset, weight), ...)``, their gcd 1, signed so
    that most factors are positive), the same as another row's at the same offsets along the
    axes before the rows. Input row ``i`` then holds that sum for the outputs ``i - r`` of
    every such row ``r``: after inlining into a kernel walking down the rows, the same
    expression of the same registers, computed once where it is kept apart (:data:`KEEP`).
    A uniform window shares every row; Sobel and Prewitt theirs up to a factor (``[1, 0,
    -1]`` twice and twice that); rows unlike every other, and rows of one tap, none.
    """
    rows = {}
    for offs, w in taps:
        if w:
            rows.setdefault(tuple(offs[:-1]), {})[offs[-1]] = int(w)
    kinds = {}  # (the rows' outer offsets, normalised weights) -> [(row, factor)]
    for row, ws in rows.items():
        if len(ws) < 2:
            continue
        factor = math.gcd(*ws.values()) * (1 if next(iter(ws.values())) > 0 else -1)
        weights = tuple((o, w // factor) for o, w in sorted(ws.items()))
        kinds.setdefault((row[:-1], weights), []).append((row, factor))
    found = {}
    for (_, weights), members in kinds.items():
        if len(members) > 1:
            if sum(f > 0 for _, f in members) * 2 < len(members):  # (fewer negations)
                weights = tuple((o, -w) for o, w in weights)
                members = [(row, -f) for row, f in members]
            found.update((row, (factor, weights)) for row, factor in members)
    return found


def share_rows(fdef, reads):
    """``fdef`` (reads already ``_sk_a<k>`` names) with sums regrouped by rows.

    Each chain of ``+``/``-`` whose terms are all reads times integer constants, or integer
    constants, and whose rows repeat (:func:`shared_rows`, per array), becomes the sum of
    each such row's partial sum, then the other terms. The partial sums are :data:`KEEP`
    variables assigned at the top of the function (they depend on the reads alone, which are
    its parameters; numba does not type ``:=``), one per row and weights. Only for integer
    accumulators: the additions are reordered. Chains with any other term stay as written.
    """
    read_names = {f"_sk_a{k}": k for k in range(len(reads))}
    partials = {}  # (row's reads and weights) -> (name, expression)

    class Share(ast.NodeTransformer):
        def visit_BinOp(self, node):
            if not isinstance(node.op, (ast.Add, ast.Sub)):
                return self.generic_visit(node)
            terms = []
            _signed_terms(node, 1, terms)
            weights, constant = {}, 0  # read index -> weight (repeats merged)
            for sign, term in terms:
                tap, c = _tap(term, read_names), _int_constant(term)
                if tap is None and c is None:
                    return self.generic_visit(node)  # (another term: kept as written)
                if tap is None:
                    constant += sign * c
                else:
                    weights[tap[0]] = weights.get(tap[0], 0) + sign * tap[1]
            arrays = {a: i for i, a in enumerate(dict.fromkeys(a for a, _ in reads))}
            offsets = {k: (arrays[reads[k][0]], *reads[k][1]) for k in weights}
            found = shared_rows([(offsets[k], w) for k, w in weights.items()])
            if not found:
                return node
            out, done = [], set()
            for k, w in weights.items():
                row = offsets[k][:-1]
                if row not in found:
                    if w:
                        out.append((w, ast.Name(f"_sk_a{k}", ast.Load())))
                elif row not in done:
                    done.add(row)
                    factor, row_weights = found[row]
                    index = {offsets[j][-1]: j for j in weights if offsets[j][:-1] == row}
                    terms_ = tuple((index[o], w) for o, w in row_weights)
                    if terms_ not in partials:
                        partials[terms_] = (f"{KEEP}{len(partials)}", _sum(
                            [(w, ast.Name(f"_sk_a{k}", ast.Load())) for k, w in terms_]))
                    out.append((factor, ast.Name(partials[terms_][0], ast.Load())))
            if constant:
                out.append((constant, ast.Constant(1)))
            return _sum(out) if out else ast.Constant(0)

    fdef = Share().visit(fdef)
    fdef.body[:0] = [ast.Assign([ast.Name(name, ast.Store())], expr)
                     for name, expr in partials.values()]
    ast.fix_missing_locations(fdef)
    return fdef


# -- C++ types ----------------------------------------------------------------------------------

def ctype(t) -> str:
    """The C++ type of a numba scalar type (raises Unsupported for others)."""
    from numba.core import types

    t = types.unliteral(t)
    if t == types.boolean:
        return "bool"
    if isinstance(t, types.Integer):
        return f"sk_{'i' if t.signed else 'u'}{t.bitwidth}"
    if t == types.float32:
        return "float"
    if t == types.float64:
        return "double"
    raise Unsupported(f"values of type {t}")


def dtype_ctype(dtype) -> str:
    """The C++ type arrays of ``dtype`` are read and written as (bool as its byte)."""
    import numba

    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return "sk_u8"
    if dtype.kind not in "iuf":
        raise Unsupported(f"arrays of dtype {dtype}")
    return ctype(numba.from_dtype(dtype))


def type_range(t):
    """(lo, hi) of an integer or bool numba type."""
    from numba.core import types

    t = types.unliteral(t)
    if t == types.boolean:
        return (0, 1)
    if t.signed:
        return (-(1 << (t.bitwidth - 1)), (1 << (t.bitwidth - 1)) - 1)
    return (0, (1 << t.bitwidth) - 1)


I32 = (-(1 << 31), (1 << 31) - 1)


def _within(iv, rng) -> bool:
    return iv is not None and rng[0] <= iv[0] and iv[1] <= rng[1]


def _hull(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return (min(a[0], b[0]), max(a[1], b[1]))


# -- the functions the translator knows ---------------------------------------------------------

# name -> (C++ double function, exact?). Exact: correctly rounded (or exact) on both the CPU's
# libm and CUDA, so the GPU gives the CPU's bits; the others are CUDA's libdevice functions,
# which differ from the CPU's libm in the last bits (CUDA math API: 1-4 ulp).
_MATH_FUNCS = {
    "sqrt": ("sqrt", True), "fabs": ("fabs", True), "floor": ("floor", True),
    "ceil": ("ceil", True), "trunc": ("trunc", True), "rint": ("rint", True),
    "exp": ("exp", False), "exp2": ("exp2", False), "expm1": ("expm1", False),
    "log": ("log", False), "log2": ("log2", False), "log10": ("log10", False),
    "log1p": ("log1p", False), "sin": ("sin", False), "cos": ("cos", False),
    "tan": ("tan", False), "asin": ("asin", False), "acos": ("acos", False),
    "atan": ("atan", False), "sinh": ("sinh", False), "cosh": ("cosh", False),
    "tanh": ("tanh", False), "asinh": ("asinh", False), "acosh": ("acosh", False),
    "atanh": ("atanh", False), "erf": ("erf", False), "erfc": ("erfc", False),
    "cbrt": ("cbrt", False),
}
_MATH2_FUNCS = {"atan2": ("atan2", False), "hypot": ("hypot", False), "pow": ("pow", False),
                "copysign": ("copysign", True), "fmod": ("fmod", True)}

# Python functions -> names above (math module, numpy ufuncs on scalars).
_MATH = {getattr(math, n): n for n in ("sqrt", "fabs", "exp", "expm1", "log", "log2",
                                          "log10", "log1p", "sin", "cos", "tan", "asin",
                                          "acos", "atan", "sinh", "cosh", "tanh", "asinh",
                                          "acosh", "atanh", "erf", "erfc")}
_MATH_TO_INT = {math.floor: "floor", math.ceil: "ceil", math.trunc: "trunc"}
_MATH2 = {math.atan2: "atan2", math.hypot: "hypot", math.pow: "pow",
          math.copysign: "copysign", math.fmod: "fmod"}
_UFUNCS = {np.sqrt: "sqrt", np.fabs: "fabs", np.floor: "floor", np.ceil: "ceil",
           np.trunc: "trunc", np.rint: "rint", np.exp: "exp", np.exp2: "exp2",
           np.expm1: "expm1", np.log: "log", np.log2: "log2", np.log10: "log10",
           np.log1p: "log1p", np.sin: "sin", np.cos: "cos", np.tan: "tan", np.arcsin: "asin",
           np.arccos: "acos", np.arctan: "atan", np.sinh: "sinh", np.cosh: "cosh",
           np.tanh: "tanh", np.arcsinh: "asinh", np.arccosh: "acosh", np.arctanh: "atanh",
           np.cbrt: "cbrt"}
_UFUNCS2 = {np.arctan2: "atan2", np.hypot: "hypot", np.copysign: "copysign"}
_UFUNC_MINMAX = {np.minimum: "min", np.maximum: "max", np.fmin: "fmin", np.fmax: "fmax"}
# NumPy ufuncs on scalars translated by their loop (Translator.ufunc_loop): the loop numba's
# lowering picks for the argument types (numba.np.numpy_support.ufunc_find_matching_loop),
# the arguments converted to its input type, its C++ in the loop's type
_UFUNC_LOOPS = {
    np.add: "add", np.subtract: "sub", np.multiply: "mul", np.true_divide: "truediv",
    np.floor_divide: "floordiv", np.remainder: "mod", np.fmod: "fmod", np.power: "pow",
    np.float_power: "pow", np.sign: "sign", np.reciprocal: "reciprocal",
    np.deg2rad: "radians", np.radians: "radians", np.rad2deg: "degrees",
    np.degrees: "degrees", np.signbit: "signbit", np.logical_and: "land",
    np.logical_or: "lor", np.logical_xor: "lxor", np.logical_not: "lnot", np.bitwise_and: "&",
    np.bitwise_or: "|", np.bitwise_xor: "^", np.invert: "~", np.greater: ">",
    np.greater_equal: ">=", np.less: "<", np.less_equal: "<=", np.equal: "==",
    np.not_equal: "!="}
_ANGLES = {math.radians: "radians", math.degrees: "degrees"}
_CHECKS = {math.isnan: "isnan", math.isinf: "isinf", math.isfinite: "isfinite",
           np.isnan: "isnan", np.isinf: "isinf", np.isfinite: "isfinite"}

_BINOPS = {
    operator.add: "add", operator.iadd: "add", operator.sub: "sub", operator.isub: "sub",
    operator.mul: "mul", operator.imul: "mul", operator.truediv: "truediv",
    operator.itruediv: "truediv", operator.floordiv: "floordiv",
    operator.ifloordiv: "floordiv", operator.mod: "mod", operator.imod: "mod",
    operator.pow: "pow", operator.ipow: "pow", operator.and_: "and", operator.iand: "and",
    operator.or_: "or", operator.ior: "or", operator.xor: "xor", operator.ixor: "xor",
    operator.lshift: "shl", operator.ilshift: "shl", operator.rshift: "shr",
    operator.irshift: "shr", operator.lt: "<", operator.le: "<=", operator.gt: ">",
    operator.ge: ">=", operator.eq: "==", operator.ne: "!=",
}
_COMPARE = ("<", "<=", ">", ">=", "==", "!=")


# -- the translation ---------------------------------------------------------------------------

@dataclass
class Body:
    """The C++ function computing one output element from its reads (see module docstring)."""

    name: str
    text: str
    arg_ctypes: list          # C++ type of each constant read's argument (narrowed acc)
    param_ctypes: list        # C++ types of the kernel's scalar parameters
    return_ctype: str
    return_type: object       # numba type of the value (before the store conversion)
    readers: tuple            # arrays read with run-time offsets (the function then takes rd)
    inexact: tuple            # functions whose CUDA versions may differ from the CPU's libm
    narrowed: int             # how many 64-bit integer values were proven to fit 32 bits
    wide: int                 # how many 64-bit integer values stay 64-bit


def _sanitize(name: str) -> str:
    if name.startswith("$"):
        base = "t_" + name[1:]
    elif name.startswith("arg."):
        base = "arg_" + name[4:]
    else:
        base = name + "_"
    return re.sub(r"[^0-9A-Za-z_]", "_", base)


class _Translator:
    def __init__(self, func_ir, typemap, calltypes, return_type, arg_ranges, reader_ranges):
        from numba.core import ir, types

        self.ir, self.types = ir, types
        self.fir = func_ir
        self.typemap = typemap
        self.calltypes = calltypes
        self.return_type = return_type
        self.arg_ranges = arg_ranges
        self.reader_ranges = reader_ranges
        self.names: dict = {}
        self.used: set = set()
        self.inexact: set = set()
        self.consts: dict = {}        # var -> Python constant (module, function, number, ...)
        self.iv: dict = {}            # var -> integer interval
        self.held32: set = set()      # 8/16-bit integer vars held in sk_i32 (_held_in_32_bits)
        self.expr_iv: dict = {}       # id(expr) -> interval of its result
        self.iter_root: dict = {}     # range or tuple iterator var -> the getiter that made it
        self.state_root: dict = {}    # range state var -> the call var that made it
        # the jitted functions the body calls, translated once per argument types and shared
        # with theirs: (py_func, arg types) -> (C++ name, argument C++ types, return C++ type,
        # definition); in the order they must be defined (callees first)
        self.functions: dict = {}
        self.calling: frozenset = frozenset()  # the calls being translated (no recursion)
        self.prefix = "sk_fn"  # of the C++ functions' names (the body's own name)

    # ---- names and types
    def cname(self, var: str) -> str:
        name = self.names.get(var)
        if name is None:
            base = _sanitize(var)
            name, k = base, 1
            while name in self.used:
                k += 1
                name = f"{base}{k}"
            self.used.add(name)
            self.names[var] = name
        return name

    def ty(self, var):
        return self.typemap[var]

    def is_value(self, t) -> bool:
        t = self.types.unliteral(t)
        return t == self.types.boolean or isinstance(t, (self.types.Integer, self.types.Float))

    def narrow(self, t, iv) -> bool:
        """Whether a value of type ``t`` with interval ``iv`` is computed in 32 bits."""
        t = self.types.unliteral(t)
        return t == self.types.int64 and _within(iv, I32)

    # ---- pass 1: constants, iterator aliases
    def scan(self):
        ir, types = self.ir, self.types
        defs: dict = {}
        for block in self.fir.blocks.values():
            for stmt in block.body:
                if isinstance(stmt, ir.Assign):
                    defs.setdefault(stmt.target.name, []).append(stmt.value)
                elif isinstance(stmt, (ir.Del, ir.Branch, ir.Jump, ir.Return)):
                    pass
                elif isinstance(stmt, (ir.StaticRaise, ir.Raise, ir.DynamicRaise)):
                    raise Unsupported("the body can raise an exception (assert or raise)")
                else:
                    raise Unsupported(f"the statement {stmt} ({type(stmt).__name__})")
        self.defs = defs
        # compile-time values: globals, module attributes, single-definition constants
        changed = True
        while changed:
            changed = False
            for var, values in defs.items():
                if var in self.consts or len(values) != 1:
                    continue
                v = values[0]
                found, value = False, None
                if isinstance(v, (ir.Global, ir.FreeVar)):
                    found, value = True, v.value
                elif isinstance(v, ir.Const):
                    found, value = True, v.value
                elif isinstance(v, ir.Var) and v.name in self.consts:
                    found, value = True, self.consts[v.name]
                elif isinstance(v, ir.Expr) and v.op == "getattr" and v.value.name in self.consts:
                    owner = self.consts[v.value.name]
                    if isinstance(owner, type(np)):
                        try:
                            found, value = True, getattr(owner, v.attr)
                        except AttributeError:
                            raise Unsupported(f"{owner.__name__}.{v.attr} is unknown") from None
                if found:
                    self.consts[var] = value
                    changed = True
        # range iterators and states are shared state: every copy is an alias of its maker
        for var, values in defs.items():
            t = types.unliteral(self.ty(var))
            if isinstance(t, (types.RangeIteratorType, types.UniTupleIter)):
                self._alias(var, values, "getiter", self.iter_root)
            elif isinstance(t, types.RangeType):
                self._alias(var, values, "call", self.state_root)

    def _alias(self, var, values, maker, roots):
        ir = self.ir
        if var in roots:
            return roots[var]
        if len(values) != 1:
            raise Unsupported("an iterator assigned in several places")
        v = values[0]
        if isinstance(v, ir.Expr) and v.op == maker:
            roots[var] = var
        elif isinstance(v, ir.Var):
            roots[var] = self._alias(v.name, self.defs[v.name], maker, roots)
        else:
            raise Unsupported(f"a range object made by {v}")
        return roots[var]

    # ---- pass 2: integer intervals
    def intervals(self):
        ir = self.ir
        stmts = [s for b in self.fir.blocks.values() for s in b.body if isinstance(s, ir.Assign)]
        for rounds in range(64):
            changed = False
            for s in stmts:
                name = s.target.name
                t = self.ty(name)
                if not self.is_value(t) or not self._is_int(t):
                    continue
                rng = type_range(t)
                new = self._interval(s.value, t)
                if new is None:
                    continue
                if not _within(new, rng):
                    new = rng
                old = self.iv.get(name)
                joined = _hull(old, new)
                if rounds > 24 and joined != old:
                    joined = rng  # still growing: a loop-carried value; widen to its type
                if joined != old:
                    self.iv[name] = joined
                    changed = True
            if not changed:
                return
        raise Unsupported("integer ranges did not settle")  # pragma: no cover

    def _is_int(self, t):
        t = self.types.unliteral(t)
        return t == self.types.boolean or isinstance(t, self.types.Integer)

    def _var_iv(self, var):
        t = self.ty(var)
        if not self._is_int(t):
            return None
        if var in self.consts and isinstance(self.consts[var], (int, np.integer, bool)):
            v = int(self.consts[var])
            return (v, v)
        return self.iv.get(var)

    def _interval(self, value, t):
        """Interval of ``value`` converted to ``t``, or None if not known yet."""
        ir = self.ir
        rng = type_range(t)
        if isinstance(value, ir.Const):
            if isinstance(value.value, (bool, int, np.integer)):
                v = int(value.value)
                return (v, v) if rng[0] <= v <= rng[1] else rng
            return rng
        if isinstance(value, (ir.Global, ir.FreeVar)):
            if isinstance(value.value, (bool, int, np.integer)):
                v = int(value.value)
                return (v, v) if rng[0] <= v <= rng[1] else rng
            return rng
        if isinstance(value, ir.Arg):
            return self.arg_ranges[value.index] if value.index < len(self.arg_ranges) else rng
        if isinstance(value, ir.Var):
            return self._convert_iv(self._var_iv(value.name), self.ty(value.name), t)
        if not isinstance(value, ir.Expr):
            return rng
        if value.op == "pair_first":
            root = self.iter_root.get(self._pair_iter(value.value.name))
            rt = self.types.unliteral(self.ty(root))
            if isinstance(rt, self.types.UniTupleIter):
                (getiter,) = self.defs[root]
                return self._convert_iv(self._elements_iv(getiter.value.name),
                                        rt.container.dtype, t)
            return self._iter_iv(root, t)
        if value.op in ("pair_second",):
            return (0, 1)
        if value.op == "cast":
            return self._convert_iv(self._var_iv(value.value.name), self.ty(value.value.name), t)
        sig = self.calltypes.get(value)
        if value.op in ("getitem", "static_getitem") and self.is_tuple(self.ty(value.value.name)):
            return self._convert_iv(self._elements_iv(value.value.name), self.types.int64, t)
        if value.op in ("binop", "inplace_binop"):
            kind = _BINOPS.get(value.fn)
            if kind in _COMPARE:
                return (0, 1)
            a = self._operand_iv(value.lhs.name, sig.args[0], sig.return_type)
            b = self._operand_iv(value.rhs.name, sig.args[1], sig.return_type)
            res = self._binop_iv(kind, a, b, sig.return_type)
            self.expr_iv[id(value)] = res
            return self._convert_iv(res, sig.return_type, t)
        if value.op == "unary":
            a = self._operand_iv(value.value.name, sig.args[0], sig.return_type)
            if value.fn == operator.not_:
                return (0, 1)
            res = None
            if a is not None and self._is_int(sig.return_type):
                if value.fn == operator.neg:
                    res = (-a[1], -a[0])
                elif value.fn == operator.pos:
                    res = a
                elif value.fn == operator.invert:
                    res = (~a[1], ~a[0])
                res = self._fit(res, sig.return_type) if res else None
            self.expr_iv[id(value)] = res
            return self._convert_iv(res, sig.return_type, t) if res else rng
        if value.op == "call":
            fn = self.consts.get(value.func.name)
            args = [self._convert_iv(self._var_iv(a.name), self.ty(a.name), at)
                    for a, at in zip(value.args, self._call_argtypes(value, sig))]
            res = None
            if isinstance(fn, _Reader):
                res = self.reader_ranges.get(fn.name)
                if res is not None:
                    self.expr_iv[id(value)] = res
                    return self._convert_iv(res, sig.return_type, t)
                return rng
            if fn in (abs, np.abs, np.absolute) and args and args[0] is not None \
                    and self._is_int(sig.return_type):
                lo, hi = args[0]
                res = (0 if lo <= 0 <= hi else min(abs(lo), abs(hi)), max(abs(lo), abs(hi)))
            elif fn in (min, max) and all(a is not None for a in args) \
                    and self._is_int(sig.return_type):
                f = min if fn is min else max
                res = (f(a[0] for a in args), f(a[1] for a in args))
            elif fn in (np.minimum, np.maximum) and all(a is not None for a in args) \
                    and self._is_int(sig.return_type):
                f = min if fn is np.minimum else max
                res = (f(a[0] for a in args), f(a[1] for a in args))
            elif fn in (bool,) or fn in _CHECKS:
                res = (0, 1)
            elif fn is range:
                return None
            elif isinstance(fn, type) and len(args) == 1 or fn in (int,):
                res = args[0] if args else None
            if res is not None:
                res = self._fit(res, sig.return_type)
                self.expr_iv[id(value)] = res
                return self._convert_iv(res, sig.return_type, t)
            return rng
        return rng

    def _elements_iv(self, var):
        """The hull of the integer intervals of tuple ``var``'s elements.

        None while an element's is not known yet; int64's whole range where they cannot be
        known (a non-integer element, a tuple made elsewhere than one ``build_tuple``), never
        None for good: a value left without an interval would drop out of the hull where
        branches merge.
        """
        ir = self.ir
        anything = type_range(self.types.int64)
        value = self.consts.get(var)
        if isinstance(value, tuple):
            if all(isinstance(x, (bool, int, np.integer)) for x in value):
                return (min(int(x) for x in value), max(int(x) for x in value))
            return anything
        values = self.defs.get(var, [])
        if len(values) != 1:
            return anything
        v = values[0]
        if isinstance(v, ir.Var):
            return self._elements_iv(v.name)
        if not (isinstance(v, ir.Expr) and v.op == "build_tuple"):
            return anything
        ivs = []
        for x in v.items:
            if not self._is_int(self.ty(x.name)):
                return anything
            iv = self._var_iv(x.name)
            if iv is None:
                return None
            ivs.append(iv)
        return (min(iv[0] for iv in ivs), max(iv[1] for iv in ivs))

    def _pair_iter(self, pair_var):
        """The iterator whose iternext made ``pair_var`` (through copies)."""
        ir = self.ir
        values = self.defs.get(pair_var, [])
        for v in values:
            if isinstance(v, ir.Expr) and v.op == "iternext":
                return v.value.name
            if isinstance(v, ir.Var):
                return self._pair_iter(v.name)
        raise Unsupported("an iteration over something other than range() or a tuple")

    def _iter_iv(self, root, t):
        """Interval of the values a range iterator yields."""
        ir = self.ir
        (getiter,) = self.defs[root]
        state = self.state_root[getiter.value.name]
        (call,) = self.defs[state]
        ivs = [self._convert_iv(self._var_iv(a.name), self.ty(a.name), self.types.int64)
               for a in call.args]
        if any(v is None for v in ivs):
            return None
        if len(ivs) == 1:
            start, stop, step = (0, 0), ivs[0], (1, 1)
        elif len(ivs) == 2:
            (start, stop), step = ivs, (1, 1)
        else:
            start, stop, step = ivs
        del ir
        lo, hi = [], []
        if step[1] > 0:  # ascending: start .. stop - 1
            lo.append(start[0])
            hi.append(max(start[1], stop[1] - 1))
        if step[0] < 0:  # descending: start .. stop + 1
            lo.append(min(start[0], stop[0] + 1))
            hi.append(start[1])
        if not lo:
            return (start[0], start[1])
        return self._fit((min(lo), max(hi)), t)

    def _operand_iv(self, var, arg_t, rt):
        """The interval of ``var`` as an operation typed ``(arg_t, ...) -> rt`` computes with it.

        numba converts an operand to the signature's argument type, then (integer arithmetic)
        to the result type, and computes in that: ``(uint64, int64) -> int64`` takes a uint64
        beyond 2**63 as a negative int64.
        """
        iv = self._convert_iv(self._var_iv(var), self.ty(var), arg_t)
        types = self.types
        if self._is_int(arg_t) and self._is_int(rt) and types.unliteral(rt) != types.boolean:
            iv = self._convert_iv(iv, arg_t, rt)
        return iv

    def _convert_iv(self, iv, src, dst):
        if iv is None:
            return None
        if not self._is_int(dst):
            return None
        if not self._is_int(src):
            return type_range(dst)
        rng = type_range(dst)
        if self.types.unliteral(dst) == self.types.boolean:
            return (0 if iv[0] <= 0 <= iv[1] else 1, 0 if iv == (0, 0) else 1)
        return iv if _within(iv, rng) else rng

    def _fit(self, iv, t):
        if iv is None or not self._is_int(t):
            return None
        rng = type_range(t)
        return iv if _within(iv, rng) else rng

    def _binop_iv(self, kind, a, b, rt):
        if a is None or b is None or not self._is_int(rt):
            return None
        rng = type_range(rt)
        if kind == "add":
            res = (a[0] + b[0], a[1] + b[1])
        elif kind == "sub":
            res = (a[0] - b[1], a[1] - b[0])
        elif kind == "mul":
            c = [x * y for x in a for y in b]
            res = (min(c), max(c))
        elif kind == "floordiv":
            if b[0] <= 0 <= b[1]:
                if b == (0, 0):
                    return (0, 0)
                # split the divisor around zero; a zero divisor gives 0
                parts = [(0, 0)]
                if b[1] > 0:
                    parts.append(self._div_corners(a, (max(b[0], 1), b[1])))
                if b[0] < 0:
                    parts.append(self._div_corners(a, (b[0], min(b[1], -1))))
                res = (min(p[0] for p in parts), max(p[1] for p in parts))
            else:
                res = self._div_corners(a, b)
        elif kind == "mod":
            if b[0] > 0:
                res = (0, b[1] - 1)
                if a[0] >= 0 and a[1] < b[0]:
                    res = a
            elif b[1] < 0:
                res = (b[0] + 1, 0)
            else:
                m = max(abs(b[0]), abs(b[1]))
                res = (-(m - 1) if m else 0, m - 1 if m else 0)
        elif kind == "and":
            if a[0] >= 0 and b[0] >= 0:
                res = (0, min(a[1], b[1]))
            elif a[0] >= 0:
                res = (0, a[1])
            elif b[0] >= 0:
                res = (0, b[1])
            else:
                return rng
        elif kind in ("or", "xor"):
            if a[0] >= 0 and b[0] >= 0:
                top = max(a[1], b[1])
                res = (0, (1 << top.bit_length()) - 1)
            else:
                return rng
        elif kind == "shl":
            if b[0] < 0 or b[1] > 62:
                return rng
            c = [x << y for x in a for y in b]
            res = (min(c), max(c))
        elif kind == "shr":
            if b[0] < 0 or b[1] > 63:
                return rng
            c = [x >> y for x in a for y in b]
            res = (min(c), max(c))
        else:  # pow and anything else: no bound
            return rng
        return res if _within(res, rng) else rng

    @staticmethod
    def _div_corners(a, b):
        c = [x // y for x in a for y in b]
        return (min(c), max(c))

    def _call_argtypes(self, expr, sig):
        """Argument types of a call's signature, unpacking numba's *args tuple (min/max)."""
        types = self.types
        args = list(sig.args)
        if len(args) == 1 and isinstance(args[0], types.BaseTuple) and len(expr.args) != 1:
            args = list(args[0].types)
        if len(args) != len(expr.args):
            raise Unsupported(f"the call {expr}")
        return args

    # ---- pass 3: C++
    def storage(self, var) -> str:
        """The C++ type variable ``var`` is held in (int32 where its range allows)."""
        t = self.ty(var)
        if self.narrow(t, self.iv.get(var)) or var in self.held32:
            return "sk_i32"
        return ctype(t)

    def _held_in_32_bits(self) -> set:
        """The 8- and 16-bit integer variables that every value assigned them already fits.

        Held in ``sk_i32``, they need no truncation where assigned and no sign extension where
        read: a sum proven to fit said so (``np.int16(s)``, which the filters write so that the
        CPU's vectorised loop runs in 16-bit lanes) costs nothing here, where a conversion to
        ``sk_i16`` of a value behind ``sk_keep`` would cost the 8-bit Sobel's packed kernel
        about 6 instructions an output (tools/kernel_steps.py: 7.9 -> 14.2).
        """
        ir, types = self.ir, self.types

        def source(v):  # the variable a copy, cast or conversion call takes its value from
            if isinstance(v, ir.Var):
                return v.name
            if isinstance(v, ir.Expr) and v.op == "cast":
                return v.value.name
            if isinstance(v, ir.Expr) and v.op == "call" and len(v.args) == 1 and (
                    isinstance(types.unliteral(self.ty(v.func.name)), types.NumberClass)
                    or self.consts.get(v.func.name) is int):
                return v.args[0].name
            return None

        fitting = {}
        for var, values in self.defs.items():
            t = types.unliteral(self.ty(var)) if var in self.typemap else None
            if not isinstance(t, types.Integer) or t.bitwidth >= 32:
                continue
            rng = type_range(t)
            # the value each definition computes, before numba's conversion to the variable's
            # type (an expression's own interval: its result type's range where unknown)
            if all(iv is not None and _within(iv, rng)
                   for iv in (self._interval(v, types.int64) for v in values)):
                fitting[var] = (t, [source(v) for v in values])
        # only where a wider value arrives (a conversion that would truncate), and the copies
        # of those: 8-bit values that stay 8-bit keep their type (a uint8 minimum is a byte
        # operation; held in sk_i32 it costs the 3 x 3 cross's packed kernel 10 instructions)
        held = set()
        changed = True
        while changed:
            changed = False
            for var, (t, sources) in fitting.items():
                if var in held:
                    continue
                for src in sources:
                    st = types.unliteral(self.ty(src)) if src in self.typemap else None
                    if src in held or (isinstance(st, types.Integer) and st.bitwidth > t.bitwidth):
                        held.add(var)
                        changed = True
                        break
        return held

    def const_value(self, var):
        """The number a variable holds if it is a compile-time constant, else None."""
        value = self.consts.get(var)
        if isinstance(value, (bool, int, float, np.number, np.bool_)):
            return value
        return None

    def get(self, var, want: str) -> str:
        """Variable ``var`` as a C++ value of type ``want`` (numba's conversion of the value)."""
        value = self.const_value(var)
        if value is not None:
            return literal_c(convert(value, ctype(self.ty(var))), want)
        return conv(self.cname(var), self.storage(var), want)

    def emit(self):
        types = self.types
        self.scan()
        self.intervals()
        self.held32 = self._held_in_32_bits()
        decls, lines = [], []
        compound = {}
        # declarations in the order the body first defines the variables
        order = {}
        for label in sorted(self.fir.blocks):
            for stmt in self.fir.blocks[label].body:
                if isinstance(stmt, self.ir.Assign):
                    order.setdefault(stmt.target.name, len(order))
        for var in sorted(self.typemap, key=lambda v: (order.get(v, len(order)), v)):
            if var.startswith("arg.") or var in self.fir.arg_names:
                continue
            t = types.unliteral(self.ty(var))
            if var in self.consts:
                continue  # inlined where used
            if self.is_value(t):
                decls.append(f"  {self.storage(var)} {self.cname(var)};")
            elif isinstance(t, types.RangeType):
                if self.state_root.get(var) == var:
                    decls.append(f"  sk_i64 {self.cname(var)}_start, {self.cname(var)}_stop, "
                                 f"{self.cname(var)}_step;")
                compound[var] = "state"
            elif isinstance(t, types.RangeIteratorType):
                if self.iter_root.get(var) == var:
                    decls.append(f"  sk_i64 {self.cname(var)}_cur, {self.cname(var)}_step, "
                                 f"{self.cname(var)}_count;")
                compound[var] = "iter"
            elif isinstance(t, types.UniTupleIter) and self.is_tuple(t.container):
                # an iteration over a tuple: a copy of its elements (made at getiter) and the
                # index of the next one
                if self.iter_root.get(var) == var:
                    c, b = ctype(types.unliteral(t.container.dtype)), self.cname(var)
                    decls.append(f"  {c} " + ", ".join(f"{b}_e{i}" for i in
                                                       range(len(t.container)))
                                 + f"; sk_i64 {b}_idx;")
                compound[var] = "titer"
            elif isinstance(t, types.Pair) and self.is_value(t.first_type):
                decls.append(f"  {ctype(types.unliteral(t.first_type))} {self.cname(var)}_first; "
                             f"bool {self.cname(var)}_second;")
                compound[var] = "pair"
            elif self.is_tuple(t):
                # a tuple of numbers (``lo, hi = a, b``, ``t = (x, y)``, ``t[1]``): one C++
                # variable per element
                decls.append("  " + " ".join(f"{c} {self.cname(var)}_{i};"
                                             for i, c in enumerate(self.elements(t))))
                compound[var] = "tuple"
            elif isinstance(t, (types.Function, types.Module, types.NumberClass,
                                types.Dispatcher, types.BoundFunction, types.NoneType)):
                continue
            else:
                raise Unsupported(f"a value of type {t} ({var})")
        for v in self.fir.arg_names:
            if not self.is_value(self.ty(v)):
                raise Unsupported(f"a parameter of type {self.ty(v)}")
        returned = {stmt.value.name for block in self.fir.blocks.values() for stmt in block.body
                    if isinstance(stmt, self.ir.Return)}
        self.return_ctype = ctype(self.return_type)
        if len(returned) == 1 and self.const_value(next(iter(returned))) is None:
            self.return_ctype = self.storage(next(iter(returned)))
        lines.append(f"  goto L{min(self.fir.blocks)};")
        for label in sorted(self.fir.blocks):
            lines.append(f" L{label}:;")
            for stmt in self.fir.blocks[label].body:
                lines += ["  " + x for x in self.stmt(stmt, compound)]
        return decls, lines

    def stmt(self, stmt, compound):
        ir = self.ir
        if isinstance(stmt, ir.Del):
            return []
        if isinstance(stmt, ir.Jump):
            return [f"goto L{stmt.target};"]
        if isinstance(stmt, ir.Branch):
            return [f"if ({self.get(stmt.cond.name, 'bool')}) goto L{stmt.truebr}; "
                    f"else goto L{stmt.falsebr};"]
        if isinstance(stmt, ir.Return):
            return [f"return {self.get(stmt.value.name, self.return_ctype)};"]
        target = stmt.target.name
        if target in self.consts:
            return []
        kind = compound.get(target)
        if kind is not None:
            return self.compound_assign(stmt, kind)
        if not self.is_value(self.ty(target)):
            return []
        if isinstance(stmt.value, ir.Arg):
            if stmt.value.name == target:
                return []  # the function's parameter itself
            raise Unsupported(f"the argument assignment {stmt}")  # pragma: no cover
        text, have = self.value(stmt.value, target)
        text = conv(text, have, self.storage(target))
        if target.startswith(KEEP) and self.storage(target) in _KEPT:
            text = f"sk_keep({text})"  # (an opaque copy: see KEEP)
        return [f"{self.cname(target)} = {text};"]

    def is_tuple(self, t) -> bool:
        """Whether ``t`` is a tuple of numbers (held as one C++ variable per element)."""
        t = self.types.unliteral(t)
        return isinstance(t, self.types.BaseTuple) and all(self.is_value(e) for e in t.types)

    def elements(self, t) -> list:
        """The C++ types of a tuple type's elements."""
        return [ctype(self.types.unliteral(e)) for e in self.types.unliteral(t).types]

    def element(self, var, i) -> tuple:
        """``(C++ text, C++ type)`` of element ``i`` of the tuple variable ``var``."""
        t = self.types.unliteral(self.ty(var))
        n = len(t.types)
        if not -n <= i < n:
            raise Unsupported(f"the index {i} of a tuple of {n}")
        i %= n
        c = self.elements(t)[i]
        value = self.consts.get(var)
        if isinstance(value, tuple):  # (a tuple constant: its element as a literal)
            return literal_c(convert(value[i], c), c), c
        return f"{self.cname(var)}_{i}", c

    def tuple_assign(self, target, v) -> list:
        """``target = v`` for a tuple ``target``: element by element."""
        ir = self.ir
        b, cs = self.cname(target), self.elements(self.ty(target))
        if isinstance(v, ir.Expr) and v.op == "build_tuple":
            items = [self.get(x.name, c) for x, c in zip(v.items, cs)]
        elif isinstance(v, ir.Var) or (isinstance(v, ir.Expr) and v.op in ("exhaust_iter",
                                                                               "cast")):
            src = v if isinstance(v, ir.Var) else v.value
            if not self.is_tuple(self.ty(src.name)) or \
                    len(self.elements(self.ty(src.name))) != len(cs):
                raise Unsupported(f"a tuple made from {v}")
            items = [conv(*self.element(src.name, i), c) for i, c in enumerate(cs)]
        else:
            raise Unsupported(f"a tuple made by {v}")
        return [" ".join(f"{b}_{i} = {x};" for i, x in enumerate(items))]

    def compound_assign(self, stmt, kind):
        ir, types = self.ir, self.types
        v = stmt.value
        target = stmt.target.name
        if kind == "tuple":
            return self.tuple_assign(target, v)
        if isinstance(v, ir.Var) and kind in ("state", "iter", "titer"):
            return []  # an alias of the object that made it
        if kind == "titer":
            if not (isinstance(v, ir.Expr) and v.op == "getiter"):
                raise Unsupported(f"a tuple iterator made by {v}")  # pragma: no cover
            b, src = self.cname(target), v.value.name
            c = ctype(types.unliteral(self.ty(target).container.dtype))
            n = len(self.elements(self.ty(src)))
            return [" ".join(f"{b}_e{i} = {conv(*self.element(src, i), c)};" for i in range(n))
                    + f" {b}_idx = 0;"]
        b = self.cname(target)
        if kind == "state":
            sig = self.calltypes[v]
            if not all(isinstance(types.unliteral(t), types.Integer)
                       and types.unliteral(t).signed for t in sig.args):
                raise Unsupported("range() over unsigned or non-integer bounds")
            args = [self.get(a.name, "sk_i64") for a in v.args]
            if len(args) == 1:
                args = ["0LL", args[0], "1LL"]
            elif len(args) == 2:
                args = [*args, "1LL"]
            return [f"{b}_start = {args[0]}; {b}_stop = {args[1]}; {b}_step = {args[2]};"]
        if kind == "iter":
            s = self.cname(self.state_root[v.value.name])
            return [f"{b}_cur = {s}_start; {b}_step = {s}_step; "
                    f"{b}_count = sk_range_count({s}_start, {s}_stop, {s}_step);"]
        if isinstance(v, ir.Var):
            return [f"{b}_first = {self.cname(v.name)}_first; "
                    f"{b}_second = {self.cname(v.name)}_second;"]
        if not (isinstance(v, ir.Expr) and v.op == "iternext"):
            raise Unsupported(f"a pair made by {v}")
        root = self.iter_root[v.value.name]
        it = self.cname(root)
        rt = types.unliteral(self.ty(root))
        if isinstance(rt, types.UniTupleIter):
            n = len(rt.container)
            pick = " ".join(f"case {i}: {b}_first = {it}_e{i}; break;" for i in range(n))
            return [f"{b}_second = {it}_idx < {n};",
                    f"if ({b}_second) {{ switch ({it}_idx) {{ {pick} }} {it}_idx += 1; }}"]
        return [f"{b}_second = {it}_count > 0; {b}_first = {it}_cur;",
                f"if ({b}_second) {{ {it}_cur += {it}_step; {it}_count -= 1; }}"]

    # ---- values: each returns (C++ text, its C++ type)
    def value(self, v, target):
        ir = self.ir
        if isinstance(v, (ir.Const, ir.Global, ir.FreeVar)):
            if not isinstance(v.value, (bool, int, float, np.number, np.bool_)):
                raise Unsupported(f"the constant {v.value!r}")
            c = self.storage(target)
            return literal_c(convert(v.value, ctype(self.ty(target))), c), c
        if isinstance(v, ir.Var):
            c = self.storage(v.name) if self.const_value(v.name) is None else \
                ctype(self.ty(v.name))
            return self.get(v.name, c), c
        if not isinstance(v, ir.Expr):
            raise Unsupported(f"the value {v}")
        if v.op == "cast":
            return self.value(v.value, target)
        if v.op in ("binop", "inplace_binop"):
            return self.binop(v)
        if v.op == "unary":
            return self.unary(v)
        if v.op == "call":
            return self.call(v)
        if v.op == "pair_first":
            return (f"{self.cname(v.value.name)}_first",
                    ctype(self.types.unliteral(self.ty(v.value.name).first_type)))
        if v.op == "pair_second":
            return f"{self.cname(v.value.name)}_second", "bool"
        if v.op == "static_getitem" and self.is_tuple(self.ty(v.value.name)) \
                and isinstance(v.index, int):
            return self.element(v.value.name, v.index)
        if v.op == "getitem" and self.is_tuple(self.ty(v.value.name)) \
                and self._is_int(self.ty(v.index.name)):
            return self.tuple_getitem(v, target)
        raise Unsupported(f"the operation {v.op!r} ({v})")

    def tuple_getitem(self, v, target):
        """``t[i]`` with a run-time ``i``: the element chosen by comparisons.

        Only where the index provably lies within the tuple (numba's CPU code raises
        IndexError beyond it, which a GPU kernel cannot): a negative one counts from the end.
        """
        src, index = v.value.name, v.index.name
        n = len(self.elements(self.ty(src)))
        iv = self._var_iv(index)
        if iv is None or not (-n <= iv[0] and iv[1] < n):
            raise Unsupported(f"an index of a tuple of {n} not known to lie within it "
                              f"({index}: {iv if iv else 'unknown'}; numba raises IndexError "
                              "beyond)")
        c = ctype(self.types.unliteral(self.calltypes[v].return_type))
        at = self.get(index, "sk_i64")
        picks = [k for k in range(n) if iv[0] <= k <= iv[1] or iv[0] <= k - n <= iv[1]]
        text = conv(*self.element(src, picks[-1]), c)  # (the index is one of picks)
        for k in reversed(picks[:-1]):
            test = f"{at} == {k}" if k - n < iv[0] else f"({at} == {k} || {at} == {k - n})"
            text = f"({test} ? {conv(*self.element(src, k), c)} : {text})"
        return text, c

    def _ivs_fit(self, *ivs) -> bool:
        return all(_within(iv, I32) for iv in ivs)

    def binop(self, v):
        types = self.types
        kind = _BINOPS.get(v.fn)
        if kind is None:
            raise Unsupported(f"the operator {v.fn}")
        if v.static_lhs is not self.ir.UNDEFINED or v.static_rhs is not self.ir.UNDEFINED:
            raise Unsupported("an operator with a compile-time operand (numba static binop)")
        sig = self.calltypes[v]
        ta, tb = (types.unliteral(x) for x in sig.args)
        rt = types.unliteral(sig.return_type)
        if not all(self.is_value(x) for x in (ta, tb, rt)):
            raise Unsupported(f"the operator {v.fn.__name__} on {sig}")
        res_iv = self.expr_iv.get(id(v))
        lhs, rhs = v.lhs.name, v.rhs.name
        if kind in _COMPARE:  # (computed in the arguments' type)
            a_iv = self._convert_iv(self._var_iv(lhs), self.ty(lhs), ta)
            b_iv = self._convert_iv(self._var_iv(rhs), self.ty(rhs), tb)
        else:
            a_iv, b_iv = self._operand_iv(lhs, ta, rt), self._operand_iv(rhs, tb, rt)
        if kind in _COMPARE:
            if ta != tb:
                raise Unsupported(f"a comparison of {ta} with {tb}")
            known = decided(kind, a_iv, b_iv) if RANGED and self._is_int(ta) else None
            if known is not None:  # (a saturation's test that the operands' ranges settle)
                return ("true" if known else "false"), "bool"
            c = "sk_i32" if ta == types.int64 and self._ivs_fit(a_iv, b_iv) else ctype(ta)
            return f"({self.get(lhs, c)} {kind} {self.get(rhs, c)})", "bool"
        if isinstance(rt, types.Float):
            return self.float_binop(kind, v, ta, tb, rt)
        if not (self._is_int(rt) and self._is_int(ta) and self._is_int(tb)):
            raise Unsupported(f"the operator {v.fn.__name__} on {sig}")
        if rt == types.boolean:
            if kind not in ("and", "or", "xor") or ta != rt or tb != rt:
                raise Unsupported(f"the operator {v.fn.__name__} on {sig}")
            sym = {"and": "&", "or": "|", "xor": "^"}[kind]
            return f"((bool)({self.get(lhs, 'bool')} {sym} {self.get(rhs, 'bool')}))", "bool"
        rc = ctype(rt)
        if kind == "pow":
            return (f"sk_ipow_{sfx(rc)}({self.chain(lhs, ta, rc)}, {self.get(rhs, 'sk_i64')})",
                    rc)
        # numba casts both operands to the result type and computes in it; in 32 bits when
        # the operands and the result provably fit
        narrow = rt == types.int64 and self._ivs_fit(a_iv, b_iv, res_iv)
        if kind == "shr" and narrow and not (0 <= b_iv[0] and b_iv[1] <= 31):
            narrow = False
        if kind == "shl":
            narrow = False
        c = "sk_i32" if narrow else rc
        a, b = self.chain(lhs, ta, c), self.chain(rhs, tb, c)
        signed = narrow or rt.signed
        if kind in ("add", "sub", "mul"):
            if narrow or not signed:
                sym = {"add": "+", "sub": "-", "mul": "*"}[kind]
                return wrap(f"{a} {sym} {b}", c, narrow), c
            return f"sk_{kind}_{sfx(c)}({a}, {b})", c
        if kind in ("floordiv", "mod"):
            sym = "/" if kind == "floordiv" else "%"
            divisor = self._const_int(rhs)
            if not signed:
                if divisor:
                    return wrap(f"{a} {sym} {b}", c, False), c
                return f"sk_u{kind}_{sfx(c)}({a}, {b})", c
            if divisor is not None and divisor > 0 and a_iv is not None and a_iv[0] >= 0:
                if not RANGED:
                    return f"({a} {sym} {b})", c  # (C's division is Python's here)
                # non-negative by a constant: C's division is Python's, and unsigned it needs
                # no sign correction (a multiply-high and a shift on the device)
                u = "sk_u32" if c == "sk_i32" else "sk_u64"
                return _udiv(kind, f"({u}){a}", a_iv[1], divisor, c, u), c
            lift = _lift(a_iv, divisor, c) if RANGED else None
            if lift is not None:
                # a dividend of known range lifted by a multiple of the divisor to be
                # non-negative: floor((a + k d) / d) = floor(a / d) + k, and the same remainder
                u = "sk_u32" if c == "sk_i32" else "sk_u64"
                k, kd = (str(v) if c == "sk_i32" else f"{v}LL" for v in lift)
                lifted = f"({u})({a} + {kd})"
                quotient = _udiv("floordiv", lifted, a_iv[1] + lift[1], divisor, c, u)
                if kind == "floordiv":
                    return f"({quotient} - {k})", c
                return _udiv("mod", lifted, a_iv[1] + lift[1], divisor, c, u), c
            if divisor is not None and divisor not in (0, -1):
                return f"sk_{kind}c_{sfx(c)}({a}, {b})", c
            return f"sk_{kind}_{sfx(c)}({a}, {b})", c
        if kind in ("and", "or", "xor"):
            sym = {"and": "&", "or": "|", "xor": "^"}[kind]
            return wrap(f"{a} {sym} {b}", c, narrow), c
        bits = 32 if narrow else 64
        if kind in ("shl", "shr") and b_iv is not None and 0 <= b_iv[0] and b_iv[1] < bits:
            # a count known in range: the plain shift (beyond it, NumPy's rule: the helpers)
            sym = "<<" if kind == "shl" else ">>"
            if kind == "shl" and signed:
                u = "sk_u32" if narrow else "sk_u64"
                return f"(({c})(({u}){a} << {b}))", c
            return wrap(f"{a} {sym} {b}", c, narrow), c
        if kind in ("shl", "shr"):
            return f"sk_{kind}_{sfx(c)}({a}, {b})", c
        raise Unsupported(f"the operator {v.fn.__name__} on {sig}")

    def chain(self, var, arg_t, c):
        """``var`` converted to the signature's argument type, then to C++ type ``c``."""
        arg_c = ctype(arg_t)
        if self.storage(var) in (arg_c, c) or self.const_value(var) is not None \
                or arg_c == c or self.storage(var) == "sk_i32":
            return self.get(var, c)
        return conv(self.get(var, arg_c), arg_c, c)

    def _const_int(self, var):
        value = self.const_value(var)
        if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
            return int(value)
        return None

    def float_binop(self, kind, v, ta, tb, rt):
        types = self.types
        c = ctype(rt)
        lhs, rhs = v.lhs.name, v.rhs.name
        if kind == "pow":
            if isinstance(tb, types.Integer):
                return f"sk_ipow_{sfx(c)}({self.chain(lhs, ta, c)}, {self.get(rhs, 'sk_i64')})", c
            if ta != rt or tb != rt:
                raise Unsupported(f"the power {ta} ** {tb}")
            self.inexact.add("pow")
            fn = "powf" if c == "float" else "pow"
            return f"{fn}({self.get(lhs, c)}, {self.get(rhs, c)})", c
        if kind == "truediv" and isinstance(ta, types.Integer) and ta == tb:
            return f"({self.get(lhs, c)} / {self.get(rhs, c)})", c
        if ta != rt or tb != rt:
            raise Unsupported(f"the operator {v.fn.__name__} on ({ta}, {tb}) -> {rt}")
        a, b = self.get(lhs, c), self.get(rhs, c)
        if kind in ("add", "sub", "mul", "truediv"):
            sym = {"add": "+", "sub": "-", "mul": "*", "truediv": "/"}[kind]
            return f"({a} {sym} {b})", c
        if kind in ("floordiv", "mod"):
            return f"sk_{kind}_{sfx(c)}({a}, {b})", c
        raise Unsupported(f"the operator {v.fn.__name__} on floats")

    def unary(self, v):
        types = self.types
        sig = self.calltypes[v]
        ta = types.unliteral(sig.args[0])
        rt = types.unliteral(sig.return_type)
        if not self.is_value(ta) or not self.is_value(rt):
            raise Unsupported(f"the operator {v.fn} on {sig}")
        name = v.value.name
        if v.fn == operator.not_:
            return f"(!{self.get(name, 'bool')})", "bool"
        if v.fn == operator.pos:
            return self.get(name, ctype(rt)), ctype(rt)
        if v.fn == operator.neg:
            if isinstance(ta, types.Float):
                return conv(f"(-{self.get(name, ctype(ta))})", ctype(ta), ctype(rt)), ctype(rt)
            if ta == types.boolean:
                ta = rt
            c = ctype(ta)
            a_iv = self._var_iv(name)
            if ta == types.int64 and self._ivs_fit(a_iv, self.expr_iv.get(id(v))):
                return f"(-{self.get(name, 'sk_i32')})", "sk_i32"
            a = self.get(name, c)
            neg = f"sk_sub_{sfx(c)}(0, {a})" if ta.signed else f"(({c})(0 - {a}))"
            return conv(neg, c, ctype(rt)), ctype(rt)
        if v.fn == operator.invert:
            if not isinstance(ta, types.Integer):
                raise Unsupported(f"~ on {ta}")
            c = ctype(ta)
            return conv(f"(({c})~{self.get(name, c)})", c, ctype(rt)), ctype(rt)
        raise Unsupported(f"the operator {v.fn}")

    def call(self, v):
        types = self.types
        if v.kws or v.vararg or getattr(v, "varkwarg", None):
            raise Unsupported("a call with keyword or * arguments")
        fnvar = v.func.name
        fnty = types.unliteral(self.ty(fnvar))
        sig = self.calltypes[v]
        rt = types.unliteral(sig.return_type)
        if isinstance(fnty, types.Function) and isinstance(fnty.typing_key, _Reader):
            idx = ", ".join(f"(sk_idx){self.get(a.name, 'sk_i64')}" for a in v.args)
            return f"rd.{fnty.typing_key.name}_({idx})", ctype(rt)
        if isinstance(fnty, types.Dispatcher):
            return self.jitted(fnty.dispatcher, v, sig)
        fn = self.consts.get(fnvar)
        if fn is None:
            raise Unsupported(f"a call of {fnty}")
        argtypes = [types.unliteral(t) for t in self._call_argtypes(v, sig)]
        names = [a.name for a in v.args]
        label = getattr(fn, "__name__", str(fn))
        if fn is range:
            raise Unsupported("range() outside a for loop")
        if not self.is_value(rt) or not all(self.is_value(t) for t in argtypes):
            raise Unsupported(f"a call of {label} typed {sig}")
        rc = ctype(rt)
        iv = self.expr_iv.get(id(v))
        n_iv = rt == types.int64 and self._ivs_fit(iv, *(self._var_iv(x) for x in names))
        if isinstance(fnty, types.NumberClass) or fn in (int, float):
            if len(names) != 1:
                raise Unsupported(f"{label}() with {len(names)} arguments")
            a_iv = self._var_iv(names[0])
            if isinstance(rt, types.Integer) and a_iv is not None and _within(
                    a_iv, type_range(rt)) and _within(a_iv, I32):
                return self.get(names[0], "sk_i32"), "sk_i32"  # (the value is kept)
            return self.chain(names[0], argtypes[0], rc), rc
        if fn is bool:
            return self.get(names[0], "bool"), "bool"
        if fn in (abs, np.abs, np.absolute):
            if isinstance(rt, types.Float):
                return f"{'fabsf' if rc == 'float' else 'fabs'}({self.get(names[0], rc)})", rc
            if rt == types.boolean or not rt.signed:
                return self.get(names[0], rc), rc
            c = "sk_i32" if n_iv else rc
            a = self.get(names[0], c)
            neg = f"-{a}" if n_iv else f"sk_sub_{sfx(c)}(0, {a})"
            return f"({a} < 0 ? {neg} : {a})", c
        if fn in (np.square, np.negative, np.positive):
            # NumPy's loops are homogeneous: the argument converted to the result type, and an
            # integer result wraps in it (np.square of an int16 is an int16)
            if len(names) != 1 or rt == types.boolean or not isinstance(
                    rt, (types.Integer, types.Float)):
                raise Unsupported(f"{label} typed {sig}")
            a = self.get(names[0], rc)
            if fn is np.positive:
                return a, rc
            if isinstance(rt, types.Float):
                return (f"({a} * {a})" if fn is np.square else f"(-{a})"), rc
            # in 64-bit unsigned arithmetic, then cast: modulo 2**bits, no C++ promotion to int
            u = f"(sk_u64)({a})"
            return f"(({rc})({u} * {u}))" if fn is np.square else f"(({rc})(0 - {u}))", rc
        if fn in (min, max):
            return self.minmax(fn, names, argtypes, rt, n_iv)
        if fn in _UFUNC_MINMAX:
            # NumPy's loops are homogeneous: float loops take every argument converted to the
            # result type; integer ones only exist for equal types
            if len(names) != 2 or not isinstance(rt, types.Float) and any(
                    t != rt for t in argtypes):
                raise Unsupported(f"np.{label} typed {sig}")
            kind = _UFUNC_MINMAX[fn]
            if isinstance(rt, types.Float):
                return f"sk_np_{kind}({self.get(names[0], rc)}, {self.get(names[1], rc)})", rc
            c = "sk_i32" if n_iv else rc
            a, b = self.get(names[0], c), self.get(names[1], c)
            cmp = "<=" if kind in ("min", "fmin") else ">="
            return f"({a} {cmp} {b} ? {a} : {b})", c
        if fn is round:
            if len(names) != 1:
                raise Unsupported("round() with ndigits")
            if not isinstance(types.unliteral(self.ty(names[0])), types.Float):
                # an integer itself, as the CPU's _casts.round_int gives it (numba types
                # round() for floats only: its own converts an int64 through float64)
                return self.get(names[0], rc), rc
            c = ctype(argtypes[0])
            f = "rintf" if c == "float" else "rint"
            return conv(f"{f}({self.get(names[0], c)})", c, rc), rc
        if fn in _CHECKS:
            if not isinstance(argtypes[0], types.Float):
                return ("true" if _CHECKS[fn] == "isfinite" else "false"), "bool"
            c = ctype(argtypes[0])
            return f"sk_{_CHECKS[fn]}({self.get(names[0], c)})", "bool"
        if fn in _MATH_TO_INT:
            if not isinstance(types.unliteral(self.ty(names[0])), types.Float):
                return self.get(names[0], rc), rc  # (likewise: _casts.floor_int and others)
            c = ctype(argtypes[0])
            return conv(self.mathcall(_MATH_TO_INT[fn], [self.get(names[0], c)], c), c, rc), rc
        if fn in _MATH or fn in _UFUNCS:
            if not isinstance(rt, types.Float) or len(names) != 1:
                raise Unsupported(f"{label} typed {sig}")
            # numba converts an integer argument to the float type the function computes in
            return self.mathcall(_MATH.get(fn) or _UFUNCS[fn], [self.get(names[0], rc)], rc), rc
        if fn in _MATH2 or fn in _UFUNCS2:
            if not isinstance(rt, types.Float) or len(names) != 2:
                raise Unsupported(f"{label} typed {sig}")
            args = [self.get(x, rc) for x in names]
            return self.mathcall(_MATH2.get(fn) or _UFUNCS2[fn], args, rc), rc
        if fn in _ANGLES:
            if not isinstance(rt, types.Float) or len(names) != 1:
                raise Unsupported(f"{label} typed {sig}")
            # numba's: the argument (an integer through float64) times the constant in rt
            return self.angle(_ANGLES[fn], self.chain(names[0], argtypes[0], rc), rc), rc
        if fn in _UFUNC_LOOPS:
            return self.ufunc_loop(fn, names, argtypes, rt)
        raise Unsupported(f"a call of {label!r}")

    @staticmethod
    def angle(kind, a, c):
        """``a`` in radians or degrees: times pi/180 or 180/pi as a constant of type ``c``."""
        coef = math.pi / 180 if kind == "radians" else 180 / math.pi
        return f"({a} * {literal_c(coef, c)})"

    def ufunc_loop(self, fn, names, argtypes, rt):
        """A NumPy ufunc on scalars as numba lowers it: the loop its type rules pick.

        numba's lowering (``numba.np.npyimpl``) finds the loop for the argument and result
        types with ``ufunc_find_matching_loop``, converts each argument to the loop's input
        type, computes the loop in it (its implementation in ``numba.np.ufunc_db``: an
        integer result wraps in the loop's type, ``np.power`` of int8 is an int8) and
        converts the loop's result to the call's. Refused: loops of mixed input types (a
        signed with an unsigned comparison), the integer reciprocal (a float 1/x cast back,
        undefined at 0), loops of other than numbers.
        """
        from numba.np.numpy_support import ufunc_find_matching_loop

        types = self.types
        label = f"np.{fn.__name__}"
        loop = ufunc_find_matching_loop(fn, tuple(argtypes) + (rt,))
        if loop is None or len(loop.outputs) != 1 or len(names) != fn.nin:
            raise Unsupported(f"{label} of {tuple(argtypes)}")
        lt, ot = loop.inputs[0], loop.outputs[0]
        if any(t != lt for t in loop.inputs) or not all(
                self.is_value(t) for t in (lt, ot)):
            raise Unsupported(f"{label}'s loop {loop.ufunc_sig}")
        lc, oc = ctype(lt), ctype(ot)
        args = [self.chain(x, t, lc) for x, t in zip(names, argtypes)]
        a, b = args[0], args[-1]
        kind = _UFUNC_LOOPS[fn]
        is_float = isinstance(lt, types.Float)
        if oc == "bool":
            if kind in ("land", "lor", "lxor"):
                op = {"land": "&&", "lor": "||", "lxor": "!="}[kind]
                text = f"(({a} != 0) {op} ({b} != 0))"
            elif kind == "lnot":
                text = f"({a} == 0)"
            elif kind == "signbit" and is_float:
                text = f"sk_signbit({a})"
            elif kind in ("&", "|", "^", "~", "add", "sub", "mul") and lc == "bool":
                op = {"add": "|", "sub": "^", "mul": "&"}.get(kind, kind)
                text = f"(!{a})" if op == "~" else f"((bool)({a} {op} {b}))"
            elif kind in _COMPARE:
                text = f"({a} {kind} {b})"
            else:
                raise Unsupported(f"{label}'s loop {loop.ufunc_sig}")
        elif is_float:
            ops = {"add": "+", "sub": "-", "mul": "*", "truediv": "/"}
            if kind in ops:
                text = f"({a} {ops[kind]} {b})"
            elif kind == "floordiv":  # (the floor of the quotient: not Python's //)
                text = self.mathcall("floor", [f"({a} / {b})"], lc)
            elif kind in ("fmod", "pow"):
                text = self.mathcall(kind, [a, b], lc)
            elif kind in ("mod", "sign"):
                text = f"sk_np{kind}_{sfx(lc)}({', '.join(args)})"
            elif kind == "reciprocal":
                text = f"({literal_c(1, lc)} / {a})"
            elif kind in ("radians", "degrees"):
                text = self.angle(kind, a, lc)
            else:
                raise Unsupported(f"{label}'s loop {loop.ufunc_sig}")
        elif kind == "truediv" and oc == "double":  # (integer loops divide in float64)
            text = f"({conv(a, lc, oc)} / {conv(b, lc, oc)})"
        elif lt != ot or lc == "bool":
            raise Unsupported(f"{label}'s loop {loop.ufunc_sig}")
        elif kind in ("add", "sub", "mul"):
            # modulo 2**bits in unsigned arithmetic (no C++ promotion to a signed int)
            w = "sk_u64" if lt.bitwidth == 64 else "sk_u32"
            op = {"add": "+", "sub": "-", "mul": "*"}[kind]
            text = f"(({lc})(({w}){a} {op} ({w}){b}))"
        elif kind in ("floordiv", "mod"):  # (np_int_sdiv/srem: 0 for a zero divisor)
            text = f"sk_{'' if lt.signed else 'u'}{kind}_{sfx(lc)}({a}, {b})"
        elif kind in ("fmod", "sign"):
            text = f"sk_np{kind}_{sfx(lc)}({', '.join(args)})"
        elif kind == "pow":
            text = f"sk_npow_{sfx(lc)}({a}, {b})"
        elif kind in ("&", "|", "^"):
            text = f"(({lc})({a} {kind} {b}))"
        elif kind == "~":
            text = f"(({lc})~{a})"
        else:
            raise Unsupported(f"{label}'s loop {loop.ufunc_sig}")
        return conv(text, oc, ctype(rt)), ctype(rt)

    def jitted(self, dispatcher, v, sig):
        """A call of a numba-jitted function: its body as a C++ function of its own.

        Typed for the call's argument types as numba types it (the same pipeline as the
        kernel's body), translated by a translator of its own (its own intervals; arguments
        of the full range of their types) and defined once per module and argument types.
        Refused (the numba.cuda kernel compiles it): recursion, ``fastmath`` (its CPU code
        may contract and reorder), anything the body itself could not have.
        """
        types = self.types
        py = dispatcher.py_func
        label = getattr(py, "__name__", "?")
        if dispatcher.targetoptions.get("fastmath"):
            raise Unsupported(f"a call of the jitted function {label!r}, compiled with fastmath "
                              "(the numba.cuda kernel compiles it)")
        argtypes = tuple(types.unliteral(t) for t in sig.args)
        key = (py, argtypes)
        if key in self.calling:
            raise Unsupported(f"the jitted function {label!r} calls itself (the numba.cuda "
                              "kernel compiles it)")
        found = self.functions.get(key)
        if found is None:
            if not all(self.is_value(t) for t in argtypes):
                raise Unsupported(f"a call of the jitted function {label!r} typed {sig}")
            func_ir, typemap, calltypes, return_type = typed_ir(py, argtypes)
            ranges = [type_range(t) if self._is_int(t) else None for t in argtypes]
            tr = _Translator(func_ir, typemap, calltypes, return_type, ranges, {})
            tr.functions, tr.calling, tr.prefix = self.functions, self.calling | {key}, \
                self.prefix
            for a in func_ir.arg_names:
                tr.names[a] = _sanitize(a)
                tr.used.add(tr.names[a])
            if not tr.is_value(return_type):
                raise Unsupported(f"the jitted function {label!r} returns a {return_type}")
            decls, lines = tr.emit()
            self.inexact |= tr.inexact
            arg_cs = [tr.storage(a) for a in func_ir.arg_names]
            cname = f"{self.prefix}_{_sanitize(label)}{len(self.functions)}"
            params = ", ".join(f"{c} {tr.cname(a)}" for c, a in zip(arg_cs, func_ir.arg_names))
            text = "\n".join([f"SK_FN {tr.return_ctype} {cname}({params}) {{  // {label}",
                              *decls, *lines, "}"])
            found = self.functions[key] = (cname, arg_cs, tr.return_ctype, text)
        cname, arg_cs, ret_c, _ = found
        args = ", ".join(self.chain(a.name, t, c) for a, t, c in zip(v.args, argtypes, arg_cs))
        return f"{cname}({args})", ret_c

    def mathcall(self, name, args, c):
        table = _MATH_FUNCS if name in _MATH_FUNCS else _MATH2_FUNCS
        cname, exact = table[name]
        if not exact:
            self.inexact.add(name)
        if c == "float":
            cname += "f"
        return f"{cname}({', '.join(args)})"

    def minmax(self, fn, names, argtypes, rt, narrow):
        """Python's min/max as numba computes it.

        Left to right, each step in the unified type; ``min(a, b)`` is ``b`` only if ``b < a``.
        """
        types = self.types
        which = "min" if fn is min else "max"
        if narrow:
            acc = self.get(names[0], "sk_i32")
            for name in names[1:]:
                acc = f"sk_{which}_i32({acc}, {self.get(name, 'sk_i32')})"
            return acc, "sk_i32"
        ctx = _typing_context()
        acc_t = argtypes[0]
        acc_c = ctype(acc_t)
        acc = self.get(names[0], acc_c)
        for name, t in zip(names[1:], argtypes[1:]):
            u = types.unliteral(ctx.unify_types(acc_t, t))
            if not self.is_value(u):
                raise Unsupported(f"{which}() of {acc_t} and {t}")
            uc = ctype(u)
            acc = f"sk_{which}_{sfx(uc)}({conv(acc, acc_c, uc)}, {self.chain(name, t, uc)})"
            acc_t, acc_c = u, uc
        return conv(acc, acc_c, ctype(rt)), ctype(rt)


_SUFFIX = {"bool": "b", "float": "f32", "double": "f64"}


def sfx(c: str) -> str:
    """The helper-name suffix of a C++ type: ``sk_i64`` -> ``i64``, ``double`` -> ``f64``."""
    return _SUFFIX.get(c) or c[3:]


_NP_OF = {"bool": np.bool_, "sk_i8": np.int8, "sk_i16": np.int16, "sk_i32": np.int32,
          "sk_i64": np.int64, "sk_u8": np.uint8, "sk_u16": np.uint16, "sk_u32": np.uint32,
          "sk_u64": np.uint64, "float": np.float32, "double": np.float64}


def convert(value, c: str):
    """A Python number as numba would hold it in a value of C++ type ``c``."""
    t = _NP_OF[c]
    if t is np.bool_:
        return bool(value != 0)
    with np.errstate(all="ignore"):
        return np.array(value).astype(t)[()]


def literal_c(value, c: str) -> str:
    """C++ source for ``value`` (already converted for ``c``) as a value of type ``c``."""
    value = convert(value, c)
    if c == "bool":
        return "true" if value else "false"
    if c in ("float", "double"):
        v = float(value)
        bits = np.array(v, _NP_OF[c]).view(np.uint32 if c == "float" else np.uint64)
        if not math.isfinite(v):
            return f"sk_f32_bits({int(bits)}u)" if c == "float" else f"sk_f64_bits({int(bits)}ull)"
        text = float(np.float32(v)).hex() + "f" if c == "float" else v.hex()
        return f"({text})" if text.startswith("-") else text
    v = int(value)
    if c == "sk_i32":
        return "(-2147483647 - 1)" if v == -(2**31) else (f"({v})" if v < 0 else str(v))
    if c == "sk_i64":
        if v == -(2**63):
            return "(-9223372036854775807LL - 1)"
        return f"({v}LL)" if v < 0 else f"{v}LL"
    if c == "sk_u32":
        return f"{v}u"
    if c == "sk_u64":
        return f"{v}ull"
    return f"(({c}){v})"


def conv(text: str, have: str, want: str) -> str:
    """Convert C++ ``text`` of type ``have`` to ``want`` (numba's cast between number types)."""
    if have == want:
        return text
    if want == "bool":
        return f"({text} != 0)"
    if have in ("float", "double") and want.startswith("sk_"):
        return f"sk_f2i_{sfx(want)}({text})"  # (saturating: see stencilkit._casts.to_int)
    if re.fullmatch(r"\w+|\(.*\)", text) and _balanced(text):
        return f"({want}){text}"
    return f"(({want})({text}))"


def _balanced(text: str) -> bool:
    """Whether ``text`` is one identifier or one parenthesised group (safe to cast as is)."""
    if re.fullmatch(r"\w+", text):
        return True
    depth = 0
    for i, ch in enumerate(text):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and i != len(text) - 1:
            return False
    return True


RANGED = True
"""Integer comparisons that the operands' ranges decide are emitted as their outcome, and
divisions by a positive constant of a dividend of known range as unsigned ones (lifted by a
multiple of the divisor where it may be negative): the uniform 3 x 3 uint8 filter's word
kernel took 515 SASS instructions a 7-row step before, 364 with them (ptxas 12, sm_90;
``tools/kernel_steps.py``). False: the signed forms and every test, for A/B timing
(``tools/gpu_profile.py``'s "ranges unused" rows); part of the module caches' keys
(:func:`stencilkit.codegen_cpp.source_settings`)."""


def magic32(top: int, divisor: int):
    """``(m, k)``: ``n // divisor == (n * m) >> k`` for every ``0 <= n <= top``, in 32 bits.

    The least shift ``k`` whose ``m = ceil(2^k / divisor)`` errs by less than one over the
    range (``top * (m * divisor - 2^k) < 2^k``, after Granlund and Montgomery, PLDI 1994) and
    whose products stay below ``2^32``; None where there is none, or for a power of two (a
    shift already).

    >>> magic32(2299, 9)  # (1821 * 9 = 2^14 + 5, and 2299 * 5 < 2^14)
    (1821, 14)
    >>> magic32(2**31, 9) is None, magic32(100, 8) is None
    (True, True)
    """
    if divisor <= 1 or divisor & (divisor - 1) == 0 or top < 0:
        return None
    for k in range(1, 32):
        m = -(-(1 << k) // divisor)
        if top * (m * divisor - (1 << k)) < (1 << k):
            return (m, k) if top * m < 2**32 else None
    return None


def _udiv(kind, a, top, divisor, c, u) -> str:
    """``a // divisor`` or ``a % divisor`` (``kind``) as C++ type ``c``.

    ``a``: an unsigned C++ value (type ``u``) of at most ``top``. By a 32-bit multiply and a
    shift where :func:`magic32` finds them: one integer multiply-add with what was added to
    ``a`` (the rounding of a mean), instead of a wide multiply-high after the addition (the
    3 x 3 uint8 box's step 351 -> 320 SASS instructions for 28 outputs); else by C's unsigned
    division.
    """
    if kind == "floordiv":
        return f"(({c}){udiv(a, top, divisor, u)})"
    if magic32(top, divisor) is None or u != "sk_u32":
        return f"(({c})({a} % ({u}){divisor}))"
    return f"(({c})({a} - {udiv(a, top, divisor, u)} * {divisor}u))"


def udiv(a, top, divisor, u) -> str:
    """C++ for ``a / divisor`` of the unsigned value ``a`` (type ``u``, at most ``top``).

    A 32-bit multiply and shift where :func:`magic32` finds them, else C's division.
    """
    magic = magic32(top, divisor) if u == "sk_u32" else None
    if magic is None:
        return f"({a} / ({u}){divisor})"
    return f"(({a} * {magic[0]}u) >> {magic[1]})"


def _lift(iv, divisor, c):
    """``(k, k * divisor)``: what lifts the interval ``iv`` to non-negative values.

    The least ``k`` that makes every value of ``iv`` plus ``k * divisor`` non-negative and
    still within C++ type ``c`` (sk_i32 or sk_i64), for a positive constant ``divisor``; None
    where there is none (or ``iv`` is unknown).

    >>> _lift((-1152, 1143), 9, "sk_i32")
    (128, 1152)
    >>> _lift((-2**31, 0), 9, "sk_i32") is None
    True
    """
    if iv is None or divisor is None or divisor <= 0 or c not in ("sk_i32", "sk_i64"):
        return None
    k = -(iv[0] // divisor)  # (ceil(-lo / d))
    top = 2**31 - 1 if c == "sk_i32" else 2**63 - 1
    if k < 0 or iv[1] + k * divisor > top:
        return None
    return k, k * divisor


def decided(op: str, a, b):
    """The comparison ``a op b`` where the intervals ``a`` and ``b`` decide it, else None.

    True or False where every pair of integers in the intervals compares the same; None
    otherwise, or where an interval is unknown.

    >>> decided("<", (0, 255), (0, 0)), decided(">", (0, 255), (255, 255))
    (False, False)
    >>> decided("<", (0, 255), (256, 256)), decided("==", (0, 9), (3, 3)) is None
    (True, True)
    """
    if a is None or b is None:
        return None
    if op in (">", ">="):
        op, a, b = {">": "<", ">=": "<="}[op], b, a
    if op == "<":
        return True if a[1] < b[0] else False if a[0] >= b[1] else None
    if op == "<=":
        return True if a[1] <= b[0] else False if a[0] > b[1] else None
    if a[0] == a[1] == b[0] == b[1]:
        return op == "=="
    if a[1] < b[0] or b[1] < a[0]:
        return op == "!="
    return None


def wrap(expr: str, c: str, narrow: bool) -> str:
    """A binary expression in type ``c``: C++ promotes types narrower than int, so cast back."""
    if c in ("sk_i32", "sk_i64", "sk_u32", "sk_u64") or narrow:
        return f"({expr})"
    return f"(({c})({expr}))"



def _typing_context():
    from numba.core.registry import cpu_target

    return cpu_target.typing_context


@dataclass
class BodyRequest:
    """What the body is compiled for: the accumulator, input ranges and parameter types."""

    acc: np.dtype
    input_dtypes: dict        # array name -> dtype
    param_types: tuple        # numba types of the scalar parameters


def read_range(dtype, acc):
    """Interval of an element of ``dtype`` widened to ``acc``, or None when not an integer."""
    dtype, acc = np.dtype(dtype), np.dtype(acc)
    if acc.kind not in "iub":
        return None
    if acc.kind == "b":
        return (0, 1)
    info = np.iinfo(acc)
    full = (int(info.min), int(info.max))
    if dtype.kind == "b":
        return (0, 1)
    if dtype.kind in "iu":
        src = np.iinfo(dtype)
        if info.min <= src.min and src.max <= info.max:
            return (int(src.min), int(src.max))
    return full


def translator(spec: KernelSpec, acc, span, param_types, share: bool = False):
    """The body typed by numba, ready for its intervals: ``(translator, reads, readers)``.

    ``acc``: the reads' dtype; ``span(array)``: the interval of that array's reads (None: the
    type's); ``param_types``: numba types of the scalar parameters; ``share``: as
    :func:`point_source`. Used by :func:`emit` and by the CPU's narrowing
    (:mod:`stencilkit._narrow`).
    """
    import numba
    from numba.core import types

    _register_reader_typeof()
    source, reads = point_source(spec, share)
    acc_t = numba.from_dtype(np.dtype(acc))
    readers = tuple(a for a in spec.arrays
                    if any(isinstance(o, str) for x in spec.accesses if x.array == a
                           for o in x.offsets))
    namespace = dict(spec.globals)
    for a in readers:
        namespace[f"_sk_rd_{a}"] = _Reader(a, spec.ndim, acc_t)
    exec(compile(source, f"<stencilkit body of {spec.name}>", "exec"), namespace)
    func_ir, typemap, calltypes, return_type = typed_ir(
        namespace["_sk_point"], [acc_t] * len(reads) + list(param_types))
    arg_ranges = [span(a) for a, _ in reads]
    arg_ranges += [type_range(t) if isinstance(types.unliteral(t), types.Integer)
                   or t == types.boolean else None for t in param_types]
    tr = _Translator(func_ir, typemap, calltypes, return_type, arg_ranges,
                     {a: span(a) for a in readers})
    return tr, reads, readers


def emit(spec: KernelSpec, req: BodyRequest, fname: str) -> Body:
    """Translate the kernel body, typed for ``req``, into the C++ function ``fname``."""
    from numba.core import types

    # regrouped for signed and bool accumulators, whose sums numba types int64 throughout
    # (unsigned ones sum to uint64, and a uint64 with an int64 operand becomes int64, negative
    # beyond 2**63: regrouping would move those conversions)
    share = SHARE_ROWS and np.dtype(req.acc).kind in "bi"
    tr, reads, readers = translator(
        spec, req.acc, lambda a: read_range(req.input_dtypes[a], req.acc), req.param_types,
        share)
    typemap, return_type = tr.typemap, tr.return_type
    tr.prefix = fname
    # argument names: readable ones from the reads and the parameters
    for i, (a, offs) in enumerate(reads):
        tr.names[f"_sk_a{i}"] = access_name(a, offs)
        tr.used.add(access_name(a, offs))
    for p in spec.params:
        tr.names[p] = p + "_"
        tr.used.add(p + "_")
    if not tr.is_value(return_type):
        raise Unsupported(f"the kernel returns a value of type {return_type}")
    decls, lines = tr.emit()
    arg_ctypes = [tr.storage(f"_sk_a{i}") for i in range(len(reads))]
    param_ctypes = [ctype(t) for t in req.param_types]
    sig_args = [f"{c} {access_name(a, o)}" for c, (a, o) in zip(arg_ctypes, reads)]
    sig_args += [f"{c} {p}_" for c, p in zip(param_ctypes, spec.params)]
    head = f"SK_FN {tr.return_ctype} {fname}({', '.join(sig_args)})"
    if readers:
        sig_args.insert(0, "const Rd& rd")
        head = f"template <class Rd>\nSK_FN {tr.return_ctype} {fname}({', '.join(sig_args)})"
    text = "\n".join([*(f[3] for f in tr.functions.values()), head + " {", *decls, *lines, "}"])
    ints = [v for v, t in typemap.items() if types.unliteral(t) == types.int64
            and not v.startswith("arg.") and v not in tr.consts]
    narrowed = sum(1 for v in ints if tr.storage(v) == "sk_i32")
    return Body(name=fname, text=text, arg_ctypes=arg_ctypes, param_ctypes=param_ctypes,
                return_ctype=tr.return_ctype, return_type=types.unliteral(return_type),
                readers=readers, inexact=tuple(sorted(tr.inexact)), narrowed=narrowed,
                wide=len(ints) - narrowed)


def reads_of(spec: KernelSpec):
    """The constant-offset reads of ``spec`` in the order :func:`emit` passes them."""
    return point_source(spec)[1]
