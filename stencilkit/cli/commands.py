"""``stencilkit demo``, ``stencilkit info`` and ``stencilkit bench``."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from .status import EXIT_FAILED, EXIT_OK


def demo(args, log=print) -> int:
    """``stencilkit demo``: the classic example, then a batch of PNG frames through ``run``."""
    import tempfile

    from .. import demo as core_demo
    from .. import io
    from . import main

    status = core_demo.main(["--frames", str(args.frames), "--size", str(args.size)])
    base = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="stencilkit-demo-"))
    src = base / "frames"
    n, size = args.files, args.size
    log(f"\nbatch: {n} PNG frames of {size} x {size} uint8 in {src}, 3 x 3 mean through "
        "`stencilkit run`")
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (n, size, size), dtype=np.uint8)
    io.imwrite(frames, src, name="frame{index:04d}.png")
    cmd = ["run", "uniform_filter", "--size", "3", str(src), "-o", str(base / "smoothed"),
           "--overwrite"]
    log("$ stencilkit " + " ".join(cmd))
    t0 = time.perf_counter()
    rc = main(cmd)
    elapsed = time.perf_counter() - t0
    log(f"{n} frames in {elapsed:.2f} s: {n / elapsed:.1f} frames/s including PNG decode and "
        "encode")
    from .. import filters

    check = io.read_image(base / "smoothed" / "frame0000.png")
    same = np.array_equal(check, filters.uniform_filter(frames[0], 3))
    log(f"first output equals filters.uniform_filter on the frame: {same}")
    if not args.dir:
        import shutil

        shutil.rmtree(base, ignore_errors=True)
    return EXIT_OK if status == 0 and rc == 0 and same else EXIT_FAILED


def info(args, log=print) -> int:
    """``stencilkit info``: versions, threads, threading layer, CUDA, cache folder."""
    import importlib.metadata as md
    import platform

    import numba

    import stencilkit as sk

    from ..backends import cpu
    from ..backends.cuda import cuda_available

    log(f"stencilkit {sk.__version__} on Python {platform.python_version()} "
        f"({platform.system()} {platform.machine()})")
    for pkg in ("numpy", "numba", "llvmlite", "dask", "distributed", "scipy", "pillow",
                "tifffile", "zarr", "numba-cuda", "cupy-cuda12x", "opencv-python-headless"):
        try:
            log(f"  {pkg:<24} {md.version(pkg)}")
        except md.PackageNotFoundError:
            log(f"  {pkg:<24} not installed")

    @sk.stencil
    def _probe(x):
        return x[0, 0]

    _probe(np.zeros((256, 256), np.float32), parallel=True)  # starts numba's threads
    try:
        layer = numba.threading_layer()
    except ValueError:
        layer = "not started"
    log(f"threads: {numba.get_num_threads()} (numba), threading layer: {layer}, "
        f"CPU cores: {os.cpu_count()}")
    ok, why = cuda_available(explain=True)
    log(f"CUDA: {'available' if ok else 'not available'}: {why}")
    log(f"kernel cache: {cpu.cache_dir() or 'none writable (kernels compile in memory)'}")
    return EXIT_OK


def bench(args, log=print) -> int:
    """``stencilkit bench``: the side-by-side table of the 3 x 3 int8 mean."""
    from .. import bench as bench_module

    return bench_module.main(["--sizes", *map(str, args.sizes)]
                             + (["--quick"] if args.quick else [])
                             + (["--plot", args.plot] if args.plot else []))


# ---------------------------------------------------------------------------- the parser
