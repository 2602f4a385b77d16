"""Across process boundaries: pickling, the on-disk cache, cold-cache races, cache fallbacks."""

import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from kernels import blend, sample, smooth

import stencilkit as sk

pytestmark = pytest.mark.slow

HERE = os.path.dirname(__file__)


def run_python(code, env=None, cwd=None, timeout=240):
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join([HERE, full_env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env=full_env, cwd=cwd, timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_pickle_round_trip_in_process():
    a = sample((5, 6), np.int8)
    clone = pickle.loads(pickle.dumps(smooth))
    assert clone.radius == smooth.radius and clone.signature == smooth.signature
    np.testing.assert_array_equal(clone(a), smooth(a))
    custom = sk.stencil(mode="constant", cval=7)(smooth.__wrapped__)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(custom))(a), custom(a))


def test_pickled_kernel_runs_in_a_fresh_process(tmp_path):
    a = sample((2, 5, 6), np.float64)
    (tmp_path / "k.pkl").write_bytes(pickle.dumps((blend, a)))
    out = run_python(f"""
        import pickle, numpy as np
        k, a = pickle.load(open({str(tmp_path / 'k.pkl')!r}, 'rb'))
        np.save({str(tmp_path / 'r.npy')!r}, k(a, a, 0.5, mode='wrap'))
        print(type(k).__name__)
    """)
    assert out.strip() == "Stencil"
    np.testing.assert_array_equal(np.load(tmp_path / "r.npy"), blend(a, a, 0.5, mode="wrap"))


def test_kernel_defined_in_main_crosses_processes(tmp_path):
    """A kernel from a __main__ script (a notebook, a dask job script) unpickles elsewhere."""
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(f"""
        import math, pickle
        import numpy as np
        import stencilkit as sk

        SCALE = 3

        @sk.stencil(mode="nearest")
        def grad(x):
            return math.sqrt((x[0, 1] - x[0, -1]) ** 2 + (x[1, 0] - x[-1, 0]) ** 2) * SCALE

        a = np.arange(30.0).reshape(5, 6) ** 1.5
        np.save({str(tmp_path / 'local.npy')!r}, grad(a))
        pickle.dump((grad, a), open({str(tmp_path / 'k.pkl')!r}, "wb"))
    """))
    subprocess.run([sys.executable, str(script)], check=True, timeout=240)
    run_python(f"""
        import pickle, numpy as np
        grad, a = pickle.load(open({str(tmp_path / 'k.pkl')!r}, 'rb'))
        np.save({str(tmp_path / 'remote.npy')!r}, grad(a))
    """)
    np.testing.assert_array_equal(np.load(tmp_path / "remote.npy"), np.load(tmp_path / "local.npy"))


CACHE_PROBE = """
    import numpy as np
    from kernels import smooth
    from stencilkit.backends import cpu
    a = np.arange(400, dtype=np.int16).reshape(20, 20)
    r = smooth(a, mode="wrap")
    m = cpu.module(smooth, False, False)
    s = m._sk_run_ser.stats
    print(len(s.cache_hits), len(s.cache_misses), int(r.sum()))
"""


def test_second_process_loads_from_the_disk_cache(tmp_path):
    env = {"STENCILKIT_CACHE_DIR": str(tmp_path / "cache")}
    hits1, misses1, sum1 = run_python(CACHE_PROBE, env).split()
    hits2, misses2, sum2 = run_python(CACHE_PROBE, env).split()
    assert (hits1, misses1) == ("0", "1")  # cold: compiled
    assert (hits2, misses2) == ("1", "0")  # warm: loaded, not recompiled
    assert sum1 == sum2
    assert any(p.suffix == ".nbi" for p in (tmp_path / "cache" / "__pycache__").iterdir())


def test_cold_cache_race_between_processes(tmp_path):
    """Several processes compiling the same kernel into an empty cache all succeed and agree."""
    env = {**os.environ, "STENCILKIT_CACHE_DIR": str(tmp_path / "cache"),
           "PYTHONPATH": HERE}
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(CACHE_PROBE)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    results = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [r[1] for r in results]
    assert len({r[0].split()[2] for r in results}) == 1
    assert len(list((tmp_path / "cache").glob("sk_*.py"))) == 1


def test_a_changed_conversion_helper_is_a_new_cache_entry(tmp_path, monkeypatch):
    """The generated modules call stencilkit._casts' jitted helpers, which numba's disk cache
    does not check: a changed _casts.py must not load machine code compiled before it."""
    from stencilkit.backends import cpu

    monkeypatch.setattr(cpu, "cache_dir", lambda: tmp_path)
    monkeypatch.setattr(cpu, "_MODULES", {})
    source = "import numpy as np\n"
    first = cpu.load_module(lambda cache: source, {})
    assert cpu.load_module(lambda cache: source, {}) is first
    monkeypatch.setattr(cpu, "_imported_digest", lambda: "a changed _casts.py")
    assert cpu.load_module(lambda cache: source, {}) is not first
    assert len(list(tmp_path.glob("sk_*.py"))) == 2


def test_unwritable_cache_dir_falls_back(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    out = run_python("""
        import numpy as np
        from stencilkit.backends import cpu
        from kernels import smooth
        print(cpu.cache_dir())
        print(int(smooth(np.ones((4, 4), np.int8)).sum()))
    """, env={"STENCILKIT_CACHE_DIR": str(blocker / "sub"),
              "XDG_CACHE_HOME": str(tmp_path / "xdg")})
    where, total = out.split()
    assert where == str(tmp_path / "xdg" / "stencilkit") and total == "16"


def test_no_writable_location_compiles_in_memory(tmp_path, monkeypatch):
    from stencilkit.backends import cpu

    monkeypatch.setattr(cpu, "cache_dir", lambda: None)
    monkeypatch.setattr(cpu, "_MODULES", {})

    @sk.stencil
    def in_memory(x):
        return x[0] - x[1]

    np.testing.assert_array_equal(in_memory(np.array([1, 4, 9])), [-3, -5, 0])


def test_import_does_not_pull_optional_stacks():
    out = run_python("""
        import sys
        import stencilkit
        print(sorted(m for m in ("dask", "distributed", "cupy", "numba.cuda")
                     if m in sys.modules))
    """)
    assert out.strip() == "[]"
