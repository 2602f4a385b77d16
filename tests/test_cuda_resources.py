"""What ptxas gives each family of generated CUDA C++ kernels (tools/kernel_resources.py), no GPU.

NVRTC compiles each representative module to PTX and nvJitLink assembles it for an H100
(sm_90). Performance guards that need no GPU: no kernel spills registers to local memory (the
medians' window buffers are the only stack), the kernels that carry the work keep to
64 registers a thread (so that an SM holds at least 1024 threads), and shared memory stays
within the 48 KiB a block may have without opting in.
"""

import importlib.util
import os

import cpp_host
import pytest


def _tool(name="kernel_resources"):
    path = os.path.join(os.path.dirname(__file__), "..", "tools", f"{name}.py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _needs_nvjitlink():
    """Skip where NVRTC or nvJitLink (cuda-bindings, the test extra) cannot run."""
    cpp_host.needs_nvrtc()
    try:
        from cuda.bindings import nvjitlink, nvrtc

        nvrtc.nvrtcVersion()
        nvjitlink.version()
    except Exception as exc:
        pytest.skip(f"NVRTC or nvJitLink not available ({exc})")


def test_generated_kernels_fit_an_h100_without_spilling():
    _needs_nvjitlink()
    from stencilkit.backends import cuda_cpp

    seen = 0
    for what, source in _tool().modules():
        for name, r in cuda_cpp.resources(source, "sm_90").items():
            seen += 1
            where = f"{what}: {name} {r}"
            assert r["spill_stores"] == 0 and r["spill_loads"] == 0, where
            assert r["stack"] == 0 or "buffer" in what, where  # (the medians' gathers)
            assert r["shared"] <= 48 * 1024, where
            if not name.endswith("_border"):  # the kernels that carry the work
                # (the sweeps' interiors trade threads for loads: cuda_sep.columns_per_thread;
                # wide 8/16-bit extremes, two words a thread: cuda_minmax.units_for, 105 for
                # 15 x 15, faster on an H100 than one word at 68)
                most = {"sk_sep_interior": 80, "sk_sep_fused": 80, "sk_minmax_interior": 112,
                        "sk_minmax_fused": 112}.get(name, 64)
                assert 0 < r["registers"] <= most, where
    assert seen >= 15


def test_a_module_links_to_device_code_without_a_gpu():
    """``cuda_cpp.cubin``: the ELF that nvdisasm reads (``tools/kernel_resources.py --sass``)."""
    _needs_nvjitlink()
    from stencilkit.backends import cuda_cpp

    what, source = _tool().modules()[0]
    code = cuda_cpp.cubin(source, "sm_90")
    assert code[:4] == b"\x7fELF", what


def test_kernel_steps_reads_the_innermost_storing_loop():
    """tools/kernel_steps.py's reading of a disassembly: the innermost loop (a forward branch
    inside it allowed) that stores the most bytes, and the elements its stores write by
    width."""
    steps = _tool("kernel_steps")
    rows = [(None, "S2R R0, SR_TID.X"), ("L_x_1", "LDG.E R2, [R4.64]"),  # outer loop
            ("L_x_2", "LDG.E.CONSTANT R3, [R6.64]"), (None, "IADD3 R3, R3, R2, RZ"),
            (None, "@P0 BRA `(.L_x_3)"), (None, "STG.E [R8.64], R3"),
            ("L_x_3", "STG.E.U8 [R8.64+0x4], R3"), (None, "@P1 BRA `(.L_x_2)"),
            (None, "STG.E.64 [R8.64], R2"), (None, "@P2 BRA `(.L_x_1)"), (None, "EXIT"),
            ("L_x_4", "BRA `(.L_x_4)")]  # (the trailing branch to itself: no loop)
    body = steps.step(rows)
    assert body[0].startswith("LDG.E.CONSTANT") and body[-1] == "@P1 BRA `(.L_x_2)"
    assert steps.outputs(body, 1) == 5 and steps.outputs(body, 4) == 2  # (a word, a byte)
    assert len(steps.step([(None, "STG.E [R2.64], R0"), (None, "EXIT")])) == 2  # no loop
    rows = [("L_x_1", "STG.E.U8 [R2.64], R0"), (None, "STG.E.U8 [R2.64+0x1], R0"),
            (None, "@P0 BRA `(.L_x_1)"), ("L_x_2", "STG.E [R4.64], R1"),
            (None, "@P1 BRA `(.L_x_2)")]  # (two byte stores against one word store)
    assert steps.step(rows)[0] == "STG.E [R4.64], R1"


def test_host_time_probe_kernels_compile_with_nvrtc():
    """tools/host_time.py --arguments: its empty kernels, one parameter of each argument's
    C type, compile (a mismatch would read past an argument on the device)."""
    cpp_host.needs_nvrtc()
    import numpy as np

    from stencilkit.backends import cuda_cpp

    host_time = _tool("host_time")
    for types in ([np.int32] * 10, [np.int32, np.int64, np.uint8, np.float32, np.float64, int],
                  []):
        src = host_time.probe_source(types)
        assert src.count(",") == len(types) + 1
        assert ".entry probe(" in cuda_cpp.ptx(src, "compute_80")
