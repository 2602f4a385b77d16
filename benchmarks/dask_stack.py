"""Dask benchmark: the classic stack pipeline and a large chunked image, stencilkit against peers.

    python benchmarks/dask_stack.py [--frames 400] [--image 20000]

Each case runs in a fresh subprocess (so its peak RSS is its own) on lazily generated data:

* stack: ``frames x 1000 x 1000`` int8 in 64 MB chunks along frames, ``smooth(x).max()``
  through stencilkit, through the classic ``numba.guvectorize`` kernel mapped over the stack, and
  through dask-image's ``uniform_filter``; ``x.max()`` alone is the read-bandwidth reference.
  ``stack-in-memory`` persists the generated stack first, so only the stencil and the reduction
  are timed.
* image: ``image x image`` uint8 in 2000^2 chunks (halos cross chunks in both axes), stencilkit
  against dask-image.

GB/s counts the stencil's bytes read + written (bytes read for the ``read`` reference; the
generator and the reduction are part of every case); ``x copy`` is the ratio to numpy.copyto's
bandwidth measured in the same run; peak RSS is also given in multiples of one input chunk.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np


def generator(shape, chunks, dtype):
    """A lazily generated array whose chunks cost a memset-speed fill, not a random generator."""
    import dask.array as da

    def fill(block_info=None):
        info = block_info[None]
        loc = info["array-location"]
        out = np.empty(info["chunk-shape"], dtype)
        out[...] = (sum(start for start, _ in loc) * 7) % 127
        out.reshape(-1)[::97] = 3  # not constant: no compression-like shortcuts anywhere
        return out

    return da.map_blocks(fill, chunks=chunks, dtype=dtype, meta=np.empty((0,) * len(shape), dtype))


def case(name, frames, image):
    import dask
    import dask.array as da

    from stencilkit.demo import smooth

    dask.config.set(scheduler="threads")
    if name.startswith("stack"):
        shape = (frames, 1000, 1000)
        x = generator(shape, da.core.normalize_chunks(("64 MB", -1, -1), shape, dtype=np.int8),
                      np.int8)
        if name.startswith("stack-in-memory"):
            x = x.persist()
    else:
        shape = (image, image)
        x = generator(shape, da.core.normalize_chunks((2000, 2000), shape), np.uint8)
    if name.endswith("read"):
        y = x
    elif name.endswith("stencilkit"):
        y = smooth(x)
    elif name.endswith("guvectorize"):
        from stencilkit.demo import classic_kernels

        y = classic_kernels()[3](x)
    elif name.endswith("dask-image"):
        from dask_image.ndfilters import uniform_filter

        y = uniform_filter(x, size=(1, 3, 3) if x.ndim == 3 else 3)
    else:
        raise ValueError(name)
    y.max().compute()  # warm up: compile or load kernels, touch the thread pool
    t0 = time.perf_counter()
    y.max().compute()
    elapsed = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    chunk = max(np.prod([c[0] for c in x.chunks]) * x.dtype.itemsize, 1)
    moved = x.nbytes if name.endswith("read") else 2 * x.nbytes  # a read pass writes nothing
    return {"seconds": elapsed, "bytes": moved, "peak_rss": rss, "chunk": int(chunk)}


def copy_bandwidth():
    a = np.ones(64 * 2**20, np.uint8)
    b = np.empty_like(a)
    np.copyto(b, a)
    best = min(_timed(lambda: np.copyto(b, a)) for _ in range(10))
    return 2 * a.nbytes / best


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=400)
    parser.add_argument("--image", type=int, default=20000)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(case(args.one, args.frames, args.image)))
        return
    copy_bw = copy_bandwidth()
    print(f"numpy.copyto: {copy_bw / 1e9:.1f} GB/s; threads: {os.cpu_count()}")
    cases = ["stack read", "stack stencilkit", "stack guvectorize", "stack dask-image",
             "stack-in-memory read", "stack-in-memory stencilkit", "stack-in-memory guvectorize",
             "image read", "image stencilkit", "image dask-image"]
    for name in cases:
        proc = subprocess.run([sys.executable, __file__, "--one", name, "--frames",
                               str(args.frames), "--image", str(args.image)],
                              capture_output=True, text=True)
        if proc.returncode:
            print(f"{name:<28} failed: {proc.stderr.strip().splitlines()[-1]}")
            continue
        r = json.loads(proc.stdout.splitlines()[-1])
        bw = r["bytes"] / r["seconds"]
        print(f"{name:<28} {r['seconds']:8.3f} s {bw / 1e9:7.2f} GB/s {bw / copy_bw:6.2f} x copy"
              f"   peak RSS {r['peak_rss'] / 2**20:7.0f} MiB "
              f"({r['peak_rss'] / r['chunk']:.0f} x chunk)")


if __name__ == "__main__":
    main()
