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
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers.trainer_utils import get_last_checkpoint

from agora.chat import load_tokenizer
from agora.train.data import build_dataset, make_collator, pack_bins, split_validation

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
    lr_scheduler: str = "linear"  # any transformers SchedulerType, or "epoch_step": lr x lr_gamma after each epoch
    lr_gamma: float = 0.85  # "epoch_step" only: llama-recipes' StepLR(step_size=1 epoch, gamma=0.85)
    max_grad_norm: float = 1.0  # gradient clipping; 0 turns it off (llama-recipes' default: gradient_clipping=False)
    seed: int = 42
    bf16: bool = False  # bf16 autocast; on the CPU only when True
    system_prompt: str | None = "You are a helpful AI assistant."
    deepspeed: str | None = None  # path to a DeepSpeed JSON
    gradient_checkpointing: bool = False
    logging_steps: int = 1
    threads: int | None = None  # torch.set_num_threads; None leaves torch's default
    pack: bool = True  # padding-free packing (position ids restart per example); False: padded, length-grouped
    bin_tokens: int | None = None  # packed bins of this many tokens; per_device_batch_size then counts bins
    overlong: str = "drop"  # examples over max_len: "drop" or "truncate" (counted either way)
    val_fraction: float = 0.0  # held out of the training rows for the validation loss
    eval_steps: int = 0  # > 0: validation loss every eval_steps as well as at the end
    save_steps: int = 0  # > 0: a checkpoint every save_steps, resumed from after a crash
    chat_template: str | None = None  # a named template (agora.chat.CHAT_TEMPLATES); wins over the tokenizer's own


@dataclass
class SFTResult:
    out_dir: Path
    train_loss: float
    steps: int
    n_examples: int
    n_dropped: int
    seconds: float
    tokens_seen: int
    n_truncated: int = 0
    n_validation: int = 0
    eval_loss: float | None = None
    resumed_from: str | None = None
    tokens_per_s: float = 0.0
    tokens_per_step: float = 0.0  # trained tokens per optimizer step, all processes (the paper's: ~4x8x4x4096)
    n_bins: int = 0  # packed bins (bin_tokens), 0 without


class _ForwardLogs(TrainerCallback):
    """Hands each Trainer log dict (loss, learning_rate, grad_norm, eval_loss, ...) to `on_log`, on rank 0 only,
    with `tokens_per_s`: training tokens (padding excluded) per second since the previous log."""

    def __init__(self, sink: OnLog) -> None:
        self.sink = sink  # not `self.on_log`: that would shadow the callback method
        self.last: tuple[float, int] | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.last = (time.perf_counter(), state.num_input_tokens_seen)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any) -> None:
        if not (logs and state.is_world_process_zero):
            return
        numeric = {k: float(v) for k, v in logs.items() if isinstance(v, (int, float))}
        now, seen = time.perf_counter(), state.num_input_tokens_seen
        if self.last and "loss" in numeric and now > self.last[0]:
            numeric["tokens_per_s"] = (seen - self.last[1]) / (now - self.last[0])
            self.last = (now, seen)
        self.sink(numeric, state.global_step)


