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


def _tool():
    path = os.path.join(os.path.dirname(__file__), "..", "tools", "kernel_resources.py")
    spec = importlib.util.spec_from_file_location("kernel_resources", path)
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
