"""Intrinsic metrics of one generated data set: what the data is like before any student learns from it.

The paper finds that a generator's own problem-solving score predicts the value of its data poorly
(R² ≈ 0.1 over 54 cells), while a few intrinsic features of the data relate to PGR. This module measures
those features once per data cell and keeps them beside the data as `<data cell>/intrinsic.json`, so the
sweep report can table them, run its PCA and regress PGR on them without computing anything again:

Each metric is one module with a `Metric` (agora/metrics/intrinsic/base.py) that owns its part of intrinsic.json's
spec, so a changed setting is a new measurement, never a stale cache hit. `intrinsic.metrics` selects them in order:
a name of `REGISTRY` or `package.module:OBJECT` for a user's own (README, "Extending Agora"). Agora's:

- `difficulty` of each instruction and `quality` of each response: 1-5 from an LLM judge (`generator@intrinsic.judge=`:
  gpt4o or prometheus2 as in the paper, or any generator option) with the per-domain score rubrics in `rubrics/`
  (a criterion, then one description per score, the structure of the original code's rubrics). The paper's
  judges get prometheus-eval's absolute-grading prompt (feedback, then "[RESULT] n"), and a reply without a
  score is asked again; the embedded smoke judge answers a digit under a grammar. The calls go through the
  generation engine, so they are cached per request, priced in a ledger and held under a dollar cap.
- `perplexity` of each response given its instruction under the base student, per example (the original
  code gave every item the batch mean), rendered and masked exactly as training renders it
  (agora/train/data.py), so only the response tokens and the end-of-turn token that closes them count.
- `diversity_instruction` / `diversity_response`: the mean pairwise cosine similarity of sentence embeddings,
  the paper's definition, so *higher means less diverse* (`intrinsic_embedder=`: stella as in the paper, or the
  packaged all-MiniLM-L6-v2 offline).
- `reward` (`intrinsic_reward=skywork` as in the paper; off by default): a sequence-classification reward model.

`intrinsic.json` = {"spec": what changes the numbers, "metrics": data-set means, "per_example": [...],
"summary": counts and cost}. A rerun whose spec matches reads it back and sends nothing.
"""
from __future__ import annotations

import importlib
import json
import logging
import os
from pathlib import Path

from omegaconf import DictConfig

from agora import AgoraError
from agora.metrics.intrinsic.base import FILENAME, VERSION, Measured, Metric
from agora.metrics.intrinsic.diversity import embed, embedder_path, mean_pairwise_cosine
from agora.metrics.intrinsic.judge import (ABSOLUTE_SYSTEM, ASPECTS, DIFFICULTY_TASK, DIGIT_SYSTEM, PARSERS, Grading,
                                           difficulty_task, grading_of, judge_messages, judge_scores, parse_result,
                                           parse_score, rubric)
from agora.metrics.intrinsic.perplexity import perplexities
from agora.metrics.intrinsic.reward import reward_scores
from agora.store import Store
from agora.tracking import Tracker

__all__ = ["ABSOLUTE_SYSTEM", "ASPECTS", "DIFFICULTY_TASK", "DIGIT_SYSTEM", "FILENAME", "METRICS", "PARSERS",
           "REGISTRY", "VERSION", "Grading", "Measured", "Metric", "compute", "difficulty_task", "embed", "embedder_path",
           "grading_of", "judge_messages", "judge_scores", "load", "mean_pairwise_cosine", "metrics_of", "parse_result",
           "parse_score", "perplexities", "read_rows", "reward_scores", "rubric", "run", "spec_of"]

log = logging.getLogger(__name__)

# Agora's metrics by name (their key in the spec); `intrinsic.metrics` lists the ones a run measures, in order.
REGISTRY = {"judge": "agora.metrics.intrinsic.judge:METRIC", "perplexity": "agora.metrics.intrinsic.perplexity:METRIC",
            "embedder": "agora.metrics.intrinsic.diversity:METRIC", "reward": "agora.metrics.intrinsic.reward:METRIC"}
METRICS = ("difficulty", "quality", "perplexity", "diversity_instruction", "diversity_response")  # + "reward"


def metrics_of(names: list[str]) -> list[Metric]:
    """The metrics `intrinsic.metrics` names: Agora's by name, a user's as `package.module:OBJECT`."""
    out = []
    for name in names:
        path = REGISTRY.get(name, name)
        module, _, obj = path.partition(":")
        if not obj:
            raise AgoraError(f"intrinsic.metrics: {name!r} is neither one of {sorted(REGISTRY)} nor "
                             "package.module:OBJECT")
        try:
            metric = getattr(importlib.import_module(module), obj)
        except (ImportError, AttributeError) as e:
            raise AgoraError(f"intrinsic.metrics: cannot load {path} ({e})") from None
        for attr in ("name", "spec", "check", "measure"):
            if not hasattr(metric, attr):
                raise AgoraError(f"intrinsic.metrics: {path} is not a Metric: it lacks `{attr}` "
                                 "(agora/metrics/intrinsic/base.py)")
        out.append(metric)
    names_ = [m.name for m in out]
    if len(set(names_)) != len(names_):
        raise AgoraError(f"intrinsic.metrics: two metrics share a name: {names_}")
    return out


