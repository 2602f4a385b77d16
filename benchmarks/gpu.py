"""Side-by-side GPU benchmark: stencilkit's CUDA backend against its peers, in one run.

    python benchmarks/gpu.py [--quick] [--scale 1.0]

Workloads (the issue's): a 3 x 3 int8 mean on a 16384 x 16384 array and on a 200 x 2048 x 2048
stack, a Gaussian (sigma 2) on float32, a 2 x 2 block mean (uint8). Each beside, in the same run:
a device-to-device copy of the input (the memory limit), the classic hand-written numba.cuda
kernel (``cuda.grid`` and an ``if 1 <= i < n - 1`` guard, as users write it today) and
cupyx.scipy.ndimage where CuPy is installed. Prints the best time, bandwidth (bytes read +
written) and the ratio to the copy; the target is >= 0.7 x the copy for the 3 x 3 mean.

Without a GPU it says so and exits 0. ``--simulator`` runs the same code paths on tiny arrays
under numba's CUDA simulator (a smoke test of this script, not a measurement).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from numba import cuda

import stencilkit as sk
from stencilkit import filters, resample
from stencilkit.backends import cuda as cuda_backend


@sk.stencil(mode="skip")
def smooth(x):
    return (x[-1, -1] + x[-1, 0] + x[-1, 1] +
            x[0, -1] + x[0, 0] + x[0, 1] +
            x[1, -1] + x[1, 0] + x[1, 1]) // 9


# The hand-written numba.cuda twins users write today (2-D and stack), launched as the
# tutorials do: 16 x 16 threads, cuda.grid's x over the first axis. Module-level, so that the
# CUDA simulator finds `cuda` among their globals.

@cuda.jit
def classic2(a, out):
    i, j = cuda.grid(2)
    n, m = a.shape
    if 1 <= i < n - 1 and 1 <= j < m - 1:
        out[i, j] = (np.int64(a[i - 1, j - 1]) + a[i - 1, j] + a[i - 1, j + 1]
                     + a[i, j - 1] + a[i, j] + a[i, j + 1]
                     + a[i + 1, j - 1] + a[i + 1, j] + a[i + 1, j + 1]) // 9


@cuda.jit
def classic3(a, out):
    k, i, j = cuda.grid(3)
    f, n, m = a.shape
    if k < f and 1 <= i < n - 1 and 1 <= j < m - 1:
        out[k, i, j] = (np.int64(a[k, i - 1, j - 1]) + a[k, i - 1, j] + a[k, i - 1, j + 1]
                        + a[k, i, j - 1] + a[k, i, j] + a[k, i, j + 1]
                        + a[k, i + 1, j - 1] + a[k, i + 1, j] + a[k, i + 1, j + 1]) // 9


def run2(a, out):
    """The classic 2-D launch."""
    n, m = a.shape
    classic2[(-(-n // 16), -(-m // 16)), (16, 16)](a, out)


def run3(a, out):
    """The classic stack launch."""
    f, n, m = a.shape
    classic3[(f, -(-n // 16), -(-m // 16)), (1, 16, 16)](a, out)


class Device:
    """Arrays and copies on the GPU: CuPy when installed, numba device arrays otherwise."""

    def __init__(self):
        try:
            import cupy
            import cupyx.scipy.ndimage as cndi

            self.cupy, self.cndi = cupy, cndi
        except ImportError:
            self.cupy = self.cndi = None
        self.cuda = cuda

    def put(self, host):
        return self.cupy.asarray(host) if self.cupy is not None else self.cuda.to_device(host)

    def empty_like(self, x):
        if self.cupy is not None:
            return self.cupy.empty_like(x)
        return self.cuda.device_array(x.shape, x.dtype)

    def copy(self, src, dst):
        if self.cupy is not None:
            self.cupy.copyto(dst, src)
        else:
            dst.copy_to_device(src)

    def sync(self):
        cuda_backend.synchronize()


def best_times(table, dev, budget, min_rounds=3, max_rounds=30):
    """Best time of each callable (synchronised), in interleaved rounds as benchmarks/core.py."""
    for fn in table.values():
        fn()  # compile and warm up
    dev.sync()
    best = dict.fromkeys(table, float("inf"))
    start = time.perf_counter()
    rounds = 0
    while rounds < (min_rounds if budget else 1) or (
            time.perf_counter() - start < budget * len(table) and rounds < max_rounds):
        for name, fn in table.items():
            dev.sync()
            t0 = time.perf_counter()
            fn()
            dev.sync()
            best[name] = min(best[name], time.perf_counter() - t0)
        rounds += 1
    return best


def report(title, nbytes, results):
    t_copy = results["device-to-device copy (limit)"]
    print(f"\n{title}  ({nbytes / 1e9:.2f} GB read + written per call)")
    for name, t in results.items():
        print(f"  {name:<40} {t * 1e3:9.3f} ms {nbytes / t / 1e9:8.1f} GB/s "
              f"{t_copy / t:6.2f} x copy")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter timing budget")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="linear scale of every array side (0.25: a sixteenth of the data)")
    parser.add_argument("--simulator", action="store_true",
                        help="smoke-test the script under NUMBA_ENABLE_CUDASIM=1 on tiny arrays")
    args = parser.parse_args(argv)
    ok, why = sk.cuda_available(explain=True)
    if not ok:
        print(f"no GPU: {why}; GPU speed not measured")
        return 0
    if cuda_backend.simulated() and not args.simulator:
        print(f"{why}: timings would be meaningless; GPU speed not measured "
              "(--simulator runs this script's code paths on tiny arrays)")
        return 0
    scale = 1 / 512 if args.simulator else args.scale
    budget = 0.0 if args.simulator else (0.3 if args.quick else 1.0)
    side = max(16, int(16384 * scale))
    stack = (max(2, int(200 * min(1.0, scale * 4))), max(16, int(2048 * scale)),
             max(16, int(2048 * scale)))
    gside = max(16, int(8192 * scale))
    dev = Device()
    rng = np.random.default_rng(0)
    print(f"stencilkit {sk.__version__} on {why}; CuPy: "
          f"{dev.cupy.__version__ if dev.cupy is not None else 'not installed'}")

    def mean_table(host, classic):
        x = dev.put(host)
        out = dev.empty_like(x)
        table = {
            "device-to-device copy (limit)": lambda: dev.copy(x, out),
            "stencilkit smooth(x, out=out)": lambda: smooth(x, out=out),
            "stencilkit smooth(x)": lambda: smooth(x),
            "classic numba.cuda kernel": lambda: classic(x, out),
        }
        if dev.cndi is not None:
            size = (1,) * (host.ndim - 2) + (3, 3)
            table["cupyx.scipy.ndimage.uniform_filter"] = \
                lambda: dev.cndi.uniform_filter(x, size)
        return table

    a = rng.integers(0, 127, (side, side), dtype=np.int8)
    report(f"3 x 3 int8 mean, {side} x {side}", 2 * a.nbytes,
           best_times(mean_table(a, run2), dev, budget))
    s = rng.integers(0, 127, stack, dtype=np.int8)
    report(f"3 x 3 int8 mean, stack {stack}", 2 * s.nbytes,
           best_times(mean_table(s, run3), dev, budget))
    del s

    g = rng.standard_normal((gside, gside)).astype(np.float32)
    x = dev.put(g)
    out = dev.empty_like(x)
    table = {
        "device-to-device copy (limit)": lambda: dev.copy(x, out),
        "stencilkit gaussian_filter(sigma=2)": lambda: filters.gaussian_filter(x, 2.0),
    }
    if dev.cndi is not None:
        table["cupyx.scipy.ndimage.gaussian_filter"] = lambda: dev.cndi.gaussian_filter(x, 2.0)
    report(f"Gaussian sigma=2 float32, {gside} x {gside}", 2 * g.nbytes,
           best_times(table, dev, budget))

    u = rng.integers(0, 255, (side, side), dtype=np.uint8)
    x = dev.put(u)
    out = dev.empty_like(x)
    table = {
        "device-to-device copy (limit)": lambda: dev.copy(x, out),
        "stencilkit block_reduce(x, 2)": lambda: resample.block_reduce(x, 2),
    }
    if dev.cupy is not None:
        h = side // 2
        table["cupy reshape(...).mean((1, 3))"] = \
            lambda: x[:2 * h, :2 * h].reshape(h, 2, h, 2).mean((1, 3)).astype(np.uint8)
    report(f"2 x 2 block mean uint8, {side} x {side}", u.nbytes * 5 // 4,
           best_times(table, dev, budget))
    return 0


if __name__ == "__main__":
    sys.exit(main())
