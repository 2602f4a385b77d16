"""Arrays as users have them: layouts, views, byte orders, out=, aliasing, axes, iterate."""

import threading
import tracemalloc

import numpy as np
import pytest
from kernels import (
    CONVERSIONS,
    CONVERTED,
    FLOAT_LOOPS,
    INT_LOOPS,
    KERNELS,
    PREDICATE_LOOPS,
    SHIFT_COUNTS,
    blend,
    conversions,
    converted,
    float_loops,
    int_loops,
    integer_roundings,
    loop_pairs,
    named_functions,
    named_functions_py,
    numpy_ufuncs,
    numpy_ufuncs_py,
    predicate_loops,
    sample,
    shifted,
    shifts,
    smooth,
    smooth_py,
)
from reference import apply_reference

import stencilkit as sk
from stencilkit.backends import cpu

skew1 = KERNELS["skew1"][0]


def ref_smooth(a, mode="reflect"):
    return apply_reference(smooth_py, [a], ndim=2, mode=mode)


@pytest.mark.parametrize(
    "make",
    [
        lambda a: np.asfortranarray(a),
        lambda a: a[::2, ::3],
        lambda a: a[::-1, ::-2],
        lambda a: a.T,
        lambda a: np.broadcast_to(a[:1], a.shape),
        lambda a: a.astype(a.dtype.newbyteorder(">")),
    ],
    ids=["fortran", "strided", "negative", "transposed", "broadcast", "big-endian"],
)
def test_layouts(make):
    base = sample((12, 14), np.int16)
    a = make(base)
    before = a.copy()
    np.testing.assert_array_equal(smooth(a), ref_smooth(np.ascontiguousarray(a)))
    np.testing.assert_array_equal(a, before)


def test_read_only_input_is_untouched():
    a = sample((9, 9), np.uint8)
    a.flags.writeable = False
    np.testing.assert_array_equal(smooth(a), ref_smooth(a))


@pytest.mark.parametrize("shape", [(0,), (0, 5), (5, 0), (1, 0, 3), (0, 4, 4)])
def test_zero_size(shape):
    k = skew1 if len(shape) == 1 else smooth
    a = np.zeros(shape, np.int8)
    got = k(a)
    assert got.shape == shape and got.dtype == np.int8
    assert k.iterate(a, steps=3).shape == shape


def test_out_is_filled_in_place_without_allocating():
    a = sample((400, 400), np.uint8)
    out = np.empty_like(a)
    smooth(a, out=out)  # compile outside the measurement
    tracemalloc.start()
    res = smooth(a, out=out)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert res is out
    assert peak < a.nbytes // 10
    np.testing.assert_array_equal(out, ref_smooth(a))


def test_out_views_byteswapped_and_checks():
    a = sample((6, 8), np.int32)
    want = ref_smooth(a)
    big = np.empty((6, 16), np.int32)[:, ::2]  # a strided view of a bigger array
    assert smooth(a, out=big) is big
    np.testing.assert_array_equal(big, want)
    swapped = np.empty((6, 8), ">i4")
    smooth(a, out=swapped)
    np.testing.assert_array_equal(swapped, want)


def test_out_aliasing_input_equals_out_of_place():
    a = sample((10, 11), np.float64)
    want = smooth(a)
    b = a.copy()
    assert smooth(b, out=b) is b
    np.testing.assert_array_equal(b, want)
    # partial overlap: output shifted by one row over the input
    buf = np.concatenate([a, a[:1]])
    smooth(buf[1:], out=buf[:-1])
    np.testing.assert_array_equal(buf[:-1], smooth(np.concatenate([a, a[:1]])[1:]))


