"""The artifact store: every product lives under a key computed from the config that determines it.

- data key     = generator identity + domain + mode + budget + prompt format + seed + the template (version, sha256)
- student key  = data key + student + training settings
- eval key     = student key + benchmarks + inference settings

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
from typing import TYPE_CHECKING, Any, Iterator

from omegaconf import DictConfig, OmegaConf

from agora.hardware import resolve_bf16

if TYPE_CHECKING:
    from agora.modes import Template


def digest(obj: Any, n: int = 12) -> str:
    """A short stable hash of a JSON-able object (key order does not matter)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:n]


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


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


def data_spec(cfg: DictConfig, template: Template | None = None) -> dict:
    """Everything that changes the generated data. Concurrency, retries and caps do not. The meta-prompt counts by
    its content (sha256), not by its path: the same file anywhere is the same cell, an edited one a new cell.
    `template` is the cell's (`load_template`), loaded here when not given."""
    from agora import controls
    from agora.domains import get_domain
    from agora.modes import get_mode, load_template

    template = template or load_template(cfg.domain._target_, cfg.mode.name, cfg.mode.template)
    draws = get_domain(cfg.domain._target_)   # the themes and opening words drawn into the prompts

    g = cfg.generator
    # The constraint itself (a llama.cpp grammar), so that a changed grammar is a new cell rather than a stale hit.
    constraint = get_mode(cfg.mode.name).constraint(cfg.prompt_format.style, draws.ANSWER_GBNF) if g.constrain else None
    return {
        "generator": {"provider": g.provider, "model": g.model, "base_url": None if g.server else g.base_url,
                      "server": _plain(g.server), "sampling": _plain(g.sampling), "batch": g.batch,
                      "constrain": g.constrain, "constraint": constraint},
        "domain": {"name": cfg.domain.name, "version": cfg.domain.version},
        "seeds": _plain(cfg.domain_mode.seeds)[cfg.budget.data] if cfg.domain_mode is not None else None,
        "pool": _pool_spec(cfg),
        "sources": _plain(cfg.domain.sources),
        "mode": {**{k: v for k, v in _plain(cfg.mode).items() if k != "template"},
                 "template_version": template.version, "template_sha256": template.sha256,
                 "draws": digest([draws.THEMES, draws.OPENERS])},
        "budget": {"n": cfg.budget.n, "usd": cfg.budget.usd, "data": cfg.budget.data, "n_seeds": cfg.budget.n_seeds},
        "prompt_format": _plain(cfg.prompt_format),
        "seed": cfg.seed,
        "contamination": _plain(cfg.contamination) if cfg.contamination.drop else None,   # only if it changes data
        # A control's human data and its corruption (agora/controls.py); only there, so other keys stay as they were.
        **({"control": controls.spec(cfg)} if controls.is_control(cfg) else {}),
    }


def _pool_spec(cfg: DictConfig) -> dict | None:
    """The seed pool's identity: its filters (pool.VERSION), the seeded sample sizes, and the student-token limit
    with the student whose tokenizer applies it. The seed itself is `seed` in the spec."""
    from agora.domains import pool

    if cfg.domain_mode is None:
        return None
    dm = cfg.domain_mode
    limit = dm.max_seed_tokens
    return {"version": pool.VERSION, "sample": _plain(dm.sample), "max_seed_tokens": limit,
            "tokenizer": None if limit is None else {"student": cfg.student.name, "model_id": cfg.student.model_id,
                                                     "chat_template": cfg.student.chat_template,
                                                     "system": cfg.domain.system_prompt}}


def train_spec(cfg: DictConfig) -> dict:
    """The student and the training settings (threads and logging do not change the weights)."""
    # Threads, logging, checkpoint cadence and the process layout do not change the weights (a 2-process ZeRO-3
    # run matches one process to 1e-6; tests/test_distributed.py), so they are not part of the key.
    skip = ("threads", "logging_steps", "eval_steps", "save_steps", "launch")
    t = {k: v for k, v in _plain(cfg.train).items() if k not in skip}
    t["bf16"] = resolve_bf16(t["bf16"])   # what ran: `auto` is a different product on an AMX Xeon and an EPYC
    return {"student": _plain(cfg.student), "train": t, "system_prompt": cfg.domain.system_prompt,
            "deepspeed": cfg.deepspeed.config, "seed": cfg.train.seed}


def eval_spec(cfg: DictConfig, benchmarks: list[str]) -> dict:
    e = {k: v for k, v in _plain(cfg.eval).items() if k not in ("threads", "batch_size")}
    return {"benchmarks": benchmarks, "sources": {b: _plain(cfg.domain.sources).get(b) for b in benchmarks},
            "eval": e, "limit": cfg.budget.eval_limit, "domain_version": cfg.domain.version, "seed": cfg.seed}


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
