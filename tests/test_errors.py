"""The validation contract: each bad kernel or argument raises a documented error, before compiling.

Every message names the kernel, the problem and the fix; ``match=`` pins the wording users see.
"""

from os import getcwd

import numpy as np
import pytest
from kernels import blend, smooth

import stencilkit as sk

GLOBAL_ARRAY = np.ones(3)
GLOBAL_PAIRS = ((1, 2), (3, 4))


def bad_dynamic(x, k):
    return x[k]


def bad_rank(x):
    return x[0, 1] + x[1]


def bad_assign(x):
    x[0, 0] = 1
    return x[0, 0]


def bad_augassign(x):
    x[0] += 1
    return x[0]


def bad_rebind(x):
    x = 3
    return x[0]


def bad_no_return(x):
    y = x[0]  # noqa: F841


def bad_bare_return(x):
    if x[0] > 0:
        return
    return x[0]


def bad_slice(x):
    return x[0:2]


def bad_float_index(x):
    return x[0.5]


def bad_whole(x):
    return x[0] + x.shape[0]


def bad_order(a, x):
    return x[0] * a


def bad_global_array(x):
    return x[0] * GLOBAL_ARRAY[0]


def bad_global_tuple(x):  # (a tuple of numbers is allowed; one holding other things is not)
    return x[0] * GLOBAL_PAIRS[0][0]


def bad_global_function(x):  # (math's and NumPy's functions by name are allowed; others not)
    return x[0] * getcwd()


def bad_undefined(x):
    return x[0] * not_defined_anywhere  # noqa: F821


def bad_nested(x):
    f = lambda v: v  # noqa: E731
    return f(x[0])


def bad_clash(x, mode):
    return x[0] * mode


def bad_no_array(a, b):
    return a + b


def bad_reserved(x):
    _sk_tmp = x[0]
    return _sk_tmp


def offsets_outside(x, k):
    return x[k] + x[3]


DECORATION_ERRORS = [
    (bad_dynamic, {}, sk.StencilError,
     r"'bad_dynamic'.*index 'k' in x\[k\] is not a constant.*neighborhood="),
    (bad_rank, {}, sk.StencilError, r"x\[1\] has 1 indices but x\[0, 1\] has 2"),
    (bad_assign, {}, sk.StencilError, r"is assigned to; a kernel must not write into its inputs"),
    (bad_augassign, {}, sk.StencilError, r"must not write into its inputs"),
    (bad_rebind, {}, sk.StencilError, r"array argument 'x' is rebound"),
    (bad_no_return, {}, sk.StencilError, r"'bad_no_return': the kernel never returns a value"),
    (bad_bare_return, {}, sk.StencilError, r"'return' without a value"),
    (bad_slice, {}, sk.StencilError, r"x\[0:2\] takes a slice"),
    (bad_float_index, {}, sk.StencilError, r"index '0.5' in x\[0.5\] is not an integer offset"),
    (bad_whole, {}, sk.StencilError, r"'x' is used whole in 'x.shape'"),
    (bad_order, {}, sk.StencilError,
     r"array arguments must come before scalar parameters.*\(x, a\)"),
    (bad_global_array, {}, sk.StencilTypeError, r"global 'GLOBAL_ARRAY' is a ndarray"),
    (bad_global_tuple, {}, sk.StencilTypeError,
     r"global 'GLOBAL_PAIRS' is a tuple; a kernel may use modules, numbers, tuples of numbers"),
    (bad_global_function, {}, sk.StencilTypeError,
     r"global 'getcwd' is a builtin_function_or_method; .*math's and NumPy's functions"),
    (bad_undefined, {}, sk.StencilError, r"name 'not_defined_anywhere' is not defined"),
    (bad_nested, {}, sk.StencilError, r"nested functions, lambdas"),
    (bad_clash, {}, sk.StencilError, r"parameter name\(s\) mode clash"),
    (bad_no_array, {}, sk.StencilError, r"no argument is read with a relative index"),
    (bad_reserved, {}, sk.StencilError, r"reserved prefix '_sk_'"),
    (offsets_outside, {"neighborhood": ((-1, 1),)}, sk.StencilError,
     r"x\[3\] reads offset 3 on axis 0, outside the declared neighborhood \(-1, 1\)"),
    (offsets_outside, {"neighborhood": ((-1, 1), (0, 0))}, sk.StencilError,
     r"neighborhood has 2 axes but the subscripts have 1"),
    (offsets_outside, {"neighborhood": "wide"}, sk.StencilError, r"one \(low, high\) pair"),
    (offsets_outside, {"neighborhood": ((2, -2),)}, sk.StencilError, r"low > high"),
    (bad_dynamic, {"mode": "periodic"}, sk.StencilError, r"unknown boundary mode 'periodic'"),
    (bad_dynamic, {"colour": 1}, sk.StencilTypeError, r"unknown option\(s\) colour"),
]