def test_out_dtype_and_acc():
    a = np.array([[250, 251], [252, 253]], np.uint8)
    # default: uint8 in, uint8 out, int64 accumulator (no wrap in the sum)
    got = smooth(a)
    assert got.dtype == np.uint8 and got.min() >= 250  # a wrapped uint8 sum would be small
    np.testing.assert_array_equal(got, [[251, 251], [251, 252]])  # e.g. 2265 // 9 at [1, 0]
    assert smooth(a, out_dtype=np.float32).dtype == np.float32
    # acc sets the type of every read: float32 reads of float64 data lose the low bits
    asym2, asym2_py = KERNELS["asym2"]
    f = np.array([[2.0**24 + 1, 0.0, 1.0, 2.0**24 + 3]])
    got = asym2(f, acc=np.float32)
    np.testing.assert_array_equal(got, apply_reference(asym2_py, [f], ndim=2, acc=np.float32))
    assert not np.array_equal(got, asym2(f))


def test_float_to_int_saturates_and_nan_is_zero():
    @sk.stencil(out_dtype=np.uint8)
    def scale(x):
        return x[0] * 100.0

    x = np.array([-1.0, 0.5, 1.0, 3.0, np.nan, np.inf, -np.inf])
    np.testing.assert_array_equal(scale(x), [0, 50, 100, 255, 0, 255, 0])


@pytest.mark.parametrize("st,py", [(named_functions, named_functions_py),
                                   (numpy_ufuncs, numpy_ufuncs_py)],
                         ids=["bound_by_name", "numpy_ufuncs"])
def test_math_and_numpy_functions(st, py):
    """``from math import sqrt``, ``from numpy import hypot`` (the functions by name, as
    through their modules) and NumPy's ufuncs on a kernel's scalars (np.sqrt, np.abs,
    np.floor, np.sign, np.fmod, np.power... by numba's loops: np.square of an int64 stays
    int64), against the reference's evaluation of the same Python function."""
    for dtype in (np.float64, np.int16):
        x = sample((6, 7), dtype)[0]
        for mode, cval in (("reflect", 0), ("constant", 2)):
            kw = {"cval": cval} if cval else {}
            np.testing.assert_array_equal(
                st(x, mode=mode, out_dtype=np.float64, **kw),
                apply_reference(py, [x], ndim=1, mode=mode, cval=cval, out_dtype=np.float64),
                err_msg=f"{np.dtype(dtype)} {mode}")


# NumPy's loops that numba's equal on every pair of loop_pairs (the independent reference);
# elsewhere numba's own rules hold (an unsigned np.fmod of integers, np.sign of unsigned bits
# as signed, 0 for an integer division by zero, np.floor_divide of floats as floor(a / b),
# np.rad2deg of float32 times float32(180 / pi), NumPy's 180 / float32(pi): an ulp apart)
NUMPY_EQUAL = {"int": [np.add, np.subtract, np.multiply, np.bitwise_and, np.bitwise_or,
                       np.bitwise_xor, np.invert],
               "float": [np.add, np.subtract, np.multiply, np.true_divide, np.fmod, np.sign,
                         np.reciprocal, np.deg2rad],
               "predicate": PREDICATE_LOOPS}


@pytest.mark.parametrize("st,fns,kind,dtypes", [
    (int_loops, INT_LOOPS, "int", [np.int8, np.uint16, np.int64, np.uint64]),
    (float_loops, FLOAT_LOOPS, "float", [np.float32, np.float64]),
    (predicate_loops, PREDICATE_LOOPS, "predicate", [np.int8, np.float64])],
    ids=["int", "float", "predicate"])
def test_numpy_ufunc_loops_in_the_data_type(st, fns, kind, dtypes):
    """np.add, np.logical_xor, np.deg2rad... on scalars in the data's own type (acc=dtype):
    NumPy's results, an int8 sum wrapping in int8 (where numba's loop is NumPy's)."""
    for dtype in dtypes:
        for k, fn in enumerate(fns):
            if fn not in NUMPY_EQUAL[kind]:
                continue
            a, b = loop_pairs(fn, dtype)
            with np.errstate(all="ignore"):
                want = fn(a, b) if fn.nin == 2 else fn(a)
                got = st(a, b, k, acc=dtype)
            np.testing.assert_array_equal(got, want.astype(got.dtype),
                                          err_msg=f"np.{fn.__name__} {np.dtype(dtype)}")
        if kind == "int" and np.dtype(dtype).kind == "i":  # (and where numba's differ)
            a = np.array([-8, 8, 7, -7, 0], dtype)
            b = np.array([7, -7, 0, 2, 3], dtype)
            np.testing.assert_array_equal(st(a, b, 3, acc=dtype), [-2, -2, 0, -4, 0])  # floor_div
            np.testing.assert_array_equal(st(a, b, 4, acc=dtype), [6, -6, 0, 1, 0])  # remainder
            m = 2**(8 * a.itemsize)  # (np.fmod: the remainder of the bits as unsigned)
            fmod = [x % m % (y % m) if y else 0 for x, y in zip(a.tolist(), b.tolist())]
            np.testing.assert_array_equal(st(a, b, 5, acc=dtype),
                                          np.array(fmod, np.uint64).astype(dtype))


