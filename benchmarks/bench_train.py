"""Student training throughput: Agora's `train_sft` against TRL's `SFTTrainer` (issue 5, "Must show").

Why this exists: issue 5 asks that Agora's SFT be at least as fast as TRL's in training tokens per second on the same
model, data, sequence length and hardware, with at most 5% of the positions fed to the model being padding, and
that the peak memory of both be shown. This script trains the smoke student (SmolLM2-135M-Instruct, fp32) on the
same GSM8K train rows, in the same order, for the same number of optimizer steps, under each configuration in turn:

  agora             agora.train.sft.train_sft, defaults (padding-free packing: a micro-batch is one row)
  trl               trl.SFTTrainer, its defaults for a conversational prompt/completion dataset: completion-only
                    loss, right padding to the longest example of the batch, its fused LM head and its
                    entropy/accuracy metrics
  trl-padding-free  the same with SFTConfig(padding_free=True, max_length=None): TRL's padding-free mode,
                    the closest match to Agora's packing (same examples per step, one row)
  trl-packing       (only when asked for) SFTConfig(packing=True): BFD packing into max_length rows; a step then
                    holds more examples than the others, so its order and token counts are not comparable
  agora-padded      (only when asked for) train_sft with pack=False (padded, length-grouped batches)

    python benchmarks/bench_train.py                              # 10 steps, batch 4, max_len 512, 2 rounds
    python benchmarks/bench_train.py --steps 4 --repeats 1        # smoke run (~3 min)
    python benchmarks/bench_train.py --configs agora trl agora-padded trl-packing

Held equal across configurations: the model folder, the rows and their order (every row fits max_len, so nothing
is dropped or cut; TRL's random sampler and the Trainer's are the same seeded sampler, and the script checks that
every step saw the same examples), the system prompt and chat template, max_len, per-device batch, accumulation 1,
steps, lr 1e-5 with a linear schedule and no warm-up, fp32 (TRL defaults to bf16, so it is set off), no gradient
checkpointing (TRL defaults it on; `--trl-gradient-checkpointing` keeps TRL's default), seed 42, 2 torch threads.

Every configuration runs in its own subprocess, so its peak RSS (VmHWM) is its own. The child wraps
`transformers.Trainer.training_step` and `Trainer.train` (both libraries run on them) to see each batch exactly as it
is fed to the model: positions = the numel of `input_ids`; tokens = the real tokens (attention-mask ones for padded
batches, the segment lengths for packed rows, where the position ids restart per example). Tokens/s is tokens over
the wall time of `Trainer.train()`, so model loading, tokenisation and saving are outside it; the steady figure
leaves the first step (warm-up) out too, and tokens per CPU-second (user + system, all threads, over `train()`) is
what a process that other jobs deschedule loses least of. Padding waste = 1 - tokens / positions.

On 2 cores a neighbour's CPU comes straight out of the figures, so the configurations are interleaved (A B C, then
C B A, ...), the Agora/alternative ratio is also given within each round, and the load average is recorded before
and after every run. On a quiet machine the default takes about 9 minutes (about 7 s a step); under a load of 5 on
2 cores, about 40.
"""
from __future__ import annotations

# Only the standard library at module level: the parent stays small and imports nothing heavy.
import argparse
import hashlib
import itertools
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "gsm8k" / "train.jsonl"
DEFAULT_MODEL_CACHE = Path.home() / ".cache" / "agora" / "bench-models"
CONFIGS = ("agora", "trl", "trl-padding-free", "trl-packing", "agora-padded")
DEFAULT_CONFIGS = CONFIGS[:3]
SYSTEM_PROMPT = "You are a helpful AI assistant."   # SFTConfig's default system prompt (the paper's)


# --------------------------------------------------------------------------------------------- child side

def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)   # all threads of this process
    return r.ru_utime + r.ru_stime


def _example_key(ids: list[int]) -> str:
    return hashlib.sha1(json.dumps(ids).encode()).hexdigest()[:10]


