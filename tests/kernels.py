"""Kernels shared by the tests, defined once at module level so each compiles once per run.

Each entry of ``KERNELS`` pairs a Stencil with the plain Python function it was made from, which
tests/reference.py evaluates element by element as the independent reference.
"""

import functools
import math
from math import floor, sqrt

import numba
import numpy as np
from numpy import hypot, maximum, rint

import stencilkit as sk


def smooth_py(x):
    return (x[-1, -1] + x[-1, 0] + x[-1, 1] +
            x[0, -1] + x[0, 0] + x[0, 1] +
            x[1, -1] + x[1, 0] + x[1, 1]) // 9


def skew1_py(x):
    return x[-1] + x[0] + x[0] - x[2]


def asym2_py(x):
    return x[0, 1] - x[0, -2]


def lap3_py(u):
    return (u[-1, 0, 0] + u[1, 0, 0] + u[0, -1, 0] + u[0, 1, 0] + u[0, 0, -1] + u[0, 0, 1]
            - u[0, 0, 0] - u[0, 0, 0] - u[0, 0, 0] - u[0, 0, 0] - u[0, 0, 0] - u[0, 0, 0])


def deep3_py(u):
    # reaches further along axis 0 than along axis 1: its rows are walked with axis 0 fastest
    return u[-3, 0, 0] + 2 * u[2, -1, 1] - u[1, 1, -1] + u[0, 0, 0]


def blend_py(a, b, alpha):
    return a[0, 0] * alpha + b[-1, 1]


smooth = sk.stencil(smooth_py)
skew1 = sk.stencil(skew1_py)
asym2 = sk.stencil(asym2_py)
lap3 = sk.stencil(lap3_py)
deep3 = sk.stencil(deep3_py)
blend = sk.stencil(blend_py)


# Offsets known only at run time: the reach is declared with neighborhood=.
@sk.stencil(neighborhood=((-3, 3), (-3, 3)))
def shift(x, di, dj):
    return x[di, dj]


@sk.stencil(neighborhood=((-2, 2), (-2, 2)))
def box5(x):
    s = 0
    for i in range(-2, 3):
        for j in range(-2, 3):
            s += x[i, j]
    return s


# Float literals (numba types them float64, so x * 0.25 is float64 for float32 x) and a
# saturating float-to-uint8 result: the casts the GPU paths must reproduce.
@sk.stencil
def scaled(x):
    return x[0, -1] * 0.25 + x[0, 1] * 0.5 - 3


@sk.stencil(out_dtype=np.uint8)
def amplify(x):
    return x[0] * 300.0 - x[1]


# Conversions of floats to integers inside a body, each selected by k (all int64 results; the
# unsigned ones wrap into it, a bijection): truncated toward zero (floored, rounded), saturated
# at the type's limits and NaN 0 on every backend (stencilkit._casts.to_int). numba's own
# conversion is undefined there: x86 gave int(1.5e20) = -2**63 and np.uint8(300.7) = 44.
@sk.stencil(out_dtype=np.int64)
def conversions(x, k):
    v = x[0]
    if k == 0:
        r = int(v)
    elif k == 1:
        r = np.int64(np.int8(v))
    elif k == 2:
        r = np.int64(np.int16(v))
    elif k == 3:
        r = np.int64(np.int32(v))
    elif k == 4:
        r = np.int64(v)
    elif k == 5:
        r = np.int64(np.uint8(v))
    elif k == 6:
        r = np.int64(np.uint16(v))
    elif k == 7:
        r = np.int64(np.uint32(v))
    elif k == 8:
        r = np.int64(np.uint64(v))
    elif k == 9:
        r = math.floor(v)
    elif k == 10:
        r = math.ceil(v)
    elif k == 11:
        r = math.trunc(v)
    else:
        r = round(v)
    return r


@sk.stencil
def math_edges(x):  # NaN and infinities where Python's math raises (compiled code does not);
    # for x <= 0, inf or NaN: exact results only, as a device's log and exp may differ in
    # their last bits elsewhere
    return math.sqrt(x[0]) + math.log(x[0]) + math.exp(x[0] * 1000)


def named_functions_py(x):  # math's and NumPy's functions bound by name (from math import sqrt)
    return sqrt(abs(x[0])) + floor(x[1] / 3) + maximum(x[-1], 2) + hypot(x[0], 4) + rint(x[0] / 4)


named_functions = sk.stencil(named_functions_py)