def test_float_to_int_conversions_in_a_body_saturate_and_nan_is_zero():
    """``int()``, ``np.uint8()`` and the rest, ``math.floor``/``ceil``/``trunc`` and ``round``
    of a float inside a kernel: the exact integer, saturated, NaN 0 (RELIABILITY item 10), not
    x86's integer indefinite; against exact Python integers."""
    for dtype in (np.float64, np.float32):
        x = CONVERTED.astype(dtype)
        for k in range(len(CONVERSIONS)):
            np.testing.assert_array_equal(conversions(x, k), converted(x, k),
                                          err_msg=f"{np.dtype(dtype)} {CONVERSIONS[k]}")
    # of integers, the integer itself (numba's own math.floor of one goes through float64:
    # 2**53 + 1 became 2**53)
    for dtype in (np.int64, np.uint64, np.int8):
        x = sample((40,), dtype)
        x[:3] = np.array([2**53 + 1, 2**62 + 1, 2**63 - 1]).astype(dtype)
        np.testing.assert_array_equal(integer_roundings(x), np.zeros_like(x), err_msg=str(dtype))
    # a float read into an integer accumulator (acc=) converts the same way
    x = np.array([1.7, -2.5, 40000.0, -1e9, np.nan, np.inf, 3.0])
    reads = converted(x, 2)  # (int16, truncated)
    want = reads[:-3] + 2 * reads[1:-2] - reads[3:]  # skew1: x[-1] + 2 x[0] - x[2]
    np.testing.assert_array_equal(skew1(x, acc=np.int16, mode="skip")[1:-2], want)


def test_shifts_beyond_the_width_follow_numpys_rule():
    """``<<``/``>>`` by counts outside 0..63 shift everything out (a negative value right: -1)
    in the vector loop and its scalar remainder alike; against NumPy's int64 shifts."""
    for dtype in (np.int64, np.uint8):
        x = (np.arange(-700, 700) * 7919).astype(dtype)  # (a remainder after the vectors)
        for k in SHIFT_COUNTS:
            np.testing.assert_array_equal(shifts(x, k, mode="wrap"), shifted(x, k),
                                          err_msg=f"{np.dtype(dtype)} << {k}")


def test_bool_game_of_life_blinker():
    @sk.stencil(mode="constant")
    def life(x):
        n = (x[-1, -1] + x[-1, 0] + x[-1, 1] + x[0, -1] + x[0, 1]
             + x[1, -1] + x[1, 0] + x[1, 1])
        return n == 3 or (x[0, 0] and n == 2)

    board = np.zeros((5, 5), bool)
    board[2, 1:4] = True
    step = life(board)
    assert step.dtype == bool
    np.testing.assert_array_equal(step, board.T)
    np.testing.assert_array_equal(life.iterate(board, steps=2), board)


def test_axes_and_batch_axes():
    a = sample((3, 5, 6), np.int16)
    # default: the last two axes are core, axis 0 is a batch of frames
    per_frame = np.stack([ref_smooth(f) for f in a])
    np.testing.assert_array_equal(smooth(a), per_frame)
    # axes=(0, 2): core axes are 0 and 2, axis 1 is the batch
    moved = np.stack([ref_smooth(a[:, i, :]) for i in range(5)], axis=1)
    np.testing.assert_array_equal(smooth(a, axes=(0, 2)), moved)
    # order matters: the first index of the kernel runs along the first named axis
    np.testing.assert_array_equal(
        smooth(a, axes=(2, 0)), np.stack([ref_smooth(a[:, i, :].T).T for i in range(5)], axis=1)
    )
    out = np.empty_like(a)
    smooth(a, axes=(0, 2), out=out)
    np.testing.assert_array_equal(out, moved)


