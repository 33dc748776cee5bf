"""W&B in one place: one run per stage per cell, grouped by sweep, offline by default, never a secret.

`start` returns a `Tracker`; `tracking=none` gives the no-op one. Metric names are `stage/name`
(`gen/cost_usd`, `train/loss`, `eval/synthetic_gsm/accuracy`, `pgr/math`). Every stage also
writes its summary to `metrics.json` in the Hydra run folder, W&B or not.
"""
from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Protocol

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)
_SECRET_KEY = re.compile(r"(api_?key|secret|token|password)$", re.I)


class Tracker(Protocol):
    def log(self, metrics: dict[str, Any], step: int | None = None) -> None: ...
    def summary(self, metrics: dict[str, Any]) -> None: ...
    def table(self, name: str, rows: list[dict]) -> None: ...
    def finish(self) -> None: ...


def scrub(obj: Any, secrets: set[str]) -> Any:
    """Drop fields that hold secrets and mask any secret value wherever it appears."""
    if isinstance(obj, dict):
        return {k: ("***" if _SECRET_KEY.search(str(k)) and v else scrub(v, secrets)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [scrub(v, secrets) for v in obj]
    if isinstance(obj, str):
        for s in secrets:
            obj = obj.replace(s, "***")
    return obj


def secret_values(cfg: DictConfig) -> set[str]:
    """The values of every environment variable a generator option names as its key."""
    env = cfg.generator.api_key_env
    return {os.environ[env]} if env and os.environ.get(env) else set()


class FileTracker:
    """Keeps the summary in `metrics.json` of the run folder; the base of both trackers."""

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self.metrics: dict[str, Any] = {}

    def log(self, metrics: dict[str, Any], step: int | None = None) -> None:
        pass

    def summary(self, metrics: dict[str, Any]) -> None:
        self.metrics.update(metrics)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / "metrics.json").write_text(json.dumps(self.metrics, indent=2, sort_keys=True, default=str))

    def table(self, name: str, rows: list[dict]) -> None:
        pass

    def finish(self) -> None:
        pass


class WandbTracker(FileTracker):
    def __init__(self, out_dir: Path, run: Any):
        super().__init__(out_dir)
        self.run = run

    def log(self, metrics: dict[str, Any], step: int | None = None) -> None:
        self.run.log(metrics, step=step)

    def summary(self, metrics: dict[str, Any]) -> None:
        super().summary(metrics)
        for k, v in metrics.items():
            self.run.summary[k] = v

    def table(self, name: str, rows: list[dict]) -> None:
        import wandb

        if rows:
            cols = list(rows[0])
            self.run.log({name: wandb.Table(columns=cols, data=[[r.get(c) for c in cols] for r in rows])})

    def finish(self) -> None:
        self.run.finish()


def start(cfg: DictConfig, *, stage: str, name: str, group: str | None, out_dir: Path) -> Tracker:
    t = cfg.tracking
    if t.name == "none":
        return FileTracker(out_dir)
    if t.name != "wandb":
        raise ValueError(f"unknown tracking option {t.name!r}; known: ['none', 'wandb']")
    import wandb

    config = scrub(OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False), secret_values(cfg))
    rank = int(os.environ.get("RANK", "0"))
    if rank != 0:
        return FileTracker(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    run = wandb.init(project=t.project, entity=t.entity, mode=t.mode, group=group, job_type=stage, name=name,
                     config=config, dir=str(out_dir), reinit="finish_previous",
                     settings=wandb.Settings(silent=True, console="off"))
    log.info("W&B run %s (%s) in %s", run.id, t.mode, out_dir / "wandb")
    return WandbTracker(out_dir, run)