@pytest.mark.parametrize("fn, kwargs, exc, match", DECORATION_ERRORS,
                         ids=[f"{e[0].__name__}-{i}" for i, e in enumerate(DECORATION_ERRORS)])
def test_decoration_errors(fn, kwargs, exc, match):
    if fn is bad_dynamic and kwargs:
        kwargs = {"neighborhood": ((-1, 1),), **kwargs}
    with pytest.raises(exc, match=match):
        sk.stencil(fn, **kwargs)


def test_source_must_be_readable():
    fn = eval("lambda x: x[0]")  # noqa: S307 - a function without a source file
    with pytest.raises(sk.StencilError, match="cannot read the source"):
        sk.stencil(fn)


a2 = np.zeros((4, 5), np.int16)

CALL_ERRORS = [
    (lambda: blend(a2, np.zeros((4, 6)), 1.0), sk.StencilError,
     r"'blend_py': arrays must have one shape, but 'a' has \(4, 5\) and 'b' has \(4, 6\)"),
    (lambda: smooth(np.zeros(5)), sk.StencilError,
     r"array 'x' has 1 axis/axes but the kernel has 2 core axes"),
    (lambda: smooth(np.zeros((3, 3), object)), TypeError, r"dtype dtype\('O'\).*cannot compute on"),
    (lambda: smooth(np.zeros((3, 3), "U3")), TypeError, r"cannot compute on"),
    (lambda: smooth(np.zeros((3, 3), "M8[s]")), TypeError, r"cannot compute on"),
    (lambda: smooth(a2, out=np.zeros((4, 4), np.int16)), sk.StencilError,
     r"out has shape \(4, 4\) but the result has shape \(4, 5\)"),
    (lambda: smooth(a2, out=np.zeros((4, 5), np.float32)), sk.StencilError,
     r"out has dtype float32 but the result's dtype is int16; pass out_dtype='float32'"),
    (lambda: smooth(a2, out=np.broadcast_to(np.int16(0), (4, 5))), sk.StencilError,
     r"out is read-only"),
    (lambda: smooth(a2, out=[[0] * 5] * 4), sk.StencilTypeError, r"out must be a NumPy array"),
    (lambda: smooth(a2, mode="wraparound"), sk.StencilError, r"unknown boundary mode 'wraparound'"),
    (lambda: smooth(a2, mode=3), sk.StencilTypeError, r"mode must be a string"),
    (lambda: smooth(a2, cval=1), sk.StencilError, r"cval=1 has no effect with mode='reflect'"),
    (lambda: smooth(a2, mode="constant", cval=np.nan), sk.StencilError,
     r"cval=nan cannot be represented exactly in the accumulator dtype int64"),
    (lambda: smooth(a2, mode="skip", cval=1e6), sk.StencilError,
     r"cannot be represented exactly in the output dtype int16"),
    (lambda: smooth(a2, axes=(0, 0)), sk.StencilError, r"axes=\(0, 0\) repeats an axis"),
    (lambda: smooth(a2, axes=(0, 2)), sk.StencilError, r"axis 2 is out of range"),
    (lambda: smooth(a2, axes=(0,)), sk.StencilError, r"names 1 axis/axes but the kernel has 2"),
    (lambda: smooth(a2, axes="rows"), sk.StencilTypeError, r"axes must be a tuple of ints"),
    (lambda: smooth(a2, a2), sk.StencilTypeError,
     r"takes 1 array\(s\) \(x\) and 0 scalar parameter\(s\) \(none\); got 2"),
    (lambda: blend(a2, a2, a2), sk.StencilTypeError, r"parameter 'alpha' must be a scalar number"),
    (lambda: smooth(a2, colour=2), sk.StencilTypeError, r"unexpected keyword argument\(s\) colour"),
    (lambda: smooth(a2, target="tpu"), sk.StencilError, r"unknown target 'tpu'"),
    (lambda: smooth(a2, parallel="yes"), sk.StencilTypeError, r"parallel must be None, True"),
    (lambda: smooth(a2, acc=np.float16), TypeError, r"acc=float16 is not supported"),
    (lambda: smooth(np.zeros((2, 2), np.longdouble)), TypeError, r"extended precision"),
    (lambda: smooth.iterate(a2, steps=-1), sk.StencilError, r"steps must be >= 0"),
    (lambda: smooth.iterate(a2, steps=1.5), sk.StencilTypeError, r"steps must be an int"),
    (lambda: smooth.iterate(a2, steps=2, block_steps=0), sk.StencilError,
     r"block_steps must be a positive int, got 0"),
    (lambda: smooth.iterate(a2, steps=2, block_steps=2.5), sk.StencilError,
     r"block_steps must be a positive int, got 2.5"),
    (lambda: smooth.iterate(a2, steps=1, out_dtype=np.float64), sk.StencilError,
     r"output dtype \(float64\) must equal that array's dtype \(int16\)"),
]