def test_iterate_equals_repeated_calls_and_allocates_two_buffers():
    a = sample((64, 64), np.float32)
    want = a
    for _ in range(5):
        want = smooth(want, mode="wrap")
    np.testing.assert_array_equal(smooth.iterate(a, steps=5, mode="wrap"), want)
    np.testing.assert_array_equal(smooth.iterate(a, steps=0), a)

    big = sample((256, 256), np.float64)
    smooth.iterate(big, steps=1)
    peaks = []
    for steps in (2, 40):
        tracemalloc.start()
        smooth.iterate(big, steps=steps)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] <= 2.2 * big.nbytes  # the state and one scratch buffer, whatever the steps
    assert abs(peaks[1] - peaks[0]) < big.nbytes // 8


def test_iterate_with_fixed_inputs_and_out():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((2, 7, 8))
    want = a
    for _ in range(3):
        want = blend(want, b, 0.5)
    out = np.empty_like(a)
    assert blend.iterate(a, b, 0.5, steps=3, out=out) is out
    np.testing.assert_array_equal(out, want)
    h = np.arange(12, dtype=np.float16).reshape(3, 4)
    np.testing.assert_array_equal(smooth.iterate(h, steps=2), smooth(smooth(h)))


def test_threads_give_serial_results():
    """Many threads launching parallel kernels at once: no abort, serial results."""
    a = sample((300, 300), np.uint8)
    want = smooth(a, parallel=False)
    errors = []

    def work():
        try:
            for _ in range(20):
                np.testing.assert_array_equal(smooth(a, parallel=True), want)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_debug_catches_reads_outside_the_neighborhood():
    @sk.stencil(neighborhood=((-1, 1),), debug=True)
    def leaky(x, r):
        s = 0.0
        for d in range(-r, r + 1):
            s += x[d]
        return s

    a = np.arange(10.0)
    np.testing.assert_array_equal(leaky(a, 1), apply_reference(lambda x: x[-1] + x[0] + x[1],
                                                               [a], ndim=1))
    with pytest.raises(IndexError, match="outside its declared neighborhood"):
        leaky(a, 2)


def test_integer_results_wrap_like_numpy_astype():
    """Policy (RELIABILITY item 9): int -> int output wraps modulo 2**bits, as ndarray.astype."""

    @sk.stencil
    def box_sum(x):
        return x[-1, -1] + x[-1, 0] + x[-1, 1] + x[0, -1] + x[0, 0] + x[0, 1] \
            + x[1, -1] + x[1, 0] + x[1, 1]

    a = np.full((3, 3), 255, np.uint8)
    np.testing.assert_array_equal(box_sum(a), np.full((3, 3), 2295 % 256, np.uint8))
    np.testing.assert_array_equal(box_sum(a, out_dtype=np.int32), np.full((3, 3), 2295))


def test_unsigned_differences_are_signed_in_the_accumulator():
    @sk.stencil(out_dtype=np.int16)
    def diff(x):
        return x[0] - x[1]

    np.testing.assert_array_equal(diff(np.array([3, 4, 250], np.uint8), mode="nearest"),
                                  [-1, -246, 0])


def test_nan_stays_in_its_window_and_nan_cval():
    a = np.zeros((7, 7))
    a[3, 3] = np.nan
    got = smooth(a)
    assert np.isnan(got[2:5, 2:5]).all() and np.isnan(got).sum() == 9
    b = np.ones((3, 4))
    edge = smooth(b, mode="constant", cval=np.nan)
    assert np.isnan(edge[0]).all() and np.isnan(edge[:, 0]).all()
    assert not np.isnan(edge[1, 1:3]).any()
    from kernels import box5  # a plain sum: inf // 9 would be nan by Python's floor division

    inf = box5(np.ones((5, 6)), mode="constant", cval=np.inf)
    assert np.isposinf(inf[:2]).all() and np.isposinf(inf[:, -2:]).all()
    np.testing.assert_array_equal(box5(np.ones((5, 6)), mode="constant", cval=-np.inf)[2, 2], 25)


