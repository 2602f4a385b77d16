"""Temporal blocking: iterate a 5-point heat step step by step and in cache-sized tiles.

    python benchmarks/iterate.py [--size 8000] [--steps 16] [--tile-bytes N ...]

Prints ms per step for step-by-step application (one memory sweep per step) and for
``iterate`` with temporal blocking (tiles advanced ``block_steps`` steps per sweep), checks the
two are identical, and shows the Dask graph sizes of both strategies on a chunked copy.
``--tile-bytes`` times the temporal blocking once per tile size instead (the sweep behind
``stencilkit.backends.cpu.BACKEND.TILE_BYTES``).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import stencilkit as sk
from stencilkit.backends import cpu


@sk.stencil(mode="nearest")
def heat(u):
    return u[0, 0] + np.float32(0.1) * (u[-1, 0] + u[1, 0] + u[0, -1] + u[0, 1]
                                        - np.float32(4) * u[0, 0])


def best(fn, repeat=3):
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8000)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--tile-bytes", type=int, nargs="+", metavar="N",
                        help="time temporal blocking with each of these tile sizes")
    args = parser.parse_args(argv)
    u = np.random.default_rng(0).random((args.size, args.size), dtype=np.float32)
    if args.tile_bytes:
        default = cpu.BACKEND.TILE_BYTES
        try:
            for size in args.tile_bytes:
                cpu.BACKEND.TILE_BYTES = size
                t, _ = best(lambda: heat.iterate(u, steps=args.steps))
                print(f"tiles of {size} bytes: {t / args.steps * 1e3:.1f} ms/step")
        finally:
            cpu.BACKEND.TILE_BYTES = default
        return
    t_plain, r_plain = best(lambda: heat.iterate(u, steps=args.steps, block_steps=1))
    t_tiled, r_tiled = best(lambda: heat.iterate(u, steps=args.steps))
    print(f"heat {args.size}^2 float32, {args.steps} steps: step by step "
          f"{t_plain / args.steps * 1e3:.1f} ms/step, temporal blocking "
          f"{t_tiled / args.steps * 1e3:.1f} ms/step ({t_plain / t_tiled:.2f}x), identical: "
          f"{np.array_equal(r_plain, r_tiled)}")
    try:
        import dask.array as da
    except ImportError:
        return
    x = da.from_array(u[:2048, :2048], chunks=512)
    plain = heat.iterate(x, steps=args.steps, block_steps=1)
    blocked = heat.iterate(x, steps=args.steps)
    print(f"dask 2048^2 in 512^2 chunks, {args.steps} steps: {len(plain.dask)} tasks step by "
          f"step, {len(blocked.dask)} with temporal blocking")


if __name__ == "__main__":
    main()
