"""Hydra callbacks: when an `evaluate.py -m` sweep ends, build its report (registered under `hydra.callbacks`).

The report of the sweep's own cells goes beside its jobs (`multirun/evaluate/<date>/report/index.html`) and to a
W&B run of job_type `report` in the sweep's group; the report over the whole store is rebuilt in `<store>/report/`.
Sweeps of generate.py and train.py record no rows, so nothing happens for them.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


class SweepReport(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from agora import report

        if config.stage != "evaluate":
            return
        sweep = Path(config.hydra.sweep.dir).resolve()
        if not sweep.is_dir():
            log.warning("sweep report: no sweep folder %s; build it with python -m agora.report --sweep DIR", sweep)
            return
        t = OmegaConf.to_container(config.tracking, resolve=True)
        try:   # the cells are done and stored: a failing report is logged with its rebuild command, not raised
            tracker = report.start_tracker(t, name=f"report/{sweep.name}", group=t.get("group") or sweep.name,
                                           out_dir=sweep)
            try:
                index = report.build_sweep(sweep, tracker=tracker)
            finally:
                tracker.finish()
            store = report.build_store(Path(config.store_dir).expanduser().resolve())
        except Exception:
            log.exception("sweep report failed; rebuild it with: python -m agora.report --sweep %s", sweep)
            return
        if index is None:
            print(f"agora: no job of {sweep} recorded a result or an error; no sweep report (store report {store})")
        else:
            print(f"agora: sweep report {index} (store report {store})")