def train_sft(
    model_path: str | Path,
    rows: list[dict[str, Any]],
    out_dir: Path,
    cfg: SFTConfig,
    on_log: OnLog | None = None,
    work_dir: Path | None = None,
) -> SFTResult:
    """Fine-tune the model at `model_path` on `rows` and save it (with its tokenizer) to `out_dir`.

    `work_dir` holds the checkpoints; a rerun with the same `work_dir` resumes from the last one. It defaults to a
    hidden folder beside `out_dir`. Under DeepSpeed every rank calls this with the same arguments.
    """
    t0 = time.perf_counter()
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    out_dir = Path(out_dir)
    work_dir = Path(work_dir) if work_dir else out_dir.with_name(f".{out_dir.name}.work")
    # The student's chat format (agora/chat.py), the one evaluation and perplexity load too; saved with the model.
    tokenizer = load_tokenizer(model_path, cfg.chat_template)
    enc = build_dataset(tokenizer, rows, cfg.system_prompt, cfg.max_len, cfg.overlong)
    if enc.dropped_too_long:
        log.warning("dropped %d of %d examples longer than max_len=%d tokens", enc.dropped_too_long, len(rows),
                    cfg.max_len)
    if enc.truncated:
        log.warning("truncated %d of %d examples to max_len=%d tokens", enc.truncated, len(rows), cfg.max_len)
    if len(enc.dataset) == 0:
        raise ValueError(f"no SFT examples left: {len(rows)} rows, {enc.dropped_too_long} longer than "
                         f"max_len={cfg.max_len}")
    train_idx, val_idx = split_validation(len(enc.dataset), cfg.val_fraction, cfg.seed)
    train_set = enc.dataset.select(train_idx)
    val_set = enc.dataset.select(val_idx) if val_idx else None
    if cfg.bin_tokens:
        if not cfg.pack:
            raise ValueError("bin_tokens needs pack=True (bins are packed rows)")
        train_set = pack_bins(train_set, cfg.bin_tokens, cfg.seed)
    if not cfg.pack:
        train_set = train_set.add_column("length", [len(x) for x in train_set["input_ids"]])

    # fp32 master weights: bf16 is autocast only (cfg.bf16); pure-bf16 AdamW at lr 1e-5 loses updates.
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    model.config.use_cache = False   # training: no KV cache (transformers then reads packed position ids)

    args = TrainingArguments(**_training_kwargs(cfg, work_dir, has_eval=val_set is not None))
    trainer = _Trainer(
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=val_set,
        data_collator=make_collator(tokenizer, pack=cfg.pack),
        processing_class=tokenizer,
        callbacks=[_ForwardLogs(on_log)] if on_log else [],
    )
    trainer.epoch_gamma = cfg.lr_gamma if cfg.lr_scheduler == "epoch_step" else None
    resume = get_last_checkpoint(str(work_dir)) if work_dir.is_dir() else None
    log.info(
        "SFT: %d train + %d validation examples (%d dropped, %d truncated), %s, %d threads, on %s%s",
        len(train_set), len(val_idx), enc.dropped_too_long, enc.truncated, _budget(cfg), torch.get_num_threads(),
        args.device, f", resuming from {resume}" if resume else "",
    )
    t_train = time.perf_counter()
    out = trainer.train(resume_from_checkpoint=resume)
    train_s = time.perf_counter() - t_train
    eval_loss = None
    if val_set is not None:
        metrics = trainer.evaluate()
        eval_loss = float(metrics["eval_loss"])
    # Every rank calls this (ZeRO-3 gathers the 16-bit weights); rank 0 writes one consolidated HF folder.
    tmp_dir = out_dir.with_name(f".{out_dir.name}.partial")
    if trainer.is_world_process_zero():
        shutil.rmtree(tmp_dir, ignore_errors=True)
    trainer.save_model(str(tmp_dir))
    if trainer.is_world_process_zero():
        _swap_into_place(tmp_dir, out_dir)
        shutil.rmtree(work_dir, ignore_errors=True)   # the model is saved: its checkpoints are no longer needed

    tokens = int(trainer.state.num_input_tokens_seen)
    result = SFTResult(
        out_dir=out_dir,
        train_loss=float(out.training_loss),
        steps=int(out.global_step),
        n_examples=len(train_idx),
        n_dropped=enc.dropped_too_long,
        seconds=time.perf_counter() - t0,
        tokens_seen=tokens,
        n_truncated=enc.truncated,
        n_validation=len(val_idx),
        eval_loss=eval_loss,
        resumed_from=resume,
        tokens_per_s=tokens / train_s if train_s > 0 else 0.0,
        tokens_per_step=tokens / max(int(out.global_step), 1),
        n_bins=len(train_set) if cfg.bin_tokens else 0,
    )
    log.info("SFT done: %s", result)
    return result


class _Trainer(Trainer):
    """The Trainer plus one schedule it lacks: the paper's trainer (llama-recipes) multiplies the learning rate by
    `gamma` (0.85) after every epoch and has no warm-up. `epoch_gamma=None` leaves the Trainer's own schedules."""

    epoch_gamma: float | None = None

    def create_scheduler(self, num_training_steps: int, optimizer: Any = None) -> Any:
        if self.lr_scheduler is None and self.epoch_gamma is not None:
            from torch.optim.lr_scheduler import LambdaLR

            per_epoch = max(len(self.get_train_dataloader()) // self.args.gradient_accumulation_steps, 1)
            gamma = self.epoch_gamma
            self.lr_scheduler = LambdaLR(optimizer or self.optimizer, lambda step: gamma ** (step // per_epoch))
            self._created_lr_scheduler = True
        return super().create_scheduler(num_training_steps, optimizer)


def _training_kwargs(cfg: SFTConfig, output_dir: Path, has_eval: bool = False) -> dict[str, Any]:
    kw: dict[str, Any] = dict(
        output_dir=str(output_dir),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate,
        per_device_train_batch_size=cfg.per_device_batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,   # DeepSpeed's "gradient_clipping": "auto" takes this value too
        lr_scheduler_type="constant" if cfg.lr_scheduler == "epoch_step" else cfg.lr_scheduler,
        seed=cfg.seed,
        data_seed=cfg.seed,
        bf16=cfg.bf16,
        deepspeed=cfg.deepspeed,
        logging_steps=cfg.logging_steps,
        logging_first_step=True,
        report_to=[],  # the caller tracks through on_log
        save_strategy="steps" if cfg.save_steps > 0 else "no",
        save_steps=cfg.save_steps if cfg.save_steps > 0 else 500,
        save_total_limit=2,   # the last two: a kill during a save still leaves a whole one
        eval_strategy="steps" if has_eval and cfg.eval_steps > 0 else "no",
        eval_steps=cfg.eval_steps if cfg.eval_steps > 0 else None,
        per_device_eval_batch_size=cfg.per_device_batch_size,
        train_sampling_strategy="random" if cfg.pack else "group_by_length",
        use_cpu=not torch.cuda.is_available(),
        # Packed rows hold no padding but do hold the pad id (SmolLM2 pads with <|im_end|>, 3 per example), which
        # "non_padding" would count out; padded batches carry an attention mask, which "non_padding" counts.
        include_num_input_tokens_seen="all" if cfg.pack else "non_padding",
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
