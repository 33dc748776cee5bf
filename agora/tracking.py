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
    def curve(self, prefix: str, metrics: dict[str, Any], step: int) -> None: ...
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
    """The values of every environment variable that an option names as its key (`api_key_env` of the generator,
    the judge and the intrinsic judge, wherever it sits in the config)."""
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            env = node.get("api_key_env")
            if isinstance(env, str) and env and "${" not in env:
                names.add(env)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(OmegaConf.to_container(cfg, resolve=False))
    return {os.environ[n] for n in names if os.environ.get(n)}


class FileTracker:
    """Keeps the summary in `metrics.json` of the run folder; the base of both trackers. Every value logged
    through a tracker is scrubbed of `secrets` (an error text can quote a key back)."""

    def __init__(self, out_dir: Path, secrets: set[str] | None = None):
        self.out_dir = out_dir
        self.secrets = secrets or set()
        self.metrics: dict[str, Any] = {}

    def log(self, metrics: dict[str, Any], step: int | None = None) -> None:
        pass

    def curve(self, prefix: str, metrics: dict[str, Any], step: int) -> None:
        pass

    def summary(self, metrics: dict[str, Any]) -> None:
        metrics = scrub(metrics, self.secrets)
        self.metrics.update(metrics)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / "metrics.json").write_text(json.dumps(self.metrics, indent=2, sort_keys=True, default=str))

    def table(self, name: str, rows: list[dict]) -> None:
        pass

    def finish(self) -> None:
        pass


class WandbTracker(FileTracker):
    def __init__(self, out_dir: Path, run: Any, secrets: set[str] | None = None):
        super().__init__(out_dir, secrets)
        self.run = run
        self._curves: set[str] = set()

    def log(self, metrics: dict[str, Any], step: int | None = None) -> None:
        self.run.log(scrub(metrics, self.secrets), step=step)

    def curve(self, prefix: str, metrics: dict[str, Any], step: int) -> None:
        """`prefix/<name>` against its own x axis `prefix/step`. One job can log two training curves (the human_sft
        reference's, then the student's, each from step 1): on W&B's one run-wide step the second would be dropped
        as out of order."""
        if prefix not in self._curves:
            self.run.define_metric(f"{prefix}/step")
            self.run.define_metric(f"{prefix}/*", step_metric=f"{prefix}/step")
            self._curves.add(prefix)
        self.run.log(scrub({**metrics, f"{prefix}/step": step}, self.secrets))

    def summary(self, metrics: dict[str, Any]) -> None:
        super().summary(metrics)
        for k, v in scrub(metrics, self.secrets).items():
            self.run.summary[k] = v

    def table(self, name: str, rows: list[dict]) -> None:
        import wandb

        rows = scrub(rows, self.secrets)
        if rows:
            cols = list(rows[0])
            self.run.log({name: wandb.Table(columns=cols, data=[[r.get(c) for c in cols] for r in rows])})

    def finish(self) -> None:
        self.run.finish()


def start(cfg: DictConfig, *, stage: str, name: str, group: str | None, out_dir: Path) -> Tracker:
    t = cfg.tracking
    secrets = secret_values(cfg)
    if t.name == "none":
        return FileTracker(out_dir, secrets)
    if t.name != "wandb":
        raise ValueError(f"unknown tracking option {t.name!r}; known: ['none', 'wandb']")
    import wandb

    config = scrub(OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False), secrets)
    rank = int(os.environ.get("RANK", "0"))
    if rank != 0:
        return FileTracker(out_dir, secrets)
    out_dir.mkdir(parents=True, exist_ok=True)
    run = wandb.init(project=t.project, entity=t.entity, mode=t.mode, group=group, job_type=stage, name=name,
                     config=config, dir=str(out_dir), reinit="finish_previous",
                     settings=wandb.Settings(silent=True, console="off"))
    log.info("W&B run %s (%s) in %s", run.id, t.mode, out_dir / "wandb")
    return WandbTracker(out_dir, run, secrets)
