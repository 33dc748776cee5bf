"""Stage 2: fine-tune the student on the cell's data. `python train.py [cell overrides]`.

Finds the cell's committed data (or says which command makes it), trains the human_sft reference once per domain and
student when the cell uses one, then the cell's student, through the training library (agora/train: the base
student's folder, loss-masked data, the Trainer, multi-process launches). Both are store products keyed by their data
and training settings, so a rerun is a cache hit and a crash resumes from the last checkpoint.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig, OmegaConf

from agora import AgoraError
from agora.hardware import resolve_bf16
from agora.store import Cell, Store, digest, read_jsonl, write_jsonl
from agora.specs import cell_template, data_spec, include_seeds, train_spec
from agora.tracking import Tracker

if TYPE_CHECKING:
    from agora.train.distributed import Launch

log = logging.getLogger(__name__)


def student_path(spec: DictConfig, store: Store) -> str:
    """The base student (or a reference checkpoint) as a loadable folder, converted once and cached."""
    from agora.train.student import student_folder

    return student_folder(spec, store.models_dir())


def data_dir(cfg: DictConfig, store: Store) -> Path:
    """The cell's generated data, or an error that gives the command that makes it."""
    from agora.stages import rerun_command
    cell = Cell.from_cfg(cfg)
    template = cell_template(cfg)
    path = store.data_dir(cell, digest(data_spec(cfg, template)))
    if not store.exists(path):
        raise AgoraError(f"no generated data for cell {cell.name} (looked in {path}); make it with: "
                         f"{rerun_command('generate')}")
    return path


def sft_config(cfg: DictConfig):
    from agora.train.sft import SFTConfig

    t = cfg.train
    ds = cfg.deepspeed.config
    if ds:
        ds = str(Path(__file__).resolve().parents[2] / ds) if not Path(ds).is_absolute() else ds
    return SFTConfig(epochs=t.epochs, max_steps=t.max_steps, learning_rate=t.learning_rate,
                     per_device_batch_size=t.per_device_batch_size, grad_accum=t.grad_accum, max_len=t.max_len,
                     warmup_ratio=t.warmup_ratio, weight_decay=t.weight_decay, lr_scheduler=t.lr_scheduler,
                     lr_gamma=t.lr_gamma, max_grad_norm=t.max_grad_norm, bin_tokens=t.bin_tokens,
                     seed=t.seed, bf16=resolve_bf16(t.bf16, deepspeed=bool(ds)), system_prompt=cfg.domain.system_prompt, deepspeed=ds,
                     gradient_checkpointing=t.gradient_checkpointing, logging_steps=t.logging_steps,
                     threads=t.threads, pack=t.pack, overlong=t.overlong, val_fraction=t.val_fraction,
                     eval_steps=t.eval_steps, save_steps=t.save_steps, chat_template=cfg.student.get("chat_template"))


def launch_of(cfg: DictConfig) -> "Launch | None":
    """The cell's process layout, or None to train in this process (one process and no DeepSpeed)."""
    from agora.train.distributed import Launch

    lc = cfg.train.launch
    launch = Launch(nproc_per_node=lc.nproc_per_node, nnodes=lc.nnodes, rdzv_endpoint=lc.rdzv_endpoint,
                    launcher=lc.launcher)
    if launch.nproc_per_node * launch.nnodes == 1 and not cfg.deepspeed.config:
        return None
    if launch.nnodes > 1 and not launch.rdzv_endpoint:
        raise AgoraError("train.launch.nnodes > 1 needs train.launch.rdzv_endpoint=HOST:PORT (node 0)")
    return launch


# The Trainer's log keys -> ours (train/lr). Its closing log's train_loss is the mean over the run: not a point of
# the loss curve at the last step (train/loss), so it gets a name of its own.
_RENAME = {"learning_rate": "lr", "train_loss": "mean_loss"}


def fit(cfg: DictConfig, store: Store, tracker: Tracker, rows: list[dict], out: Path, manifest: dict,
        prefix: str) -> dict:
    """Fine-tune the base student on `rows` into product folder `out` (its `model/` subfolder)."""
    import shutil

    from agora.train.distributed import run_job
    from agora.train.sft import train_sft

    history: list[dict] = []

    def on_log(m: dict, step: int) -> None:
        history.append({"step": step, **m})
        tracker.curve(prefix, {f"{prefix}/{_RENAME.get(k, k.removeprefix('train_'))}": v for k, v in m.items()}, step)

    base = student_path(cfg.student, store)
    work = out.with_name(f".{out.name}.work")   # checkpoints: stable across a crash, so a rerun resumes
    launch = launch_of(cfg)
    with store.write(out, manifest) as tmp:
        if launch is None:
            res = train_sft(base, rows, tmp / "model", sft_config(cfg), on_log=on_log, work_dir=work / "checkpoints")
        else:
            res = run_job(base, rows, tmp / "model", sft_config(cfg), work, launch, on_log=on_log)
        summary = {"loss": res.train_loss, "steps": res.steps, "examples": res.n_examples,
                   "validation_examples": res.n_validation, "eval_loss": res.eval_loss,
                   "dropped_too_long": res.n_dropped, "truncated": res.n_truncated, "seconds": round(res.seconds, 2),
                   "tokens": res.tokens_seen, "tokens_per_s": round(res.tokens_per_s, 1),
                   "tokens_per_step": round(res.tokens_per_step, 1), "bins": res.n_bins,
                   "resumed_from": res.resumed_from,
                   "processes": launch.nproc_per_node * launch.nnodes if launch else 1}
        manifest["summary"] = summary
        write_jsonl(tmp / "train_log.jsonl", history)   # the loss curve, kept with the model
    shutil.rmtree(work, ignore_errors=True)   # the product is committed: its checkpoints are no longer needed
    return summary


