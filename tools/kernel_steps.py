"""Instructions a generated kernel spends per output element, from its SASS, without a GPU.

The 8/16-bit 3 x 3 filters' kernels are bound by instruction issue more than by memory (a
uniform 3 x 3 uint8 filter's step took about 18 instructions per pixel, against a byte of
traffic each way), so their instruction count per output is a proxy worth tracking between
GPU sessions. For each call below the kernels it launches are caught (the tests' stand-in
CuPy: tests/cpp_host.py, launches run on the host), compiled by NVRTC for ``--arch`` (sm_90,
the H100's) and disassembled (``nvdisasm``: ``pip install nvidia-cuda-nvdisasm``, as for
``tools/kernel_resources.py --sass``). Each kernel's *step* is its innermost loop with the
most stores (the strip walk's unrolled rows); printed: its instructions, global loads and
stores, the output elements its stores write (by the stores' widths) and instructions per
output element.

    NUMBA_ENABLE_CUDASIM=1 python tools/kernel_steps.py [--only "uniform|sobel"]
        [--set _cpp_body.SHARE_ROWS=False]

A kernel without a loop (resampling's one output tile a thread) shows its whole body.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
sys.path.insert(0, os.path.dirname(__file__))

STORE_BYTES = {"U8": 1, "S8": 1, "U16": 2, "S16": 2, "64": 8, "128": 16}


def disassemble(source: str, arch: str, tool: str) -> dict:
    """``{kernel: [(label or None, instruction)]}`` of a module, labels kept."""
    from kernel_resources import disassembly

    text = disassembly(source, arch, tool)
    out = {}
    for part in re.split(r"\n\s*\.text\.", text)[1:]:
        name = part.split(":")[0].strip()
        rows, label = [], None
        for line in part.splitlines()[1:]:
            m = re.match(r"\s*\.(L_x_\d+):", line)
            if m:
                label = m.group(1)
                continue
            m = re.search(r"/\*[0-9a-f]{4,}\*/\s+(.*?)\s*;", line)
            if m:
                rows.append((label, m.group(1)))
                label = None
        out[name] = rows
    return out


def step(rows) -> list:
    """The instructions of the innermost loop that stores the most bytes.

    Innermost: no other loop's backward branch inside it (forward branches may be). Bytes,
    not stores: a strip walk that is not unrolled stores one word a row, fewer stores than a
    border loop's single bytes, but more outputs. The whole kernel where no loop stores
    anything.
    """
    at = {label: i for i, (label, _) in enumerate(rows) if label}
    edges = []  # (first, last) of each loop: a backward branch to a label
    for i, (_, ins) in enumerate(rows):
        m = re.search(r"\bBRA\b.*?\.(L_x_\d+)", ins)
        if m and at.get(m.group(1), i + 1) < i:  # (not the trailing BRA to itself)
            edges.append((at[m.group(1)], i))
    inner = [(a, b) for a, b in edges
             if not any(a <= c and d <= b and (c, d) != (a, b) for c, d in edges)]
    bodies = [[x for _, x in rows[a:b + 1]] for a, b in inner]
    best = max(bodies, key=lambda b: (outputs(b, 1), len(b)), default=None)
    if best is None or not any("STG" in x for x in best):
        return [x for _, x in rows]
    return best


def outputs(body, itemsize: int) -> int:
    """Output elements the global stores of ``body`` write (by each store's width)."""
    n = 0
    for ins in body:
        m = re.search(r"\bSTG\.E(?:\.(\w+))?", ins)
        if m:
            n += max(1, STORE_BYTES.get(m.group(1) or "", 4) // itemsize)
    return n


def calls(fake):
    """``[(name, output itemsize, call)]`` on stand-in CuPy arrays."""
    from filter_table import TABLE
    from kernels import diffuse, smooth

    from stencilkit import filters, resample

    rng = np.random.default_rng(0)
    out = []
    for dtype in (np.uint8, np.float32):
        x = fake.asarray((rng.random((256, 256)) * 200).astype(dtype))
        for e in TABLE:
            for params in e.params or ({},):
                label = " ".join(f"{k}={v.tolist() if isinstance(v, np.ndarray) else v}"
                                 for k, v in params.items())
                out.append((f"{e.name} {label} {np.dtype(dtype)}".replace("  ", " "),
                            np.dtype(dtype).itemsize,
                            lambda e=e, params=params, x=x: e.stencilkit(x, params)))
    f32 = fake.asarray(rng.random((256, 256)).astype(np.float32))
    i8 = fake.asarray(rng.integers(-128, 128, (256, 256)).astype(np.int8))
    u8 = fake.asarray(rng.integers(0, 256, (256, 256)).astype(np.uint8))
    out += [("uniform_filter size=5 uint8", 1, lambda: filters.uniform_filter(u8, 5)),
            ("heat step float32", 4, lambda: diffuse(f32, 0.1)),
            ("3 x 3 int8 mean (smooth)", 1, lambda: smooth(i8)),
            ("uniform_filter size=15 uint8", 1, lambda: filters.uniform_filter(u8, 15)),
            ("block_reduce 2 mean uint8", 1, lambda: resample.block_reduce(u8, 2)),
            ("pyramid_down uint8", 1, lambda: resample.pyramid_down(u8, 1))]
    return out


def main(argv=None):
    """Print each call's kernels' steps."""
    from kernel_resources import nvdisasm

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="sm_90")
    ap.add_argument("--only", help="the calls whose name contains one of these ('|' apart)")
    ap.add_argument("--set", action="append", default=[], metavar="MODULE.NAME=VALUE",
                    help="a stencilkit setting for the run, e.g. _cpp_body.SHARE_ROWS=False "
                         "(a Python literal; repeatable)")
    args = ap.parse_args(argv)
    import ast
    import importlib

    for setting in args.set:
        name, _, value = setting.partition("=")
        where, _, attr = name.strip().rpartition(".")
        module = importlib.import_module(f"stencilkit.{where}")
        if not hasattr(module, attr):
            sys.exit(f"--set {setting}: stencilkit.{where} has no setting {attr!r}")
        setattr(module, attr, ast.literal_eval(value.strip()))
    tool = nvdisasm()
    if tool is None:
        sys.exit("needs nvdisasm: pip install nvidia-cuda-nvdisasm (or set SK_NVDISASM)")
    import cpp_host

    from stencilkit.backends import cuda as cuda_backend
    from stencilkit.backends import cuda_cpp

    if not cuda_backend.simulated():
        sys.exit("run with NUMBA_ENABLE_CUDASIM=1 (the stand-in CuPy needs the simulator)")
    fake = cpp_host.FakeCupy()
    sys.modules.update({"cupy": fake, "cupy.cuda": fake.cuda,
                        "cupy.cuda.compiler": fake.cuda.compiler})
    cuda_cpp.available = lambda: (True, "a stand-in CuPy (kernel_steps)")
    seen = {}
    real = cuda_cpp.kernels

    def catching(mod, fastmath):
        seen.setdefault(mod.source, mod)
        return real(mod, fastmath)

    cuda_cpp.kernels = catching
    done = {}
    print(f"{'call / kernel':<60} {'step':>5} {'loads':>5} {'stores':>6} {'outputs':>7} "
          f"{'per output':>10}")
    for name, itemsize, fn in calls(fake):
        if args.only and not any(w in name for w in args.only.split("|")):
            continue
        seen.clear()
        fn()
        print(name, flush=True)
        for source in seen:
            if source not in done:
                done[source] = disassemble(source, args.arch, tool)
            for kname, rows in done[source].items():
                if kname.endswith(("_border", "_reset")) or kname.startswith("__"):
                    continue
                body = step(rows)
                n = outputs(body, itemsize)
                per = f"{len(body) / n:10.1f}" if n else f"{'':>10}"
                print(f"  {kname:<58} {len(body):>5} {sum('LDG' in x for x in body):>5} "
                      f"{sum('STG' in x for x in body):>6} {n:>7} {per}", flush=True)


if __name__ == "__main__":
    main()
