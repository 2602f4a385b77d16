"""The CUDA C++ path (stencilkit.codegen_cpp) against the CPU backend, bit for bit, without a GPU.

Every generated module is compiled for the host by g++ (``-DSK_HOST``, no fused multiply-adds,
as NVRTC with ``--fmad=false``) and its launches run block by block and thread by thread
(tests/cpp_host.py): the arithmetic translated from numba's typed IR, the 32-bit narrowing, the
strip walk with register rings, 32-bit word reads and writes, the border kernel and every mode.
tests/test_gpu.py runs the same comparison on a real GPU.
"""

import contextlib
import ctypes
import math
import types

import numpy as np
import pytest
from filter_table import TABLE, assert_device_result
from kernels import (
    CONVERSIONS,
    CONVERTED,
    FLOAT_LOOPS,
    INT_LOOPS,
    LOOP_INTS,
    PREDICATE_LOOPS,
    SHIFT_COUNTS,
    amplify,
    asym2,
    blend,
    box5,
    builtin_types,
    conversions,
    converted,
    diffuse,
    float_helpers,
    float_loops,
    helpers,
    int_loops,
    integer_roundings,
    lap3,
    loop_pairs,
    mixed_loops,
    named_functions,
    narrow_types,
    predicate_loops,
    sample,
    scaled,
    scoped_numbers,
    shift,
    shifted,
    shifts,
    skew1,
    smooth,
    square_negative,
    tuple_loops,
    tuple_merge,
    unpacking,
)
from reference import apply_reference

import stencilkit as sk
from stencilkit import _cpp_body, codegen_cpp
from stencilkit.backends import cuda as cuda_backend
from stencilkit.backends import cuda_cpp

cpp_host = pytest.importorskip("cpp_host")
pytestmark = pytest.mark.skipif(cpp_host.CXX is None, reason="needs a C++ compiler (g++)")

MODES = list(sk.MODES)


host_call = cpp_host.call


