"""The recycled-output-buffer pool: reuse only what nothing refers to any more."""

import numpy as np
from kernels import smooth

from stencilkit._buffers import MIN_BYTES, BufferPool

SHAPE = (MIN_BYTES // 8 + 1,)


def test_released_buffers_are_reused_and_live_ones_never():
    pool = BufferPool(64 * MIN_BYTES)
    a = pool.empty(SHAPE, np.float64)
    a[:] = 1
    b = pool.empty(SHAPE, np.float64)
    assert not np.shares_memory(a, b)  # a is alive
    view = a[::2]
    del a
    c = pool.empty(SHAPE, np.float64)
    assert not np.shares_memory(c, view) and not np.shares_memory(c, b)  # a's view keeps it
    del view
    d = pool.empty(SHAPE, np.float64)
    assert d.base is not None and d.flags.c_contiguous and d.shape == SHAPE
    assert len(pool._buffers) == 3  # the released buffer came back, no fourth one


def test_small_requests_and_a_zero_budget_bypass_the_pool():
    pool = BufferPool(0)
    assert pool.empty(SHAPE, np.float64).base is None
    assert BufferPool(64 * MIN_BYTES).empty((10,), np.int8).base is None


def test_budget_evicts_idle_buffers_first():
    pool = BufferPool(2 * (SHAPE[0] * 8))
    keep = pool.empty(SHAPE, np.float64)
    pool.empty(SHAPE, np.float64)  # released at once
    other = pool.empty((SHAPE[0] + 8,), np.float64)  # does not fit: the idle buffer goes
    assert sum(b.nbytes for b in pool._buffers) <= pool.max_bytes
    assert any(np.shares_memory(b, keep) for b in pool._buffers)
    assert other.shape == (SHAPE[0] + 8,)


def test_results_from_recycled_buffers_are_correct():
    a = np.random.default_rng(0).integers(0, 99, (2100, 2100), dtype=np.int8)
    first = smooth(a)
    want = first.copy()
    del first
    second = smooth(a)  # written into the recycled buffer
    np.testing.assert_array_equal(second, want)
    third = smooth(a[::-1])
    assert not np.shares_memory(second, third)
    np.testing.assert_array_equal(second, want)