class Probe:
    """Wraps Trainer.training_step and Trainer.train: per-batch positions, real tokens, loss tokens, examples."""

    def __init__(self) -> None:
        self.steps: list[dict] = []
        self.train_wall = self.t_train0 = self.t_train1 = None
        self.hwm_after_train_mb = None

    def install(self) -> None:
        import torch
        import transformers

        probe, orig_step, orig_train = self, transformers.Trainer.training_step, transformers.Trainer.train

        def training_step(trainer, model, inputs, *args, **kwargs):
            t = time.perf_counter()
            ids = inputs["input_ids"]
            examples: list[list[int]] = []
            if "attention_mask" in inputs:            # padded: real tokens are the mask's ones (right padding)
                for row, mask in zip(ids.tolist(), inputs["attention_mask"].tolist()):
                    examples.append([x for x, m in zip(row, mask) if m])
            elif "position_ids" in inputs:            # packed: a new example wherever the position id restarts at 0
                pos = inputs["position_ids"][0]
                starts = (pos == 0).nonzero().flatten().tolist() + [pos.numel()]
                row = ids[0].tolist()
                examples = [row[a:b] for a, b in itertools.pairwise(starts)]
            else:
                examples = ids.tolist()
            loss = orig_step(trainer, model, inputs, *args, **kwargs)
            probe.steps.append({
                "t_start": t, "positions": int(ids.numel()), "shape": list(ids.shape),
                "tokens": sum(len(e) for e in examples), "loss_tokens": int((inputs["labels"] != -100).sum()),
                "examples": [_example_key(e) for e in examples], "loss": float(loss.detach().float()),
            })
            return loss

        def train(trainer, *args, **kwargs):
            probe.cpu0, probe.t_train0 = _cpu_s(), time.perf_counter()
            out = orig_train(trainer, *args, **kwargs)
            probe.t_train1, probe.cpu1 = time.perf_counter(), _cpu_s()
            probe.hwm_after_train_mb = _status_mb("VmHWM")
            probe.threads = torch.get_num_threads()
            return out

        transformers.Trainer.training_step = training_step
        transformers.Trainer.train = train

    def summary(self) -> dict:
        s = self.steps
        wall = self.t_train1 - self.t_train0
        tokens, positions = sum(x["tokens"] for x in s), sum(x["positions"] for x in s)
        steady_wall = self.t_train1 - s[1]["t_start"] if len(s) > 1 else float("nan")
        steady_tokens = sum(x["tokens"] for x in s[1:])
        step_s = [b["t_start"] - a["t_start"] for a, b in itertools.pairwise(s)] + [self.t_train1 - s[-1]["t_start"]]
        return {
            "steps": len(s), "train_wall_s": wall, "tokens": tokens, "positions": positions,
            "loss_tokens": sum(x["loss_tokens"] for x in s), "examples": sum(len(x["examples"]) for x in s),
            "tokens_per_s": tokens / wall, "steady_tokens_per_s": steady_tokens / steady_wall,
            "train_cpu_s": self.cpu1 - self.cpu0, "tokens_per_cpu_s": tokens / (self.cpu1 - self.cpu0),
            "padding_waste": 1 - tokens / positions, "step_s": step_s,
            "losses": [x["loss"] for x in s], "shapes": [x["shape"] for x in s],
            "order": [x["examples"] for x in s], "peak_rss_train_mb": self.hwm_after_train_mb,
            "threads": self.threads,
        }


def child_agora(a, rows: list[dict], work: Path, pack: bool) -> dict:
    from agora.train.sft import SFTConfig, train_sft

    cfg = SFTConfig(max_steps=a.steps, learning_rate=a.lr, per_device_batch_size=a.batch, grad_accum=1,
                    max_len=a.max_len, seed=a.seed, threads=a.threads, system_prompt=SYSTEM_PROMPT, pack=pack,
                    logging_steps=1)
    res = train_sft(a.model, rows, work / "out", cfg, work_dir=work / "ckpt")
    # What Agora itself reports, next to the probe's count (the Trainer's "non_padding" count of a packed row,
    # which has no attention mask, is input_ids != pad_token_id).
    return {"agora_reported_tokens": res.tokens_seen, "agora_reported_tokens_per_s": res.tokens_per_s,
            "train_loss": res.train_loss}


