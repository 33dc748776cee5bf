"""The one place the three Hydra entrypoints share: start tracking, run the stage, turn user errors into one line."""
from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from agora import AgoraError, tracking
from agora.checks import check_cell
from agora.store import Cell

log = logging.getLogger("agora")
STAGES = {"generate": "agora.stages.generate", "train": "agora.stages.train", "evaluate": "agora.stages.evaluate"}
MAX_DIRNAME = 120   # a sweep job's folder name: file systems stop at 255 bytes, and ten overrides pass that


def short_dirname(overrides: str) -> str:
    """`hydra.job.override_dirname` as one safe folder name: no `/`, and long ones cut with a hash that keeps
    them distinct (`conf/agora.yaml`: `subdir: ${hydra.job.num}_${short_dirname:${hydra.job.override_dirname}}`)."""
    name = overrides.replace("/", "_")
    if len(name.encode()) <= MAX_DIRNAME:
        return name
    import hashlib

    return name.encode()[:MAX_DIRNAME - 9].decode(errors="ignore") + "-" + hashlib.sha1(name.encode()).hexdigest()[:8]


OmegaConf.register_new_resolver("short_dirname", short_dirname, replace=True)   # at import: before Hydra composes


def run_stage(cfg: DictConfig) -> float | None:
    stage = cfg.stage
    for noisy in ("httpx", "httpcore", "openai", "anthropic"):  # one line per request drowns the progress bar
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if stage not in STAGES:
        raise AgoraError(f"unknown stage {stage!r}; known: {sorted(STAGES)}")
    hc = HydraConfig.get()
    out_dir = Path(hc.runtime.output_dir)
    tracker = None
    try:
        check_cell(cfg)   # before tracking, a server or a cent: bad input is one line naming the option
        group = cfg.tracking.group
        if group is None and hc.mode == RunMode.MULTIRUN:
            group = Path(hc.sweep.dir).name
        cell = Cell.from_cfg(cfg)
        tracker = tracking.start(cfg, stage=stage, name=f"{stage}/{cell.name}", group=group, out_dir=out_dir)
        return importlib.import_module(STAGES[stage]).run(cfg, tracker)
    except AgoraError as e:
        log.error("%s", e)
        if tracker is not None:
            tracker.summary({"error": str(e)})
        if hc.mode == RunMode.MULTIRUN:   # one bad cell must not stop a sweep: record it and go on
            (out_dir / "error.txt").write_text(str(e) + "\n")
            print(f"agora {stage}: error in job {out_dir.name} (sweep goes on; {out_dir / 'error.txt'}): {e}",
                  file=sys.stderr)
            return None
        print(f"agora {stage}: error: {e}", file=sys.stderr)
        sys.exit(2)
    finally:
        if tracker is not None:
            tracker.finish()
