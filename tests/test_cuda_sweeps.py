"""The one-sweep modules' border in their interior's launch (``cuda_sweeps.FUSED``), no GPU.

Every family (integer box, separable weights and extremes, 8/16-bit extremes, the 3 x 3 median,
the small sorting networks) through the filters on device arrays, with the stand-in CuPy
(tests/cpp_host.py: each launch runs thread by thread on the host): the fused launch and the
two launches of before give the same arrays, each equal to the CPU's (exactly, or for float
sums to round-off), over a stack of images (the border's threads in every plane's first rows
of blocks), a stack of tall narrow ones (several rows of the border's blocks) and every mode
(``constant``: the border also walks the top and bottom rows).
"""

import numpy as np
import pytest
from filter_table import assert_device_result
from kernels import sample

from stencilkit import filters
from stencilkit.backends import cuda_sweeps

MODES = ["reflect", "mirror", "nearest", "wrap", "constant"]

CALLS = [  # (filter, data, size or sigma, the module's prefix, exact)
    (filters.uniform_filter, np.uint8, (1, 7, 5), "sk_box", True),
    (filters.gaussian_filter, np.float32, (0, 1.5, 1.0), "sk_sep", False),
    (filters.maximum_filter, np.float32, (1, 7, 9), "sk_sep", True),
    (filters.minimum_filter, np.int16, (1, 3, 5), "sk_minmax", True),
    (filters.median_filter, np.uint8, (1, 3, 3), "sk_med3", True),
    (filters.median_filter, np.uint8, (1, 5, 5), "sk_net2x", True),
]


@pytest.mark.parametrize("k", range(len(CALLS)))
def test_fused_border_equals_its_own_launch_and_the_cpu(fake_gpu, monkeypatch, k):
    from numba import cuda

    fn, dtype, arg, prefix, exact = CALLS[k]
    a = sample((3, 29, 40), dtype, seed=30 + k)  # 40 columns: whole words of 8/16-bit data
    tall = sample((2, 700, 24), dtype, seed=40 + k)
    for a, mode in [(a, m) for m in MODES] + [(tall, "reflect"), (tall, "constant")]:
        want = fn(a, arg, mode=mode, cval=3)
        got = {}
        for fused in (False, True):
            monkeypatch.setattr(cuda_sweeps, "FUSED", fused)
            fake_gpu.launched.clear()
            got[fused] = fn(cuda.to_device(a), arg, mode=mode, cval=3).copy_to_host()
            assert fake_gpu.launched == ([f"{prefix}_fused"] if fused else
                                         [f"{prefix}_interior", f"{prefix}_border"]), mode
        np.testing.assert_array_equal(got[True], got[False], err_msg=f"{fn.__name__} {mode}")
        assert_device_result(got[True], want, exact=exact)


@pytest.mark.parametrize("k", range(len(CALLS)))
def test_fused_border_in_shorter_strips_equals_the_cpu(fake_gpu, monkeypatch, k):
    """``FUSED_BORDER_ROWS`` 1 and 3: more rows of the border's blocks, and each thread's
    strips as short as the threads it finds allow (worked out in the kernel), every family,
    planes and a tall image, the edge rows of ``constant``."""
    from numba import cuda

    fn, dtype, arg, prefix, exact = CALLS[k]
    a = sample((3, 29, 40), dtype, seed=50 + k)
    tall = sample((2, 700, 24), dtype, seed=60 + k)
    for rows in (1, 3):
        monkeypatch.setattr(cuda_sweeps, "FUSED_BORDER_ROWS", rows)
        for x, mode in [(a, "wrap"), (a, "constant"), (tall, "reflect"), (tall, "constant")]:
            fake_gpu.grids.clear()
            got = fn(cuda.to_device(x), arg, mode=mode, cval=3).copy_to_host()
            assert [g[0] for g in fake_gpu.grids] == [f"{prefix}_fused"]
            assert_device_result(got, fn(x, arg, mode=mode, cval=3), exact=exact)