def reference_dir(cfg: DictConfig, store: Store) -> tuple[Path, dict]:
    """Where the human-data reference (reference=human_sft) lives, and the spec that keys it."""
    data = cfg.budget.data
    spec = {"kind": "human_sft", "human": list(cfg.domain.human[data]), "n": cfg.budget.n_seeds,
            "held_out": list(cfg.domain.benchmarks[data]),
            "sources": OmegaConf.to_container(cfg.domain.sources, resolve=True), **train_spec(cfg)}
    return store.reference_dir(cfg.domain.name, cfg.student.name, digest(spec)), spec


def reference_rows(cfg: DictConfig) -> list[dict]:
    """The rows reference=human_sft trains on: the domain's human data (MBPP train holds tasks that MBPP+ tests: held
    out there), the same rows in the same order as generator=human replays."""
    from agora.stages import human_rows

    return [{"instruction": r["question"], "response": r["solution"]} for r in human_rows(cfg)]


def train_reference(cfg: DictConfig, store: Store, tracker: Tracker) -> list[dict] | None:
    """reference=human_sft: the student fine-tuned on the domain's human-written data, shared by every cell. Returns
    the rows it trained on (None on a cache hit: nothing was read)."""
    out, spec = reference_dir(cfg, store)
    if store.exists(out):
        print(f"train: reference cache hit {out}")
        return None
    rows = reference_rows(cfg)
    summary = fit(cfg, store, tracker, rows, out, {"spec": spec}, prefix="train_reference")
    print(f"train: reference (human_sft, {len(rows)} rows) loss {summary['loss']:.4f} -> {out}")
    tracker.summary({f"train_reference/{k}": v for k, v in summary.items()})
    return rows


def twin(store: Store, ref_out: Path, out: Path, manifest: dict) -> dict:
    """Commit as the student the human_sft reference trained on exactly these rows with exactly these settings and
    seed (generator=human under reference=human_sft: the human control): the same inputs to the same training, so
    its weights, hard-linked, and its loss curve, with `twin_of` in the manifest. What still checks the control is
    that equality: rows that came back from the data store any different (order, text, one row more) train anew."""
    import os
    import shutil

    ref = json.loads((ref_out / "manifest.json").read_text())
    manifest = {**manifest, "twin_of": ref_out.name, "summary": {**ref["summary"], "twin_of": str(ref_out)}}

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:   # another file system, or links not allowed: a copy
            shutil.copy2(src, dst)

    with store.write(out, manifest) as tmp:
        shutil.copytree(ref_out / "model", tmp / "model", copy_function=link)
        shutil.copy2(ref_out / "train_log.jsonl", tmp / "train_log.jsonl")
    return manifest["summary"]


def training_rows(cfg: DictConfig, src: Path) -> tuple[list[dict], int]:
    """The cell's training rows, and how many of them are its data: the data, plus in instance generation its seeds
    (train.include_seeds), except for a control, whose seeds.jsonl holds the very human rows it replays (adding
    them would train on each twice)."""
    from agora.controls import is_control

    rows = [{"instruction": r["instruction"], "response": r["response"]} for r in read_jsonl(src / "data.jsonl")]
    if not rows:
        raise AgoraError(f"cell {Cell.from_cfg(cfg).name} kept 0 generated examples; see {src / 'dropped.jsonl'} "
                         "for why")
    n_data = len(rows)
    if cfg.mode.name == "instance_generation" and include_seeds(cfg) and not is_control(cfg.generator.provider):
        rows += [{"instruction": r["question"], "response": r["solution"]} for r in read_jsonl(src / "seeds.jsonl")]
    return rows, n_data


def run(cfg: DictConfig, tracker: Tracker) -> float | None:
    cell, store = Cell.from_cfg(cfg), Store(cfg.store_dir)
    src = data_dir(cfg, store)
    manifest = json.loads((src / "manifest.json").read_text())
    spec = {"data_key": manifest["key"], **train_spec(cfg)}
    out = store.student_dir(cell, digest(spec))
    ref_rows = train_reference(cfg, store, tracker) if cfg.reference.kind == "human_sft" else None
    if store.exists(out):
        summary = json.loads((out / "manifest.json").read_text())["summary"]
        print(f"train: cache hit {out}")
        tracker.summary({**{f"train/{k}": v for k, v in summary.items()}, "train/cache_hit": 1})
        return summary["loss"]
    rows, n_generated = training_rows(cfg, src)
    manifest = {"spec": spec, "data": str(src), "generated": n_generated}
    if cfg.reference.kind == "human_sft" and rows == (ref_rows or reference_rows(cfg)):
        summary = twin(store, reference_dir(cfg, store)[0], out, manifest)
        print(f"train {cell.name}: the reference's rows, settings and seed: its weights, not a second training "
              f"-> {out}")
        tracker.summary({**{f"train/{k}": v for k, v in summary.items()}, "train/cache_hit": 0, "train/twin": 1,
                         "train/generated_rows": n_generated})
        return summary["loss"]
    summary = fit(cfg, store, tracker, rows, out, manifest, prefix="train")
    print(f"train {cell.name}: {summary['steps']} steps on {len(rows)} rows ({n_generated} generated), "
          f"loss {summary['loss']:.4f}, {summary['seconds']:.0f} s -> {out}")
    tracker.summary({**{f"train/{k}": v for k, v in summary.items()}, "train/cache_hit": 0,
                     "train/generated_rows": n_generated})
    return summary["loss"]