def same(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(a, b)


@sk.stencil
def int_ops(x):
    a = x[0, 0]
    b = x[0, 1]
    q = a // -3 + a % 7 - (-a) // 5 + (a % -4)
    r = (a // b if b != 0 else a % 3) + (a % b if b != 0 else 0)   # run-time divisors
    s = abs(a - b) + min(a, b, 3) - max(a, -b) + (a << 2) + (b >> 1) + (a & 5) + (a | 2) + (a ^ b)
    t = a ** 2 + 2 ** 3 + (-a if a > b and not b == 0 else ~b)
    return q + r + s + t


@sk.stencil
def float_ops(x):
    a = x[0, 0]
    b = x[1, -1]
    q = a // 0.7 + a % -1.5 + (b // a if a != 0 else 0.0)
    r = math.sqrt(abs(a)) + np.floor(a) + np.rint(b) + round(a) + math.floor(b) + np.trunc(a)
    s = min(a, b) + max(b, np.nan * 0) + np.minimum(a, b) * np.maximum(a, 0.5)
    t = a ** 2 + (a * a + 1.0) ** -1 + (1.0 if math.isnan(a) else 0.5) + a / (b + 1.5)
    t = t + np.float32(0.1)
    return q + r + s + t


@sk.stencil(neighborhood=((-2, 2), (-2, 2)))
def loops(x):
    s = 0
    i = -2
    while i <= 2:
        for j in range(2, -3, -2):
            s += x[i, j] * (i + 1)
        i += 2
    return s // 4 + x[0, 0]


@sk.stencil(mode="wrap")
def life(x):  # the README's Game of Life: Python's `or`/`and` values, bool in and out
    n = x[-1, -1] + x[-1, 0] + x[-1, 1] + x[0, -1] + x[0, 1] + x[1, -1] + x[1, 0] + x[1, 1]
    return n == 3 or (x[0, 0] and n == 2)


@sk.stencil
def clip(x, lo, hi):
    v = x[0, 0] * 3 - x[0, -1]
    return lo if v < lo else (hi if v > hi else v)


ALL = [np.bool_, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64,
       np.uint64, np.float32, np.float64]

CASES = [
    # (stencil, dtypes, shapes): shapes include widths that allow 32-bit words and ones that
    # do not, stacks (batch axes), and arrays smaller than the kernel
    (smooth, ALL, [(1, 9, 24), (2, 7, 21), (1, 1), (2, 3)]),
    (skew1, [np.int8, np.uint16, np.float32], [(3, 37), (40,), (2,)]),
    (asym2, [np.int16, np.float64], [(7, 18), (5, 3)]),
    (lap3, [np.int8, np.float32], [(4, 5, 12), (2, 3, 5, 8)]),
    (scaled, [np.int16, np.float32], [(6, 16)]),
    (amplify, [np.float32, np.int32], [(33,)]),
    (int_ops, [np.int8, np.int64, np.uint8], [(5, 16)]),
    (float_ops, [np.float32, np.float64], [(6, 12)]),
    (box5, [np.int8, np.float32], [(8, 12), (3, 2)]),
    (loops, [np.uint8, np.float64], [(7, 13)]),
    (life, [np.bool_], [(9, 24), (5, 7)]),
    (helpers, [np.int16, np.uint8], [(7, 13)]),
    (float_helpers, [np.float32, np.float64], [(6, 12)]),
    (unpacking, [np.int16, np.uint8, np.float32], [(40,), (3, 9)]),
    (tuple_loops, [np.int16, np.float32], [(40,), (3, 9)]),
    (tuple_merge, [np.int16], [(3, 40)]),
    (scoped_numbers, [np.float32, np.int16], [(3, 40)]),
    (integer_roundings, [np.int64, np.uint64, np.int8], [(40,)]),
    (builtin_types, [np.int64, np.float32], [(40,)]),
    (narrow_types, [np.int16, np.int64], [(40,), (3,)]),
    (named_functions, [np.float32, np.int16], [(40,)]),
    (square_negative, [np.float32, np.int16, np.uint8], [(40,)]),
]


def _ids():
    for st, dtypes, _ in CASES:
        for d in dtypes:
            yield f"{st.__name__}-{np.dtype(d).name}"


@pytest.mark.parametrize("st,dtype,shapes",
                         [(st, d, shapes) for st, dtypes, shapes in CASES for d in dtypes],
                         ids=list(_ids()))
def test_generated_cpp_equals_the_cpu_every_mode(st, dtype, shapes):
    for k, shape in enumerate(shapes):
        a = sample(shape, dtype, seed=k)
        if st is int_ops and np.dtype(dtype).itemsize == 8:
            # numba compiles signed arithmetic with LLVM's no-signed-wrap flag: an overflowing
            # int64 expression has no defined value on the CPU, so none to compare with
            a = (a % 2**31).astype(dtype) - (2**30 if np.dtype(dtype).kind == "i" else 0)
        if np.dtype(dtype).kind == "f" and st is float_ops:
            a.reshape(-1)[::7] = np.nan
            a.reshape(-1)[3::11] = 0
        for mode in MODES:
            kw = {"mode": mode}
            if mode in ("constant", "skip"):
                kw["cval"] = 1
            want = st(a, **kw)
            for words in (False, None):  # None: the word kernel where rows are aligned
                same(host_call(st, a, words=words, **kw), want)


def test_border_in_its_own_launch_equals_the_cpu(monkeypatch):
    """``codegen_cpp.FUSED`` off: the interior kernels, then the border kernel (the test above
    runs the fused kernels), for 2-D, 3-D and 4-D kernels, stacks and words."""
    monkeypatch.setattr(codegen_cpp, "FUSED", False)
    for st, dtype, shape in [(smooth, np.int8, (2, 7, 24)), (smooth, np.float32, (9, 21)),
                             (lap3, np.int8, (4, 5, 12)), (lap3, np.float32, (2, 3, 5, 8)),
                             (life, np.bool_, (9, 24))]:
        a = sample(shape, dtype, seed=3)
        for mode in MODES:
            kw = {"mode": mode, **({"cval": 1} if mode in ("constant", "skip") else {})}
            mod = _module(st, dtype, shape, **kw)
            assert not mod.fused and f"{st._spec.name}_interior" in mod.kernels
            for words in (False, None):
                same(host_call(st, a, words=words, **kw), st(a, **kw))


@pytest.mark.parametrize("alpha", [0.3, 2, np.float32(0.3)], ids=["float", "int", "float32"])
def test_two_inputs_and_parameters(alpha):
    a = sample((6, 11), np.float32, seed=4)
    b = sample((6, 11), np.float32, seed=5)
    same(host_call(blend, a, b, alpha), blend(a, b, alpha))
    i = sample((6, 12), np.uint8, seed=1)
    j = sample((6, 12), np.int16, seed=2)
    same(host_call(blend, i, j, alpha), blend(i, j, alpha))
    for lo, hi in [(-5, 40), (0.5, 99.5)]:
        same(host_call(clip, i, lo, hi, mode="wrap"), clip(i, lo, hi, mode="wrap"))


def test_run_time_offsets():
    a = sample((8, 9), np.int32)
    for di, dj in [(0, 0), (-3, 2), (3, -3)]:
        for mode in ("wrap", "constant", "reflect"):
            same(host_call(shift, a, di, dj, mode=mode), shift(a, di, dj, mode=mode))


def test_options_out_dtype_acc_and_axes():
    a = sample((3, 5, 16), np.int16, seed=6)
    # the options tests/test_cuda.py uses (their CPU kernels are compiled once per run), and
    # acc=int32, whose reads are narrowed to 32 bits in C++ as well
    for options in [{"out_dtype": np.float32}, {"acc": np.float64}, {"out_dtype": np.int8},
                    {"acc": np.int32}, {"mode": "constant", "cval": -5},
                    {"mode": "constant", "cval": 10**6}, {"axes": (0, 2)}, {"axes": (2, 1)}]:
        same(host_call(smooth, a, **options), smooth(a, **options))
    h = sample((5, 8), np.float16)
    same(host_call(smooth, h), smooth(h))


LOOP_CASES = [(int_loops, INT_LOOPS, [np.int8, np.uint8, np.int16, np.uint32, np.int64, np.uint64]),
              (float_loops, FLOAT_LOOPS, [np.float32, np.float64]),
              (predicate_loops, PREDICATE_LOOPS, [np.int8, np.uint64, np.float32, np.float64])]
LOOP_PARAMS = [(st, fns, d) for st, fns, dtypes in LOOP_CASES for d in dtypes]
LOOP_IDS = [f"{st.__name__}-{np.dtype(d).name}" for st, _, d in LOOP_PARAMS]


def same_bits(got, want):
    """Equal bit for bit: the sign of a zero too (NaNs: any NaN)."""
    same(got, want)
    if got.dtype.kind == "f":
        nan = np.isnan(want)
        np.testing.assert_array_equal(np.signbit(got[~nan]), np.signbit(want[~nan]))


@pytest.mark.parametrize("st,fns,dtype", LOOP_PARAMS, ids=LOOP_IDS)
def test_numpy_ufunc_loops_equal_the_cpu(st, fns, dtype):
    """NumPy's ufuncs on scalars (np.power, np.remainder, np.sign, np.logical_and, ...) by
    numba's loops in the data's type (``acc=dtype``: int8's loop wraps in int8; numba's
    integer np.fmod takes an unsigned remainder, its np.sign compares unsigned bits as signed):
    the C++ path translates them (``_cpp_body.Translator.ufunc_loop``), so it equals the CPU
    on every pair of sample values each loop is defined on, zeros' signs included."""
    for k, fn in enumerate(fns):
        a, b = loop_pairs(fn, dtype)
        with np.errstate(all="ignore"):
            want = st(a, b, k, acc=dtype)
        got = host_call(st, a, b, k, acc=dtype)
        try:
            same_bits(got, want)
        except AssertionError as exc:
            raise AssertionError(f"np.{fn.__name__} of {np.dtype(dtype)}: {exc}") from None


@pytest.mark.parametrize("dtype", [np.int16, np.float32])
def test_numpy_ufunc_loops_of_other_types_equal_the_cpu(dtype):
    """Loops numba picks for arguments of different types (np.add of an int8 and an int16:
    int16's; an integer true division: float64's) and math.radians/math.degrees."""
    v = np.array(LOOP_INTS + ([0.5, -2.5, np.nan, np.inf, -0.0] if dtype == np.float32 else []),
                 dtype)
    a, b = (m.ravel() for m in np.meshgrid(v, v))
    for k in range(8):
        with np.errstate(all="ignore"):
            want = mixed_loops(a, b, k, out_dtype=np.float64)
        same_bits(host_call(mixed_loops, a, b, k, out_dtype=np.float64), want)


@pytest.mark.parametrize("st,fns,dtype", LOOP_PARAMS, ids=LOOP_IDS)
def test_numpy_ufunc_loop_modules_compile_with_nvrtc(st, fns, dtype):
    cpp_host.needs_nvrtc()
    mod = _module(st, dtype, shape=(8,), params=(1,), acc=dtype)
    ptx = cuda_cpp.ptx(mod.source, "compute_80")
    assert all(f".entry {name}(" in ptx for name in mod.kernels)


def test_float_to_int_conversions_saturate_as_on_the_cpu():
    """``sk_f2i_*``: ``int()``, ``np.uint8()``, ``math.floor`` and friends, ``round`` of
    float32 and float64 values beyond each type (and NaN, infinities) as the CPU's
    ``stencilkit._casts.to_int``, against exact Python integers; and float reads into an
    integer accumulator. (g++ on x86 gives the integer indefinite for a plain cast, as numba
    did: only the saturating helpers make these agree with the reference.)"""
    for dtype in (np.float64, np.float32):
        x = np.tile(CONVERTED.astype(dtype), (2, 1))  # (2-D: the kernels' words and rows)
        for k in range(len(CONVERSIONS)):
            same(host_call(conversions, x, k), np.tile(converted(x[0], k), (2, 1)))
    x = np.array([1.7, -2.5, 40000.0, -1e9, np.nan, np.inf, 3.0, 2.0**40])
    for mode in ("skip", "wrap"):
        same(host_call(skew1, x, acc=np.int16, mode=mode), skew1(x, acc=np.int16, mode=mode))


def test_shifts_beyond_the_width_follow_numpys_rule():
    """``sk_shl_*``/``sk_shr_*``: counts outside 0..63 as NumPy shifts (g++ on x86 masks the
    count, as numba's scalar code did, where the device clamps it); counts the emitter knows
    in range (the constants) stay plain shifts."""
    for dtype in (np.int64, np.uint8):
        x = np.tile((np.arange(-40, 40) * 7919).astype(dtype), (2, 1))
        for k in SHIFT_COUNTS:
            same(host_call(shifts, x, k, mode="wrap"), np.tile(shifted(x[0], k), (2, 1)))
    source = _module(shifts, np.int64, (64,), params=(3,), mode="wrap").source
    assert "sk_shl_i64" in source and "sk_shr_i64" in source  # (the run-time counts)
    assert ">> 2LL" in source or ">> 2)" in source  # (s >> 2: in range, plain)


def test_64_bit_index_kernels_give_the_same_results():
    a = sample((2, 9, 24), np.uint8)
    for mode in MODES:
        same(host_call(smooth, a, idx64=True, mode=mode), smooth(a, mode=mode))
    x = sample((3, 37), np.int8)
    same(host_call(skew1, x, idx64=True, mode="mirror"), skew1(x, mode="mirror"))


def test_every_output_element_is_written_once():
    # the interior and border kernels must cover the output between them: host_call fills it
    # with 99 first, and each element must end up holding its own flat index
    @sk.stencil
    def centre(x):
        return x[0, 0] + 0 * x[-2, 3]

    for shape in [(1, 1), (2, 5), (7, 8), (9, 33), (4, 4)]:
        a = np.arange(math.prod(shape), dtype=np.int32).reshape(shape)
        for words in (False, None):
            same(host_call(centre, a, words=words, mode="nearest"), a)


# -- what the emitter produces ---------------------------------------------------------------------

def test_int8_mean_is_computed_in_32_bits():
    src = smooth.cuda_source(np.zeros((64, 64), np.int8))
    body = src[src.index("SK_FN sk_i32 smooth_py_body"):]
    body = body[:body.index("\n}\n")]
    assert "sk_i64" not in body  # nine int8 reads: every sum fits 32 bits
    # Python's floor division by a constant, in 32 bits: the sum (-1152 to 1143) lifted by
    # 128 x 9 to non-negative values (0 to 2295), divided unsigned (no sign correction) by a
    # 32-bit multiply and shift (2295 * 1821 < 2^32), less 128
    assert "+ 1152) * 1821u) >> 14)) - 128)" in body
    assert "__restrict__" in src and "smooth_py_interior_w" in src
    # int32 data: the sum of nine may not fit 32 bits, so it stays 64-bit
    src32 = smooth.cuda_source(np.zeros((64, 64), np.int32))
    body32 = src32[src32.index("smooth_py_body"):]
    assert "sk_i64" in body32[:body32.index("\n}\n")]


@sk.stencil
def narrowed16(x):  # conversions to 16 bits of values that fit (kept) and that wrap (truncated)
    d = np.int16(x[-1, 0] - 2 * x[0, 0] + x[1, 0])  # fits: int8 -512..508, uint8 -510..510
    e = d
    w = np.int16(x[0, 0] * 300)  # wraps for |x| > 109
    u = np.uint8(x[0, 1] + x[0, -1])  # wraps for uint8 sums over 255, int8 below 0
    return (0 if e < -100 else (e if e < 100 else 100)) + w // 4 + u


@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_conversions_of_values_that_fit_keep_the_value_and_the_others_wrap(dtype):
    """A conversion to an 8/16-bit type of a value that provably fits is held in 32 bits
    (no truncation, no sign extension; _cpp_body._Translator._held_in_32_bits: the filters'
    ``np.int16(s)`` of a bounded sum), and one that may not fit still wraps as numba's does:
    every extreme of the data against the CPU."""
    lo, hi = np.iinfo(dtype).min, np.iinfo(dtype).max
    a = np.where(sample((24, 40), np.uint8, seed=2) % 3 == 0, lo, hi).astype(dtype)
    a[5:8, 3:30] = sample((3, 27), dtype, seed=4)
    same(host_call(narrowed16, a, out_dtype=np.int32), narrowed16(a, out_dtype=np.int32))
    src = narrowed16.cuda_source(a, out_dtype=np.int32)
    body = src[src.index("SK_FN sk_i32 narrowed16_body"):]
    body = body[:body.index("\n}\n")]
    assert "sk_i16 " not in body  # every 16-bit value held in sk_i32
    # truncated only where the value may not fit (w, u), not for d
    assert body.count("(sk_i16)") == 1 and body.count("(sk_u8)") == 1


@sk.stencil
def ranged(x):  # divisions and comparisons whose operands' ranges the emitter knows
    a = x[0, 0]
    s = a + x[0, 1]
    q = s // 9 + s % 9 + (a - 200) // 7 + (a + 300) % 11 + (s + 256) // 3
    v = (s + 256) // 2
    w = 0 if v < 0 else (255 if v > 255 else v)  # both tests decided: never true
    u = 1 if a >= -128 else 0  # decided: always true
    return q + w + u + (2 if a != 300 else 0) + (5 if s < 0 else 6)  # (the last: not decided)


@pytest.mark.parametrize("use_ranges", [True, False])
@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16])
def test_ranged_divisions_and_comparisons_equal_the_cpu(dtype, use_ranges, monkeypatch):
    """Divisions by constants of known range lifted to unsigned ones, decided tests folded.

    Every value of 8-bit data, every pair of neighbours' extremes: the host build of the
    emitted C++ against the CPU, bit for bit; and with ``_cpp_body.RANGED`` off (the A/B
    switch), the signed forms and every test.
    """
    monkeypatch.setattr(_cpp_body, "RANGED", use_ranges)
    info = np.iinfo(dtype)
    a = sample((24, 40), dtype)
    a[0], a[1], a[2, ::2], a[2, 1::2] = info.min, info.max, info.min, info.max
    if np.dtype(dtype).itemsize == 1:
        a[3:10].reshape(-1)[:256] = np.arange(info.min, info.max + 1)
    same(host_call(ranged, a), ranged(a))
    src = ranged.cuda_source(a)
    body = src[src.index("SK_FN sk_i32 ranged_body") if "SK_FN sk_i32 ranged_body" in src
               else src.index("ranged_body"):]
    body = body[:body.index("\n}\n")]
    if not use_ranges:
        assert "sk_floordivc_" in body and "= false;" not in body and "= true;" not in body
        assert "(sk_u32)" not in body
    elif np.dtype(dtype).itemsize == 1:  # (8-bit reads: every range is known and small)
        assert "sk_floordivc_" not in body and "sk_modc_" not in body
        assert body.count("= true;") >= 2 and body.count("= false;") >= 2
        assert body.count("u) >> ") >= 5  # (/ 9, % 9, / 7, % 11, / 3: multiplies and shifts)
    if np.dtype(dtype).kind == "i":
        assert "< 0)" in body  # s < 0: not decided by its range (signed data)


