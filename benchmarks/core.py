"""Side-by-side benchmark of the core compiler: a 3 x 3 int8 mean against its peers, in one process.

    python benchmarks/core.py [--sizes 100 1000 8000] [--quick]

The table is stencilkit.bench's (also `stencilkit bench`). For each square size it times, in the
same run: numpy.copyto (the memory-bandwidth limit),
stencilkit with ``out=`` preallocated and allocating, numba.stencil under njit (serial, as in the
classic example, and parallel), scipy.ndimage.uniform_filter and cv2.blur, interleaved in
rounds so that the ratios compare the same moments; it prints the best time, the bandwidth
(bytes read + written) and the ratio to the copy. Then it measures compile latency: the first
call of a new kernel in a fresh process with an empty cache, and in a second process that
loads the machine code from the on-disk cache.

The peers do not all compute the same numbers (cv2 and scipy round, stencilkit and numba floor;
their borders differ): it is a speed comparison of the same work per pixel.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap

from stencilkit.bench import report, table

LATENCY_PROBE = """
    import time, numpy as np
    import stencilkit as sk
    @sk.stencil
    def probe(x):
        return (x[-1, 0] + x[1, 0] + x[0, -1] + x[0, 1]) // 4
    a = np.ones((1000, 1000), np.int16)
    t1 = time.perf_counter()
    probe(a)
    print(time.perf_counter() - t1)
"""


def compile_latency():
    """First call of a new parallel kernel: cold cache, then a second process with a warm one."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "STENCILKIT_CACHE_DIR": os.path.join(tmp, "cache")}
        probe = os.path.join(tmp, "probe.py")  # kernels are compiled from their source file
        with open(probe, "w") as f:
            f.write(textwrap.dedent(LATENCY_PROBE))
        times = []
        for _ in range(2):
            out = subprocess.run([sys.executable, probe], env=env, capture_output=True,
                                 text=True, check=True)
            times.append(float(out.stdout.split()[-1]))
    return times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 8000])
    parser.add_argument("--quick", action="store_true", help="shorter timing budget")
    args = parser.parse_args(argv)
    report(table(args.sizes, 0.2 if args.quick else 0.5))
    cold, warm = compile_latency()
    print(f"compile latency (new parallel kernel, 1000^2 int16): first process {cold:.2f} s, "
          f"second process (on-disk cache) {warm:.2f} s")


if __name__ == "__main__":
    main()
