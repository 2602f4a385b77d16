"""dask.distributed with worker processes: kernels travel by source, survive a killed worker."""

import contextlib
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from kernels import blend, sample, smooth

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=":0", silence_logs=40)
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


def test_kernels_run_in_worker_processes(client):
    a = sample((30, 40), np.int16)
    b = sample((30, 40), np.int16, seed=1)
    x = da.from_array(a, chunks=(7, 9))
    y = da.from_array(b, chunks=(7, 9))
    pids = set(client.run(os.getpid).values())
    assert os.getpid() not in pids
    np.testing.assert_array_equal(client.compute(smooth(x, mode="wrap")).result(),
                                  smooth(a, mode="wrap"))
    np.testing.assert_array_equal(client.compute(blend(x, y, 3)).result(), blend(a, b, 3))


def test_generic_filter_runs_in_worker_processes(client):
    """generic_filter's function travels to the workers (a local function: cloudpickle takes
    it by value) and is compiled there; a numba function travels as itself."""
    import numba

    from stencilkit import filters

    def spread(values, weight):
        lo = values[0]
        hi = values[0]
        for v in values:
            lo = min(lo, v)
            hi = max(hi, v)
        return hi - lo + weight * values[0]

    a = sample((30, 40), np.float32)
    x = da.from_array(a, chunks=(7, 9))
    for fn in (spread, numba.njit(spread)):
        kw = {"size": (3, 2), "mode": "wrap", "extra_arguments": (0.5,)}
        np.testing.assert_array_equal(
            client.compute(filters.generic_filter(x, fn, **kw)).result(),
            filters.generic_filter(a, fn, **kw))
    # a C function's address means nothing in a worker process: the task says so
    from kernels import span_callable

    from stencilkit import StencilTypeError

    with pytest.raises(StencilTypeError, match="cannot run in another process"):
        client.compute(filters.generic_filter(x, span_callable(), size=3)).result()


def test_killed_worker_still_gives_the_exact_result(client):
    """Kill a worker process mid-computation: Dask reruns its tasks, the result is unchanged."""
    a = sample((64, 64), np.float64)
    x = da.from_array(a, chunks=(8, 8))

    def slow(block):
        time.sleep(0.05)
        return block

    y = smooth(x.map_blocks(slow, dtype=x.dtype, meta=np.empty((0, 0))), mode="reflect")
    future = client.compute(y)
    time.sleep(0.6)
    victim = next(iter(client.run(os.getpid).values()))
    assert not future.done()
    os.kill(victim, 9)
    np.testing.assert_array_equal(future.result(timeout=120), smooth(a, mode="reflect"))
    assert victim not in client.run(os.getpid).values()  # the worker was really replaced


SCRIPT = """
    import numpy as np
    import dask.array as da
    import distributed
    import stencilkit as sk

    GAIN = 2

    @sk.stencil(mode="nearest")
    def edge(x):
        return (x[0, 1] - x[0, -1]) * GAIN

    if __name__ == "__main__":
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      dashboard_address=":0", silence_logs=40) as cluster:
            with distributed.Client(cluster):
                a = np.arange(120, dtype=np.int32).reshape(10, 12) ** 2
                got = edge(da.from_array(a, chunks=(3, 5))).compute()
                assert np.array_equal(got, edge(a)), (got, edge(a))
                print("ok")
"""


def test_kernel_defined_in_a_main_script(tmp_path):
    """Workers rebuild a kernel from a __main__ script by its source (gufuncs cannot do this)."""
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(SCRIPT))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=240, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "ok"


def _poison(block):
    if (block == -7).any():
        os._exit(1)  # a crash that takes the worker process with it, like a segfault
    return block


def test_poison_chunk_fails_by_name_after_allowed_failures():
    """A chunk that kills every worker running it ends in KilledWorker naming its task."""
    with _cluster_with(allowed_failures=1) as c:
        a = sample((20, 20), np.int16)
        a[13, 13] = -7
        x = da.from_array(a, chunks=(10, 10)).map_blocks(_poison, dtype=a.dtype,
                                                           meta=np.empty((0, 0), a.dtype))
        future = c.compute(smooth(x))
        with pytest.raises(distributed.KilledWorker, match="_poison"):
            future.result(timeout=120)


@contextlib.contextmanager
def _cluster_with(allowed_failures):
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": allowed_failures}):
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      dashboard_address=":0", silence_logs=50) as cluster:
            with distributed.Client(cluster) as c:
                yield c
