"""Full supervised fine-tuning of a student on generated rows, with the transformers Trainer.

This is the paper's student-training step (Table 6: full fine-tuning, loss on response tokens
only) with plain typed arguments, so that Hydra stops at `agora.train.run(cfg)`. The Trainer
brings the loop, the LR schedule, gradient accumulation, bf16 autocast and the DeepSpeed ZeRO
integration; this module adds the data encoding, a hook that forwards each log dict to the
caller's tracker, and an atomic save so a crashed run never leaves a half-written model folder.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from agora.train.data import build_dataset, make_collator

log = logging.getLogger(__name__)

OnLog = Callable[[dict[str, float], int], None]


@dataclass
class SFTConfig:
    """Hyper-parameters of one fine-tune. The defaults are the paper's (Table 6), except max_len."""

    epochs: float = 5.0
    max_steps: int = -1  # > 0 overrides epochs
    learning_rate: float = 1e-5
    per_device_batch_size: int = 4
    grad_accum: int = 8
    max_len: int = 2048
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    lr_scheduler: str = "linear"
    seed: int = 42
    bf16: bool = False  # bf16 autocast; on the CPU only when True
    system_prompt: str | None = "You are a helpful AI assistant."
    deepspeed: str | None = None  # path to a DeepSpeed JSON
    gradient_checkpointing: bool = False
    logging_steps: int = 1
    threads: int | None = None  # torch.set_num_threads; None leaves torch's default


@dataclass
class SFTResult:
    out_dir: Path
    train_loss: float
    steps: int
    n_examples: int
    n_dropped: int
    seconds: float
    tokens_seen: int


class _ForwardLogs(TrainerCallback):
    """Hands each Trainer log dict (loss, learning_rate, grad_norm, epoch, ...) to `on_log`."""

    def __init__(self, sink: OnLog) -> None:
        self.sink = sink  # not `self.on_log`: that would shadow the callback method

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any) -> None:
        if logs and state.is_world_process_zero:
            numeric = {k: float(v) for k, v in logs.items() if isinstance(v, (int, float))}
            self.sink(numeric, state.global_step)


def train_sft(
    model_path: str | Path,
    rows: list[dict[str, Any]],
    out_dir: Path,
    cfg: SFTConfig,
    on_log: OnLog | None = None,
) -> SFTResult:
    """Fine-tune the model at `model_path` on `rows` and save it (with its tokenizer) to `out_dir`."""
    t0 = time.perf_counter()
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    out_dir = Path(out_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    dataset, n_dropped = build_dataset(tokenizer, rows, cfg.system_prompt, cfg.max_len)
    if n_dropped:
        log.warning("dropped %d of %d examples longer than max_len=%d tokens", n_dropped, len(rows), cfg.max_len)
    if len(dataset) == 0:
        raise ValueError(f"no SFT examples left: {len(rows)} rows, {n_dropped} longer than max_len={cfg.max_len}")

    # fp32 master weights: bf16 is autocast only (cfg.bf16); pure-bf16 AdamW at lr 1e-5 loses updates.
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    if cfg.gradient_checkpointing:
        model.config.use_cache = False

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = out_dir.with_name(f".{out_dir.name}.partial")
    args = TrainingArguments(**_training_kwargs(cfg, tmp_dir))
    if args.process_index == 0 and tmp_dir.exists():
        shutil.rmtree(tmp_dir)
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=make_collator(tokenizer),
        processing_class=tokenizer,
        callbacks=[_ForwardLogs(on_log)] if on_log else [],
    )
    log.info(
        "SFT: %d examples (%d dropped), %s, %d threads, on %s",
        len(dataset), n_dropped, _budget(cfg), torch.get_num_threads(), args.device,
    )
    out = trainer.train()
    # Every rank calls this (ZeRO-3 gathers the shards); rank 0 writes the model and tokenizer.
    trainer.save_model(str(tmp_dir))
    if trainer.is_world_process_zero():
        _swap_into_place(tmp_dir, out_dir)

    result = SFTResult(
        out_dir=out_dir,
        train_loss=float(out.training_loss),
        steps=int(out.global_step),
        n_examples=len(dataset),
        n_dropped=n_dropped,
        seconds=time.perf_counter() - t0,
        tokens_seen=int(trainer.state.num_input_tokens_seen),
    )
    log.info("SFT done: %s", result)
    return result


def _training_kwargs(cfg: SFTConfig, output_dir: Path) -> dict[str, Any]:
    kw: dict[str, Any] = dict(
        output_dir=str(output_dir),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate,
        per_device_train_batch_size=cfg.per_device_batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        weight_decay=cfg.weight_decay,
        lr_scheduler_type=cfg.lr_scheduler,
        seed=cfg.seed,
        bf16=cfg.bf16,
        deepspeed=cfg.deepspeed,
        logging_steps=cfg.logging_steps,
        logging_first_step=True,
        report_to=[],  # the caller tracks through on_log
        save_strategy="no",
        use_cpu=not torch.cuda.is_available(),
        include_num_input_tokens_seen="non_padding",
        dataloader_num_workers=0,
    )
    # transformers 5 folded warmup_ratio into warmup_steps (a float < 1 is a ratio) and renamed
    # gradient_checkpointing to activation_checkpointing; 4.x has only the old names.
    fields = {f.name for f in dataclasses.fields(TrainingArguments)}
    ckpt = "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"
    kw[ckpt] = cfg.gradient_checkpointing
    if "warmup_ratio" in fields:
        kw["warmup_ratio"] = cfg.warmup_ratio
    else:
        kw["warmup_steps"] = float(cfg.warmup_ratio)
    return kw


def _budget(cfg: SFTConfig) -> str:
    length = f"{cfg.max_steps} steps" if cfg.max_steps > 0 else f"{cfg.epochs:g} epochs"
    return f"{length} at batch {cfg.per_device_batch_size}x{cfg.grad_accum}, lr {cfg.learning_rate:g}"


def _swap_into_place(tmp_dir: Path, out_dir: Path) -> None:
    """Replace `out_dir` with `tmp_dir` in one rename; an old `out_dir` is moved aside first."""
    old = out_dir.with_name(f".{out_dir.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if out_dir.exists():
        os.replace(out_dir, old)
    os.replace(tmp_dir, out_dir)
    shutil.rmtree(old, ignore_errors=True)
