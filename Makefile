# Two commands do all the set-up on a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test asan bench compat lint clean

$(VENV)/.installed-test: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

$(VENV)/.installed-bench: $(VENV)/.installed-test
	$(PY) -m pip install --quiet -e '.[test,bench]'
	touch $@

demo: $(VENV)/.installed-test
	$(VENV)/bin/stencilkit demo

test: $(VENV)/.installed-test
	$(PY) -m pytest

# the generated CUDA C++ run on the host (tests/cpp_host.py) under AddressSanitizer: a read or
# write outside the arrays, an illegal address on the device, stops the run with a report
# (not in `make test`: every module is built again, instrumented)
asan: $(VENV)/.installed-test
	STENCILKIT_HOST_ASAN=1 ASAN_OPTIONS=detect_leaks=0 \
	LD_PRELOAD=$$($(CXX) -print-file-name=libasan.so) $(PY) -m pytest tests/test_cuda_*.py

# scipy's own test_filters.py and dask-image's ndfilters tests with stencilkit's filters swapped
# in; fails on any failure that compat/differences_*.tsv does not document (not in `make test`:
# the first run compiles several hundred kernels)
compat: $(VENV)/.installed-test
	$(PY) compat/run.py --install -n auto

bench: $(VENV)/.installed-bench
	$(VENV)/bin/stencilkit bench

lint: $(VENV)/.installed-test
	$(PY) -m pip install --quiet ruff
	$(PY) -m ruff check stencilkit tests benchmarks tools compat

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info .compat
