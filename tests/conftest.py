import os
import sys

# CUDA tests run everywhere: without a GPU, numba's CUDA simulator runs the generated kernels
# on the CPU (it must be chosen before numba is first imported). On a machine with a GPU,
# `NUMBA_ENABLE_CUDASIM=0 make test` runs the same tests on the device.
os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

sys.path.insert(0, os.path.dirname(__file__))
