"""The classic example, end to end: a 3 x 3 int8 mean over a generated stack of frames.

Run it with ``python -m stencilkit.demo`` (``make demo`` does). It generates a stack of random
int8 frames, smooths every frame with stencilkit, checks the result against the classic
``numba.stencil`` kernel of DESIGN.md (which equals ``mode="skip"`` bit for bit) and prints the
throughput of both.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import stencilkit as sk


@sk.stencil
def smooth(x):
    """The 3 x 3 mean of the classic example, exactly as users write it."""
    return (x[-1, -1] + x[-1, 0] + x[-1, 1] +
            x[0, -1] + x[0, 0] + x[0, 1] +
            x[1, -1] + x[1, 0] + x[1, 1]) // 9


def classic_kernels():
    """The classic example of DESIGN.md, as users write it today with numba.stencil.

    Returns ``(serial, parallel, per_frame, gufunc)``: the stencil under ``numba.njit`` and
    under ``numba.njit(parallel=True)`` for one 2-D frame, the serial one looped over a stack,
    and the int8 ``numba.guvectorize`` twin that Dask maps over a stack. Border outputs are left
    at 0 (numba.stencil's rule, stencilkit's ``mode="skip"``).
    """
    import numba

    @numba.stencil
    def _smooth(x):
        return (x[-1, -1] + x[-1, 0] + x[-1, 1] +
                x[0, -1] + x[0, 0] + x[0, 1] +
                x[1, -1] + x[1, 0] + x[1, 1]) // 9

    @numba.njit
    def serial(x):
        return _smooth(x)

    @numba.njit(parallel=True)
    def parallel(x):
        return _smooth(x)

    @numba.njit
    def per_frame(stack):
        out = np.empty_like(stack)
        for f in range(stack.shape[0]):
            out[f] = _smooth(stack[f])
        return out

    @numba.guvectorize([(numba.int8[:, :], numba.int8[:, :])], "(n,m)->(n,m)")
    def gufunc(x, out):
        out[:] = _smooth(x)

    return serial, parallel, per_frame, gufunc


def _best_of(fn, repeat):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv=None) -> int:
    """Run the demo; returns the process exit status (0 when the results agree)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200, help="frames in the stack")
    parser.add_argument("--size", type=int, default=1000, help="frame height and width")
    parser.add_argument("--repeat", type=int, default=3, help="timed repetitions (best is kept)")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    stack = rng.integers(0, 127, (args.frames, args.size, args.size), dtype=np.int8)
    nbytes = 2 * stack.nbytes  # read + written
    print(f"stack: {args.frames} x {args.size} x {args.size} int8 ({stack.nbytes / 2**20:.0f} MiB)")

    t0 = time.perf_counter()
    out = smooth(stack, mode="skip")
    print(f"stencilkit first call (compile or load from cache): {time.perf_counter() - t0:.2f} s")
    t_sk = _best_of(lambda: smooth(stack, mode="skip", out=out), args.repeat)
    copy = np.empty_like(stack)
    t_copy = _best_of(lambda: np.copyto(copy, stack), args.repeat)

    classic = classic_kernels()[2]
    small = stack[:2]
    classic(small)  # compile outside the timing
    t_classic = _best_of(lambda: classic(stack), 1)
    same = np.array_equal(classic(stack), out)

    def line(name, t):
        rate = nbytes / t / 1e9
        return f"  {name:<38} {t * 1e3:9.1f} ms  {rate:6.2f} GB/s  {t_copy / t:5.2f} x copy"

    print(line("numpy.copyto (memory bandwidth)", t_copy))
    print(line("stencilkit smooth(stack, out=out)", t_sk))
    print(line("classic numba.stencil, frame by frame", t_classic))
    print(f"  stencilkit is {t_classic / t_sk:.0f}x faster than the classic kernel; "
          f"results identical: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