@sk.stencil
def shared_sums(x, k):  # sums whose rows repeat: regrouped by rows for integer accumulators
    box = (x[-1, -1] + x[-1, 0] + x[-1, 1] + x[0, -1] + x[0, 0] + x[0, 1]
           + x[1, -1] + x[1, 0] + x[1, 1])
    gx = x[-1, 1] - x[-1, -1] + 2 * x[0, 1] - 2 * x[0, -1] + x[1, 1] - x[1, -1]
    mixed = x[-1, 0] + x[-1, 1] + k + x[1, 0] + x[1, 1]  # (a parameter: kept as written)
    twice = (x[0, 0] + x[0, 0] - x[0, 0] * 3 + 7 + x[1, -1] * 2 + 2 * x[1, 0]
             + (x[-1, -1] + x[-1, 0]))  # (a read repeated, a constant, rows twice the other)
    lone = -x[0, 0] + x[-1, 0] + x[-1, 1] + x[1, 0] + x[1, 1]  # (a negative term first)
    return box // 9 + gx + mixed - twice + lone


@sk.stencil
def mixed_signedness(x):  # unsigned reads with int64 constants: numba computes those in int64
    return (x[0, 0] // 9 + x[0, 1] % 7 - (-x[1, 0]) // 3 + (x[0, -1] >> 3) * 5
            + (x[-1, 0] + 1) // 2 + (x[1, 1] - 1) % 1000)


@pytest.mark.parametrize("dtype,acc", [(np.uint64, np.uint64), (np.uint64, np.int64),
                                       (np.uint32, np.uint32), (np.uint8, np.uint64)])
def test_unsigned_operands_of_int64_operations_equal_the_cpu(dtype, acc):
    """``(uint64, int64) -> int64`` operations (a uint64 read and an int literal) take a uint64
    beyond 2**63 as a negative int64, as numba does: the C++ path's interval analysis took the
    operand's uint64 range for it, divided it as unsigned, and differed from the CPU."""
    a = sample((9, 40), dtype)
    for mode in ("reflect", "constant"):
        same(host_call(mixed_signedness, a, acc=acc, mode=mode),
             mixed_signedness(a, acc=acc, mode=mode))


@pytest.mark.parametrize("share", [True, False])
@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.int32, np.uint64,
                                   np.bool_, np.float32])