def numpy_ufuncs_py(x):  # NumPy's ufuncs on scalars, exactly rounded ones (numba-cuda lacks them)
    a = np.sqrt(np.abs(x[0])) + np.floor(x[1] / 3) - np.ceil(x[-1] / 7) + np.trunc(x[0] / 5)
    b = np.square(x[1]) + np.sign(x[-1]) * np.fabs(x[0]) + np.copysign(2, x[1])
    # (np.fmod of floats: numba's integer loop takes an unsigned remainder, fmod(-8, 7) is 1)
    return a + b + np.fmod(x[0] / 2, 7) + np.negative(x[1]) + np.power(x[-1], 2)


numpy_ufuncs = sk.stencil(numpy_ufuncs_py)


@sk.stencil(neighborhood=((-1, 1),))
def square_negative(x):  # np.square/np.negative/np.positive: the C++ path's too (numba's loops)
    narrow = np.square(np.int16(x[0] // 3)) + np.negative(np.uint8(x[1]))  # int16, uint8: wrap
    return np.square(x[0]) - np.negative(x[1]) + np.positive(x[-1]) + narrow


@sk.stencil
def numpy_ufuncs_inexact(x):  # libdevice's on a GPU: within a few ulps of the CPU's
    return (np.exp(x[0] / 100) + np.expm1(x[1] / 50) + np.log1p(np.abs(x[-1])) + np.exp2(x[0] / 64)
            + np.cbrt(x[1]) + np.power(np.abs(x[0]) + 1, 0.3))


@sk.stencil
def builtin_types(x):  # max(int64, float64) is a float64, math.sqrt of a float32 a float32
    return max(x[0], x[0] / 3) + math.sqrt(abs(x[0])) % 1


@sk.stencil(neighborhood=((-1, 1),))
def narrow_types(x):  # numba's promotions, not NumPy's scalars' (the simulator: _scalar_ops)
    a = np.int8(x[-1]) + np.int8(x[1])  # an int64 (NumPy's int8 wraps at 127)
    b = -np.uint8(x[0]) * np.uint8(2)  # a uint64, 2 * (256 - x[0] % 256) (NumPy's uint8 wraps)
    c = (np.uint64(x[0]) + 1) & 7  # an int64 (NumPy's float64 refuses &)
    y = np.uint64(x[0]) if a < 0 else np.int64(-1)  # a float64 on both paths
    e = np.int16(x[1])
    e *= np.int16(300)  # an int64 (NumPy's int16 wraps)
    return a + b + c + (y // 3) % 1000 + (e >> 12)


@sk.stencil
def integer_roundings(x):  # of an integer: the integer itself, so every difference 0
    v = x[0]
    return (math.floor(v) - v) | (math.ceil(v) - v) | (math.trunc(v) - v) | (round(v) - v)


# NumPy's ufuncs on scalars by their loops (numba's ufunc_db; the C++ path translates them
# with _cpp_body.Translator.ufunc_loop). Called with acc=dtype, so the loops run in the
# data's type; k picks one (a run-time choice: one compiled kernel per dtype).
INT_LOOPS = [np.add, np.subtract, np.multiply, np.floor_divide, np.remainder, np.fmod,
             np.power, np.sign, np.bitwise_and, np.bitwise_or, np.bitwise_xor, np.invert]


@sk.stencil
def int_loops(x, y, k):
    a = x[0]
    b = y[0]
    if k == 0:
        r = np.add(a, b)
    elif k == 1:
        r = np.subtract(a, b)
    elif k == 2:
        r = np.multiply(a, b)
    elif k == 3:
        r = np.floor_divide(a, b)
    elif k == 4:
        r = np.remainder(a, b)
    elif k == 5:
        r = np.fmod(a, b)
    elif k == 6:
        r = np.power(a, b)
    elif k == 7:
        r = np.sign(a)
    elif k == 8:
        r = np.bitwise_and(a, b)
    elif k == 9:
        r = np.bitwise_or(a, b)
    elif k == 10:
        r = np.bitwise_xor(a, b)
    else:
        r = np.invert(a)
    return r


FLOAT_LOOPS = [np.add, np.subtract, np.multiply, np.true_divide, np.floor_divide, np.remainder,
               np.fmod, np.power, np.float_power, np.sign, np.reciprocal, np.deg2rad, np.rad2deg]


@sk.stencil
def float_loops(x, y, k):
    a = x[0]
    b = y[0]
    if k == 0:
        r = np.add(a, b)
    elif k == 1:
        r = np.subtract(a, b)
    elif k == 2:
        r = np.multiply(a, b)
    elif k == 3:
        r = np.true_divide(a, b)
    elif k == 4:
        r = np.floor_divide(a, b)
    elif k == 5:
        r = np.remainder(a, b)
    elif k == 6:
        r = np.fmod(a, b)
    elif k == 7:
        r = np.power(a, b)
    elif k == 8:
        r = np.float_power(a, b)
    elif k == 9:
        r = np.sign(a)
    elif k == 10:
        r = np.reciprocal(a)
    elif k == 11:
        r = np.deg2rad(a)
    else:
        r = np.rad2deg(a)
    return r


PREDICATE_LOOPS = [np.logical_and, np.logical_or, np.logical_xor, np.logical_not, np.greater,
                   np.greater_equal, np.less, np.less_equal, np.equal, np.not_equal, np.signbit]


@sk.stencil
def predicate_loops(x, y, k):
    a = x[0]
    b = y[0]
    if k == 0:
        r = np.logical_and(a, b)
    elif k == 1:
        r = np.logical_or(a, b)
    elif k == 2:
        r = np.logical_xor(a, b)
    elif k == 3:
        r = np.logical_not(a)
    elif k == 4:
        r = np.greater(a, b)
    elif k == 5:
        r = np.greater_equal(a, b)
    elif k == 6:
        r = np.less(a, b)
    elif k == 7:
        r = np.less_equal(a, b)
    elif k == 8:
        r = np.equal(a, b)
    elif k == 9:
        r = np.not_equal(a, b)
    else:
        r = np.signbit(a)
    return r


@sk.stencil
def mixed_loops(x, y, k):  # loops of types other than the arguments' (out_dtype=np.float64)
    a = x[0]
    b = y[0]
    if k == 0:
        r = np.float64(np.true_divide(a, b))  # (integers: the float64 loop)
    elif k == 1:
        r = np.float64(np.add(np.int8(a), np.int16(b)))  # int16's
    elif k == 2:
        r = np.float64(np.power(np.float32(a), np.int64(b) % 5))  # float64's
    elif k == 3:
        r = np.float64(np.remainder(np.uint8(a), np.int8(b)))  # int16's
    elif k == 4:
        r = np.float64(np.floor_divide(np.int16(a), np.uint8(b)))  # int16's
    elif k == 5:
        r = np.float64(math.radians(a)) + np.float64(math.degrees(b))
    elif k == 6:
        r = np.float64(np.multiply(np.uint16(a), np.uint8(b)))  # uint16's, wrapping
    else:
        r = np.float64(np.greater(np.uint8(a), np.int8(b)))  # int16's
    return r


LOOP_FLOATS = [0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 3.0, -7.5, 7.0, 1e-40, 1e30, -1e30, np.inf,
               -np.inf, np.nan]
LOOP_INTS = [0, 1, -1, 2, -2, 3, -3, 5, -7, 8, 100, -100, 127, -128, 200, 255, 1000, -1000]


def _power_steps_fit(a, b):
    """Whether numba's int_power (its loop in int64, no-signed-wrap) stays in int64."""
    if b < 0 and a not in (1, -1) or a in (0, 1) or b >= 64:
        return True  # (0 and the rest return before the loop; the rest: unsigned loops)
    r, x, e = 1, a, abs(b)
    while e:
        if e & 1:
            r *= x
        e >>= 1
        x *= x
        if not -2**63 <= min(r, x) <= max(r, x) < 2**63:
            return False
    return True


def loop_pairs(fn, dtype):
    """``(a, b)``: every pair of sample values of ``dtype`` that loop ``fn`` is defined on.

    numba compiles signed integer arithmetic with no-signed-wrap (an overflowing int8 add has
    no defined value) and takes a signed remainder of MIN by -1 as x86 does (a trap): those
    pairs are left out. The power's exponents are -3..8 (the integers): its value reaches the
    loop's type through a float64, a conversion LLVM leaves undefined beyond the type, so
    powers beyond it are left out too.
    """
    dt = np.dtype(dtype)
    if dt.kind == "f":
        v = np.array(LOOP_FLOATS, dt)
        a, b = (m.ravel() for m in np.meshgrid(v, v))
        return a, b
    info = np.iinfo(dt)
    vals = LOOP_INTS + [int(info.min), int(info.max), int(info.min) + 1, int(info.max) - 1]
    v = np.unique(np.array([x % 2**(8 * dt.itemsize) for x in vals], np.uint64).astype(dt))
    e = np.arange(-3, 9).astype(dt) if fn is np.power else v
    a, b = (m.ravel() for m in np.meshgrid(v, e))
    pairs = list(zip(a.tolist(), b.tolist()))
    keep = [True] * len(pairs)
    exact = {np.add: lambda x, y: x + y, np.subtract: lambda x, y: x - y,
             np.multiply: lambda x, y: x * y}.get(fn)
    if dt.kind == "i" and exact is not None:
        keep = [info.min <= exact(x, y) <= info.max for x, y in pairs]
    elif dt.kind == "i" and fn is np.remainder:
        keep = [not (x == info.min and y == -1) for x, y in pairs]
    elif fn is np.power:
        keep = [_power_steps_fit(x, y) and (y < 0 or x in (0, 1) or (
            y < 64 and info.min <= x ** y <= info.max)) for x, y in pairs]
    return a[np.array(keep)], b[np.array(keep)]


# (k's conversion: the rounding, then the integer type saturated into)
CONVERSIONS = [("trunc", np.int64), *(("trunc", t) for t in (np.int8, np.int16, np.int32,
                                                             np.int64, np.uint8, np.uint16,
                                                             np.uint32, np.uint64)),
               ("floor", np.int64), ("ceil", np.int64), ("trunc", np.int64), ("round", np.int64)]

CONVERTED = np.array([0.0, -0.0, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 127.9, 128.0, -128.9, -129.0,
                      255.5, 256.0, -1.0, 300.7, 65535.5, 2.0**31 - 1, 2.0**31, -2.0**31 - 1,
                      2.0**32 + 0.5, 2.0**53 + 2, 2.0**63, -2.0**63, 2.0**64, 3e19, 1e30, -1e30,
                      np.inf, -np.inf, np.nan])


def converted(x, k):
    """What ``conversions(x, k)`` gives, from exact Python integers (the independent reference)."""
    how, dtype = CONVERSIONS[k]
    info = np.iinfo(dtype)
    out = []
    for v in np.asarray(x).tolist():
        if v != v:
            n = 0
        elif v in (float("inf"), float("-inf")):
            n = info.max if v > 0 else info.min
        else:
            n = {"trunc": math.trunc, "floor": math.floor, "ceil": math.ceil,
                 "round": round}[how](v)  # (exact on Python floats; round: ties to even)
            n = min(max(n, int(info.min)), int(info.max))
        out.append(n)
    return np.array(out, dtype=dtype).astype(np.int64)


# Kernels that call numba-jitted functions of their own.
@numba.njit
def _clamp(v, lo, hi):
    return lo if v < lo else (hi if v > hi else v)


@numba.njit
def _mix(a, b):  # a loop, a math function, a call of another jitted function
    t = 0.0
    for i in range(3):
        t += a * i - b
    return _clamp(t, -50.0, 50.0) + math.sqrt(abs(b))


@numba.njit
def _twice(v):
    return 2 * v


@sk.stencil
def helpers(x):  # calls of jitted functions (the C++ path translates each once)
    return _clamp(x[0, 0] - x[0, 1], -20, 20) + _twice(x[1, 0]) + _twice(x[-1, 0] * 0.5)


@sk.stencil
def float_helpers(x):
    return _mix(x[0, 0], x[1, 1]) + _clamp(x[0, -1], 0.25, 0.5)


# Tuples of numbers: unpacking, swaps through a conditional, constant and negative indices.
@sk.stencil
def unpacking(x):
    w = (1, -2, 3)
    lo, hi = (x[0], x[1]) if x[0] < x[1] else (x[1], x[0])
    t = (lo, hi, 3)
    a, b = b0, b1 = hi, lo
    return t[0] - t[-2] + t[2] + hi * w[1] + a - b1 + w[-1] * b + b0


# Tuples iterated over (built from reads, and a module's constant) and indexed at run time by
# loop indices known to lie within them, negative ones too.
TAPS = (1, 2, 1)


@sk.stencil(neighborhood=((-1, 1),))
def tuple_loops(x):
    s = x[0] - x[0]
    for v in (x[-1], x[0], x[1]):
        s = max(s, v)
    for i in range(3):
        s += TAPS[i] * x[i - 1]
    t = (x[1], x[0], x[-1])
    for j in range(-3, 0):
        s -= t[j] * (j + 4)
    for w in TAPS:
        s += w
    return s


# An element of a tuple made in two places (a conditional), merged with a constant: its
# interval must stay the element type's (an interval taken from the constant alone computed
# v * 100000 in 32 bits on the C++ path, and wrapped).
@sk.stencil
def tuple_merge(x):
    t = (x[0], x[1]) if x[0] < x[1] else (x[1], x[0])
    v = t[0] if x[0] > 0 else 5
    return v * 100000 // 7


# Numbers from a kernel's scope, alone and in a tuple: numba types them int64 and float64, so a
# float32 x * WEIGHT is float64 arithmetic on the CPU and a GPU (the simulator's NumPy scalars
# kept a module's Python numbers "weak", and float32).
WEIGHT = 0.1
DIVISOR = 3


@sk.stencil(neighborhood=((-1, 1),))
def scoped_numbers(x):
    return x[-1] * WEIGHT + x[0] / DIVISOR + x[1] * TAPS[1] * WEIGHT


# Shifts by run-time counts, in and beyond 0..63 (numba's are undefined beyond: its vector
# loop and its scalar remainder disagreed), and by constants the C++ emitter knows in range.
@sk.stencil(out_dtype=np.int64)
def shifts(x, k):
    s = x[0]
    s <<= 3
    return (x[0] << k) ^ (x[1] >> k) ^ (s >> 2) ^ (k << 1)


SHIFT_COUNTS = [0, 1, 7, 31, 32, 33, 62, 63, 64, 65, 100, -1, -64, -65]


def shifted(x, k):
    """What ``shifts(x, k)`` gives (mode="wrap"), by NumPy's int64 shifts (the reference)."""
    a = np.asarray(x).astype(np.int64)  # (the reads widened to the int64 accumulator)
    b = np.roll(a, -1)
    k64 = np.int64(k)
    return (np.left_shift(a, k64) ^ np.right_shift(b, k64) ^ np.right_shift(a << 3, 2)
            ^ np.left_shift(k64, 1))


# Time steppers for iterate (the temporal-blocking tests): a float update with a parameter,
# and an integer rule with branches.
@sk.stencil
def diffuse(u, k):
    return u[0, 0] + k * (u[-1, 0] + u[1, 0] + u[0, -1] + u[0, 1] - 4 * u[0, 0])


@sk.stencil
def variable_diffusion(u, k, dt):  # a second array that stays fixed
    return u[0, 0] + dt * (k[0, 1] * (u[0, 1] - u[0, 0]) - k[0, 0] * (u[0, 0] - u[0, -1])
                           + k[1, 0] * (u[1, 0] - u[0, 0]) - k[0, 0] * (u[0, 0] - u[-1, 0]))


@sk.stencil
def life(x):
    n = (x[-1, -1] + x[-1, 0] + x[-1, 1] + x[0, -1] + x[0, 1] + x[1, -1] + x[1, 0] + x[1, 1])
    return 1 if n == 3 or (n == 2 and x[0, 0] == 1) else 0


KERNELS = {
    "smooth": (smooth, smooth_py),
    "skew1": (skew1, skew1_py),
    "asym2": (asym2, asym2_py),
    "lap3": (lap3, lap3_py),
    "deep3": (deep3, deep3_py),
}

INT_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]
FLOAT_DTYPES = [np.float32, np.float64]
ALL_DTYPES = [np.bool_, *INT_DTYPES, *FLOAT_DTYPES]


def sample(shape, dtype, seed=0):
    """Small random data that exercises the whole range of ``dtype`` (extremes included)."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return rng.integers(0, 2, shape).astype(bool)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        a = rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
        flat = a.reshape(-1)
        if flat.size >= 2:
            flat[0], flat[-1] = info.min, info.max
        return a
    if dtype.kind == "c":
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)
    return (rng.standard_normal(shape) * 100).astype(dtype)


def window_spread(values, weight=0.25):
    """A window's function for generic_filter, as users write one: a loop (numba compiles
    it, numba.cuda too). Largest minus smallest plus ``weight`` times the first value (so
    the footprint's order counts)."""
    lo = values[0]
    hi = values[0]
    for v in values:
        lo = min(lo, v)
        hi = max(hi, v)
    return hi - lo + weight * values[0]


@functools.cache
def span_cfunc():
    """A window's range as a numba cfunc with scipy's generic_filter signature (compiled at
    the first call, not at import)."""
    from numba import carray, cfunc, types

    @cfunc(types.intc(types.CPointer(types.float64), types.intp, types.CPointer(types.float64),
                      types.voidptr))
    def span(values, n, result, data):
        v = carray(values, (n,), dtype=types.float64)
        result[0] = v.max() - v.min()
        return 1

    return span


def span_callable():
    """:func:`span_cfunc` as a scipy.LowLevelCallable."""
    import scipy

    return scipy.LowLevelCallable(span_cfunc().ctypes)
