"""A durable, append-only request cache: one JSON line per finished request, written as it lands.

After a crash or kill the same command reads it back and pays for nothing twice. Each record goes to
the kernel with one unbuffered `os.write` the moment its response lands, so a SIGKILL loses nothing
that finished; `fsync` runs at most every `fsync_interval_s` (and on close), so a power loss costs at
most that much. An fsync per line cost more than the rest of the request path together at 1,000 req/s.
A torn last line (the process died mid-write) is cut off on open, so appends stay well-formed.
Memory holds only each key's offset in the file, not the records: a paper-scale cache (50K responses of
a few thousand tokens) would otherwise sit in RAM whole; a hit reads its one line back from disk.
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from agora.store import digest

log = logging.getLogger(__name__)


def request_key(*, endpoint: str, model: str, messages: list[dict], sampling: dict,
                replicate: int | str) -> str:
    """Provider endpoint, model, messages, sampling settings and replicate index; nothing else."""
    return digest({"endpoint": endpoint, "model": model, "messages": messages, "sampling": sampling,
                   "replicate": replicate}, n=32)


class RequestCache:
    def __init__(self, path: Path, fsync_interval_s: float = 0.5):
        self.path = path
        self.fsync_interval_s = fsync_interval_s
        self._synced_at = time.monotonic()
        self.offsets: dict[str, int] = {}
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            self._load()
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._reader = open(path, "rb")

    def _load(self) -> None:
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            log.warning("request cache %s: dropping a torn last line (%d bytes) left by a crash",
                        self.path, len(data) - end)
            with open(self.path, "r+b") as f:
                f.truncate(end)
        offset = 0
        for n, line in enumerate(data[:end].split(b"\n")[:-1], 1):
            start, offset = offset, offset + len(line) + 1
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                log.warning("request cache %s:%d is not JSON; ignored (that request will be re-sent)", self.path, n)
                continue
            self.offsets[rec["key"]] = start

    def __contains__(self, key: str) -> bool:
        return key in self.offsets

    def keys(self):
        return self.offsets.keys()

    def get(self, key: str) -> dict | None:
        offset = self.offsets.get(key)
        if offset is None:
            return None
        self._reader.seek(offset)
        return json.loads(self._reader.readline())

    def put(self, record: dict) -> None:
        data = (json.dumps(record, ensure_ascii=False) + "\n").encode()
        n = os.write(self._fd, data)   # O_APPEND: lands at the true end, even with another writer on the file
        if n < len(data):
            raise OSError(f"request cache {self.path}: short write ({n} of {len(data)} bytes); disk full?")
        self.offsets[record["key"]] = os.lseek(self._fd, 0, os.SEEK_CUR) - n
        now = time.monotonic()
        if now - self._synced_at >= self.fsync_interval_s:
            os.fsync(self._fd)
            self._synced_at = now

    def close(self) -> None:
        if self._fd >= 0:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1
            self._reader.close()
