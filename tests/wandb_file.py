"""Read back what W&B wrote offline: the history rows of a run's `.wandb` file.

Why it exists: W&B drops some logged data on the client (a step lower than the run's current step is ignored with a
warning), so only the file shows what a run really holds. The file is W&B's 7-byte header then LevelDB-log
framing (32 KiB blocks; records of checksum, length, type: full, first, middle, last) around protobuf `Record`s.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Iterator

BLOCK = 32768


def records(path: Path) -> Iterator[bytes]:
    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        left = BLOCK - pos % BLOCK
        if left < 7:           # a block's tail too short for a header is padding
            pos += left
            continue
        _crc, n, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if n == 0 and kind == 0:
            pos += left
            continue
        chunk, pos = data[pos + 7:pos + 7 + n], pos + 7 + n
        if kind == 1:
            yield chunk
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:
            yield pending + chunk


def history(path: Path) -> list[dict]:
    """Every history row the run file holds, as {metric: value} (W&B's own `_step`, `_runtime`... included)."""
    from wandb.proto import wandb_internal_pb2 as pb

    rows = []
    for raw in records(path):
        r = pb.Record()
        r.ParseFromString(raw)
        if r.WhichOneof("record_type") == "history":
            rows.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item})
    return rows


def curve(rows: list[dict], prefix: str, name: str = "loss") -> list[tuple[int, float]]:
    """(step, value) of `prefix/name` against its own axis `prefix/step`."""
    return [(r[f"{prefix}/step"], r[f"{prefix}/{name}"]) for r in rows if f"{prefix}/{name}" in r]
