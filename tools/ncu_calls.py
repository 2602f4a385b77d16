r"""One call of a named stencilkit GPU operation, for Nsight Compute (``ncu``) to profile.

``tools/gpu_check.sh`` runs it under ``ncu`` where the machine has it: the call once to
compile and warm up, then once more, whose launches ``ncu --launch-skip`` selects. Needs a GPU
and CuPy.

    ncu --kernel-name regex:sk_sep --launch-skip 1 --launch-count 1 \
        python3 tools/ncu_calls.py gaussian_f32
"""

from __future__ import annotations

import sys

import cupy as cp
import numpy as np

import stencilkit as sk
from stencilkit import filters


@sk.stencil(mode="skip")
def heat(u):
    """The 5-point heat step (as benchmarks/gpu.py)."""
    return u[0, 0] + np.float32(0.1) * (u[-1, 0] + u[1, 0] + u[0, -1] + u[0, 1]
                                        - np.float32(4) * u[0, 0])


def main(argv=None):
    """Run the named call twice (8192^2 data)."""
    name = (argv or sys.argv[1:] or ["gaussian_f32"])[0]
    rng = np.random.default_rng(0)
    f = cp.asarray(rng.standard_normal((8192, 8192)).astype(np.float32))
    u8 = cp.asarray(rng.integers(0, 255, (8192, 8192), dtype=np.uint8))
    calls = {
        "gaussian_f32": lambda: filters.gaussian_filter(f, 2.0),
        "uniform15_u8": lambda: filters.uniform_filter(u8, 15),
        "maximum3_u8": lambda: filters.maximum_filter(u8, 3),
        "heat_tiled": lambda: heat.iterate(f, steps=8),
    }
    for _ in range(2):
        calls[name]()
    cp.cuda.Device().synchronize()


if __name__ == "__main__":
    main()