def spec_of(cfg: DictConfig, data_key: str) -> dict:
    """Everything that changes the numbers, each metric's part under its name; concurrency, batch sizes, caps and
    devices do not."""
    return {"version": VERSION, "data_key": data_key,
            **{m.name: m.spec(cfg) for m in metrics_of(list(cfg.intrinsic.metrics))}}


def read_rows(data_dir: Path) -> list[dict]:
    """The kept rows of a data cell, with a message that names the file and line when one is unusable."""
    path = data_dir / "data.jsonl"
    if not path.is_file():
        raise AgoraError(f"no data.jsonl in data cell {data_dir}; regenerate it with generate.py for this cell")
    rows = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise AgoraError(f"{path}:{n} is not JSON ({e.msg}); the data cell is corrupt, delete {data_dir} "
                                 "and regenerate it") from None
            if not isinstance(row.get("instruction"), str) or not isinstance(row.get("response"), str):
                raise AgoraError(f"{path}:{n} lacks a string 'instruction' and 'response' (keys: {sorted(row)})")
            rows.append(row)
    if not rows:
        raise AgoraError(f"{path} has no rows; nothing to measure")
    return rows


def load(data_dir: Path) -> dict | None:
    """A stored intrinsic.json, or None when there is none or it cannot be read (it is then recomputed)."""
    path = Path(data_dir) / FILENAME
    if not path.is_file():
        return None
    try:
        stored = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        log.warning("%s is unreadable (%s); computing it again", path, e)
        return None
    if not isinstance(stored, dict) or not {"spec", "metrics", "per_example"} <= set(stored):
        log.warning("%s lacks spec/metrics/per_example; computing it again", path)
        return None
    return stored


def _write_atomic(path: Path, obj: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=1, ensure_ascii=False))
    os.replace(tmp, path)


def compute(cfg: DictConfig, store: Store, rows: list[dict], spec: dict) -> dict:
    """Every selected metric of `rows`, in order; the intrinsic.json object."""
    metrics: dict[str, float | None] = {}
    per_example = [{"id": r.get("id", n)} for n, r in enumerate(rows)]
    summary: dict = {"n": len(rows), "seconds": {}}
    for m in metrics_of(list(cfg.intrinsic.metrics)):
        if spec.get(m.name) is None:    # off for this config (intrinsic.reward.enabled=false)
            continue
        got = m.measure(cfg, store, rows)
        metrics.update(got.metrics)
        for k, values in got.per_example.items():
            for ex, v in zip(per_example, values):
                ex[k] = v
        summary.update(got.summary)
        summary["seconds"][f"{m.name}_s"] = round(got.seconds, 2)
    return {"spec": spec, "metrics": metrics, "per_example": per_example, "summary": summary}


def run(cfg: DictConfig, store: Store, data_dir: Path, tracker: Tracker) -> dict | None:
    """Measure the data cell at `data_dir` once (reusing its intrinsic.json when the spec matches) and log it.

    Returns the metrics, or None when `intrinsic.enabled` is false.
    """
    if not cfg.intrinsic.enabled:
        return None
    data_dir = Path(data_dir)
    manifest_path = data_dir / "manifest.json"
    if not manifest_path.is_file():
        raise AgoraError(f"{data_dir} is not a finished data cell (no manifest.json); regenerate it with generate.py")
    spec = spec_of(cfg, json.loads(manifest_path.read_text())["key"])
    stored = load(data_dir)
    if stored is not None and stored["spec"] == spec:
        print(f"intrinsic: cache hit {data_dir / FILENAME}")
        result, hit = stored, 1
    else:
        for m in metrics_of(list(cfg.intrinsic.metrics)):
            if spec.get(m.name) is not None:
                m.check(cfg)      # keys and settings, before any model loads or money is spent
        rows = read_rows(data_dir)
        result, hit = compute(cfg, store, rows, spec), 0
        _write_atomic(data_dir / FILENAME, result)
        s = result["summary"]
        if "judge_sent" in s:
            print(f"intrinsic: {len(rows)} rows judged by {s['judge']} ({s['judge_sent']} sent, "
                  f"{s['judge_unparsed']} unparsed, ${s['judge_spent_usd']:.4f}) -> {data_dir / FILENAME}")
    metrics = result["metrics"]
    print("intrinsic: " + ", ".join(f"{k} {v:.3f}" if v is not None else f"{k} n/a" for k, v in metrics.items()))
    logged = {f"intrinsic/{k}": v for k, v in metrics.items()}
    tracker.summary({**logged, "intrinsic/judge_cost_usd": result["summary"].get("judge_cost_usd", 0.0),
                     "intrinsic/cache_hit": hit})
    tracker.log({k: v for k, v in logged.items() if v is not None})
    if not hit:
        tracker.table("intrinsic/examples", result["per_example"][:100])
    return metrics
