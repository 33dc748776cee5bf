"""The artifact store: every product lives under a key computed from the config that determines it.

- data key     = generator identity + domain + mode + budget + prompt format + seed + the template (version, sha256)
- student key  = data key + student + training settings
- eval key     = student key + benchmarks + inference settings

(the specs those keys hash are agora/specs.py's; this module only names, tests and commits product folders)

A product folder appears only once complete (written to a temporary sibling, then renamed), so a
folder that exists is a cache hit and a crash never leaves a half product behind.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from omegaconf import DictConfig



def digest(obj: Any, n: int = 12) -> str:
    """A short stable hash of a JSON-able object (key order does not matter)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:n]


@dataclass(frozen=True)
class Cell:
    """One cell of the grid, named by the options the user typed."""

    generator: str
    domain: str
    mode: str
    budget: str
    prompt_format: str

    @classmethod
    def from_cfg(cls, cfg: DictConfig) -> "Cell":
        return cls(cfg.generator.name, cfg.domain.name, cfg.mode.name, cfg.budget.name, cfg.prompt_format.name)

    @property
    def name(self) -> str:
        return f"{self.generator}-{self.domain}-{self.mode}-{self.prompt_format}-{self.budget}"


class Store:
    """Product folders under one root. `path_*` name them; `exists` is the cache test; `write` commits one."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser().resolve()

    def data_dir(self, cell: Cell, key: str) -> Path:
        return self.root / "data" / cell.domain / cell.mode / cell.generator / f"{cell.prompt_format}-{cell.budget}-{key}"

    def student_dir(self, cell: Cell, key: str) -> Path:
        return self.root / "students" / cell.domain / cell.mode / cell.generator / f"{cell.prompt_format}-{cell.budget}-{key}"

    def reference_dir(self, domain: str, name: str, key: str) -> Path:
        return self.root / "references" / domain / f"{name}-{key}"

    def eval_dir(self, kind: str, key: str) -> Path:
        return self.root / "evals" / kind / key

    def models_dir(self) -> Path:
        return self.root / "models"

    def requests_path(self, endpoint_key: str) -> Path:
        return self.root / "requests" / f"{endpoint_key}.jsonl"

    def results_dir(self) -> Path:
        return self.root / "results"

    def record_result(self, key: str, row: dict, run_dir: Path | None = None) -> Path:
        """Store one evaluated cell's result row (`results/<key>.json`, the sweep report's input); a copy in the Hydra
        run folder (`result.json`) lets a sweep find its own rows."""
        path = self.results_dir() / f"{key}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(row, indent=2, sort_keys=True, default=str))
        if run_dir is not None:
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "result.json").write_text(json.dumps({**row, "store": str(self.root), "result_key": key},
                                                            indent=2, sort_keys=True, default=str))
        return path

    def result_rows(self) -> list[dict]:
        """Every recorded result row, each with its `result_key`, in key order."""
        return [{**json.loads(p.read_text()), "result_key": p.stem} for p in sorted(self.results_dir().glob("*.json"))]

    @staticmethod
    def exists(product: Path) -> bool:
        return (product / "manifest.json").is_file()

    @staticmethod
    @contextmanager
    def write(product: Path, manifest: dict) -> Iterator[Path]:
        """Yield a temporary folder to fill; on success it becomes `product`, with `manifest.json` last."""
        product.parent.mkdir(parents=True, exist_ok=True)
        tmp = product.with_name(f".{product.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            yield tmp
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))
            if product.exists():
                shutil.rmtree(product)
            os.replace(tmp, product)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def read_jsonl(path: Path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
