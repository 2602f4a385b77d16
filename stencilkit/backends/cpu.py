"""CPU backend: load generated modules through numba's on-disk cache and run them.

numba caches a compiled function next to its source file and finds it again from the file's
path, modification time and the function's qualified name. A generated kernel therefore gets a
real file: ``<cache dir>/sk_<hash>.py``, where the hash covers the generated text and the numba
and Python versions, and the module is registered in ``sys.modules`` under a name derived from
the same hash (numba's cache cannot reload functions of an unregistered module). A file is only
ever written once, atomically (temporary name, then ``os.replace``), so processes racing on a
cold cache write identical bytes and never see a partial file, and a second process loads the
compiled machine code instead of recompiling.

The cache directory is the first writable one of ``$STENCILKIT_CACHE_DIR``,
``$XDG_CACHE_HOME/stencilkit`` (``~/.cache/stencilkit``) and ``<tmp>/stencilkit-<user>``; if none
is writable (or writing the module fails, e.g. on a full disk), kernels compile in memory without
a disk cache.
"""

from __future__ import annotations

import functools
import getpass
import hashlib
import importlib.util
import os
import sys
import tempfile
import threading
import types
from pathlib import Path

import numba

# Below this many output elements one thread is as fast as two: thread start-up costs about as
# much as the work. Measured for the 3 x 3 int8 mean (us, serial / parallel): 64^2 10.9 / 11.0,
# 128^2 16.1 / 13.5, 256^2 30.5 / 20.4, 1024^2 210 / 112.
PARALLEL_THRESHOLD = 1 << 14

# numba's default threading layer (workqueue) aborts the process when two threads launch
# parallel kernels at once (numba issue 9288). One launch at a time runs in parallel; a thread
# that finds the lock taken runs the serial twin of the same kernel, which gives bit-identical
# results (no cross-element reductions), so concurrent callers are safe whatever the layer.
_PARALLEL_LOCK = threading.Lock()


def _writable(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".probe-"):
            pass
        return True
    except OSError:
        return False


@functools.lru_cache(maxsize=None)
def cache_dir() -> Path | None:
    """The directory generated kernels and numba's cache live in, or None if none is writable."""
    candidates = []
    env = os.environ.get("STENCILKIT_CACHE_DIR")
    if env:
        candidates.append(Path(env))
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    candidates.append(Path(xdg) / "stencilkit")
    try:
        user = getpass.getuser()
    except Exception:  # no user name (some containers)
        user = str(os.getuid()) if hasattr(os, "getuid") else "user"
    candidates.append(Path(tempfile.gettempdir()) / f"stencilkit-{user}")
    for path in candidates:
        if _writable(path):
            return path
    return None


def _tolerate_cache_write_errors() -> None:
    """Let a compiled function run when numba cannot write it to its on-disk cache.

    numba saves each compiled function to its cache and lets an OSError from that write (a
    full disk, a file-size limit, a folder turned read-only) escape from the call that
    compiled it, so a batch job on a nearly full disk would fail every kernel's first call
    (found by the CLI's write-fault test). The code is compiled by then and correct; only the
    cache entry is lost, and the next process compiles again. numba does the same for spurious
    Windows errors (``_guard_against_spurious_io_errors``); this extends it to these errno
    values, everywhere numba caches, once.
    """
    import errno

    from numba.core import caching

    save = caching.Cache.save_overload
    if getattr(save, "_stencilkit", False):
        return
    tolerated = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS, errno.EACCES,
                 errno.EPERM}

    def save_overload(self, sig, data):
        try:
            save(self, sig, data)
        except OSError as exc:
            if exc.errno not in tolerated:
                raise

    save_overload._stencilkit = True
    caching.Cache.save_overload = save_overload


_tolerate_cache_write_errors()

_MODULES: dict[str, types.ModuleType] = {}
_MODULES_LOCK = threading.Lock()


def load_module(source_for_cache, namespace: dict) -> types.ModuleType:
    """Return the module of generated source, compiled lazily, cached on disk when possible.

    ``source_for_cache(cache: bool) -> str`` produces the module text with numba's ``cache``
    option on or off; ``namespace`` holds the kernel's resolved globals.
    """
    directory = cache_dir()
    source = source_for_cache(directory is not None)
    key = hashlib.sha256(
        "\n".join([source, numba.__version__, sys.version]).encode()
    ).hexdigest()[:24]
    with _MODULES_LOCK:
        module = _MODULES.get(key)
        if module is not None:
            return module
        modname = f"_stencilkit_generated_{key}"
        if directory is not None:
            path = directory / f"sk_{key}.py"
            try:
                _write_once(path, source)
            except OSError:  # cache folder full or unwritable now: compile in memory
                directory = None
                source = source_for_cache(False)
        if directory is not None:
            spec = importlib.util.spec_from_file_location(modname, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[modname] = module
            spec.loader.exec_module(module)
        else:
            module = types.ModuleType(modname)
            sys.modules[modname] = module
            exec(compile(source, f"<stencilkit {modname}>", "exec"), module.__dict__)
        module.__dict__.update(namespace)
        _MODULES[key] = module
        return module


def _write_once(path: Path, source: str) -> None:
    try:
        if path.read_text() == source:
            return
    except (OSError, UnicodeDecodeError):
        pass
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(source)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def run(module, arrays, out, params, mode, cval_acc, cval_out, acc_marker, parallel) -> None:
    """Run the compiled loop nest on ``(B, *core)`` arrays into ``out`` of the same shape."""
    if parallel and _PARALLEL_LOCK.acquire(blocking=False):
        try:
            module._sk_run_par(*arrays, out, mode, cval_acc, cval_out, acc_marker, *params)
        finally:
            _PARALLEL_LOCK.release()
        return
    module._sk_run_ser(*arrays, out, mode, cval_acc, cval_out, acc_marker, *params)