def test_sums_regrouped_by_rows_equal_the_cpu(dtype, share, monkeypatch):
    """Sums whose rows repeat each other's weights (a box, a Sobel written in another order,
    a row twice another, a read repeated and a constant) are regrouped by rows into kept
    partial sums (``_cpp_body.share_rows``, ``sk_keep``) for integer accumulators: the host
    build equals the CPU bit for bit, extremes of the data included; float data (and
    unsigned accumulators, whose sums numba types uint64, and uint64 with an int int64) keep
    their sums as written, as does a chain with a parameter in it;
    ``_cpp_body.SHARE_ROWS`` off keeps every sum as written."""
    monkeypatch.setattr(_cpp_body, "SHARE_ROWS", share)
    a = sample((21, 38), dtype) if dtype != np.bool_ else sample((21, 38), np.uint8) > 127
    if np.dtype(dtype).kind in "iu":
        info = np.iinfo(dtype)
        a[0], a[1], a[2, ::3] = info.min, info.max, info.max
    for k in (3, 0.5):
        same(host_call(shared_sums, a, k), shared_sums(a, k))
        src = shared_sums.cuda_source(a, k)
        kept = src.count("= sk_keep(")
        regrouped = share and np.dtype(dtype).kind in "biu"  # (int64 sums; uint64 data too)
        assert kept == (10 if regrouped else 0), (dtype, k)  # (box 3, gx 3, twice 2, lone 2)
    if dtype in (np.uint8, np.uint64):  # unsigned accumulators: numba sums them in uint64,
        # and with an int in int64 (regrouping would move those conversions); uint64 data over
        # its whole range (beyond 2**63, negative in an int64 operation)
        b = sample((21, 38), dtype if dtype == np.uint64 else np.uint16).astype(dtype)
        for acc in (np.uint16, np.uint64):
            same(host_call(shared_sums, b, 3, acc=acc), shared_sums(b, 3, acc=acc))
            assert "= sk_keep(" not in shared_sums.cuda_source(b, 3, acc=acc)


def test_shared_rows_of_integer_taps():
    """Rows that repeat another row's weights (up to an integer factor, at the same outer
    offsets) are found, signed so that most factors are positive; others are not."""
    def taps(w):
        w = np.asarray(w)
        centre = np.array(w.shape) // 2
        return [(tuple(int(i) for i in np.array(ix) - centre), int(w[ix]))
                for ix in np.ndindex(*w.shape)]

    sobel0 = np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]])
    cases = [
        (np.ones((3, 3), int), {(-1,): 1, (0,): 1, (1,): 1}),
        (sobel0, {(-1,): 1, (1,): -1}),
        (sobel0.T, {(-1,): 1, (0,): 2, (1,): 1}),
        (-np.array([[1, 0, -1]] * 3), {(-1,): 1, (0,): 1, (1,): 1}),  # (all negative: flipped)
        (np.array([[1, -2, 0], [3, 1, -1], [0, 2, 1]]), {}),  # (no two rows alike)
        (np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]]), {}),  # (one row of two taps or more)
        (np.array([[2, 0, 4], [0, 5, 0], [-1, 0, -2]]), {(-1,): 2, (1,): -1}),  # (a gcd)
        (np.ones((2, 3, 3), int), {(p, r): 1 for p in (-1, 0) for r in (-1, 0, 1)}),
        (np.array([[[1, 1]], [[1, 1]]]), {}),  # (alike rows in other planes: not one walk)
    ]
    for w, factors in cases:
        found = _cpp_body.shared_rows(taps(w))
        assert {row: f for row, (f, _) in found.items()} == factors, w
        for row, (factor, weights) in found.items():
            assert {o: factor * v for o, v in weights} == {
                o[-1]: v for o, v in taps(w) if o[:-1] == row and v}


def test_32_bit_magic_divisions_equal_floor_division_over_their_range():
    """Every dividend of the range, for divisors 3 to 300 and ranges up to 2^20 (a 3 x 3 sum
    of 16-bit data), and the largest range each divisor has a magic pair for."""
    rng = np.random.default_rng(2)
    for d in range(3, 301):
        if d & (d - 1) == 0:
            assert _cpp_body.magic32(1000, d) is None  # (a shift already)
            continue
        for top in (d - 1, 2295, int(rng.integers(d, 2**20))):
            found = _cpp_body.magic32(top, d)
            if found is None:
                continue
            m, k = found
            n = np.arange(top + 1, dtype=np.uint64)
            assert top * m < 2**32
            np.testing.assert_array_equal((n * np.uint64(m)) >> np.uint64(k), n // d,
                                          err_msg=f"{d} {top}")
        assert _cpp_body.magic32(2295, d) is not None  # (the 3 x 3 box's sums always)
    assert _cpp_body.magic32(2**31, 7) is None


def test_decided_comparisons_agree_with_every_pair():
    rng = np.random.default_rng(1)
    for _ in range(300):
        a = sorted(rng.integers(-6, 7, 2).tolist())
        b = sorted(rng.integers(-6, 7, 2).tolist())
        for op, fn in [("<", np.less), ("<=", np.less_equal), (">", np.greater),
                       (">=", np.greater_equal), ("==", np.equal), ("!=", np.not_equal)]:
            outcomes = {bool(fn(x, y)) for x in range(a[0], a[1] + 1)
                        for y in range(b[0], b[1] + 1)}
            got = _cpp_body.decided(op, tuple(a), tuple(b))
            assert got == (outcomes.pop() if len(outcomes) == 1 else None), (op, a, b)
    assert _cpp_body.decided("<", None, (0, 0)) is None


