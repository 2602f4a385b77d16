#!/usr/bin/env bash
# One prepared run on a machine with an NVIDIA GPU: the real-GPU tests, then benchmarks/gpu.py,
# each under a timeout, everything written under $OUT (default: ./gpu-results). Sized to end
# well inside the 15 minutes a lent GPU machine gives (start-up included).
#
# That machine's image (numba 0.68, numba-cuda 0.30.4, CuPy 14.2, NumPy 2.5) needs NumPy < 2.5
# for numba-cuda and has no Dask: bring wheels first, on a machine with internet access:
#
#   echo /.whl/ >> .git/info/exclude
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .whl \
#       "numpy>=2.4,<2.5" dask partd locket
#
# then run this script there with the .whl folder carried along (`run` with carry: [".whl"]):
#
#   bash tools/gpu_check.sh
#
# Files: info.txt (what stencilkit found), tests.txt (pytest), bench.txt (the GPU table).
set -u
OUT=${OUT:-gpu-results}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --target .site .whl/*.whl
fi
export PYTHONPATH="$PWD/.site:$PWD" NUMBA_ENABLE_CUDASIM=0
{
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
    python3 - <<'EOF'
import numpy, numba
import stencilkit as sk
print("numpy", numpy.__version__, "numba", numba.__version__)
try:
    import cupy
    print("cupy", cupy.__version__, "nvrtc", cupy.cuda.nvrtc.getVersion())
except Exception as exc:
    print("cupy:", exc)
print(sk.cuda_available(explain=True))
EOF
} > "$OUT/info.txt" 2>&1
cat "$OUT/info.txt"

# The real-GPU tests (addopts cleared: the image may lack pytest-xdist). tests/test_cuda_cpp.py
# runs the C++ kernels on the host and is left to CI.
timeout 330 python3 -m pytest -o addopts="" -p no:cacheprovider -q -rfE --durations=10 \
    tests/test_gpu.py tests/test_cuda.py tests/test_cuda_filters.py tests/test_cuda_resample.py \
    > "$OUT/tests.txt" 2>&1
echo "pytest exit status $?" >> "$OUT/tests.txt"
tail -25 "$OUT/tests.txt"

timeout 270 python3 benchmarks/gpu.py --rounds 10 > "$OUT/bench.txt" 2>&1
echo "benchmark exit status $?" >> "$OUT/bench.txt"
cat "$OUT/bench.txt"
