"""The report's rows: one per evaluated cell and train seed, recorded by evaluate.py and read back from a store or
a sweep folder, with the settings that tell runs apart (`group_key`, `differing_settings`).
"""
from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from agora.metrics import analysis
from agora.store import Store, digest


CELL = ["generator", "domain", "mode", "budget", "budget_n", "prompt_format", "train_seed", "reference_kind"]
# Settings that change with the train seed and nothing else: a cell's seeds differ here, and only here.
SEEDED = ("train.seed", "reference.key")
# Settings that follow from the domain (its benchmarks, data sources, judge, version and system prompt). They differ
# between domains by design, so they are compared within a domain only.
DOMAIN_SETTINGS = ("eval.benchmarks", "eval.sources", "eval.domain_version", "eval.judge", "train.system_prompt",
                   "reference.human")
COST = ["cost_usd", "input_tokens", "output_tokens", "kept", "dropped", "surplus", "failed"]
DEFAULT_BUDGETS_USD = (1.0, 10.0, 100.0, 1000.0)
PCA_COMPONENTS = 5   # the paper's choice


# ---------------------------------------------------------------- rows in
def record(store_root: Path, key: str, row: dict, run_dir: Path | None = None) -> Path:
    """Store one evaluated cell's row (agora/store.py `Store.record_result`)."""
    return Store(store_root).record_result(key, row, run_dir)


def hydra_run_dir() -> Path | None:
    """The current Hydra run folder, or None outside Hydra (a test calling `run(cfg)`)."""
    from hydra.core.hydra_config import HydraConfig

    try:
        return Path(HydraConfig.get().runtime.output_dir)
    except ValueError:
        return None


def in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    try:
        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:
        return False


def _data_dir(root: Path, row: dict) -> Path | None:
    """The cell's data folder: recorded in the row, or (rows from before it was) through the student's manifest."""
    if row.get("data_dir"):
        p = Path(row["data_dir"])
        return p if p.is_absolute() else root / p
    key, ref = row.get("result_key"), row.get("reference_kind")
    if not key or not ref:
        return None
    student = root / "students" / row["domain"] / row["mode"] / row["generator"] / key.removesuffix("-" + ref)
    try:
        return Path(json.loads((student / "manifest.json").read_text())["data"])
    except (OSError, KeyError, ValueError):
        return None


