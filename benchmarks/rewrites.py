"""User kernels as written against as the CPU rewrites them, beside numba.stencil.

    python benchmarks/rewrites.py [--size 8000] [--budget 0.5]

Two rewrites of a user's kernel before the CPU compiles it: integer variables held in 16 bits
where their range fits (stencilkit/_narrow.py; a clamped uint8 kernel otherwise runs in
64-bit vector lanes) and loops over constant ranges written out (stencilkit/_unroll.py; a
window summed by loops otherwise reads at run-time offsets). For each kernel this times, in
interleaved rounds (stencilkit.bench.best_times): numpy.copyto of as many bytes (the memory
limit), stencilkit with ``out=`` as it runs, the same kernel compiled as written
(``_narrow.ENABLED = False`` and ``_unroll.ENABLED = False``), and the same function under
numba.stencil with njit(parallel=True). It prints the best time, GB/s (bytes read + written)
and the ratio to the copy, and checks that all three agree inside the border (numba.stencil
leaves the border 0).
"""

from __future__ import annotations

import argparse
import os
import sys

import numba
import numpy as np

import stencilkit as sk
from stencilkit import _narrow, _unroll
from stencilkit.bench import COPY, best_times


def sobel_tern(x):  # a Sobel-like difference clamped by conditional expressions
    v = x[-1, -1] + 2 * x[0, -1] + x[1, -1] - x[-1, 1] - 2 * x[0, 1] - x[1, 1]
    return 0 if v < 0 else (255 if v > 255 else v)


def sharpen(x):  # clamped by min and max
    v = 5 * x[0, 0] - x[-1, 0] - x[1, 0] - x[0, -1] - x[0, 1]
    return min(max(v, 0), 255)


def sharpen_hinted(x):  # the user's own np.int16, int64 literals in the clamp
    v = np.int16(5 * x[0, 0] - x[-1, 0] - x[1, 0] - x[0, -1] - x[0, 1])
    return min(max(v, 0), 255)


def box5_loops(x):  # a 5 x 5 mean by two loops (run-time offsets, as written)
    s = 0
    for i in range(-2, 3):
        for j in range(-2, 3):
            s += x[i, j]
    return s // 25


def box7_loops(x):  # a 7 x 7 mean by two loops: written out, its point function inlined
    s = 0
    for i in range(-3, 4):
        for j in range(-3, 4):
            s += x[i, j]
    return s // 49


KERNELS = [sobel_tern, sharpen, sharpen_hinted, box5_loops, box7_loops]
NEIGHBORHOOD = {box5_loops: ((-2, 2), (-2, 2)), box7_loops: ((-3, 3), (-3, 3))}


def numba_stencil(fn, neighborhood):
    """The same function under numba.stencil (relative indexing is its syntax too)."""
    kernel = numba.stencil(fn, neighborhood=neighborhood)

    @numba.njit(parallel=True)
    def run(x):
        return kernel(x)

    return run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8000)
    parser.add_argument("--budget", type=float, default=0.5, help="seconds per row and round")
    args = parser.parse_args(argv)
    n = args.size
    x = np.random.default_rng(0).integers(0, 256, (n, n), dtype=np.uint8)
    out = np.empty_like(x)
    print(f"stencilkit {sk.__version__}, numba {numba.__version__}, {os.cpu_count()} cores; "
          f"{n}^2 uint8")
    print(f"{'kernel':<16} {'implementation':<34} {'time':>9} {'GB/s':>7} {'x copy':>7}")
    for fn in KERNELS:
        make = sk.stencil(neighborhood=NEIGHBORHOOD.get(fn))
        held, plain = make(fn), make(fn)
        _narrow.ENABLED = _unroll.ENABLED = False
        try:
            plain(x, out=out)  # (decided and compiled as written)
        finally:
            _narrow.ENABLED = _unroll.ENABLED = True
        classic = numba_stencil(fn, NEIGHBORHOOD.get(fn))
        table = {
            COPY: lambda: np.copyto(out, x),
            "stencilkit": lambda f=held: f(x, out=out),
            "stencilkit, as written": lambda f=plain: f(x, out=out),
            "numba.stencil njit parallel": lambda f=classic: f(x),
        }
        times = best_times(table, args.budget)
        inner = tuple(slice(b, n - a) for (b, a), n in zip(held.radius, x.shape))
        a, b, c = held(x), plain(x), classic(x).astype(np.uint8)
        if not (np.array_equal(a, b) and np.array_equal(a[inner], c[inner])):
            print(f"{fn.__name__}: the results differ", file=sys.stderr)
            return 1
        print(f"{fn.__name__}: {held.explain(x).split('output uint8')[1].strip('; ')}")
        for name, t in times.items():
            print(f"{fn.__name__:<16} {name:<34} {t * 1e3:7.2f} ms {2 * x.nbytes / t / 1e9:7.2f}"
                  f" {times[COPY] / t:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
