"""What ptxas gives stencilkit's generated CUDA C++ kernels, without a GPU.

Registers per thread (they cap the threads an SM holds: 65536 registers / the count, at most
2048), spilled bytes and stack (local-memory traffic) and shared memory, for one
representative module of every family the CUDA backend generates: the stencils' strip walk,
the box, the separable and extreme sweeps, resampling, the large medians and the tiled
``iterate``. NVRTC compiles each module to PTX, nvJitLink assembles it for ``--arch``
(default sm_90, the H100's) and reports (``pip install nvidia-nvjitlink-cu12``; the test extra
has it).

    python tools/kernel_resources.py [--arch sm_90] [--sass [--dump DIR]]

``--sass`` adds each kernel's SASS instruction count and its loads, stores, minima/maxima and
float operations (``nvdisasm`` from ``pip install nvidia-cuda-nvdisasm``, or on PATH, or
``$SK_NVDISASM``); ``--dump DIR`` writes each module's SASS there, for reading its loops
(instructions between a loop's label and its backward branch: the cost of a step).

tests/test_cuda_resources.py asserts the same table's limits (no spills; the interior kernels'
registers).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))


def modules():
    """``[(what, module source)]``: one module per family, on the benchmarks' cases."""
    import numba
    from kernels import diffuse, smooth

    from stencilkit import codegen_tiled
    from stencilkit._passes import Box2, Rank, Sep2
    from stencilkit.backends import (
        cuda_box,
        cuda_cpp,
        cuda_median,
        cuda_minmax,
        cuda_rank,
        cuda_resample,
        cuda_sep,
    )

    f32, f64, u8, i8 = (np.dtype(t) for t in (np.float32, np.float64, np.uint8, np.int8))
    i64 = np.dtype(np.int64)
    w = np.exp(-np.arange(-8, 9) ** 2 / 8.0)
    w = tuple(w / w.sum())
    out = [
        ("stencil: 3 x 3 integer mean, int8 (words)",
         cuda_cpp.module_for(smooth._spec, [i8], i8, i64, (), idx64=False, narrow=True).source),
        ("stencil: heat step, float32 (float64 parameter)",
         cuda_cpp.module_for(diffuse._spec, [f32], f32, f64, (numba.float64,), idx64=False,
                             narrow=True).source),
        ("box: uniform_filter 15 x 15, uint8",
         cuda_box.module_for(Box2(0, 7, 7, 7, 7, 225, u8, (0, 255)), u8, True, False,
                             True).source),
    ]
    # (vector loads: the rows of the benchmarks' images allow them)
    for dtype, mode in [(f32, "reflect"), (u8, "reflect"), (u8, "constant")]:
        sw = cuda_sep.sweep_of((Sep2(0, w, 8, w, 8, dtype),), dtype, dtype, 2, mode, 0.0)
        out.append((f"sweep: gaussian sigma=2, {dtype}, {mode}",
                    cuda_sep.module_for(sw, dtype, False, None, mode != "constant",
                                        vec=True).source))
    sw = cuda_sep.Sweep("max", 15, 7, 15, 7)
    out.append(("sweep: maximum_filter 15 x 15, float32",
                cuda_sep.module_for(sw, f32, False, None, True, vec=True).source))
    i32 = np.dtype(np.int32)  # the backend's sums of 8/16-bit means (exact)
    out.append(("resample: block_reduce 2 x 2 mean, uint8",
                cuda_resample.module_for(u8, i32, u8, 2, 2, "mean", False, 0, 255,
                                         False).source))
    out.append(("resample: block_reduce 2 x 2 x 2 mean, uint8 volume",
                cuda_resample.module_for(u8, i32, u8, 2, 2, "mean", False, 0, 255, False,
                                         (2,)).source))
    out.append(("resample: block_reduce 16 x 16 median, uint8 (a thread's float64 buffer)",
                cuda_resample.module_for(u8, f64, u8, 16, 16, "median", False, 0, 0,
                                         False).source))
    out.append(("resample: block_reduce 32 x 32 median, uint8 (windows in a scratch array)",
                cuda_resample.module_for(u8, f64, u8, 32, 32, "median", False, 0, 0,
                                         False).source))
    out.append(("resample: pyramid_down level, uint8",
                cuda_resample.generate_pyramid(u8, lo=0, hi=255, idx64=False).source))
    box = Rank(((True,) * 15,) * 15, (7, 7), 112, True)
    for dtype in (u8, np.dtype(np.uint16), f32):
        mod, _ = cuda_rank.module_for(box, dtype, 2, False)
        what = " (a thread's window buffer)" if mod.kernel == "sk_select" else ""
        out.append((f"median 15 x 15, {dtype} ({mod.kernel}){what}", mod.source))
    out.append(("median 3 x 3, uint8 (sorted columns, cuda_median)",
                cuda_median.generate(u8, 1, 1, words=True, idx64=False, rowmap=True).source))
    out.append(("median 3 x 3, float32 (sorted columns, the network for NaN and zero)",
                cuda_median.generate(f32, 1, 1, words=False, idx64=False, rowmap=True).source))
    for k in (3, 9):
        out.append((f"maximum {k} x {k}, uint8 (one sweep on 16x2 pairs, cuda_minmax)",
                    cuda_minmax.generate(u8, k, k // 2, k, k // 2, True, idx64=False,
                                           rowmap=True).source))
    cells = [(r, c) for r in range(5) for c in range(5)]
    out.append(("median 5 x 5, uint8 (a network on 16x2 pairs, cuda_median)",
                cuda_median.generate_network(u8, cells, 12, 2, 2, idx64=False,
                                             rowmap=True).source))
    big = Rank(((True,) * 25,) * 25, (12, 12), 312, True)
    mod, _ = cuda_rank.module_for(big, f32, 2, False)
    out.append((f"median 25 x 25, float32 ({mod.kernel}: windows in a scratch array)",
                mod.source))
    tiled = codegen_tiled.generate(diffuse._spec, [f32], f32, f64, (numba.float64,),
                                   idx64=False, narrow=True, steps=8)
    out.append(("iterate: heat step, 8 steps a launch (tiled)", tiled.source))
    return out