@pytest.mark.parametrize("call, exc, match", CALL_ERRORS, ids=range(len(CALL_ERRORS)))
def test_call_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_kernel_returning_complex_into_real_output():
    @sk.stencil(out_dtype=np.float64)
    def to_complex(x):
        return x[0] * 1j

    with pytest.raises(Exception, match="returns a complex value but the output dtype"):
        to_complex(np.zeros(3))


def test_a_body_numba_cannot_type_names_the_kernel_and_types():
    """A function numba has no implementation of for the body's types (``np.clip`` of
    scalars): a StencilTypeError naming the kernel and the call's types, numba's account
    quoted after, not numba's TypingError about a generated file."""
    @sk.stencil
    def clipped(x, lo):
        return np.clip(x[0], lo, 1.0)

    with pytest.raises(sk.StencilTypeError, match=r"(?s)stencil kernel 'clipped': numba cannot "
                       r"compile the kernel's body for \(float32, float\).*"
                       r"No implementation of function"):
        clipped(np.zeros(3, np.float32), -1.0)


def test_a_kernels_own_exception_rises_from_the_parallel_loop_too():
    """numba turns an exception raised in a parallel loop into a SystemError ("returned a
    result with an exception set"); the serial twin then runs and raises the kernel's own."""
    @sk.stencil
    def refuse(x):
        if x[0, 0] > 0.99:
            raise ValueError("a value above 0.99")
        return x[0, 1]

    a = np.random.default_rng(0).random((150, 150))  # (more than one thread's share)
    for x in (a, a[:20, :20] + 1):  # the parallel loop, the serial one
        with pytest.raises(ValueError, match="a value above 0.99"):
            refuse(x)
    np.testing.assert_array_equal(refuse(a * 0.5), refuse(a * 0.5, parallel=False))


def test_errors_are_raised_before_compiling(monkeypatch):
    """Bad calls never reach the code generator."""
    from stencilkit.backends import cpu

    def boom(*args, **kwargs):  # pragma: no cover - the test fails if this runs
        raise AssertionError("compiled")

    fresh = sk.stencil(lambda_free_kernel)
    monkeypatch.setattr(cpu, "load_module", boom)
    for call in (lambda: fresh(np.zeros(3)), lambda: fresh(np.zeros((3, 3)), out=np.zeros(2))):
        with pytest.raises((sk.StencilError, sk.StencilTypeError)):
            call()


def lambda_free_kernel(x):
    return x[0, 1]