def test_fused_launch_geometry(monkeypatch):
    """The fused grid is the interior's with rows of blocks more, as many as give each of the
    border's strips (of ``FUSED_BORDER_ROWS`` rows) a thread (a tall narrow image: hundreds); the
    interior's strip length is the one it had alone; where no interior thread has work (an
    image narrower than the window's reach) the border kernel runs alone."""
    eys = []
    for shape, threads in [((5, 300, 4000), 480), ((1, 100_000, 64), 6)]:
        covered = 8 * threads
        for rowmap in (True, False):
            lo0, hi0 = (0, 0) if rowmap else (7, 7)
            span = (8, 8 + covered)
            alone = cuda_sweeps.plan("p", shape, lo0, hi0, threads, covered, span, (64, 4, 1))
            fused = cuda_sweeps.plan("p", shape, lo0, hi0, threads, covered, span, (64, 4, 1),
                                     fused=True)
            (name, grid, block, args), = fused
            (name0, grid0, block0, args0), border = alone
            assert (name, name0, border[0]) == ("p_fused", "p_interior", "p_border")
            ey = grid[1] - grid0[1]
            assert grid[::2] == grid0[::2] and block == block0 and args == args0
            strips = cuda_sweeps.border_threads(*shape, lo0, hi0, shape[2] - covered,
                                                cuda_sweeps.FUSED_BORDER_ROWS)
            per = grid[0] * grid[2] * block[0] * block[1]
            assert (ey - 1) * per < strips <= ey * per, (shape, rowmap, ey)
            eys.append(ey)
    # (a wide image: a few rows of blocks; a tall narrow one: a hundred times as many)
    assert max(eys[:2]) <= 10
    assert min(eys[2:]) > 100 * max(eys[:2])
    # strips of one row: a thread for each of the bands' outputs
    monkeypatch.setattr(cuda_sweeps, "FUSED_BORDER_ROWS", 1)
    shape, threads = (5, 300, 4000), 480
    plan = [cuda_sweeps.plan("p", shape, 0, 0, threads, 8 * threads, (8, 8 + 8 * threads),
                             (64, 4, 1), fused=fused)[0] for fused in (False, True)]
    (_, grid0, _, _), (_, grid, block, _) = plan
    per = grid[0] * grid[2] * block[0] * block[1]
    ey = grid[1] - grid0[1]
    strips = cuda_sweeps.border_threads(*shape, 0, 0, shape[2] - 8 * threads, 1)
    assert strips == 5 * 300 * 160 and ey > eys[0] and (ey - 1) * per < strips <= ey * per
    (only,) = cuda_sweeps.plan("p", (1, 300, 12), 0, 0, 0, 0, (0, 0), (64, 4, 1), fused=True)
    assert only[0] == "p_border"


def test_strips_grow_with_the_windows_reach(monkeypatch):
    """Interior strips of at least ``REACH_STRIPS`` times the rows a window reaches (a thread
    first reduces that many rows above its strip), 32 rows at least, and no longer than keeps
    the GPU's worth of threads (short strips for small images, whatever the reach)."""
    from stencilkit import codegen_cpp

    def strip(shape, reach, threads=4096):
        (_, _, _, args), = cuda_sweeps.plan("p", shape, 0, 0, threads, 2 * threads,
                                            (8, 8 + 2 * threads), (128, 2, 1), fused=True,
                                            reach=reach)
        return args[0]

    big = (1, 8192, 8192)
    assert strip(big, 2) == codegen_cpp.ROWS == 32  # 3 x 3 windows: as before
    assert strip(big, 16) == 4 * 16 == cuda_sweeps.REACH_STRIPS * 16  # 17 rows: 64
    assert strip(big, 24) == 96
    assert strip(big, 63) == 125  # capped: 4096 x 8192 threads' worth / TARGET_THREADS
    assert strip((1, 2048, 2048), 16, 1024) == 8  # small images keep their threads
    monkeypatch.setattr(cuda_sweeps, "REACH_STRIPS", 0)
    assert strip(big, 16) == 32