def test_lifted_division_equals_pythons_floor_division():
    for lo, hi, d, c in [(-1152, 1143, 9, "sk_i32"), (-128, 127, 7, "sk_i32"),
                         (-5, -1, 3, "sk_i32"), (-2**40, 2**40, 1000, "sk_i64"),
                         (-7, 7, 1, "sk_i32")]:
        k, kd = _cpp_body._lift((lo, hi), d, c)
        assert kd == k * d and lo + kd >= 0
        for x in [lo, hi, lo + 1, hi - 1, 0, (lo + hi) // 2]:
            if lo <= x <= hi:
                assert (x + kd) // d - k == x // d and (x + kd) % d == x % d
    assert _cpp_body._lift((-2**31, 0), 9, "sk_i32") is None  # (lifted past int32)
    assert _cpp_body._lift((-10, 2**31 - 5), 9, "sk_i32") is None
    assert _cpp_body._lift((0, 5), -3, "sk_i32") is None
    assert _cpp_body._lift(None, 3, "sk_i32") is None


@pytest.mark.parametrize("ctype,dtype,bits", [("float", np.float32, np.uint32),
                                              ("double", np.float64, np.uint64)])
def test_numpy_minimum_and_maximum_helpers_return_numpys_operand(ctype, dtype, bits):
    """``sk_np_min`` & co. return the operand NumPy's loops return, bit for bit: the first
    NaN (two NaN payloads apart), ties keeping the first (signed zeros), fmin/fmax skipping
    a NaN; every pair of special values."""
    lib = cpp_host.build(codegen_cpp.PRELUDE + f"""
extern "C" void sk_np_pairs(const {ctype}* a, const {ctype}* b, {ctype}* out, int n) {{
  for (int i = 0; i < n; ++i) {{
    out[4 * i] = sk_np_min(a[i], b[i]); out[4 * i + 1] = sk_np_max(a[i], b[i]);
    out[4 * i + 2] = sk_np_fmin(a[i], b[i]); out[4 * i + 3] = sk_np_fmax(a[i], b[i]);
  }}
}}
""")
    nan1 = np.array(np.nan, dtype)
    nan2 = (nan1.view(bits) | bits(1)).view(dtype)  # another payload
    vals = np.array([nan1, nan2, -np.inf, -1.5, -0.0, 0.0, 1.5, np.inf], dtype)
    a, b = (np.ascontiguousarray(x.ravel()) for x in np.meshgrid(vals, vals, indexing="ij"))
    out = np.empty(4 * a.size, dtype)
    ptr = np.ctypeslib.as_ctypes
    lib.sk_np_pairs(ptr(a), ptr(b), ptr(out), ctypes.c_int(a.size))
    got = out.reshape(-1, 4).view(bits)

    def pick(x, y, nan_wins, less):
        if np.isnan(x) or np.isnan(y):
            return (x if np.isnan(x) else y) if nan_wins else (y if np.isnan(x) else x)
        return x if (x <= y if less else x >= y) else y

    for i, (x, y) in enumerate(zip(a, b)):
        want = [pick(x, y, True, True), pick(x, y, True, False), pick(x, y, False, True),
                pick(x, y, False, False)]
        assert list(got[i]) == [np.array(w, dtype).view(bits) for w in want], (x, y)


def test_a_loop_accumulator_stays_64_bit_unless_bounded():
    mod = cuda_cpp.module_for(box5._spec, [np.dtype(np.int8)], np.dtype(np.int8),
                              np.dtype(np.int64), (), idx64=False, narrow=True)
    assert mod.wide >= 1  # s += x[i, j] in a loop: no fixed point below int64, kept wide


def test_constant_mode_cval_outside_the_input_range_disables_narrowing():
    a = sample((4, 8), np.int8)
    plan, _, _, _ = cuda_backend.plan_call(smooth, (a,), {"mode": "constant", "cval": 10**12})
    assert not cuda_cpp._narrow_ok(plan)
    same(host_call(smooth, a, mode="constant", cval=10**12),
         smooth(a, mode="constant", cval=10**12))


@pytest.mark.parametrize("dtype", [np.int16, np.uint8])
def test_tuples_iterated_and_indexed_at_run_time(dtype):
    """The CPU backend's tuple_loops against the independent reference (integers: exact), and
    the kernel translated to C++ (module_for raises Unsupported where the numba.cuda fallback
    would run; CASES above compare the C++ with the CPU)."""
    a = sample((3, 9), dtype, seed=2)
    for mode in MODES:
        kw = {"mode": mode, **({"cval": 1} if mode in ("constant", "skip") else {})}
        same(tuple_loops(a, **kw), apply_reference(tuple_loops.__wrapped__, [a], ndim=1,
                                                   radius=[(1, 1)], **kw))
    plan, params, _, _ = cuda_backend.plan_call(tuple_loops, (a,), {})
    mod = cuda_cpp.module_for(tuple_loops._spec, plan.work_dtypes, plan.wout, plan.acc0.dtype,
                              (), idx64=False, narrow=True)
    # the tuple iterated over (a switch on its index) and the negative index (-3 is t[0])
    assert "switch (" in mod.source and "== -3)" in mod.source


@pytest.mark.parametrize("kernel,reason", [
    ("complex", "complex"),
    ("jitted", "compiled with fastmath"),
    ("recursive", "'fact' calls itself"),
    ("assert", "raise"),
    ("tuple", "not known to lie within it"),
])
def test_unsupported_bodies_are_named(kernel, reason):
    import numba

    @numba.njit(fastmath=True)  # (its CPU code may reorder: the numba.cuda kernel takes it)
    def helper(v):
        return v * 2

    @numba.njit
    def fact(n):
        return 1 if n <= 1 else n * fact(n - 1)

    def k_recursive(x):
        return fact(x[0] % 5)

    def k_complex(x):
        return x[0] * 1j

    def k_jitted(x):
        return helper(x[0])

    def k_assert(x):
        assert x[0] > -1000
        return x[0]

    def k_tuple(x):  # (an index the emitter cannot bound: numba's CPU code raises beyond)
        return (x[0], x[1])[int(x[0])]

    fn = {"complex": k_complex, "jitted": k_jitted, "assert": k_assert, "tuple": k_tuple,
          "recursive": k_recursive}[kernel]
    st = sk.stencil(fn)
    with pytest.raises(sk.StencilError, match=reason):
        st.cuda_source(np.zeros(8, np.float64))
    if kernel != "complex":
        plan, params, _, _ = cuda_backend.plan_call(st, (np.zeros(8),), {})
        with pytest.raises(_cpp_body.Unsupported):
            cuda_cpp.module_for(st._spec, plan.work_dtypes, plan.wout, plan.acc0.dtype, (),
                                idx64=False, narrow=True)


def test_emitted_source_is_cached_on_disk(tmp_path, monkeypatch):
    from stencilkit.backends import cpu

    monkeypatch.setattr(cpu, "cache_dir", lambda: tmp_path)
    monkeypatch.setattr(cuda_cpp, "_MODULES", {})
    args = (skew1._spec, [np.dtype(np.int16)], np.dtype(np.int16), np.dtype(np.int64), ())
    mod = cuda_cpp.module_for(*args, idx64=False, narrow=True)
    files = sorted(p.suffix for p in (tmp_path / "cuda").iterdir())
    assert files == [".cu", ".json"]
    monkeypatch.setattr(cuda_cpp, "_MODULES", {})
    monkeypatch.setattr(codegen_cpp, "generate", lambda *a, **k: pytest.fail("re-emitted"))
    again = cuda_cpp.module_for(*args, idx64=False, narrow=True)
    assert again.source == mod.source and again.meta() == mod.meta()


def test_launch_geometry():
    mod = cuda_cpp.module_for(smooth._spec, [np.dtype(np.int8)], np.dtype(np.int8),
                              np.dtype(np.int64), (), idx64=False, narrow=True)
    (name, grid, block, (rows, c0, c1)), = mod.launches((1, 16384, 16384), True)
    assert name == "smooth_py_fused_w" and block == codegen_cpp.BLOCK_WORDS
    assert rows == codegen_cpp.ROWS and (c0, c1) == (4, 16380)
    alone = cuda_cpp.codegen_cpp.generate(smooth._spec, [np.dtype(np.int8)], np.dtype(np.int8),
                                          np.dtype(np.int64), (), idx64=False, fused=False)
    (name, grid0, _, args), border = alone.launches((1, 16384, 16384), True)
    assert (name, border[0]) == ("smooth_py_interior_w", "smooth_py_border")
    assert grid0[0] * block[0] * 4 >= c1 - c0 and grid0[1] * block[1] * rows >= 16382
    # fused: the interior's grid and the border's rows of blocks first, about FUSED_ELEMENTS
    # elements a thread (a tall narrow image: hundreds of rows, its border most of it)
    eys = []
    for shape, words in [((1, 16384, 16384), True), ((1, 200_000, 40), True),
                         ((3, 50, 70), False)]:
        (_, grid0, blk, args0), _ = alone.launches(shape, words)
        ((_, grid, _, args),) = mod.launches(shape, words)
        ey = grid[1] - grid0[1]
        assert grid[::2] == grid0[::2] and args == args0 and ey >= 1
        per = codegen_cpp.FUSED_ELEMENTS * grid[0] * grid[2] * blk[0] * blk[1]
        total = codegen_cpp.border_count(mod.radius, shape, *args[1:])
        assert (ey - 1) * per < total <= ey * per or ey == 1 >= total / per, (shape, ey)
        eys.append(ey)
    assert eys[0] < 10 < eys[1] and eys[2] == 1
    # small arrays: shorter strips, so that the GPU still gets enough threads
    ((_, _, _, (rows, _, _)),) = mod.launches((1, 512, 512), True)
    assert rows == 1
    # the border kernel's share: two rows, and two columns plus the word remainders per row
    assert codegen_cpp.border_count(mod.radius, (1, 100, 102), 4, 100) == 2 * 102 + 98 * 6


@pytest.mark.parametrize("shape", [(1, 3_000_000, 8), (100_000, 8, 8), (1, 8, 300_000_000),
                                   (70_000, 70_000, 4), (1, 2**20, 2**12)])
def test_launch_planners_stay_within_cuda_grid_limits(shape):
    """Tall, long-rowed and many-plane arrays: every planner's grid is one CUDA accepts (grid
    y and z at most 65535); the kernels stride over what the grid leaves."""
    from stencilkit.backends import cuda_resample, cuda_sweeps

    for radius in [((1, 1), (1, 1)), ((7, 7), (7, 7))]:
        for cols, block in [(1, codegen_cpp.BLOCK_PLAIN), (8, codegen_cpp.BLOCK_WORDS)]:
            for fused in (False, True):
                for k, grid, blk, _ in codegen_cpp.plan_launches(radius, shape, cols, "i", "b",
                                                                  block, fused=fused):
                    cpp_host.check_launch(k, grid, blk)
        lo = radius[0][0]
        for fused in (False, True):
            for k, grid, blk, _ in cuda_sweeps.plan("s", shape, lo, lo, max(1, shape[2] // 8),
                                                    shape[2], (0, 1), (64, 4, 1), fused=fused):
                cpp_host.check_launch(k, grid, blk)
    for k, grid, blk, _ in cuda_resample._launches("r", shape, None):
        cpp_host.check_launch(k, grid, blk)
    flat = (shape[0] * shape[1], shape[2])
    for k, grid, blk, _ in codegen_cpp.plan_launches(((1, 1),), flat, 1, "i", "b",
                                                      codegen_cpp.BLOCK_PLAIN):
        cpp_host.check_launch(k, grid, blk)


def test_host_launches_check_arguments_as_the_device_would():
    """The host runs refuse what would go wrong only on the device: a scalar of another width
    than its parameter (CuPy passes a Python int as 64 bits) and a grid CUDA refuses."""
    mod = cuda_cpp.module_for(smooth._spec, [np.dtype(np.int8)], np.dtype(np.int8),
                              np.dtype(np.int64), (), idx64=False, narrow=True)
    lib = cpp_host.build(mod.source)
    x = np.zeros((1, 8, 8), np.int8)
    out = np.zeros_like(x)
    (kname, grid, block, (rows, c0, c1)), *_ = mod.launches(x.shape, False)
    scalars = mod.scalars(x.shape, rows, c0, c1, 0, 0, 0, ())
    cpp_host.launch(lib, mod.source, kname, grid, block, [x, out, *scalars])
    wide = [int(v) if i == 0 else v for i, v in enumerate(scalars)]
    with pytest.raises(AssertionError, match="argument 2 is int64 .* parameter is int32"):
        cpp_host.launch(lib, mod.source, kname, grid, block, [x, out, *wide])
    with pytest.raises(AssertionError, match="must be an array"):
        cpp_host.launch(lib, mod.source, kname, grid, block, [x, 0, *scalars])
    with pytest.raises(AssertionError, match="CUDA refuses grid"):
        cpp_host.launch(lib, mod.source, kname, (grid[0], 70_000, 1), block, [x, out, *scalars])


# -- NVRTC: every emitted module compiles for the device; the interior loops look as intended --

def _module(st, dtype, shape=(64, 64), params=(), **kw):
    arrays = (np.zeros(shape, dtype),) * len(st.arrays)
    plan, params, _, _ = cuda_backend.plan_call(st, (*arrays, *params), kw)
    return cuda_cpp.module_for_plan(st, plan, params)


def _kernel_ptx(ptx, name):
    body = ptx[ptx.index(f".entry {name}("):]
    return body[:body.index("\n}\n")]


@pytest.mark.parametrize("st,dtype", [(st, d) for st, dtypes, _ in CASES for d in dtypes],
                         ids=list(_ids()))
def test_every_module_compiles_with_nvrtc(st, dtype):
    cpp_host.needs_nvrtc()
    mod = _module(st, dtype, shape=(8,) * st.ndim, params=(1,) * len(st.params))
    ptx = cuda_cpp.ptx(mod.source, "compute_80")
    for name in mod.kernels:
        assert f".entry {name}(" in ptx


def test_interior_ptx_has_read_only_loads_and_no_64_bit_division(monkeypatch):
    """The interior kernels alone (codegen_cpp.FUSED off: the fused kernels have the border's
    enumeration and index maps, with divisions)."""
    cpp_host.needs_nvrtc()
    monkeypatch.setattr(codegen_cpp, "FUSED", False)
    mod = _module(smooth, np.int8)
    ptx = cuda_cpp.ptx(mod.source, "compute_90")
    for name in ("smooth_py_interior", "smooth_py_interior_w"):
        body = _kernel_ptx(ptx, name)
        assert "ld.global.nc" in body  # const __restrict__: the read-only data path
        assert "ld.global.u" not in body and "ld.global.s" not in body
        for slow in ("div.s64", "rem.s64", "div.u64", "rem.u64", "div.s32", "rem.s32"):
            assert slow not in body, slow  # floor division by 9: a multiply, in 32 bits
    words = _kernel_ptx(ptx, "smooth_py_interior_w")
    assert "ld.global.nc.u32" in words and "st.global.u32" in words  # four int8 per access


def test_strip_walk_loads_several_rows_before_storing(monkeypatch):
    """The walk issues the loads of several rows together (latency hidden per thread): before
    the first store, the two rows that fill the rings and three words or columns for each of
    the rows entering in a step; heavy bodies take fewer rows a step. (The interior kernels
    alone, as above.)"""
    cpp_host.needs_nvrtc()
    monkeypatch.setattr(codegen_cpp, "FUSED", False)
    mod = _module(smooth, np.int8)
    ptx = cuda_cpp.ptx(mod.source, "compute_90")
    for name in ("smooth_py_interior", "smooth_py_interior_w"):
        ahead = _kernel_ptx(ptx, name).split("st.global")[0].count("ld.global.nc")
        assert ahead >= 3 * 2 + 3 * codegen_cpp.rows_per_step(9) >= 3 * 2 + 3 * 7, (name, ahead)
    assert codegen_cpp.rows_per_step(5) == codegen_cpp.UNROLL
    assert codegen_cpp.rows_per_step(49) == 1  # a 7 x 7 median: one row a step


def test_no_fused_multiply_add_unless_fastmath():
    cpp_host.needs_nvrtc()
    mod = _module(blend, np.float32, shape=(8, 8), params=(np.float32(0.5),))
    # blend(a, b, alpha) = a * alpha + b: a multiply-add the GPU would fuse by default
    src = mod.source
    assert "fma" not in cuda_cpp.ptx(src, "compute_90")
    assert "fma.rn" in cuda_cpp.ptx(src, "compute_90", fastmath=True)


# -- the filters' generated kernels, as they reach a GPU, through the C++ path -------------------

class _HostStencil:
    """A filter's generated Stencil whose calls run the C++ path on the host."""

    def __init__(self, st):
        self.st = st

    def __call__(self, *args, out=None, **kw):
        res = host_call(self.st, *args, **kw)
        if out is None:
            return res
        out[...] = res
        return out


@contextlib.contextmanager
def device_filters():
    """stencilkit.filters taking the CUDA backend's paths, run through the C++ kernels."""
    from stencilkit import _passes
    from stencilkit.backends import cpu

    compiled = _passes.compiled
    cpu.BACKEND.run_passes = lambda passes, arr, out: passes.as_stencils(arr, out)
    _passes.compiled = lambda source: _HostStencil(compiled(source))
    try:
        yield
    finally:
        _passes.compiled = compiled
        del cpu.BACKEND.run_passes


def _filter_cases():

    return [(e, i, p) for e in TABLE for i, p in enumerate(e.params or ({},))]


def _filter_dtype_cases():
    # uint8 for every entry (rounding with np.rint, saturation, integer sums); float32 for the
    # first parameters of each (the same kernels with float literals), to keep the cold run short
    return [(e, i, p, d) for e, i, p in _filter_cases() for d in (np.uint8, np.float32)
            if d == np.uint8 or i == 0]


@pytest.mark.parametrize("entry,i,params,dtype", _filter_dtype_cases(),
                         ids=[f"{e.name}-{i}-{np.dtype(d).name}"
                              for e, i, _, d in _filter_dtype_cases()])
def test_filter_kernels_through_the_cpp_path(entry, i, params, dtype):
    # as tests/test_cuda_filters.py on the simulator: against the CPU's own paths (the same
    # generated kernels for small windows, running sums and van Herk lines for large ones)
    a = sample((11, 16), dtype, seed=i)
    exact = np.dtype(dtype).kind != "f" and entry.exact_ints or entry.rank
    for mode in ["reflect", "mirror", "nearest", "wrap", "constant"]:
        kw = {"mode": mode, **({"cval": 3} if mode == "constant" else {})}
        want = entry.stencilkit(a, params, **kw)
        with device_filters():
            got = entry.stencilkit(a, params, **kw)
        assert_device_result(got, want, exact)


# -- the C++ path's glue, end to end: Stencil -> choose -> compile -> launch (host kernels) -----

def test_calls_take_the_cpp_path_end_to_end(fake_gpu):
    a = sample((2, 9, 24), np.uint8)
    for mode in MODES:
        kw = {"mode": mode, **({"cval": 1} if mode in ("constant", "skip") else {})}
        same(smooth(a, target="cuda", **kw), smooth(a, **kw))
    assert set(fake_gpu.launched) == {"smooth_py_fused_w"}
    assert all("--fmad=false" in o for o in fake_gpu.options)
    assert "generated CUDA C++ (a stand-in CuPy (test))" in smooth.explain(a, target="cuda")
    # parameters, several inputs, out=, iterate (two device buffers), fastmath's options
    x, y = sample((7, 10), np.float32, seed=1), sample((7, 10), np.float32, seed=2)
    same(blend(x, y, 0.25, target="cuda"), blend(x, y, 0.25))
    out = np.empty_like(x)
    assert blend(x, y, np.float32(2), target="cuda", out=out) is out
    same(out, blend(x, y, np.float32(2)))
    same(smooth.iterate(x, steps=5, target="cuda", mode="wrap"),
         smooth.iterate(x, steps=5, mode="wrap"))
    blend(x, y, 0.25, target="cuda", fastmath=True)
    assert ("-std=c++17", "--fmad=true", "--ftz=false") in fake_gpu.options
    assert not any("-ftz=true" in o for o in fake_gpu.options)  # (cupy.RawModule's)


def test_a_call_after_unroll_changes_takes_the_new_module(fake_gpu, monkeypatch):
    """A call's remembered route keys on ``codegen_cpp.UNROLL`` as on ``FUSED`` (the profile
    switches it between calls)."""
    a = sample((2, 40, 24), np.float32, seed=3)
    same(smooth(a, target="cuda"), smooth(a))
    compiled = fake_gpu.compiled
    monkeypatch.setattr(codegen_cpp, "UNROLL", 2)
    same(smooth(a, target="cuda"), smooth(a))
    assert fake_gpu.compiled == compiled + 1


def test_launch_bounds_cap_the_interior_kernels(fake_gpu, monkeypatch):
    """``codegen_cpp.MIN_BLOCKS`` puts ``__launch_bounds__(256, n)`` on the stencils' interior
    kernels (both, fused or not) and nowhere else; a change takes a new module, whose results
    are the CPU's (the host build ignores the bound); with a bound ptxas keeps the heat step's
    fused kernel within 32 registers."""
    a = sample((2, 40, 24), np.float32, seed=3)
    same(smooth(a, target="cuda"), smooth(a))
    assert "void __launch_bounds__" not in smooth.cuda_source(a)
    compiled = fake_gpu.compiled
    monkeypatch.setattr(codegen_cpp, "MIN_BLOCKS", 8)
    same(smooth(a, target="cuda"), smooth(a))
    assert fake_gpu.compiled == compiled + 1
    for fused in (True, False):
        monkeypatch.setattr(codegen_cpp, "FUSED", fused)
        src = smooth.cuda_source(sample((2, 40, 24), np.int8, seed=1))
        kind = "fused" if fused else "interior"
        assert src.count("__global__ void __launch_bounds__(256, 8) ") == 2
        assert f"__launch_bounds__(256, 8) smooth_py_{kind}(" in src
        assert f"__launch_bounds__(256, 8) smooth_py_{kind}_w(" in src
    cpp_host.needs_nvrtc()
    pytest.importorskip("cuda.bindings.nvjitlink")
    monkeypatch.setattr(codegen_cpp, "FUSED", True)
    assert cuda_cpp.resources(diffuse.cuda_source(a, 0.1))["diffuse_fused"]["registers"] <= 32


def test_launch_settings_changed_between_calls_take_effect(fake_gpu, monkeypatch):
    """Remembered launches key on the settings that shape them but not the source
    (``codegen_cpp.launch_settings``, ``cuda_sweeps.REACH_STRIPS``): the profile's and
    ``--geometry``'s rows change them between calls, which once reused the old launches."""
    from numba import cuda

    from stencilkit import filters
    from stencilkit.backends import cuda_sweeps

    monkeypatch.setattr(codegen_cpp, "TARGET_THREADS", 1)  # (strips at their longest)
    a = sample((1, 300, 64), np.float32, seed=2)
    d = cuda.to_device(a)

    def grids(call, want):
        fake_gpu.grids.clear()
        # (the Gaussian's float32 sums: the CPU's to round-off)
        np.testing.assert_allclose(call().copy_to_host(), want, rtol=1e-5, atol=1e-4)
        return list(fake_gpu.grids)

    for call, want, module, name, value in [
            (lambda: smooth(d), smooth(a), codegen_cpp, "ROWS", 8),
            (lambda: filters.gaussian_filter(d, 2.0), filters.gaussian_filter(a, 2.0),
             cuda_sweeps, "REACH_STRIPS", 0)]:
        before = grids(call, want)
        monkeypatch.setattr(module, name, value)
        after = grids(call, want)
        assert before != after and len(before) == len(after), name
        assert after == grids(call, want)  # (remembered under the new value)


def test_compiled_binaries_are_kept_and_loaded_again(fake_gpu, monkeypatch, tmp_path):
    """NVRTC's binary goes to the cache folder, compiled with stencilkit's options alone
    (not through cupy.RawModule(code=...), which adds -ftz=true); a later process loads the
    file instead of compiling; a damaged file is compiled again; without a folder (or a CuPy
    without compile_using_nvrtc) CuPy compiles it, with a warning that subnormals flush."""
    a = sample((2, 9, 24), np.float32, seed=4)
    want = smooth(a)
    same(smooth(a, target="cuda"), want)
    files = list((tmp_path / "binaries").glob("sk_bin_*.cubin"))
    assert len(files) == 1 and fake_gpu.compiled == 1
    assert fake_gpu.options == [cuda_cpp.OPTIONS]
    monkeypatch.setattr(cuda_cpp, "_KERNELS", {})  # (a new process)
    same(smooth(a, target="cuda"), want)
    assert fake_gpu.compiled == 1 and fake_gpu.loaded[-1] == str(files[0])
    files[0].write_bytes(b"\x7fELF, cut short")
    monkeypatch.setattr(cuda_cpp, "_KERNELS", {})
    same(smooth(a, target="cuda"), want)
    assert fake_gpu.compiled == 2 and files[0].read_bytes().startswith(cpp_host.FAKE_BINARY)
    # a GPU of another architecture: another file
    monkeypatch.setattr(cuda_cpp, "_KERNELS", {})
    monkeypatch.setattr(fake_gpu.cuda, "Device",
                        lambda: types.SimpleNamespace(compute_capability="other"))
    same(smooth(a, target="cuda"), want)
    assert fake_gpu.compiled == 3 and len(list((tmp_path / "binaries").iterdir())) == 2
    # PTX (CuPy's CUPY_COMPILE_WITH_PTX, or a GPU newer than NVRTC): kept and loaded alike
    real = fake_gpu.cuda.compiler.compile_using_nvrtc
    monkeypatch.setattr(fake_gpu.cuda.compiler, "compile_using_nvrtc", lambda src, opts: (
        cpp_host.FAKE_PTX.decode() + real(src, opts)[0][len(cpp_host.FAKE_BINARY):].decode(),
        None))
    monkeypatch.setattr(fake_gpu.cuda, "Device",
                        lambda: types.SimpleNamespace(compute_capability="ptx"))
    for _ in range(2):
        monkeypatch.setattr(cuda_cpp, "_KERNELS", {})
        same(smooth(a, target="cuda"), want)
    assert fake_gpu.compiled == 4 and len(list((tmp_path / "binaries").glob("*.ptx"))) == 1
    for undo in (lambda: monkeypatch.setattr(cuda_cpp, "_binaries", lambda: None),
                 lambda: monkeypatch.delattr(fake_gpu.cuda.compiler, "compile_using_nvrtc")):
        undo()
        cuda_cpp._warn_ftz.cache_clear()
        monkeypatch.setattr(cuda_cpp, "_KERNELS", {})
        with pytest.warns(RuntimeWarning, match="float32 subnormal values read as zero"):
            same(smooth(a, target="cuda"), want)
        assert fake_gpu.options[-1] == (*cuda_cpp.OPTIONS, "-ftz=true")


def test_unsupported_kernels_fall_back_to_numba_cuda(fake_gpu):
    import numba

    @numba.njit(fastmath=True)
    def twice(v):
        return 2 * v

    @sk.stencil
    def helper_call(x):
        return twice(x[0, 0]) + x[0, 1]

    a = sample((5, 8), np.int16)
    same(helper_call(a, target="cuda"), helper_call(a))
    assert not fake_gpu.launched
    assert "numba.cuda (the fallback)" in helper_call.explain(a, target="cuda")
    assert "jitted function 'twice'" in helper_call.explain(a, target="cuda")


def test_an_nvrtc_failure_warns_and_falls_back(fake_gpu, monkeypatch):
    def broken(code, options=(), **kw):
        raise fake_gpu.cuda.compiler.CompileException("stencilkit.cu(1): error: (test)")

    monkeypatch.setattr(fake_gpu.cuda.compiler, "compile_using_nvrtc", broken)

    @sk.stencil
    def east(x):
        return x[0, 1]

    a = sample((4, 6), np.int32)
    with pytest.warns(RuntimeWarning, match="NVRTC could not compile"):
        same(east(a, target="cuda"), east(a))
    same(east(a, target="cuda"), east(a))  # remembered: no second attempt, no warning
    assert "NVRTC failed" in east.explain(a, target="cuda")


def test_index_width_leaves_room_for_offsets_and_the_grid_stride():
    r = smooth.radius
    assert not codegen_cpp.index_width([2**30], r)
    assert codegen_cpp.index_width([2**31 - 2**20], r)  # a grid-stride step past 2**31
    assert codegen_cpp.index_width([2**31], r) and codegen_cpp.index_width([10, 2**33], r)


def test_explain_describes_the_cpp_launches(fake_gpu):
    text = smooth.explain(np.zeros((2, 64, 100), np.uint8), target="cuda")
    assert "generated CUDA C++" in text and "32-bit indices" in text
    assert "launch smooth_py_fused_w" in text and "4 outputs per thread" in text
    assert "the border in the first rows of blocks" in text
    assert "not fused" in text and "proven to fit 32 bits" in text
