"""A folder of PNG frames through `stencilkit run` beside the classic serial loop, in one run.

    python benchmarks/cli_batch.py [--frames 200] [--size 1000] [--workers N]

The classic loop is what the batch job looks like today: for each file of a sorted glob,
imageio reads it, a numba.stencil kernel (njit, the classic 3 x 3 mean) filters it, imageio
writes ``*.out.png``. `stencilkit run uniform_filter --size 3` does the same work per frame
(decode, 3 x 3 mean, encode, plus hashing for the resume manifest and atomic renames) as a
separate process, timed from start to exit, so its start-up is included. Frames are smooth
patterns plus noise (so PNG compresses as it does on real images). Prints frames/s and MB/s
(decoded pixels) of each.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from stencilkit import io
from stencilkit.demo import classic_kernels


def make_frames(folder: Path, n: int, size: int) -> None:
    """Write ``n`` PNG frames of ``size``^2 uint8: moving sinusoids plus noise."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size, 0:size] / size
    for i in range(n):
        base = 100 + 60 * np.sin(8 * x + i / 7) * np.cos(5 * y - i / 11)
        frame = np.clip(base + rng.normal(0, 8, (size, size)), 0, 255).astype(np.uint8)
        io.write_image(frame, folder / f"frame{i:04d}.png")


def classic_loop(src: Path, dst: Path) -> int:
    """The loop users write today; returns the frames done."""
    import imageio.v3 as iio

    serial = classic_kernels()[0]  # the classic numba.stencil kernel under njit
    dst.mkdir(parents=True, exist_ok=True)
    n = 0
    for path in sorted(glob.glob(str(src / "*.png"))):
        img = iio.imread(path).astype(np.int8, copy=False)  # its int8 kernel; same bytes
        out = serial(img).view(np.uint8)
        iio.imwrite(dst / (Path(path).stem + ".out.png"), out)
        n += 1
    return n


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=None, help="stencilkit run --workers")
    args = parser.parse_args(argv)
    exe = shutil.which("stencilkit", path=os.path.dirname(sys.executable)) or "stencilkit"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_frames(tmp / "in", args.frames, args.size)
        pixels = args.frames * args.size * args.size
        mb = sum(p.stat().st_size for p in (tmp / "in").iterdir()) / 1e6
        print(f"{args.frames} PNG frames of {args.size}^2 uint8 ({mb:.0f} MB of PNG), "
              f"{os.cpu_count()} cores")
        classic_loop(tmp / "in", tmp / "warm")  # compile the classic kernel outside the timing
        shutil.rmtree(tmp / "warm")
        t0 = time.perf_counter()
        n = classic_loop(tmp / "in", tmp / "classic")
        t_classic = time.perf_counter() - t0
        cmd = [exe, "run", "uniform_filter", "--size", "3", "--quiet", str(tmp / "in"), "-o",
               str(tmp / "sk")] + (["--workers", str(args.workers)] if args.workers else [])
        subprocess.run(cmd + ["-o", str(tmp / "warm")], check=True, capture_output=True)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        t_sk = time.perf_counter() - t0
        t0 = time.perf_counter()
        rerun = subprocess.run(cmd, check=True, capture_output=True, text=True)
        t_resume = time.perf_counter() - t0
        assert "already complete" in rerun.stdout
        for name, t in [("classic loop (imageio + numba.stencil, serial)", t_classic),
                        ("stencilkit run uniform_filter --size 3", t_sk),
                        ("stencilkit rerun (all outputs complete)", t_resume)]:
            print(f"  {name:<48} {t:7.2f} s {n / t:8.1f} frames/s "
                  f"{pixels / t / 1e6:8.1f} MB/s")
        print(f"  stencilkit run: {t_classic / t_sk:.1f}x the classic loop")
    return 0


if __name__ == "__main__":
    sys.exit(main())
