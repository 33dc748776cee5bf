"""A durable, append-only request cache: one JSON line per finished request, fsynced as it lands.

After a crash or kill the same command reads it back and pays for nothing twice. A torn last line
(the process died mid-write) is cut off on open, so appends stay well-formed.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from agora.store import digest

log = logging.getLogger(__name__)


def request_key(*, endpoint: str, model: str, messages: list[dict], sampling: dict, replicate: int) -> str:
    """Provider endpoint, model, messages, sampling settings and replicate index; nothing else."""
    return digest({"endpoint": endpoint, "model": model, "messages": messages, "sampling": sampling,
                   "replicate": replicate}, n=32)


class RequestCache:
    def __init__(self, path: Path):
        self.path = path
        self.records: dict[str, dict] = {}
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            self._load()
        self._f = open(path, "a", encoding="utf-8")

    def _load(self) -> None:
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            log.warning("request cache %s: dropping a torn last line (%d bytes) left by a crash",
                        self.path, len(data) - end)
            with open(self.path, "r+b") as f:
                f.truncate(end)
        for n, line in enumerate(data[:end].splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                log.warning("request cache %s:%d is not JSON; ignored (that request will be re-sent)", self.path, n)
                continue
            self.records[rec["key"]] = rec

    def get(self, key: str) -> dict | None:
        return self.records.get(key)

    def put(self, record: dict) -> None:
        self._f.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())
        self.records[record["key"]] = record

    def close(self) -> None:
        self._f.close()