def child_trl(a, rows: list[dict], work: Path, mode: str) -> dict:
    import datasets
    import trl
    from trl import SFTConfig, SFTTrainer

    ds = datasets.Dataset.from_list([
        {"prompt": [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": r["instruction"]}],
         "completion": [{"role": "assistant", "content": r["response"]}]} for r in rows])
    kw: dict = {"max_length": a.max_len}
    if mode == "padding-free":
        kw = {"padding_free": True, "max_length": None}   # TRL: padding_free without packing needs max_length=None
    elif mode == "packing":
        kw = {"packing": True}
    args = SFTConfig(
        output_dir=str(work / "out"), max_steps=a.steps, per_device_train_batch_size=a.batch,
        gradient_accumulation_steps=1, learning_rate=a.lr, lr_scheduler_type="linear", warmup_steps=0,
        weight_decay=0.0, seed=a.seed, data_seed=a.seed, bf16=False,
        gradient_checkpointing=a.trl_gradient_checkpointing, report_to="none",
        save_strategy="no", use_cpu=True, dataloader_num_workers=0, **kw)
    trainer = SFTTrainer(model=a.model, args=args, train_dataset=ds)
    out = trainer.train()
    return {"train_loss": float(out.training_loss), "trl_version": trl.__version__,
            "trl_completion_only_loss": bool(trainer.completion_only_loss), "trl_padding_free": trainer.padding_free}


def child_main(a) -> None:
    import torch

    torch.set_num_threads(a.threads)
    rows = [json.loads(x) for x in Path(a.rows).read_text().splitlines()]
    work = Path(a.workdir)
    probe = Probe()
    probe.install()
    if a.child in ("agora", "agora-padded"):
        extra = child_agora(a, rows, work, pack=a.child == "agora")
    else:
        extra = child_trl(a, rows, work, {"trl": "padded", "trl-padding-free": "padding-free",
                                          "trl-packing": "packing"}[a.child])
    import transformers

    res = {**probe.summary(), **extra, "peak_rss_mb": _status_mb("VmHWM"), "torch": torch.__version__,
           "transformers": transformers.__version__}
    print("BENCH-RESULT " + json.dumps(res), flush=True)


def child_prepare(a) -> None:
    """Materialise the student and pick `steps x batch` rows that fit max_len under Agora's encoding."""
    from transformers import AutoTokenizer

    from agora.train.data import encode_example
    from agora.train.student import SMOLLM2_FILENAME, SMOLLM2_NAME, SMOLLM2_PACKAGE, materialize_student

    model = materialize_student("gguf_package", SMOLLM2_NAME, Path(a.model_cache), package=SMOLLM2_PACKAGE,
                                filename=SMOLLM2_FILENAME)
    tok = AutoTokenizer.from_pretrained(model)
    data = Path(a.data)
    if data.is_file():
        pool = [json.loads(x) for x in data.read_text().splitlines()]
        pool = [{"instruction": r["question"], "response": r["answer"]} for r in pool]
        source = f"GSM8K train ({data})"
    else:
        from agora.domains.math.synthetic import make_problems

        pool = [{"instruction": r["question"], "response": r["solution"]}
                for r in make_problems(4 * a.steps * a.batch + 64, "train", seed=a.seed)]
        source = "agora.domains.math.synthetic (embedded; GSM8K file not found)"
    random.Random(a.seed).shuffle(pool)
    need, rows, lengths = a.steps * a.batch, [], []
    for r in pool:
        ex = encode_example(tok, r["instruction"], r["response"], SYSTEM_PROMPT, a.max_len)
        if ex is not None:
            rows.append(r)
            lengths.append(len(ex["input_ids"]))
        if len(rows) == need:
            break
    Path(a.rows).write_text("".join(json.dumps(r) + "\n" for r in rows))
    print("BENCH-RESULT " + json.dumps({"model": str(model), "source": source, "n": len(rows), "lengths": lengths}),
          flush=True)


# -------------------------------------------------------------------------------------------- parent side

def run_child(a, child: str, workdir: Path, extra: list[str] = ()) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": str(a.threads), "MKL_NUM_THREADS": str(a.threads), "TOKENIZERS_PARALLELISM": "false",
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "disabled",
           "HF_DATASETS_CACHE": str(workdir / "hf-datasets")}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", child, "--workdir", str(workdir),
           "--steps", str(a.steps), "--batch", str(a.batch), "--max-len", str(a.max_len), "--lr", str(a.lr),
           "--seed", str(a.seed), "--threads", str(a.threads), "--rows", str(a.rows), "--model", str(a.model or ""),
           "--model-cache", str(a.model_cache), "--data", str(a.data), *extra]
    if a.trl_gradient_checkpointing:
        cmd.append("--trl-gradient-checkpointing")
    load0, t0 = os.getloadavg(), time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=workdir, timeout=a.child_timeout,
                       check=False)
    row = {"config": child, "loadavg_before": load0, "loadavg_after": os.getloadavg(),
           "process_wall_s": round(time.perf_counter() - t0, 1)}
    line = next((x for x in reversed(p.stdout.splitlines()) if x.startswith("BENCH-RESULT ")), None)
    if line is None:
        row["error"] = f"rc={p.returncode}: {(p.stderr or p.stdout)[-3000:]}"
    else:
        row.update(json.loads(line[len("BENCH-RESULT "):]))
    return row