def test_kernel_returning_a_tuple_is_refused():
    @sk.stencil
    def pair(x):
        return x[0], x[1]

    with pytest.raises(Exception, match="not a number; a stencil kernel must return one scalar"):
        pair(np.zeros(4))


def test_zero_dimensional_input_is_refused():
    with pytest.raises(sk.StencilError, match="has 0 axis/axes but the kernel has 1 core axes"):
        skew1(np.float64(3.0))


@pytest.mark.slow
def test_more_than_2_to_the_31_elements():
    """64-bit indexing end to end (RELIABILITY item 19): reads and writes past 2**31."""
    n = 2**31 + 1000
    a = np.zeros(n, np.int8)  # calloc'ed: only the written output touches all of memory
    a[-5:] = [1, 2, 3, 4, 5]
    a[2**31 - 2: 2**31 + 2] = [7, 8, 9, 10]
    got = skew1(a, mode="wrap")
    tail = np.concatenate([a[-8:], a[:3]])
    np.testing.assert_array_equal(got[-6:], skew1(tail, mode="wrap")[2:8])
    mid = a[2**31 - 6: 2**31 + 6]
    np.testing.assert_array_equal(got[2**31 - 4: 2**31 + 3], skew1(mid)[2:9])
    del got


@pytest.mark.parametrize("mode", ["reflect", "mirror", "nearest", "wrap", "constant", "skip"])
def test_tiled_iterate_equals_step_by_step(mode, monkeypatch):
    """Temporal blocking on NumPy (cache-sized tiles, halo radius * s) is exact for every mode."""
    asym2, _ = KERNELS["asym2"]
    monkeypatch.setattr(cpu.BACKEND, "TILE_BYTES", 512)  # 8 x 8 tiles of 8-byte elements
    a = sample((2, 30, 37), np.int64) % 1000
    before = a.copy()
    want = a
    for _ in range(7):
        want = asym2(want, mode=mode)
    for block_steps in (2, 3, 7):  # several passes, and one
        for parallel in (None, False):  # a thread pool of tiles, and one thread
            np.testing.assert_array_equal(
                asym2.iterate(a, steps=7, mode=mode, block_steps=block_steps,
                              parallel=parallel), want)
    np.testing.assert_array_equal(a, before)  # the first pass reads the input, never writes it
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((2, 19, 23))
    want = x
    for _ in range(5):
        want = blend(want, y, 0.5, mode=mode)
    np.testing.assert_array_equal(blend.iterate(x, y, 0.5, steps=5, mode=mode, block_steps=3),
                                  want)


TAPS_INT = (1, -2, 1)
TAPS_FLOAT = (1.0, -2.0, 1.0)


def test_a_global_tuple_of_numbers_is_a_constant_of_the_kernel():
    """Weights as a tuple from the kernel's scope (a closure's here, a module's alike),
    indexed at run time, equal to the reference; equal-looking tuples of other types are other
    kernels (the cache key)."""
    def with_taps(taps):
        @sk.stencil(neighborhood=((-1, 1),))
        def taps_kernel(x):
            s = 0
            for i in range(3):
                s += taps[i] * x[i - 1]
            return s
        return taps_kernel

    a = np.arange(-20, 20, dtype=np.int32) ** 2 % 37
    want = apply_reference(lambda x: x[-1] - 2 * x[0] + x[1], [a], ndim=1)
    ints = with_taps(TAPS_INT)
    np.testing.assert_array_equal(ints(a), want)
    floats = with_taps(TAPS_FLOAT)
    assert ints._spec.digest != floats._spec.digest
    got = floats(a)
    assert got.dtype == np.int32  # (the float sums stored in the input's dtype)
    np.testing.assert_array_equal(got, want)
