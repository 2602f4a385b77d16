"""The manifest of an output folder: which outputs are complete, from which input and operation.

One JSON line per completed output (``.stencilkit-manifest.jsonl``), appended, flushed and
fsynced as each file is done; a line cut short by a kill is ignored, so that output is redone.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

MANIFEST = ".stencilkit-manifest.jsonl"


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Manifest:
    """Completed outputs of earlier runs, appended one JSON line per output (fsynced)."""

    def __init__(self, outdir: Path):
        self.path = outdir / MANIFEST
        self.records = {}
        try:
            with open(self.path) as f:
                for line in f:
                    try:
                        rec = json.loads(line)
                        self.records[rec["output"]] = rec
                    except (ValueError, KeyError, TypeError):
                        continue  # a line cut short by a kill: that output is redone
        except FileNotFoundError:
            pass
        self._file = None

    def complete(self, job, operation: str) -> bool:
        """True when ``job``'s output exists as recorded, from this input and operation."""
        rec = self.records.get(Path(job.dst).name)
        dst = Path(job.dst)
        if rec is None or rec.get("operation") != operation or not dst.is_file():
            return False
        try:
            if dst.stat().st_size != rec.get("output_bytes"):
                return False
            return (_sha256_file(Path(job.src)) == rec.get("input_sha256")
                    and _sha256_file(dst) == rec.get("output_sha256"))
        except OSError:
            return False

    def add(self, job, res, operation: str) -> None:
        """Record a completed output (one line, flushed and fsynced)."""
        rec = {"output": Path(job.dst).name, "input": str(job.src),
               "input_sha256": res.input_sha256, "output_sha256": res.output_sha256,
               "output_bytes": res.written_bytes, "operation": operation}
        if self._file is None:
            self._file = open(self.path, "a")
        self._file.write(json.dumps(rec) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self):
        """Close the manifest file."""
        if self._file is not None:
            self._file.close()
            self._file = None