def aggregate(runs: list[dict], configs: list[str], model_dir: str | None = None) -> dict:
    out = {}
    for c in configs:
        ok = [r for r in runs if r["config"] == c and "error" not in r]
        if not ok:
            continue
        out[c] = {
            "runs": len(ok),
            "tokens_per_s": statistics.median(r["tokens_per_s"] for r in ok),
            "tokens_per_s_each": [round(r["tokens_per_s"], 1) for r in ok],
            "steady_tokens_per_s": statistics.median(r["steady_tokens_per_s"] for r in ok),
            "tokens_per_cpu_s": statistics.median(r["tokens_per_cpu_s"] for r in ok),
            "padding_waste": ok[0]["padding_waste"], "tokens": ok[0]["tokens"], "positions": ok[0]["positions"],
            "loss_tokens": ok[0]["loss_tokens"], "examples": ok[0]["examples"],
            "s_per_step": statistics.median(r["train_wall_s"] / r["steps"] for r in ok),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in ok),
            "peak_rss_train_mb": max(r["peak_rss_train_mb"] for r in ok),
            "train_loss": statistics.median(r["train_loss"] for r in ok),
            "first_loss": ok[0]["losses"][0],
        }
        if model_dir:
            out[c]["analytic"] = analytic_gflop(model_dir, c, ok[0])
    return out


def analytic_gflop(model_dir: str, config: str, run: dict) -> dict:
    """Model FLOPs of a run (forward + backward = 3 x forward), from the shapes it fed, for a Llama-type config.

    Matmuls: every position goes through the body. Attention: with an explicit mask (a packed row's block-diagonal
    one, or a padding mask) sdpa has no causal skip, so a (B, L) batch costs B x L^2 per layer whatever the mask
    hides. LM head: transformers' own loss projects every position; TRL's fused head only those with a label.
    A model, not a measurement: it ignores elementwise work (norms, softmax, TRL's entropy and accuracy metrics).
    """
    c = json.loads((Path(model_dir) / "config.json").read_text())
    h, n, heads, d = c["hidden_size"], c["num_hidden_layers"], c["num_attention_heads"], c.get("head_dim")
    d = d or h // heads
    kv, inter, vocab = c.get("num_key_value_heads", heads), c["intermediate_size"], c["vocab_size"]
    per_token = n * (2 * h * heads * d + 2 * h * kv * d + 3 * h * inter)   # q, o; k, v; gate, up, down
    body = sum(2 * b * length * per_token for b, length in run["shapes"])
    attn = sum(n * b * 4 * length * length * heads * d for b, length in run["shapes"])
    head_positions = run["loss_tokens"] if config.startswith("trl") else run["positions"]
    head = 2 * h * vocab * head_positions
    total = 3 * (body + attn + head)
    return {"gflop": total / 1e9, "attention_share": 3 * attn / total, "lm_head_share": 3 * head / total,
            "tokens_per_tflop": run["tokens"] / (total / 1e12)}


def ratios(agg: dict, runs: list[dict], n_configs: int) -> list[dict]:
    """Agora over each alternative: medians over rounds, plus the ratio within each round (adjacent runs, so the
    same neighbours' load), and tokens per CPU-second, which a descheduled process loses less of than wall time."""
    out = []
    ag = agg.get("agora")
    rounds = [runs[i:i + n_configs] for i in range(0, len(runs), n_configs)]
    for alt in ("trl", "trl-padding-free", "trl-packing"):
        if ag and alt in agg:
            v = ag["tokens_per_s"] / agg[alt]["tokens_per_s"]
            per_round = []
            for rnd in rounds:
                x = next((r for r in rnd if r["config"] == "agora" and "tokens" in r), None)
                y = next((r for r in rnd if r["config"] == alt and "tokens" in r), None)
                if x and y:
                    per_round.append(round(x["tokens_per_s"] / y["tokens_per_s"], 3))
            out.append({"name": f"Agora tokens/s / {alt} tokens/s", "value": v, "target": 1.0, "met": v >= 1.0,
                        "per_round": per_round})
            v = ag["steady_tokens_per_s"] / agg[alt]["steady_tokens_per_s"]
            out.append({"name": f"  (steady, step 1 left out) / {alt}", "value": v, "target": None, "met": None})
            v = ag["tokens_per_cpu_s"] / agg[alt]["tokens_per_cpu_s"]
            out.append({"name": f"  (tokens per CPU-second) / {alt}", "value": v, "target": None, "met": None})
            if "analytic" in ag and "analytic" in agg[alt]:
                v = agg[alt]["analytic"]["gflop"] / ag["analytic"]["gflop"]
                out.append({"name": f"  (model FLOPs: {alt} / Agora, no contention)", "value": v, "target": None,
                            "met": None})
    if ag:
        out.append({"name": "Agora padding waste", "value": ag["padding_waste"], "target": 0.05,
                    "met": ag["padding_waste"] <= 0.05, "unit": "%"})
    for alt in ("trl", "trl-padding-free", "trl-packing", "agora-padded"):
        if alt in agg:
            out.append({"name": f"{alt} padding waste", "value": agg[alt]["padding_waste"], "target": None,
                        "met": None, "unit": "%"})
    return out