def nvdisasm():
    """The path of ``nvdisasm``: ``$SK_NVDISASM``, PATH, or the nvidia-cuda-nvdisasm wheel."""
    import glob
    import shutil

    found = os.environ.get("SK_NVDISASM") or shutil.which("nvdisasm")
    if found:
        return found
    try:
        import nvidia
    except ImportError:
        return None
    for root in nvidia.__path__:
        hits = sorted(glob.glob(os.path.join(root, "*", "bin", "nvdisasm")))
        if hits:
            return hits[-1]
    return None


SASS_CLASSES = {"loads": ("LDG", "LDS", "LD."), "stores": ("STG", "STS", "ST."),
                "min/max": ("MNMX",), "float": ("FADD", "FMUL", "FFMA", "DADD", "DMUL", "DFMA")}


def disassembly(source, arch, tool) -> str:
    """``nvdisasm -c``'s text of a module's cubin (labels and all)."""
    import subprocess
    import tempfile

    from stencilkit.backends import cuda_cpp

    with tempfile.NamedTemporaryFile(suffix=".cubin", delete=False) as f:
        f.write(cuda_cpp.cubin(source, arch))
    try:
        return subprocess.run([tool, "-c", f.name], capture_output=True, text=True,
                              check=True).stdout
    finally:
        os.unlink(f.name)


def sass(source, arch, tool):
    """``{kernel: SASS lines}`` of a module (its cubin disassembled)."""
    import re

    text = disassembly(source, arch, tool)
    out = {}
    for part in re.split(r"\n\s*\.text\.", text)[1:]:
        name = part.split(":")[0].strip()
        out[name] = [line for line in part.splitlines()
                     if re.match(r"\s+/\*[0-9a-f]{4,}\*/", line)]
    return out


def main(argv=None):
    """Print the table."""
    from stencilkit.backends import cuda_cpp

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="sm_90")
    ap.add_argument("--sass", action="store_true", help="SASS instruction counts (nvdisasm)")
    ap.add_argument("--dump", help="with --sass: write each module's SASS into this folder")
    args = ap.parse_args(argv)
    tool = nvdisasm() if args.sass else None
    if args.sass and tool is None:
        sys.exit("--sass needs nvdisasm: pip install nvidia-cuda-nvdisasm (or set SK_NVDISASM)")
    print(f"{'module / kernel':<58} {'regs':>4} {'thr/SM':>6} {'spill':>5} {'stack':>5} "
          f"{'smem':>6}" + ("  SASS: all, " + ", ".join(SASS_CLASSES) if tool else ""))
    for n, (what, source) in enumerate(modules()):
        print(what)
        code = sass(source, args.arch, tool) if tool else {}
        for name, r in cuda_cpp.resources(source, args.arch).items():
            threads = min(2048, 65536 // max(8, -(-r["registers"] // 8) * 8))
            extra = ""
            if name in code:
                lines = code[name]
                extra = f"  {len(lines)}, " + ", ".join(
                    str(sum(any(k in line for k in keys) for line in lines))
                    for keys in SASS_CLASSES.values())
            print(f"  {name:<56} {r['registers']:>4} {threads:>6} "
                  f"{r['spill_stores'] + r['spill_loads']:>5} {r['stack']:>5} {r['shared']:>6}"
                  + extra)
        if args.dump and code:
            os.makedirs(args.dump, exist_ok=True)
            with open(os.path.join(args.dump, f"{n:02d}.sass"), "w") as f:
                f.write(f"// {what}\n")
                for name, lines in code.items():
                    f.write(f"\n.{name}:\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