def enrich(row: dict, root: Path) -> dict:
    """Add the data cell's intrinsic metrics (if measured yet) and fill counts that older rows lack."""
    r = dict(row)
    data = _data_dir(root, r)
    r["intrinsic"] = {}
    if data is None:
        return r
    r["data_path"] = str(data)   # where `overlap` reads the data set's instructions
    if any(k not in r for k in COST):
        try:
            s = json.loads((data / "manifest.json").read_text())["summary"]
            for k in COST:
                r.setdefault(k, s.get(k))
            r.setdefault("budget_n", s.get("target"))
        except (OSError, KeyError, ValueError):
            pass
    r.setdefault("control", control_of(data))
    intrinsic = data / "intrinsic.json"
    if intrinsic.is_file():
        metrics = json.loads(intrinsic.read_text()).get("metrics", {})
        r["intrinsic"] = {k: float(v) for k, v in metrics.items()
                          if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
    return r


def control_of(data: Path) -> str | None:
    """A control data set (generator=human, human_corrupted) as a label with its corruption, e.g.
    `human_corrupted (shuffle 0.5)`; None for a generator's data. Controls are measured, never bought."""
    try:
        manifest = json.loads((data / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    control = manifest.get("spec", {}).get("control")
    if not control:
        return None
    name = manifest.get("summary", {}).get("control") or manifest.get("cell", {}).get("generator") or "control"
    c = control.get("corrupt")
    return f"{name} ({c['how']} {c['rate']:g})" if c else name


def load_store(root: Path) -> list[dict]:
    store = Store(root)
    return [enrich(r, store.root) for r in store.result_rows()]


def _job_order(p: Path) -> tuple:
    head = p.name.split("_", 1)[0]
    return (0, int(head), p.name) if head.isdigit() else (1, 0, p.name)


def load_sweep(sweep: Path) -> tuple[list[dict], list[dict]]:
    """The rows a multirun folder's jobs recorded, and the jobs that failed (their error.txt)."""
    rows, failed = [], []
    for job in sorted((p for p in Path(sweep).iterdir() if p.is_dir()), key=_job_order):
        if (job / "result.json").is_file():
            r = json.loads((job / "result.json").read_text())
            rows.append(enrich({**r, "job": job.name}, Path(r["store"])))
        elif (job / "error.txt").is_file():
            failed.append({"job": job.name, "error": (job / "error.txt").read_text().strip()})
    return rows, failed


# ---------------------------------------------------------------- settings
def flat_settings(settings: dict, prefix: str = "") -> dict[str, Any]:
    """A row's nested `settings` as dotted keys (`train.max_steps`); lists and scalars are the leaves."""
    out: dict[str, Any] = {}
    for k, v in settings.items():
        if isinstance(v, dict) and v:
            out.update(flat_settings(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _canon(v: Any) -> str:
    return json.dumps(v, sort_keys=True, default=str)


def _show(v: Any) -> str:
    return v if isinstance(v, str) else _canon(v)


def _domain_setting(key: str) -> bool:
    return any(key == d or key.startswith(d + ".") for d in DOMAIN_SETTINGS)


def seedless_settings(r: dict) -> dict[str, Any] | None:
    """The row's settings as dotted keys, less those that change with the train seed; None if it recorded none."""
    if r.get("settings") is None:
        return None
    return {k: v for k, v in flat_settings(r["settings"]).items() if k not in SEEDED}


def group_key(r: dict) -> str:
    """Rows with the same key differ in nothing but the train seed: the same cell, data and settings.

    Rows recorded before `settings` existed keep the `group` they recorded (or, older still, their cell and data).
    """
    s = seedless_settings(r)
    if s is None:
        return r.get("group") or digest({k: r.get(k) for k in (*CELL, "data_dir") if k != "train_seed"})
    return digest({"cell": {k: r.get(k) for k in CELL if k != "train_seed"},
                   "data": r.get("data_key") or r.get("data_dir"), "settings": s})


def differing_settings(items: list[tuple[str, dict[str, Any] | None]]) -> tuple[list[str], dict[str, list[str]]]:
    """The settings in which rows differ, from (domain, seedless settings) pairs.

    Returns the keys whose value is not the same in every row that has it, and, per domain, the domain's own
    settings (DOMAIN_SETTINGS) that differ among that domain's rows. Rows without settings take no part.
    """
    values: dict[tuple[str | None, str], set[str]] = defaultdict(set)
    for domain, f in items:
        for k, v in (f or {}).items():
            values[(domain if _domain_setting(k) else None, k)].add(_canon(v))
    shared = sorted({k for (d, k), vs in values.items() if d is None and len(vs) > 1})
    own: dict[str, list[str]] = defaultdict(list)
    for (d, k), vs in sorted(values.items(), key=lambda kv: str(kv[0])):
        if d is not None and len(vs) > 1:
            own[d].append(k)
    return shared, dict(own)


def settings_text(domain: str, f: dict[str, Any] | None, keys: tuple[list[str], dict[str, list[str]]],
                  shared_only: bool = False) -> str:
    """`k=v ...` for the differing settings this row has: empty when every row agrees."""
    shared, own = keys
    wanted = shared if shared_only else shared + own.get(domain, [])
    if not wanted:
        return ""
    if f is None:
        return "not recorded"
    return " ".join(f"{k}={_show(f[k])}" for k in wanted if k in f)


def undefined_of(r: dict) -> list[str]:
    """The run's benchmarks whose PGR is undefined (recorded, or read off its benchmarks)."""
    if r.get("pgr_undefined") is not None:
        return list(r["pgr_undefined"])
    return [b for b, s in r.get("benchmarks", {}).items() if s.get("pgr") is None]


def partial_of(r: dict) -> bool:
    """The run's domain PGR is a number that leaves out an undefined benchmark."""
    return r.get("pgr") is not None and bool(undefined_of(r))


def noise_of(s: dict) -> bool | None:
    """A benchmark's `gap_within_noise`: recorded, else from its problem count; None when neither is known."""
    if s.get("gap_within_noise") is not None:
        return bool(s["gap_within_noise"])
    if s.get("n") and s.get("base") is not None and s.get("reference") is not None:
        return analysis.gap_within_noise(s["base"], s["reference"], int(s["n"]))
    return None