def _flat(order: list[list[str]]) -> list[str]:
    return sorted(k for step in order for k in step)


def order_check(runs: list[dict], configs: list[str]) -> dict:
    """Did every comparable configuration train on the same examples, batch for batch, in the same order?"""
    ref = next((r for r in runs if r["config"] == "agora" and "order" in r), None)
    if ref is None:
        return {}
    out = {}
    for c in configs:
        orders = [r["order"] for r in runs if r["config"] == c and "order" in r]
        if c == "agora":
            same = all(o == ref["order"] for o in orders)
            out[c] = f"{len(orders)} runs, {'identical' if same else 'DIFFERENT'} batches"
        elif c == "trl-packing":
            out[c] = "not comparable (packed to max_length rows: more examples per step)"
        elif not orders:
            out[c] = "no successful run"
        elif all(o == ref["order"] for o in orders):
            out[c] = "same examples, same batches, same order"
        elif all(_flat(o) == _flat(ref["order"]) for o in orders):
            out[c] = "same examples, different batches (length-grouped)"
        else:
            out[c] = "DIFFERENT examples"
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=10, help="optimizer steps per run (rows = steps x batch: one epoch)")
    p.add_argument("--batch", type=int, default=4, help="per-device batch")
    p.add_argument("--max-len", type=int, default=512)
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2, help="rounds over the configs (order alternates: ABC CBA ...)")
    p.add_argument("--configs", nargs="+", default=list(DEFAULT_CONFIGS), choices=CONFIGS)
    p.add_argument("--trl-gradient-checkpointing", action="store_true",
                   help="keep TRL's default gradient_checkpointing=True (default: off, like Agora)")
    p.add_argument("--data", default=str(DEFAULT_DATA), help="GSM8K train JSONL (embedded synthetic math if absent)")
    p.add_argument("--model-cache", default=str(DEFAULT_MODEL_CACHE))
    p.add_argument("--child-timeout", type=float, default=900)
    p.add_argument("--json", default=str(HERE / "results_train.json"), help="save every number here ('' to skip)")
    p.add_argument("--keep", action="store_true", help="keep the work dir")
    # child mode (internal)
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    p.add_argument("--rows", default=None, help=argparse.SUPPRESS)
    p.add_argument("--model", default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child == "prepare":
        child_prepare(a)
        return
    if a.child:
        child_main(a)
        return

    t_start = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="bench-train-"))
    a.rows = str(root / "rows.jsonl")
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs; {a.steps} steps, "
          f"batch {a.batch}, max_len {a.max_len}, lr {a.lr:g}, fp32, {a.threads} threads, seed {a.seed}", flush=True)
    prep = run_child(a, "prepare", root)
    if "error" in prep:
        raise SystemExit(f"prepare failed: {prep['error']}")
    a.model = prep["model"]
    lens = prep["lengths"]
    print(f"data: {prep['n']} rows from {prep['source']}; tokens per example min {min(lens)} / median "
          f"{statistics.median(lens):.0f} / max {max(lens)}; model {a.model}", flush=True)

    schedule = []
    for i in range(a.repeats):
        schedule += a.configs if i % 2 == 0 else a.configs[::-1]
    runs: list[dict] = []
    print(f"\n{'config':<17} {'tok/s':>7} {'steady':>7} {'tok/CPU-s':>9} {'s/step':>7} {'waste':>6} {'tokens':>7} "
          f"{'posns':>7} {'rss MB':>7} {'loss':>6} {'load before/after':>18}", flush=True)
    try:
        for c in schedule:
            wd = Path(tempfile.mkdtemp(prefix=f"{c}-", dir=root))
            r = run_child(a, c, wd)
            runs.append(r)
            lb, la = r["loadavg_before"][0], r["loadavg_after"][0]
            if "error" in r:
                print(f"{c:<17} FAILED {r['error'][-1500:]}", flush=True)
            else:
                print(f"{c:<17} {r['tokens_per_s']:>7.1f} {r['steady_tokens_per_s']:>7.1f} {r['tokens_per_cpu_s']:>9.2f} "
                      f"{r['train_wall_s'] / r['steps']:>7.2f} {100 * r['padding_waste']:>5.1f}% {r['tokens']:>7} "
                      f"{r['positions']:>7} {r['peak_rss_mb']:>7.0f} {r['train_loss']:>6.3f} "
                      f"{lb:>8.2f} / {la:<7.2f}", flush=True)
            shutil.rmtree(wd, ignore_errors=True)
    finally:
        agg = aggregate(runs, a.configs, a.model)
        rat = ratios(agg, runs, len(a.configs))
        order = order_check(runs, a.configs)
        loads = [x for r in runs for x in (r["loadavg_before"][0], r["loadavg_after"][0])]
        print(f"\nMedian over {a.repeats} round(s):")
        print(f"{'config':<17} {'tok/s':>7} {'steady':>7} {'tok/CPU-s':>9} {'s/step':>7} {'waste':>6} "
              f"{'peak RSS MB':>11}")
        for c, g in agg.items():
            print(f"{c:<17} {g['tokens_per_s']:>7.1f} {g['steady_tokens_per_s']:>7.1f} {g['tokens_per_cpu_s']:>9.2f} "
                  f"{g['s_per_step']:>7.2f} {100 * g['padding_waste']:>5.1f}% {g['peak_rss_mb']:>11.0f}")
        print("\nModel FLOPs of the same runs (forward + backward; see analytic_gflop):")
        for c, g in agg.items():
            m = g["analytic"]
            print(f"{c:<17} {m['gflop']:>8.0f} GFLOP  {m['tokens_per_tflop']:>6.1f} tokens/TFLOP  attention "
                  f"{100 * m['attention_share']:>4.1f}%  LM head {100 * m['lm_head_share']:>4.1f}%")
        print("\nRatios (same run):")
        for r in rat:
            v = f"{100 * r['value']:.1f}%" if r.get("unit") == "%" else f"{r['value']:.3f}x"
            t = "" if r["target"] is None else (f"target <= {100 * r['target']:.0f}%" if r.get("unit") == "%"
                                                else f"target >= {r['target']:.1f}x")
            rounds = f"  per round: {r['per_round']}" if r.get("per_round") else ""
            print(f"  {r['name']:<44} {v:>9}   {t:<16} {'' if r['met'] is None else 'MET' if r['met'] else 'NOT MET'}"
                  f"{rounds}")
        for c, v in order.items():
            print(f"  order, {c} vs agora: {v}")
        ag = next((r for r in runs if r["config"] == "agora" and "tokens" in r), None)
        if ag:
            print(f"  Agora's own count (SFTResult.tokens_seen): {ag['agora_reported_tokens']} vs {ag['tokens']} "
                  f"real tokens fed")
        if loads:
            print(f"  load average (1 min) over the runs: min {min(loads):.2f}, max {max(loads):.2f} "
                  f"on {os.cpu_count()} CPUs; total {time.perf_counter() - t_start:.0f} s")
        results = {
            "started": time.strftime("%Y-%m-%d %H:%M:%S"), "cpus": os.cpu_count(),
            "args": {k: v for k, v in vars(a).items() if k not in ("child", "workdir", "rows")},
            "data": {k: prep[k] for k in ("source", "n", "lengths")}, "loadavg_start": load,
            "loadavg_1min_range": [min(loads), max(loads)] if loads else None,
            "schedule": schedule, "summary": agg, "ratios": rat, "order_check": order,
            "runs": [{k: v for k, v in r.items() if k != "order"} for r in runs],
            "total_s": round(time.perf_counter() - t_start, 1),
        }
        if a.json:
            Path(a.json).write_text(json.dumps(results, indent=2) + "\n")
            print(f"\nsaved {a.json}")
        if not a.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
