"""Generate a stencil's CUDA C++ module: the kernels of the CUDA backend's fast path.

One module per kernel, input dtypes, accumulator, output dtype, parameter types and index width
(32-bit when every array has fewer than 2**31 elements). It holds, as plain C++ that NVRTC
compiles for the device and g++ compiles for the host (``-DSK_HOST``: the tests run every kernel
on the CPU, thread by thread, against the CPU backend):

``<name>_body``
    the kernel's arithmetic (:mod:`stencilkit._cpp_body`): numba's types and operations, 64-bit
    integers narrowed to 32 bits where their ranges provably fit.
``<name>_interior``
    the interior, with no boundary logic at all: each thread owns one column of a strip of
    ``rows`` rows and walks down it, keeping the rows it has read in registers (a ring per
    column offset), so each input element is loaded about once per thread; 32-bit offsets from
    ``const __restrict__`` pointers (read-only loads, ``ld.global.nc``).
``<name>_interior_w`` (when some array has 8- or 16-bit elements)
    the same walk with several outputs per thread (``COLS``: 4 for 8-bit data, 2 for 16-bit),
    8/16-bit arrays read and written as whole 32-bit words and split with shifts. Used when those
    arrays' rows start on 4-byte boundaries.
``<name>_border``
    everything the interior kernels leave: every element of the border rows, and in the other
    rows the columns at either end; one flat grid-stride loop, reads through the mode's index
    map (the mode, ``cval`` and the ``skip`` value are run-time arguments).
``<name>_fused``, ``<name>_fused_w`` (2-D and up, :data:`FUSED`)
    the interior kernels (as device functions) with the border in the same launch: the first
    rows of blocks walk the border's elements; these replace ``<name>_interior`` and
    ``<name>_interior_w``.

The shapes come from hand-written kernels measured on an H100 (``shared/gpu/anchor_cpp.py``:
a packed int8 3 x 3 mean at 0.71x of a device copy, a float32 heat strip at 0.93x): one thread per
column strip, rows in registers, words for narrow data, read-only ``__restrict__`` pointers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import _cpp_body, modes
from .kernel import KernelSpec

ROWS = 32
"""Rows per thread's strip when the grid is large enough (the anchors' figure)."""

UNROLL = 8
"""Rows a step of the strip walk takes: the loads of all of them first, then their outputs, so
that a thread has several rows' loads in flight at once (one row at a time leaves a strip
waiting on each load's latency). Part of the emitted source (the module caches' keys include
it). ``benchmarks/gpu.py --geometry`` times the choices: on an H200, 8 with 32-row strips was
the best compromise (3 x 3 int8 mean 0.61x copy against 0.53x one row at a time; heat step
0.62x against 0.55x; a 17-tap column pass 0.49x against 0.48x). Kernels of many reads take
fewer (:func:`rows_per_step`)."""

STEP_READS = 64
"""Reads of a kernel's body times rows per step at most: the body is repeated per row of a
step, and heavy bodies gain nothing from it (compute-bound), while their compile time grows
(a 7 x 7 median: 0.33 s at one row a step, 1.95 s at eight)."""


def rows_per_step(reads: int) -> int:
    """Rows a step of the strip walk takes for a body of ``reads`` reads (1 to UNROLL)."""
    return max(1, min(UNROLL, STEP_READS // max(1, reads)))


TARGET_THREADS = 132 * 2048
"""Threads that fill an H100 (132 SMs x 2048 resident threads); strips shrink below this."""

BLOCK_PLAIN = (128, 2, 1)
"""Threads per block of the one-column interior kernel (the float32 heat anchor's shape)."""

BLOCK_WORDS = (64, 4, 1)
"""Threads per block of the word interior kernel (the packed int8 anchor's shape)."""

BLOCK_1D = (256, 1, 1)
"""Threads per block of 1-D interior kernels and of the border kernel."""

MAX_GRID_YZ = 65535


def launch_settings() -> tuple:
    """The settings above that shape launches but not the emitted source.

    ``(ROWS, TARGET_THREADS, BLOCK_PLAIN, BLOCK_WORDS, BLOCK_1D)``: part of every remembered
    launch's key (``cuda_cpp._LAUNCHES``), so that a changed one takes effect at the next call
    (``benchmarks/gpu.py --geometry``, ``tools/gpu_profile.py``'s rows; before, a launch
    remembered under the old value was used again).
    """
    return ROWS, TARGET_THREADS, BLOCK_PLAIN, BLOCK_WORDS, BLOCK_1D


MIN_BLOCKS = None
"""Blocks of 256 threads an SM that the stencils' interior kernels (2-D and up) ask ptxas to
fit (``__launch_bounds__(256, MIN_BLOCKS)``: registers capped at 65536 / (256 x MIN_BLOCKS),
spilling if they must); None: no bound. ptxas 12 (sm_90) gives the heat step's fused kernel 48
registers at 8 rows a step (5 blocks an SM), 40 at 4 (6); at a bound of 8, 32 with 4-8 bytes
spilled. ``tools/gpu_profile.py`` times it; part of the emitted source (:func:`source_settings`)."""


def source_settings() -> tuple:
    """The settings that shape the stencils' emitted source: part of the module caches' keys.

    ``(UNROLL, FUSED, LINE_BYTES, MIN_BLOCKS, _cpp_body.RANGED, _cpp_body.SHARE_ROWS)``,
    and the blocks where a bound takes them.
    """
    blocks = (BLOCK_PLAIN, BLOCK_WORDS) if MIN_BLOCKS else ()
    return (UNROLL, FUSED, LINE_BYTES, MIN_BLOCKS, _cpp_body.RANGED, _cpp_body.SHARE_ROWS,
            *blocks)


def bounds(block) -> str:
    """``__launch_bounds__`` for an interior kernel launched with ``block`` (:data:`MIN_BLOCKS`)."""
    return f"__launch_bounds__({math.prod(block)}, {MIN_BLOCKS}) " if MIN_BLOCKS else ""


FUSED = True
"""Whether 2-D and higher modules run their border in the interior's launch: ``<name>_fused``
(and ``<name>_fused_w``), whose first rows of blocks (the lowest ``blockIdx.y``, dispatched
first; :data:`FUSED_ELEMENTS`) walk the border's elements while the others run the interior,
instead of ``<name>_interior`` and then ``<name>_border`` (which still runs alone where the
interior is empty). The border kernel of its own ran after the interior's: on an H200
(``tools/gpu_profile.py``) 0.018 of a 0.249 ms heat step, 0.037 of a 0.290 ms float32 Sobel;
fused (same card, same run against a border launch of its own): heat 0.282 against 0.288 ms,
Sobel 0.273 against 0.365, uniform 3 uint8 0.166 against 0.194. Part of the emitted source
(the caches' keys); :mod:`.backends.cuda_sweeps` has its own switch for the filters'
sweeps."""

FUSED_ELEMENTS = 4
"""Border elements per thread of a fused launch's border blocks, about (:func:`plan_launches`
adds rows of blocks for them: one for a large square image, hundreds for a tall narrow one,
whose border is most of it)."""


BYTE_PERM = """\
// CUDA's __byte_perm (result byte n: byte (s >> 4n) & 7 of y:x); on the host as documented
SK_FN sk_u32 sk_byte_perm(sk_u32 x, sk_u32 y, sk_u32 s) {
#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
  return __byte_perm(x, y, s);
#else
  const sk_u64 v = ((sk_u64)y << 32) | x;
  sk_u32 r = 0;
  for (int n = 0; n < 4; ++n) r |= (sk_u32)((v >> (8 * ((s >> (4 * n)) & 7))) & 0xff) << (8 * n);
  return r;
#endif
}
"""
"""``sk_byte_perm``: one ``PRMT`` on the device (bytes of 8/16-bit lanes moved in a word), the
documented semantics on the host, so that the host tests check the selectors. Part of
:data:`PRELUDE` (the 8-bit lanes of words are extracted with it)."""


PRELUDE = r"""
// ---- stencilkit prelude: types and numba's arithmetic rules, for NVRTC and for g++ (-DSK_HOST)
#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define SK_FN static __host__ __device__ __forceinline__
#else
#include <math.h>
#include <string.h>
#define SK_FN static inline
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __launch_bounds__(...)
struct sk_dim3 { unsigned x, y, z; };
static thread_local sk_dim3 threadIdx, blockIdx, blockDim, gridDim;  // (host threads apart)
#endif
#define SK_MEMBER __host__ __device__ __forceinline__
typedef signed char sk_i8;
typedef short sk_i16;
typedef int sk_i32;
typedef long long sk_i64;
typedef unsigned char sk_u8;
typedef unsigned short sk_u16;
typedef unsigned int sk_u32;
typedef unsigned long long sk_u64;

SK_FN float sk_f32_bits(sk_u32 b) {
#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
  return __int_as_float((int)b);
#else
  float f; memcpy(&f, &b, 4); return f;
#endif
}
SK_FN double sk_f64_bits(sk_u64 b) {
#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
  return __longlong_as_double((long long)b);
#else
  double f; memcpy(&f, &b, 8); return f;
#endif
}
SK_FN bool sk_isnan(double x) { return x != x; }
SK_FN bool sk_isnan(float x) { return x != x; }
SK_FN bool sk_isinf(double x) { return x == x && (x - x) != (x - x); }
SK_FN bool sk_isinf(float x) { return x == x && (x - x) != (x - x); }
SK_FN bool sk_isfinite(double x) { return (x - x) == (x - x); }
SK_FN bool sk_isfinite(float x) { return (x - x) == (x - x); }

// Python's floor division and modulo of floats, as numba computes them (CPython's float_divmod)
#define SK_FLOAT_DIVMOD(T, S, FMOD, FLOOR)                                                \
SK_FN T sk_floordiv_##S(T vx, T wx) {                                                   \
  if (wx == (T)0) return vx / wx;                                                         \
  T mod = FMOD(vx, wx); T div = (vx - mod) / wx;                                          \
  if (mod != (T)0 || mod != mod) { if ((wx < (T)0) != (mod < (T)0)) div = div - (T)1; }   \
  T fd;                                                                                   \
  if (div != (T)0) { fd = FLOOR(div); if (div - fd > (T)0.5) fd = fd + (T)1; }            \
  else { div = div * div; fd = div * vx / wx; }                                           \
  return fd;                                                                              \
}                                                                                         \
SK_FN T sk_mod_##S(T vx, T wx) {                                                        \
  if (wx == (T)0) return FMOD(vx, wx);                                                    \
  T mod = FMOD(vx, wx);                                                                   \
  if (mod != (T)0 || mod != mod) { if ((wx < (T)0) != (mod < (T)0)) mod = mod + wx; }     \
  else { mod = (wx < (T)0) ? (T)-0.0 : (T)0.0; }                                          \
  return mod;                                                                             \
}
SK_FLOAT_DIVMOD(double, f64, fmod, floor)
SK_FLOAT_DIVMOD(float, f32, fmodf, floorf)

// a float converted to an integer inside a kernel (int(), np.uint8(), math.floor, round, a
// float read into an integer accumulator: stencilkit._casts.to_int), where a plain cast is
// undefined: truncated toward zero, NaN 0, saturated at the type's limits (the bounds as the
// float type rounds them: no value of it lies between such a bound and the integer limit)
#define SK_F2I(T, S, LO, HI)                                                              \
SK_FN T sk_f2i_##S(double v) {                                                          \
  if (v != v) return (T)0;                                                                \
  if (v <= (double)(LO)) return (T)(LO);                                                  \
  if (v >= (double)(HI)) return (T)(HI);                                                  \
  return (T)v; }                                                                          \
SK_FN T sk_f2i_##S(float v) {                                                           \
  if (v != v) return (T)0;                                                                \
  if (v <= (float)(LO)) return (T)(LO);                                                   \
  if (v >= (float)(HI)) return (T)(HI);                                                   \
  return (T)v; }
SK_F2I(sk_i8, i8, -128, 127) SK_F2I(sk_i16, i16, -32768, 32767)
SK_F2I(sk_i32, i32, (-2147483647 - 1), 2147483647)
SK_F2I(sk_i64, i64, (-9223372036854775807LL - 1), 9223372036854775807LL)
SK_F2I(sk_u8, u8, 0, 255) SK_F2I(sk_u16, u16, 0, 65535) SK_F2I(sk_u32, u32, 0, 4294967295u)
SK_F2I(sk_u64, u64, 0, 18446744073709551615ull)

// NumPy's minimum/maximum (NaN wins) and fmin/fmax (NaN loses), as numba's ufunc loops:
// minimum(a, b) is a NaN a, else b if b is NaN or below a, else a (ties keep a); fmin(a, b)
// is a unless a is NaN, or b is below it; each one or two comparisons and a select
#define SK_NP_MINMAX(T)                                                                   \
SK_FN T sk_np_min(T a, T b) { return (a <= b || a != a) ? a : b; }                      \
SK_FN T sk_np_max(T a, T b) { return (a >= b || a != a) ? a : b; }                      \
SK_FN T sk_np_fmin(T a, T b) { return (a == a && (a <= b || b != b)) ? a : b; }         \
SK_FN T sk_np_fmax(T a, T b) { return (a == a && (a >= b || b != b)) ? a : b; }
SK_NP_MINMAX(double)
SK_NP_MINMAX(float)

// an integer as an opaque copy of itself: one empty asm on the device (none on the host), so
// that the compiler keeps a sum made of it as written (it reassociates integer adds across
// statements, which undoes a kernel's sharing of partial sums), while copies of the same
// value still merge; for the variables named with _cpp_body.KEEP (_cpp_body.share_rows)
#if defined(__CUDA_ARCH__)
#define SK_KEEP(T, C) SK_FN T sk_keep(T x) { asm("" : "+" C(x)); return x; }
#else
#define SK_KEEP(T, C) SK_FN T sk_keep(T x) { return x; }
#endif
SK_KEEP(sk_i32, "r") SK_KEEP(sk_u32, "r") SK_KEEP(sk_i64, "l") SK_KEEP(sk_u64, "l")

// Python's min/max, one step: min(a, b) is b only if b < a (so a NaN in a stays)
#define SK_PY_MINMAX(T, S)                                                                \
SK_FN T sk_min_##S(T a, T b) { return (b < a) ? b : a; }                                  \
SK_FN T sk_max_##S(T a, T b) { return (b > a) ? b : a; }
SK_PY_MINMAX(bool, b) SK_PY_MINMAX(sk_i8, i8) SK_PY_MINMAX(sk_i16, i16)
SK_PY_MINMAX(sk_i32, i32) SK_PY_MINMAX(sk_i64, i64) SK_PY_MINMAX(sk_u8, u8)
SK_PY_MINMAX(sk_u16, u16) SK_PY_MINMAX(sk_u32, u32) SK_PY_MINMAX(sk_u64, u64)
SK_PY_MINMAX(float, f32) SK_PY_MINMAX(double, f64)

// signed integers wrap modulo 2**bits as in numba's compiled code (C++ overflow is undefined);
// division and modulo are Python's (floor), 0 for a zero divisor and for MIN // -1, as numba's
#define SK_SIGNED(T, U, S)                                                                \
SK_FN T sk_add_##S(T a, T b) { return (T)((U)a + (U)b); }                                 \
SK_FN T sk_sub_##S(T a, T b) { return (T)((U)a - (U)b); }                                 \
SK_FN T sk_mul_##S(T a, T b) { return (T)(1u * (U)a * (U)b); }  /* (no promotion to int) */ \
SK_FN T sk_shl_##S(T a, T b) {  /* NumPy's shifts: a count out of range shifts all out */ \
  return (U)b < sizeof(T) * 8 ? (T)((U)a << (U)b) : (T)0; }                                \
SK_FN T sk_shr_##S(T a, T b) {                                                             \
  return (T)(a >> ((U)b < sizeof(T) * 8 ? (U)b : sizeof(T) * 8 - 1)); }                     \
SK_FN T sk_floordivc_##S(T a, T b) { T q = (T)(a / b); T r = (T)(a - q * b);              \
  return (r != 0 && ((r ^ b) < 0)) ? (T)(q - 1) : q; }                                    \
SK_FN T sk_modc_##S(T a, T b) { T r = (T)(a % b);                                         \
  return (r != 0 && ((r ^ b) < 0)) ? (T)(r + b) : r; }                                    \
SK_FN T sk_floordiv_##S(T a, T b) {                                                       \
  if (b == 0) return 0;                                                                   \
  if (b == (T)-1 && a == (T)((U)1 << (sizeof(T) * 8 - 1))) return 0;                      \
  return sk_floordivc_##S(a, b); }                                                        \
SK_FN T sk_mod_##S(T a, T b) {                                                            \
  if (b == 0 || b == (T)-1) return 0;                                                     \
  return sk_modc_##S(a, b); }
SK_SIGNED(sk_i8, sk_u8, i8) SK_SIGNED(sk_i16, sk_u16, i16) SK_SIGNED(sk_i32, sk_u32, i32)
SK_SIGNED(sk_i64, sk_u64, i64)

#define SK_UNSIGNED(T, S)                                                                 \
SK_FN T sk_shl_##S(T a, T b) { return b < sizeof(T) * 8 ? (T)(a << b) : (T)0; }           \
SK_FN T sk_shr_##S(T a, T b) { return b < sizeof(T) * 8 ? (T)(a >> b) : (T)0; }            \
SK_FN T sk_ufloordiv_##S(T a, T b) { return b == 0 ? (T)0 : (T)(a / b); }                 \
SK_FN T sk_umod_##S(T a, T b) { return b == 0 ? (T)0 : (T)(a % b); }
SK_UNSIGNED(sk_u8, u8) SK_UNSIGNED(sk_u16, u16) SK_UNSIGNED(sk_u32, u32)
SK_UNSIGNED(sk_u64, u64)

// numba's power with an integer exponent: repeated squaring in the result type (its
// int_power_impl, including its answers for negative exponents)
#define SK_IPOW_INT(T, S, MINV)                                                           \
SK_FN T sk_ipow_##S(T a, sk_i64 b) {                                                      \
  T r = 1; bool invert = false; sk_i64 e = b;                                             \
  if (b < 0) { invert = true; e = -b;                                                     \
    if (a == 0) return (T)(MINV);                                                         \
    if (a != 1 && a != (T)-1) return 0; }                                                 \
  if (e > 0x10000) return (T)pow((double)a, (double)b);                                   \
  while (e != 0) { if (e & 1) r = (T)(1ull * r * a); e >>= 1; a = (T)(1ull * a * a); }      \
  if (invert) return (T)(1.0 / (double)r);                                                \
  return r; }
SK_IPOW_INT(sk_i64, i64, (sk_i64)((sk_u64)1 << 63))
SK_IPOW_INT(sk_u64, u64, (sk_u64)1 << 63)
#define SK_IPOW_FLOAT(T, S)                                                               \
SK_FN T sk_ipow_##S(T a, sk_i64 b) {                                                      \
  T r = (T)1; bool invert = b < 0; sk_i64 e = invert ? -b : b;                            \
  if (e > 0x10000) return (T)pow((double)a, (double)b);                                   \
  while (e != 0) { if (e & 1) r = r * a; e >>= 1; a = a * a; }                            \
  if (invert) return (T)(1.0 / r);                                                        \
  return r; }
SK_IPOW_FLOAT(float, f32)
SK_IPOW_FLOAT(double, f64)

// NumPy's ufunc loops as numba lowers them, where they differ from the operators
// (_cpp_body.Translator.ufunc_loop): np.remainder of floats (fmod, plus the divisor where the
// signs differ; the addition turns -0.0 into 0.0), np.sign (of floats: the argument itself
// for zeros and NaN), np.signbit
#define SK_NP_FLOAT(T, S, FMOD)                                                            \
SK_FN T sk_npmod_##S(T a, T b) { T r = FMOD(a, b);                                        \
  return r + ((r < (T)0 || r > (T)0) && ((b < (T)0) != (r < (T)0)) ? b : (T)0); }         \
SK_FN T sk_npsign_##S(T a) { return a > (T)0 ? (T)1 : (a < (T)0 ? (T)-1 : a); }
SK_NP_FLOAT(double, f64, fmod)
SK_NP_FLOAT(float, f32, fmodf)
SK_FN bool sk_signbit(float a) {
#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
  return (__float_as_uint(a) >> 31) != 0;
#else
  sk_u32 u; memcpy(&u, &a, 4); return (u >> 31) != 0;
#endif
}
SK_FN bool sk_signbit(double a) {
#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
  return __double_as_longlong(a) < 0;
#else
  sk_u64 u; memcpy(&u, &a, 8); return (u >> 63) != 0;
#endif
}

// integers: np.fmod is numba's unsigned remainder of the bits (np_int_fmod_impl = urem, 0 for
// a zero divisor); np.sign compares the bits as signed (a uint8 200 gives 255, as numba's)
#define SK_NP_INT(T, I, U, S)                                                             \
SK_FN T sk_npfmod_##S(T a, T b) { return b == 0 ? (T)0 : (T)((U)a % (U)b); }              \
SK_FN T sk_npsign_##S(T a) { return a == 0 ? (T)0 : ((I)a > 0 ? (T)1 : (T)-1); }
SK_NP_INT(sk_i8, sk_i8, sk_u8, i8) SK_NP_INT(sk_i16, sk_i16, sk_u16, i16)
SK_NP_INT(sk_i32, sk_i32, sk_u32, i32) SK_NP_INT(sk_i64, sk_i64, sk_u64, i64)
SK_NP_INT(sk_u8, sk_i8, sk_u8, u8) SK_NP_INT(sk_u16, sk_i16, sk_u16, u16)
SK_NP_INT(sk_u32, sk_i32, sk_u32, u32) SK_NP_INT(sk_u64, sk_i64, sk_u64, u64)

// numba's integer np.power (int_power_impl): the power in int64 (uint64 for unsigned loops;
// 0 to a negative power: the type's lowest bit pattern, as its error model "numpy" has it),
// returned through a float64 (its other returns are floats: 64-bit results above 2**53
// round) and converted to the loop's type. Beyond the type that conversion has no defined
// value in LLVM (x86 gives 0 or the lowest value, or the wrapped one where LLVM folds the
// round trip away): here the power wrapped in the type, as NumPy's, and the float power of
// an exponent above 2**16 saturated
SK_FN sk_i64 sk_via_f64_i64(sk_i64 r) { double v = (double)r;
  return v < 9223372036854775808.0 ? (sk_i64)v : r; }
SK_FN sk_u64 sk_via_f64_u64(sk_u64 r) { double v = (double)r;
  return v < 18446744073709551616.0 ? (sk_u64)v : r; }
#define SK_NP_POW(T, S, W)                                                                \
SK_FN T sk_npow_##S(T a, T b) {                                                           \
  sk_##W r = 1, x = (sk_##W)a, e = (sk_##W)b; bool invert = false;                        \
  if (b < 0) {                                                                            \
    if (a == 0) return (T)((sk_u64)1 << (sizeof(T) * 8 - 1));                             \
    if (a != 1 && a != (T)-1) return 0;                                                   \
    invert = true; e = (sk_##W)(0 - (sk_u64)e); }                                         \
  if (e > 0x10000) return sk_f2i_##S(pow((double)x, (double)b));                          \
  while (e != 0) { if (e & 1) r = (sk_##W)(1ull * r * x); e >>= 1; x = (sk_##W)(1ull * x * x); } \
  return invert ? (T)r : (T)sk_via_f64_##W(r); }  /* (inverted: r is 1 or -1, 1.0 / r) */
SK_NP_POW(sk_i8, i8, i64) SK_NP_POW(sk_i16, i16, i64) SK_NP_POW(sk_i32, i32, i64)
SK_NP_POW(sk_i64, i64, i64) SK_NP_POW(sk_u8, u8, u64) SK_NP_POW(sk_u16, u16, u64)
SK_NP_POW(sk_u32, u32, u64) SK_NP_POW(sk_u64, u64, u64)

// the number of values range(start, stop, step) yields, as numba's range iterator counts
SK_FN sk_i64 sk_range_count(sk_i64 start, sk_i64 stop, sk_i64 step) {
  if (step == 0) return 0;
  sk_i64 diff = stop - start;
  if ((diff > 0) != (step > 0)) return 0;
  sk_i64 rem = diff % step; if (diff < 0) rem = -rem;
  return diff / step + (rem > 0 ? 1 : 0);
}

""" + BYTE_PERM + r"""
// a lane of a little-endian 32-bit word: 8- and 16-bit data are read four or two per load
SK_FN sk_i32 sk_lane_i8(sk_u32 w, int lane) { return (sk_i32)(sk_i8)(w >> (8 * lane)); }
// (a byte zero-extended by one PRMT: a shift and a mask took two instructions)
SK_FN sk_i32 sk_lane_u8(sk_u32 w, int lane) { return (sk_i32)sk_byte_perm(w, 0, 0x4440u + lane); }
SK_FN sk_i32 sk_lane_i16(sk_u32 w, int lane) { return (sk_i32)(sk_i16)(w >> (16 * lane)); }
SK_FN sk_i32 sk_lane_u16(sk_u32 w, int lane) { return (sk_i32)((w >> (16 * lane)) & 0xffffu); }
"""


def _map_source(idx: str) -> str:
    """``sk_map``: the boundary modes' index map (stencilkit.modes.MAP_SOURCE, in C++)."""
    return f"""
// the boundary modes' index map (stencilkit/modes.py): -1 means cval (constant mode)
SK_FN {idx} sk_pmod({idx} k, {idx} p) {{ {idx} r = k % p; return r < 0 ? r + p : r; }}
SK_FN {idx} sk_map({idx} k, {idx} n, int mode) {{
  if (k >= 0 && k < n) return k;
  if (mode == {modes.REFLECT}) {{
    {idx} p = 2 * n; k = sk_pmod(k, p); return k < n ? k : p - 1 - k; }}
  if (mode == {modes.MIRROR}) {{
    if (n == 1) return 0;
    {idx} p = 2 * n - 2; k = sk_pmod(k, p); return k < n ? k : p - k; }}
  if (mode == {modes.NEAREST}) return k < 0 ? 0 : n - 1;
  if (mode == {modes.WRAP}) return sk_pmod(k, n);
  return -1;
}}
"""


def host_launchers(kernels, params: str, names: str) -> str:
    """``<kernel>_host`` functions (``-DSK_HOST`` only) that run a launch on the CPU.

    Every block and thread of the grid in turn, one at a time: exact for kernels without
    shared memory or barriers. ``params``: the kernels' parameter list; ``names``: its names.
    """
    lines = ["#ifdef SK_HOST",
             "// host emulation for the tests: the grid's blocks and threads run one by one"]
    for kname in kernels:
        lines += [host_signature(kname, params),
            f'extern "C" void {kname}_host(unsigned sk_gx, unsigned sk_gy, unsigned sk_gz, '
            f"unsigned sk_bx, unsigned sk_by, unsigned sk_bz, {params}) {{",
            "  gridDim.x = sk_gx; gridDim.y = sk_gy; gridDim.z = sk_gz;",
            "  blockDim.x = sk_bx; blockDim.y = sk_by; blockDim.z = sk_bz;",
            "  for (unsigned sk_z = 0; sk_z < sk_gz; ++sk_z)",
            "  for (unsigned sk_y = 0; sk_y < sk_gy; ++sk_y)",
            "  for (unsigned sk_x = 0; sk_x < sk_gx; ++sk_x)",
            "  for (unsigned sk_tz = 0; sk_tz < sk_bz; ++sk_tz)",
            "  for (unsigned sk_ty = 0; sk_ty < sk_by; ++sk_ty)",
            "  for (unsigned sk_tx = 0; sk_tx < sk_bx; ++sk_tx) {",
            "        blockIdx.x = sk_x; blockIdx.y = sk_y; blockIdx.z = sk_z;",
            "        threadIdx.x = sk_tx; threadIdx.y = sk_ty; threadIdx.z = sk_tz;",
            f"        {kname}({names});",
            "      }",
            "}"]
    lines.append("#endif")
    return "\n".join(lines)


def host_signature(kname: str, params: str) -> str:
    """``<kernel>_sig()`` (``-DSK_HOST`` only): the kernel's parameter list as a string.

    The tests' stand-in CuPy checks each launch's arguments against it: CuPy passes a NumPy
    scalar by its dtype and a Python int as a 64-bit integer, so an argument of another width
    than the parameter shifts every later one on the device, where the host's calling
    convention would hide it.
    """
    return f'extern "C" const char* {kname}_sig(void) {{ return "{" ".join(params.split())}"; }}'


def _ctype_of(dtype) -> str:
    return _cpp_body.dtype_ctype(dtype)


VMINMAX2 = """\
// minima and maxima of the 16-bit halves (unsigned), one VIMNMX.U16x2 each on sm_90
SK_FN sk_u32 sk_vmin2(sk_u32 a, sk_u32 b) {
#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
  return __vminu2(a, b);
#else
  const sk_u32 l = (a & 0xffffu) < (b & 0xffffu) ? a & 0xffffu : b & 0xffffu;
  const sk_u32 h = (a >> 16) < (b >> 16) ? a >> 16 : b >> 16;
  return l | (h << 16);
#endif
}
SK_FN sk_u32 sk_vmax2(sk_u32 a, sk_u32 b) {
#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
  return __vmaxu2(a, b);
#else
  const sk_u32 l = (a & 0xffffu) > (b & 0xffffu) ? a & 0xffffu : b & 0xffffu;
  const sk_u32 h = (a >> 16) > (b >> 16) ? a >> 16 : b >> 16;
  return l | (h << 16);
#endif
}
"""
"""``sk_vmin2``/``sk_vmax2``: two 16-bit unsigned lanes at once (8-bit pixels two per register,
biased for int8), the CUDA intrinsics on the device, the same per half on the host."""


def _lane_fn(dtype) -> str:
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return "sk_lane_u8"
    return f"sk_lane_{dtype.kind}{dtype.itemsize * 8}"


def _store_source(fname, ret_ctype, ret_type, out_dtype) -> str:
    """``<name>_store``: the kernel's value converted to the output dtype (stencilkit._casts)."""
    from numba.core import types

    out_dtype = np.dtype(out_dtype)
    oc = _ctype_of(out_dtype)
    lines = [f"SK_FN {oc} {fname}({ret_ctype} v) {{"]
    if out_dtype.kind == "b":
        lines.append(f"  return ({oc})(v != 0);")
    elif isinstance(ret_type, types.Float) and out_dtype.kind in "iu":
        info = np.iinfo(out_dtype)
        lo, hi = float(info.min), float(info.max)
        lines += [
            "  // float to integer: NaN gives 0, values beyond the type's range saturate",
            "  if (v != v) return 0;",
            f"  if ((double)v <= {lo.hex()}) return ({oc}){_int_lit(int(info.min), out_dtype)};",
            f"  if ((double)v >= {hi.hex()}) return ({oc}){_int_lit(int(info.max), out_dtype)};",
            f"  return ({oc})v;",
        ]
    else:
        lines.append(f"  return ({oc})v;")
    lines.append("}")
    return "\n".join(lines)


def _int_lit(v: int, dtype) -> str:
    dtype = np.dtype(dtype)
    if dtype.kind == "u":
        return f"{v}ULL"
    if v == -(1 << 63):
        return "(-9223372036854775807LL - 1)"
    return f"{v}LL"


@dataclass
class Module:
    """A generated CUDA C++ module and what launching it needs."""

    name: str                 # prefix of the kernel names (the user's kernel name)
    source: str
    ndim: int
    radius: tuple
    idx64: bool
    arrays: tuple             # input array names
    in_dtypes: tuple          # work dtypes of the inputs
    out_dtype: np.dtype       # work dtype of the output
    acc: np.dtype
    params: tuple             # numba type names of the scalar parameters ("float64", ...)
    cols: int                 # outputs per thread of the word kernel (0: no word kernel)
    word_arrays: tuple        # indices (inputs..., output as -1) read/written as words
    narrow: bool              # built with 32-bit narrowing for reads in the inputs' ranges
    narrowed: int             # 64-bit integer values proven to fit 32 bits
    wide: int                 # 64-bit integer values kept at 64 bits
    inexact: tuple            # math functions whose CUDA versions may differ from the CPU's
    fused: bool = False       # the border in the interior's launch (:data:`FUSED`; 2-D and up)
    lines: tuple = (1, 0)     # columns per line of the interior kernel and of the word kernel
    #                           (:func:`columns_line`, as emitted; 1 / ``cols``: from c0)

    @property
    def interior_name(self) -> str:
        """The name of the interior's kernel (``_w`` appended: the word kernel's)."""
        return f"{self.name}_fused" if self.fused else f"{self.name}_interior"

    @property
    def kernels(self) -> tuple:
        """The kernel names the module defines."""
        names = [self.interior_name, f"{self.name}_border"]
        if self.cols:
            names.insert(1, f"{self.interior_name}_w")
        return tuple(names)

    def meta(self) -> dict:
        """Everything but the source, as JSON-able values (the disk cache stores it)."""
        return {"name": self.name, "ndim": self.ndim, "radius": [list(r) for r in self.radius],
                "idx64": self.idx64, "arrays": list(self.arrays),
                "in_dtypes": [d.str for d in self.in_dtypes], "out_dtype": self.out_dtype.str,
                "acc": self.acc.str, "params": list(self.params), "cols": self.cols,
                "word_arrays": list(self.word_arrays), "narrow": self.narrow,
                "narrowed": self.narrowed, "wide": self.wide, "inexact": list(self.inexact),
                "fused": self.fused, "lines": list(self.lines)}

    @classmethod
    def from_meta(cls, meta: dict, source: str) -> "Module":
        """The Module :meth:`meta` describes, with its source."""
        return cls(name=meta["name"], source=source, ndim=meta["ndim"],
                   radius=tuple(tuple(r) for r in meta["radius"]), idx64=meta["idx64"],
                   arrays=tuple(meta["arrays"]),
                   in_dtypes=tuple(np.dtype(d) for d in meta["in_dtypes"]),
                   out_dtype=np.dtype(meta["out_dtype"]), acc=np.dtype(meta["acc"]),
                   params=tuple(meta["params"]), cols=meta["cols"],
                   word_arrays=tuple(meta["word_arrays"]), narrow=meta["narrow"],
                   narrowed=meta["narrowed"], wide=meta["wide"], inexact=tuple(meta["inexact"]),
                   fused=bool(meta.get("fused", False)),
                   lines=tuple(meta.get("lines", (1, meta["cols"]))))

    # -- launches -------------------------------------------------------------------------------

    def launches(self, wshape, words: bool, rows=None):
        """The launches of one application: ``[(kernel, grid, block, (rows, c0, c1))]``.

        ``wshape`` is ``(B, n0, ..., nk-1)``. The interior launch is left out when the interior
        is empty; the border launch when nothing is left for it. ``rows``: see
        :func:`plan_launches`.
        """
        name = f"{self.interior_name}_w" if words else self.interior_name
        return plan_launches(self.radius, wshape, self.cols if words else 1, name,
                             f"{self.name}_border", BLOCK_WORDS if words else BLOCK_PLAIN,
                             rows=rows, fused=self.fused, line=self.lines[bool(words)])

    def scalars(self, wshape, rows, c0, c1, mode, cval, cvout, params):
        """The scalar kernel arguments as NumPy scalars of the C++ types."""
        it = np.int64 if self.idx64 else np.int32
        return ([it(v) for v in wshape] + [it(rows), it(c0), it(c1), np.int32(mode)]
                + typed_tail(self, cval, cvout, params))


def columns_line(in_dtypes, out_dtype, cols) -> int:
    """Columns per line (:func:`line_of`) of a stencil module's interior kernel.

    Counted in elements of the narrowest array, so that every array's row starts a line
    there (a wider one's at a multiple of a line).
    """
    return line_of(min(np.dtype(d).itemsize for d in (*in_dtypes, out_dtype)), cols)


def typed_tail(mod, cval, cvout, params) -> list:
    """``cval``, ``cvout`` and the kernel's parameters as NumPy scalars of ``mod``'s C++ types.

    The accumulator, the output (bool as its byte) and the parameters' numba types.
    """
    out = mod.out_dtype if mod.out_dtype.kind != "b" else np.dtype(np.uint8)
    vals = [np.asarray(cval).astype(mod.acc)[()], np.asarray(cvout).astype(out)[()]]
    return vals + [np.asarray(p).astype(np.dtype(t))[()] for p, t in zip(params, mod.params)]


LINE_BYTES = 128
"""Bytes of a line of global memory (four 32-byte sectors). The interior kernels start their
threads' columns on a line, counted from the row's start, so that each warp's loads and stores
start a line: on an H100 (8192^2 float32) a row-strip copy kernel ran at 0.98x of a device copy
with its columns from a line's start and at 0.68x one element later; the shared anchor heat
strip at 0.92x against 0.67x, and the generated heat step's kernel 0.211 against 0.245 ms
(0.92x against 0.79x). The threads before the interior's first column return at once. (The
separable sweeps keep their first column: ``cuda_sep.LINES``.)"""


def line_of(unit_bytes: int, units: int) -> int:
    """Units of ``unit_bytes`` bytes per line, where a thread's ``units`` units divide it.

    Else ``units`` (no alignment: :func:`lead_threads` then gives none).
    """
    line = max(1, LINE_BYTES // max(1, unit_bytes))
    return line if line % units == 0 else units


def lead_threads(first: int, line: int, units: int) -> int:
    """Idle threads before the interior's first, of ``units`` units each.

    The interior kernel's threads start on the line holding its first unit ``first``, in
    whole steps of ``units`` back from it, so that the working threads still start at
    ``first`` (:func:`line_start_cpp`, the kernels' side of it).
    """
    return first % line // units


def line_start_cpp(first: str, line: int, units: int) -> str:
    """The unit the interior kernel's first thread starts at, as C++.

    An expression of the kernel's parameter ``first``: ``first`` less :func:`lead_threads`
    threads.
    """
    if line == units:
        return first
    return f"({first} - {first} % {line} / {units} * {units})"


def interior_columns(radius, wshape, cols):
    """(c0, c1): the columns the interior kernel covers, whole groups of ``cols`` outputs."""
    n_last = wshape[-1]
    rb, ra = radius[-1]
    c0 = _cdiv(rb, cols) * cols
    hi = n_last - ra
    if hi <= c0:
        c0 = min(c0, n_last)
        return c0, c0
    return c0, c0 + (hi - c0) // cols * cols


def plan_launches(radius, wshape, cols, interior, border, block, simulator=False, rows=None,
                  fused=False, line=None):
    """The launches ``[(kernel, grid, block, (rows, c0, c1))]`` of one application.

    For a ``(B, *core)`` array: the interior kernel (``cols`` outputs per thread) and the border
    kernel. The interior kernel's threads each walk a strip of ``rows`` rows (``ROWS``, fewer
    when the grid would not fill the GPU); ``simulator`` keeps the thread count small instead
    (every simulated thread is a Python thread). ``rows`` forces the strip length instead (the
    host tests: strips long enough for the unrolled walk and its remainder on small arrays).
    ``fused`` (2-D and up): ``interior`` names a fused kernel (:data:`FUSED`), launched alone
    where the interior has work, with rows of blocks more for the border
    (:data:`FUSED_ELEMENTS`). ``line``: columns per line (:func:`line_of`) where the interior
    kernel starts its threads on one (:func:`lead_threads`); the grid has threads for the
    columns before its first (None: the numba.cuda kernels, which start at the first).
    """
    k = len(radius)
    B, core = wshape[0], wshape[1:]
    if B * math.prod(core) == 0:
        return []
    c0, c1 = interior_columns(radius, wshape, cols)
    inner = [max(0, n - b - a) for n, (b, a) in zip(core, radius)]
    groups = (c1 - c0) // cols
    lead = 0 if line is None else lead_threads(c0, line, cols)
    out = []
    forced, rows = rows, 1
    if groups and all(inner[:-1]):
        if k == 1:
            block = (8, 1, 1) if simulator else BLOCK_1D
            grid = (_cdiv(lead + groups, block[0]), min(B, 4 if simulator else MAX_GRID_YZ),
                    1)
        else:
            planes = B * math.prod(inner[:-2])
            walk = inner[-2]
            if forced:
                rows = forced
            elif simulator:
                block, rows = (8, 2, 1), max(1, _cdiv(walk, 2))
            else:
                rows = max(1, min(ROWS, _cdiv(groups * planes * walk, TARGET_THREADS)))
            while _cdiv(_cdiv(walk, rows), block[1]) + fused > MAX_GRID_YZ:
                rows *= 2
            grid = (_cdiv(lead + groups, block[0]), _cdiv(_cdiv(walk, rows), block[1]),
                    min(planes, 2 if simulator else MAX_GRID_YZ))
            if fused:  # rows of blocks first for the border: FUSED_ELEMENTS a thread
                ey = fused_rows(border_count(radius, wshape, c0, c1), grid, block,
                                FUSED_ELEMENTS)
                return [(interior, (grid[0], grid[1] + ey, grid[2]), block, (rows, c0, c1))]
        out.append((interior, grid, block, (rows, c0, c1)))
    total = border_count(radius, wshape, c0, c1)
    if total:
        bblock = (16, 1, 1) if simulator else BLOCK_1D
        grid = (1 if simulator else max(1, min(_cdiv(total, bblock[0]), 1 << 20)), 1, 1)
        out.append((border, grid, bblock, (rows, c0, c1)))
    return out


def fused_rows(work, grid, block, per=1) -> int:
    """Rows of border blocks a fused launch adds to the interior's ``grid``.

    Enough for ``work`` (the border's strips or elements) at ``per`` a thread, at least one,
    within the grid's limit.
    """
    threads = grid[0] * grid[2] * block[0] * block[1]
    return max(1, min(_cdiv(work, per * threads), MAX_GRID_YZ - grid[1]))


def fused_kernel(kname, params, names, ix, interior, border, walk, tail="", bound="") -> list:
    """C++ lines of a fused entry kernel: an interior body and a border body in one launch.

    The grid's last rows of blocks run ``interior(names, sk_by)``, ``sk_by`` counted from the
    grid's last row (so that a block knows its part by a multiply; a division took registers
    from the interior), as many as the interior's strips of ``rows`` rows need over ``walk``
    rows (a C++ expression); the rows before them (:func:`fused_rows`), of every plane ``z``,
    call ``border(names, first, stride{tail})``, their threads numbered from 0. ``bound``:
    the kernel's ``__launch_bounds__`` (:func:`bounds`), if any.
    """
    return [
        f'extern "C" __global__ void {bound}{kname}({params}) {{',
        f"  const {ix} sk_by = ({ix})gridDim.y - 1 - ({ix})blockIdx.y;",
        f"  if ((sk_i64)sk_by * ({ix})blockDim.y * rows < (sk_i64){walk}) {{",
        f"    {interior}({names}, sk_by); return; }}",
        f"  const {ix} ey = ({ix})gridDim.y - (({walk} + rows - 1) / rows + "
        f"({ix})blockDim.y - 1) / ({ix})blockDim.y;  // the border's rows of blocks",
        f"  const {ix} nb = ({ix})blockDim.x * ({ix})blockDim.y;",
        f"  {border}({names}, ((({ix})blockIdx.z * ey + ({ix})blockIdx.y) * ({ix})gridDim.x + "
        f"({ix})blockIdx.x) * nb + ({ix})threadIdx.y * ({ix})blockDim.x + ({ix})threadIdx.x, "
        f"({ix})gridDim.z * ey * ({ix})gridDim.x * nb{tail});",
        "}"]


def border_count(radius, wshape, c0, c1) -> int:
    """Elements the border kernel computes (the same count as the kernel's own)."""
    k = len(radius)
    B, core = wshape[0], wshape[1:]
    inner = [max(0, n - b - a) for n, (b, a) in zip(core, radius)]
    total = 0
    for d in range(k - 1):
        count = B * math.prod(inner[:d]) * (core[d] - inner[d]) * math.prod(core[d + 1:k - 1])
        total += count * core[-1]
    band = c0 + (core[-1] - c1)
    total += B * math.prod(inner[:k - 1]) * band
    return total


def words_ok(mod: Module, arrays, out) -> bool:
    """Whether the word kernel may run: every word array's rows start on 4-byte boundaries.

    ``arrays``/``out`` are ``(pointer, row length in elements)`` of the C-contiguous arrays.
    """
    if not mod.cols:
        return False
    items = list(arrays) + [out]
    for i in mod.word_arrays:
        ptr, n_last, itemsize = items[i]
        if ptr % 4 or (n_last * itemsize) % 4:
            return False
    return True


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def index_width(sizes, radius) -> bool:
    """Whether some array needs 64-bit indices.

    True for 2**31 elements or more, counting the offsets a border read may add before the
    mode maps it back and the stride of the border kernel's grid-stride loop (at most
    ``2**20`` blocks of 256 threads), which must not overflow a 32-bit counter either.
    """
    reach = sum(max(b, a) for b, a in radius) + 1 + (1 << 20) * BLOCK_1D[0]
    return any(s + reach >= 2**31 for s in sizes)


def generate(spec: KernelSpec, in_dtypes, out_dtype, acc, param_types, *, idx64: bool,
             narrow: bool = True, fused=None) -> Module:
    """Emit the CUDA C++ module of ``spec`` for these types (raises _cpp_body.Unsupported).

    ``fused``: the border in the interior's launch (2-D and up; default :data:`FUSED`).
    """
    in_dtypes = tuple(np.dtype(d) for d in in_dtypes)
    out_dtype = np.dtype(out_dtype)
    acc = np.dtype(acc)
    for d in (*in_dtypes, out_dtype, acc):
        if d.kind == "c":
            raise _cpp_body.Unsupported("complex numbers (the numba.cuda kernel handles them)")
        if d.kind == "f" and d.itemsize == 2:
            raise _cpp_body.Unsupported("float16 arithmetic")
    name = spec.name
    dtypes = dict(zip(spec.arrays, in_dtypes))
    req = _cpp_body.BodyRequest(acc=acc, input_dtypes=dtypes if narrow else
                                {a: acc for a in spec.arrays}, param_types=tuple(param_types))
    body = _cpp_body.emit(spec, req, f"{name}_body")
    reads = _cpp_body.reads_of(spec)
    em = _Emitter(spec, body, reads, in_dtypes, out_dtype, acc, tuple(param_types), idx64)
    sizes = [d.itemsize for d in (*in_dtypes, out_dtype)]
    small = [s for s in sizes if s < 4]
    cols = 4 // min(small) if small else 0
    word_arrays = tuple(i if i < len(in_dtypes) else -1 for i, s in enumerate(sizes) if s < 4)
    fused = (FUSED if fused is None else fused) and spec.ndim >= 2
    em.lines = {1: columns_line(in_dtypes, out_dtype, 1)}
    if cols:
        em.lines[cols] = columns_line(in_dtypes, out_dtype, cols)
    source = em.module(cols, fused)
    return Module(name=name, source=source, ndim=spec.ndim, radius=spec.radius, idx64=idx64,
                  arrays=spec.arrays, in_dtypes=in_dtypes, out_dtype=out_dtype, acc=acc,
                  params=tuple(str(t) for t in param_types), cols=cols,
                  word_arrays=word_arrays, narrow=narrow, narrowed=body.narrowed,
                  wide=body.wide, inexact=body.inexact, fused=fused,
                  lines=(em.lines[1], em.lines.get(cols, 0)))


class _Emitter:
    """Writes the module's text; see the module docstring for what each kernel does."""

    def __init__(self, spec, body, reads, in_dtypes, out_dtype, acc, param_types, idx64):
        self.spec = spec
        self.body = body
        self.reads = reads
        self.in_dtypes = in_dtypes
        self.out_dtype = out_dtype
        self.acc = acc
        self.param_types = param_types
        self.lines = {1: 1}  # columns per line of each interior kernel, by its columns a thread
        self.idx = "sk_i64" if idx64 else "sk_i32"
        self.k = spec.ndim
        self.name = spec.name
        self.acc_c = "bool" if acc.kind == "b" else _ctype_of(acc)
        self.out_c = _ctype_of(out_dtype)
        # each array's reads share one C++ type: the accumulator, or int32 where proven
        self.arg_c = {a: self.acc_c for a in spec.arrays}
        for (a, _), c in zip(reads, body.arg_ctypes):
            self.arg_c[a] = c

    def dtype(self, a):
        return self.in_dtypes[self.spec.arrays.index(a)]

    # ---- pieces shared by the kernels
    def params(self) -> str:
        """The parameter list every kernel of the module takes (one launch signature)."""
        s, ix = self.spec, self.idx
        ps = [f"const {_ctype_of(self.dtype(a))}* __restrict__ {a}_" for a in s.arrays]
        ps += [f"{self.out_c}* __restrict__ sk_out", f"{ix} B"]
        ps += [f"{ix} n{d}" for d in range(self.k)]
        ps += [f"{ix} rows", f"{ix} c0", f"{ix} c1", "int mode", f"{self.acc_c} cval",
               f"{self.out_c} cvout"]
        ps += [f"{c} {p}_" for c, p in zip(self.body.param_ctypes, s.params)]
        return ", ".join(ps)

    def param_names(self) -> str:
        s = self.spec
        names = [*(f"{a}_" for a in s.arrays), "sk_out", "B", *(f"n{d}" for d in range(self.k)),
                 "rows", "c0", "c1", "mode", "cval", "cvout", *(f"{p}_" for p in s.params)]
        return ", ".join(names)

    def strides(self) -> list:
        """Element strides S0..S{k-1} and SB of the C-contiguous (B, n0, ..., nk-1) arrays."""
        k, ix = self.k, self.idx
        lines = [f"  const {ix} S{k - 1} = 1;"]
        for d in reversed(range(k - 1)):
            lines.append(f"  const {ix} S{d} = n{d + 1} * S{d + 1};")
        lines.append(f"  const {ix} SB = n0 * S0;")
        return lines

    def widen(self, a, text, to=None) -> str:
        """An element of array ``a`` converted to its reads' type (numba's widen)."""
        c = to or self.arg_c[a]
        if self.dtype(a).kind == "b":
            return f"(({c})({text} != 0))"
        if self.dtype(a).kind == "f" and c.startswith("sk_"):  # (float data, integer acc)
            return _cpp_body.conv(f"({text})", _ctype_of(self.dtype(a)), c)
        return f"(({c})({text}))"

    def lane(self, a, word, lane) -> str:
        """Element ``lane`` of a 32-bit word of array ``a``, converted to its reads' type."""
        d = self.dtype(a)
        fn = "sk_lane_u8" if d.kind == "b" else f"sk_lane_{d.kind}{d.itemsize * 8}"
        value = f"{fn}({word}, {lane})"
        if d.kind == "b":
            value = f"({value} != 0)"
        return f"(({self.arg_c[a]})({value}))"

    def call(self, values, reader) -> str:
        args = list(values) + [f"{p}_" for p in self.spec.params]
        if self.body.readers:
            args.insert(0, reader)
        return f"{self.name}_store({self.body.name}({', '.join(args)}))"

    # ---- run-time-offset readers
    def reader_structs(self) -> str:
        if not self.body.readers:
            return ""
        k, ix = self.k, self.idx
        fields = [f"  const {_ctype_of(self.dtype(a))}* {a}_p;" for a in self.body.readers]
        offs = ", ".join(f"{ix} d{d}" for d in range(k))
        lines = ["// run-time-offset reads: in the interior from the centre element, in the",
                 "// border through the mode's index map (cval outside, constant mode)",
                 "struct sk_rd_inner {", *fields, f"  {ix} c;",
                 *(f"  {ix} S{d};" for d in range(k))]
        for a in self.body.readers:
            at = " + ".join(f"d{d} * S{d}" for d in range(k))
            lines.append(f"  SK_MEMBER {self.acc_c} {a}_({offs}) const {{ return "
                         f"{self.widen(a, f'{a}_p[c + {at}]', self.acc_c)}; }}")
        lines += ["};", "struct sk_rd_border {", *fields, f"  {ix} base;",
                  *(f"  {ix} i{d}, n{d}, S{d};" for d in range(k)), "  int mode;",
                  f"  {self.acc_c} cval;"]
        for a in self.body.readers:
            maps = " ".join(f"const {ix} q{d} = sk_map(i{d} + d{d}, n{d}, mode);"
                            for d in range(k))
            test = " || ".join(f"q{d} < 0" for d in range(k))
            at = " + ".join(f"q{d} * S{d}" for d in range(k))
            lines += [f"  SK_MEMBER {self.acc_c} {a}_({offs}) const {{",
                      f"    {maps}",
                      f"    if ({test}) return cval;",
                      f"    return {self.widen(a, f'{a}_p[base + {at}]', self.acc_c)};",
                      "  }"]
        lines.append("};")
        return "\n".join(lines)

    def compute(self, cols, values, word_out, pad, outp, centre, row=None) -> list:
        """Lines computing ``cols`` outputs from ``values[(array, offsets, column)]``.

        They are stored at ``outp``, packed into words when ``word_out``; ``row``, ``(u,
        stride)``, puts them ``u`` rows further down. Words are stored as ``((sk_u32*)op)[u *
        (stride / per) + w]``, not ``((sk_u32*)(op + u * stride))[w]``: from a byte pointer
        the latter's sign-extended byte offset costs each row a 64-bit add (two or three
        instructions) where the former is one ``IMAD.WIDE`` (uniform_filter 3 x 3 uint8: 280
        -> 258 SASS instructions a step of 28 outputs; element stores compile alike either way).
        """
        lines = []
        for c in range(cols):
            reader = None
            if self.body.readers:
                fields = ", ".join(f"{a}_" for a in self.body.readers)
                strides = ", ".join(f"S{d}" for d in range(self.k))
                lines.append(f"{pad}const sk_rd_inner rd{c} = {{{fields}, {centre} + {c}, "
                             f"{strides}}};")
                reader = f"rd{c}"
            args = [values[(a, offs, c)] for a, offs in self.reads]
            lines.append(f"{pad}const {self.out_c} o{c} = {self.call(args, reader)};")
        if word_out:
            per = 4 // self.out_dtype.itemsize
            bits = 8 * self.out_dtype.itemsize
            mask = "0xffu" if bits == 8 else "0xffffu"
            for w in range(cols // per):
                parts = [f"(((sk_u32)o{w * per + i} & {mask}) << {bits * i})" for i in range(per)]
                at = f"{row[0]} * ({row[1]} / {per}) + {w}" if row and row[0] else w
                lines.append(f"{pad}((sk_u32*){outp})[{at}] = " + " | ".join(parts) + ";")
        else:
            at = f"{row[0]} * {row[1]} + " if row and row[0] else ""
            lines += [f"{pad}{outp}[{at}{c}] = o{c};" for c in range(cols)]
        return lines

    # ---- interior kernels
    def interior(self, cols, words) -> str:
        k, ix, s = self.k, self.idx, self.spec
        kname = f"{self.name}_interior_w" if words else f"{self.name}_interior"
        word_in = {a for a in s.arrays if words and self.dtype(a).itemsize < 4}
        word_out = words and self.out_dtype.itemsize < 4
        what = (f"{cols} outputs per thread, 8/16-bit arrays as 32-bit words" if words
                else "one output column per thread")
        start = line_start_cpp("c0", self.lines[cols], cols)
        opening = (f'extern "C" __global__ void {kname}({self.params()}) {{' if k == 1 else
                   f"static __device__ __forceinline__ void {kname}_body({self.params()}, "
                   f"{ix} sk_by) {{")
        lines = [f"// the interior, no boundary logic: {what}", opening, *self.strides(),
                 f"  const {ix} g = ({ix})blockIdx.x * ({ix})blockDim.x + ({ix})threadIdx.x;",
                 f"  const {ix} j = {start} + g * {cols};  // (from a line's start: LINE_BYTES)",
                 f"  if ({'j < c0 || ' if start != 'c0' else ''}j >= c1) return;"]
        if k == 1:
            lines += self._interior_1d(cols, word_in, word_out)
        else:
            lines += self._interior_strip(cols, word_in, word_out)
        lines.append("}")
        return "\n".join(lines)

    def _interior_1d(self, cols, word_in, word_out):
        ix = self.idx
        lines = [f"  for ({ix} b = blockIdx.y; b < B; b += gridDim.y) {{",
                 f"    const {ix} base = b * SB + j;"]
        values = {}
        for a, offs in self.reads:
            for c in range(cols):
                e = offs[0] + c
                if a in word_in:
                    per = 4 // self.dtype(a).itemsize
                    w, lane = divmod(e, per)
                    values[(a, offs, c)] = self.lane(a, f"((const sk_u32*)({a}_ + base))[{w}]",
                                                     lane)
                else:
                    values[(a, offs, c)] = self.widen(a, f"{a}_[base + ({e})]")
        lines += self.compute(cols, values, word_out, "    ", "(sk_out + base)", "base")
        lines.append("  }")
        return lines

    def rings(self, cols):
        """Register rings: (array, plane offsets, column offset) -> (first, last) row offset."""
        k = self.k
        rings = {}
        for a, offs in self.reads:
            po, d = tuple(offs[:k - 2]), offs[k - 2]
            for c in range(cols):
                key = (a, po, c + offs[k - 1])
                lo, hi = rings.get(key, (d, d))
                rings[key] = (min(lo, d), max(hi, d))
        return dict(sorted(rings.items()))

    @staticmethod
    def _tag(po, e):
        return "_".join([*(f"{'m' if o < 0 else 'p'}{abs(o)}" for o in po),
                         f"c{'m' if e < 0 else 'p'}{abs(e)}"])

    def _interior_strip(self, cols, word_in, word_out):
        k, ix, s = self.k, self.idx, self.spec
        W = k - 2
        rb = [r[0] for r in s.radius]
        ra = [r[1] for r in s.radius]
        inner = [f"(n{d} - {rb[d] + ra[d]})" for d in range(k - 2)]
        lines = [
            f"  const {ix} lo = {rb[W]} + (sk_by * ({ix})blockDim.y + ({ix})threadIdx.y) * rows;",
            f"  const {ix} hiw = n{W} - {ra[W]};",
            "  if (lo >= hiw) return;",
            f"  const {ix} hi = lo + rows < hiw ? lo + rows : hiw;",
            f"  const {ix} planes = B" + "".join(f" * {x}" for x in inner) + ";",
            f"  for ({ix} p = blockIdx.z; p < planes; p += gridDim.z) {{",
            f"    {ix} q = p;",
        ]
        for d in reversed(range(k - 2)):
            lines.append(f"    const {ix} i{d} = {rb[d]} + q % {inner[d]}; q = q / {inner[d]};")
        lines.append(f"    const {ix} base = q * SB" + "".join(f" + i{d} * S{d}" for d in range(W))
                     + f" + lo * S{W} + j;  // element (row lo, column j) of this plane")
        rings = self.rings(cols)
        # one read pointer per (array, plane offsets, last row offset, word or column): it
        # points at the next row to enter its rings and moves down a row per step
        ptrs = {}
        for (a, po, e), (_, dmax) in rings.items():
            if a in word_in:
                per = 4 // self.dtype(a).itemsize
                w, lane = divmod(e, per)
                pk = (a, po, dmax, "w", w)
            else:
                per, lane, pk = 1, 0, (a, po, dmax, "e", e)
            ptrs.setdefault(pk, []).append(((a, po, e), lane, per))
        pnames = {}
        for pk in ptrs:
            a, po, dmax, kind, x = pk
            shift = " + ".join([f"({o}) * S{d}" for d, o in enumerate(po) if o]
                               + ([f"({dmax}) * S{W}"] if dmax else [])) or "0"
            name = f"p_{a}__{self._tag(po, x)}_r{'m' if dmax < 0 else 'p'}{abs(dmax)}"
            if kind == "w":
                name += "_w"
                lines.append(f"    const sk_u32* __restrict__ {name} = (const sk_u32*)({a}_ + base"
                             f" + {shift}) + ({x});")
            else:
                lines.append(f"    const {_ctype_of(self.dtype(a))}* __restrict__ {name} = {a}_ + "
                             f"base + {shift} + ({x});")
            pnames[pk] = name
        ahead = rows_per_step(len(self.reads))  # rows a step of the walk takes
        lines.append("    // register rings: value t of a ring is row i + first + t")
        for (a, po, e), (dmin, dmax) in rings.items():
            regs = ", ".join(f"r_{a}__{self._tag(po, e)}_{t}"
                             for t in range(dmax - dmin + ahead))
            lines.append(f"    {self.arg_c[a]} {regs};")

        def fill(back):
            """Lines loading, for every pointer, the row ``back`` rows above it.

            The values go to the rings that hold that row (before the walk starts).
            """
            out = []
            for pk, members in ptrs.items():
                a, po, dmax, kind, x = pk
                need = []
                for key, lane, _ in members:
                    dmin = rings[key][0]
                    span = dmax - dmin
                    t = span - back
                    if 0 <= t < span:
                        need.append((key, lane, t))
                if not need:
                    continue
                stride = f"S{W}" if kind == "e" else f"(S{W} / {4 // self.dtype(a).itemsize})"
                at = f"{pnames[pk]}[-{back} * {stride}]"
                if kind == "w":
                    wv = f"w_{pnames[pk][2:]}"
                    out.append(f"{{ const sk_u32 {wv} = {at};")
                    for key, lane, t in need:
                        out.append(f"  r_{key[0]}__{self._tag(key[1], key[2])}_{t} = "
                                   f"{self.lane(a, wv, lane)};")
                    out.append("}")
                else:
                    for key, _, t in need:
                        out.append(f"r_{key[0]}__{self._tag(key[1], key[2])}_{t} = "
                                   f"{self.widen(a, at)};")
            return out

        spans = [dmax - dmin for dmin, dmax in rings.values()]
        for back in range(max(spans, default=0), 0, -1):
            lines += ["    " + x for x in fill(back)]
        lines += [f"    {self.out_c}* __restrict__ op = sk_out + base;"]
        if self.body.readers:
            lines.append(f"    {ix} rc = base;")
        if ahead > 1:
            lines.append(f"    {ix} i = lo;")
            lines.append(f"    for (; i + {ahead} <= hi; i += {ahead}) {{  // {ahead} rows a step")
            lines += self._strip_step(ahead, cols, rings, ptrs, pnames, word_out, "      ")
            lines.append("    }")
            lines.append("    for (; i < hi; ++i) {  // the rows left")
        else:
            lines.append(f"    for ({ix} i = lo; i < hi; ++i) {{")
        lines += self._strip_step(1, cols, rings, ptrs, pnames, word_out, "      ")
        lines += ["    }", "  }"]
        return lines

    def _strip_step(self, n, cols, rings, ptrs, pnames, word_out, pad):
        """The strip walk's step over ``n`` rows.

        First the loads of all ``n`` entering rows (so that a thread has them in flight
        together), into the registers past each ring's end; then the ``n`` rows' outputs;
        then the rings and pointers move down ``n`` rows.
        """
        W = self.k - 2
        lines = []
        for u in range(n):
            for pk, members in ptrs.items():
                a, po, dmax, kind, x = pk
                per = 4 // self.dtype(a).itemsize if kind == "w" else 1
                stride = f"S{W}" if kind == "e" else f"(S{W} / {per})"
                at = f"{pnames[pk]}[{u} * {stride}]" if u else f"{pnames[pk]}[0]"
                regs = [(f"r_{key[0]}__{self._tag(key[1], key[2])}_"
                         f"{rings[key][1] - rings[key][0] + u}", lane)
                        for key, lane, _ in members]
                if kind == "w":
                    wv = f"w{u}_{pnames[pk][2:]}"
                    lines.append(f"{pad}const sk_u32 {wv} = {at};")
                    lines += [f"{pad}{r} = {self.lane(a, wv, lane)};" for r, lane in regs]
                else:
                    lines += [f"{pad}{r} = {self.widen(a, at)};" for r, _ in regs]
        for u in range(n):
            values = {}
            for a, offs in self.reads:
                po = tuple(offs[:self.k - 2])
                for c in range(cols):
                    key = (a, po, c + offs[self.k - 1])
                    values[(a, offs, c)] = (f"r_{a}__{self._tag(po, key[2])}_"
                                            f"{offs[W] - rings[key][0] + u}")
            at = f" + {u} * S{W}" if u else ""
            body = self.compute(cols, values, word_out, pad + "  ", "op", f"rc{at}",
                                row=(u, f"S{W}"))
            lines += [f"{pad}{{", *body, f"{pad}}}"] if n > 1 else body
        for (a, po, e), (dmin, dmax) in rings.items():
            reg = f"r_{a}__{self._tag(po, e)}"
            lines += [f"{pad}{reg}_{t} = {reg}_{t + n};" for t in range(dmax - dmin)]
        for pk, name in pnames.items():
            a, kind = pk[0], pk[3]
            step = f"S{W}" if kind == "e" else f"(S{W} / {4 // self.dtype(a).itemsize})"
            lines.append(f"{pad}{name} += {n} * {step};" if n > 1 else f"{pad}{name} += {step};")
        lines.append(f"{pad}op += {n} * S{W};" if n > 1 else f"{pad}op += S{W};")
        if self.body.readers:
            lines.append(f"{pad}rc += {n} * S{W};" if n > 1 else f"{pad}rc += S{W};")
        return lines

    # ---- the border kernel
    def border(self) -> str:
        k, ix, s = self.k, self.idx, self.spec
        rb = [r[0] for r in s.radius]
        ra = [r[1] for r in s.radius]
        L = k - 1
        lines = ["// everything the interior kernels leave: border rows whole, the columns at",
                 "// either end of the other rows; reads through the mode's index map",
                 f"static __device__ __forceinline__ void {self.name}_border_body("
                 f"{self.params()}, {ix} sk_t0, {ix} sk_stride) {{",
                 *self.strides()]
        for d in range(k - 1):
            lines += [f"  const {ix} I{d} = n{d} > {rb[d] + ra[d]} ? n{d} - {rb[d] + ra[d]} : 0;"
                      f"  // interior rows along axis {d}",
                      f"  const {ix} E{d} = n{d} - I{d};",
                      f"  const {ix} lo{d} = n{d} < {rb[d]} ? n{d} : {rb[d]};"]
        # box d: axes before d interior, axis d on the border, axes after d anything
        for d in range(k - 1):
            parts = ["B", *(f"I{e}" for e in range(d)), f"E{d}",
                     *(f"n{e}" for e in range(d + 1, k - 1)), f"n{L}"]
            lines.append(f"  const {ix} A{d} = {' * '.join(parts)};")
        lines += [f"  const {ix} band = c0 + (n{L} - c1);",
                  f"  const {ix} AB = B" + "".join(f" * I{d}" for d in range(k - 1)) + " * band;",
                  f"  const {ix} total = " + " + ".join([f"A{d}" for d in range(k - 1)] + ["AB"])
                  + ";",
                  f"  for ({ix} t = sk_t0; t < total; t += sk_stride) {{",
                  f"    {ix} u = t, r, j, b;"]
        if k > 1:
            lines.append(f"    {ix} " + ", ".join(f"i{d}" for d in range(k - 1)) + ";")
        for d in range(k - 1):
            test = "u < A0" if d == 0 else f"(u -= A{d - 1}) < A{d}"
            lines.append(f"    {'if' if d == 0 else '} else if'} ({test}) {{")
            lines.append(f"      j = u % n{L}; r = u / n{L};")
            for e in reversed(range(d + 1, k - 1)):
                lines.append(f"      i{e} = r % n{e}; r = r / n{e};")
            lines.append(f"      i{d} = r % E{d}; r = r / E{d}; if (i{d} >= lo{d}) i{d} += I{d};")
            for e in reversed(range(d)):
                lines.append(f"      i{e} = {rb[e]} + r % I{e}; r = r / I{e};")
            lines.append("      b = r;")
        if k > 1:
            lines.append(f"    }} else {{ u -= A{k - 2};")
        else:
            lines.append("    {")
        lines.append("      j = u % band; r = u / band; if (j >= c0) j += c1 - c0;")
        for e in reversed(range(k - 1)):
            lines.append(f"      i{e} = {rb[e]} + r % I{e}; r = r / I{e};")
        lines += ["      b = r;", "    }"]
        idx = [f"i{d}" for d in range(k - 1)] + ["j"]
        inside = " && ".join(f"{x} >= {rb[d]} && {x} < n{d} - {ra[d]}" for d, x in enumerate(idx))
        lines.append(f"    const {ix} at = b * SB" + "".join(f" + {x} * S{d}" for d, x in
                                                          enumerate(idx)) + ";")
        lines.append(f"    if (mode == {modes.SKIP} && !({inside})) {{ sk_out[at] = cvout; "
                     "continue; }")
        maps = {}
        for _, offs in self.reads:
            for d, o in enumerate(offs):
                maps.setdefault((d, o), f"q{d}_{'m' if o < 0 else 'p'}{abs(o)}")
        for (d, o), q in sorted(maps.items()):
            lines.append(f"    const {ix} {q} = sk_map({idx[d]} + ({o}), n{d}, mode);")
        values = []
        for a, offs in self.reads:
            qs = [maps[(d, o)] for d, o in enumerate(offs)]
            test = " && ".join(f"{q} >= 0" for q in qs)
            at = " + ".join(f"{q} * S{d}" for d, q in enumerate(qs))
            values.append(f"(({test}) ? {self.widen(a, f'{a}_[b * SB + {at}]')} : "
                          f"({self.arg_c[a]})cval)")
        reader = None
        if self.body.readers:
            fields = ", ".join(f"{a}_" for a in self.body.readers)
            per_axis = ", ".join(f"{x}, n{d}, S{d}" for d, x in enumerate(idx))
            lines.append(f"    const sk_rd_border rd = {{{fields}, b * SB, {per_axis}, mode, "
                         "cval};")
            reader = "rd"
        lines += [f"    sk_out[at] = {self.call(values, reader)};", "  }", "}"]
        return "\n".join(lines)

    # ---- host launchers (g++ -DSK_HOST): every block and thread in turn
    def host_launchers(self, kernels) -> str:
        return host_launchers(kernels, self.params(), self.param_names())

    def entries(self, cols, fused) -> str:
        """The entry kernels round the interior and border bodies (2-D and up).

        ``fused``: ``<name>_fused`` (and ``_w``), whose last rows of blocks (as many as the
        interior's strips need; counted from the grid's last, as :mod:`.backends.cuda_sweeps`
        does) run the interior and whose first rows, ``ey`` of them, walk the border's
        elements; else ``<name>_interior`` (and ``_w``), each a launch of its own. Both:
        ``<name>_border``.
        """
        ix, params, names = self.idx, self.params(), self.param_names()
        lines = []
        for suffix in ("", "_w") if cols else ("",):
            body = f"{self.name}_interior{suffix}_body"
            bound = bounds(BLOCK_WORDS if suffix else BLOCK_PLAIN)
            if fused:
                W = self.k - 2
                lines += fused_kernel(f"{self.name}_fused{suffix}", params, names, ix, body,
                                      f"{self.name}_border_body",
                                      f"(n{W} - {sum(self.spec.radius[W])})", bound=bound)
            else:
                lines += [f'extern "C" __global__ void {bound}{self.name}_interior{suffix}'
                          f'({params}) {{',
                          f"  {body}({names}, ({ix})blockIdx.y);", "}"]
        return "\n".join(lines)

    def module(self, cols, fused=False) -> str:
        s = self.spec
        types = "; ".join([
            "inputs " + ", ".join(f"{a}: {d}" for a, d in zip(s.arrays, self.in_dtypes)),
            f"accumulator {self.acc}", f"output {self.out_dtype}",
            *(["parameters " + ", ".join(f"{p}: {t}" for p, t in zip(s.params, self.param_types))]
              if s.params else []),
            f"{'64' if self.idx == 'sk_i64' else '32'}-bit indices"])
        head = [f"// Generated by stencilkit from kernel {s.name!r}; do not edit.",
                "// The kernel's source, for reference:",
                *("//   " + line for line in s.source.splitlines()),
                f"// Types: {types}.",
                f"// Body: {self.body.narrowed} 64-bit integer value(s) proven to fit 32 bits, "
                f"{self.body.wide} kept at 64 bits."]
        fused = fused and self.k >= 2
        kernels = [f"{self.name}_fused" if fused else f"{self.name}_interior"]
        parts = ["\n".join(head), PRELUDE, f"typedef {self.idx} sk_idx;", _map_source(self.idx),
                 _store_source(f"{self.name}_store", self.body.return_ctype,
                               self.body.return_type, self.out_dtype),
                 self.body.text]
        if self.body.readers:
            parts.append(self.reader_structs())
        parts.append(self.interior(1, False))
        if cols:
            parts.append(self.interior(cols, True))
            kernels.append(f"{kernels[0]}_w")
        parts.append(self.border())
        ix, names = self.idx, self.param_names()
        if self.k >= 2:
            parts.append(self.entries(cols, fused))
        parts.append("\n".join([
            f'extern "C" __global__ void {self.name}_border({self.params()}) {{',
            f"  {self.name}_border_body({names}, ({ix})blockIdx.x * ({ix})blockDim.x + "
            f"({ix})threadIdx.x, ({ix})gridDim.x * ({ix})blockDim.x);", "}"]))
        kernels.append(f"{self.name}_border")
        parts.append(self.host_launchers(kernels))
        return "\n\n".join(parts) + "\n"
