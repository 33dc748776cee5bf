"""`experiment=agorabench` composes the paper's protocol (REFERENCE.md) in one override, for all three stages."""
from __future__ import annotations

import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from conftest import ROOT, compose_cfg

PAPER_PRICES = {   # REFERENCE.md, Table 2: USD per 1M tokens in / out
    "gpt4o": (2.50, 10.00), "gpt4o_mini": (0.15, 0.60), "claude35_sonnet": (3.00, 15.00),
    "llama31_405b": (1.79, 1.79), "llama31_70b": (0.35, 0.40), "llama31_8b": (0.055, 0.055),
}


@pytest.fixture(scope="module", params=["generate", "train", "evaluate"])
def cfg(request):
    return compose_cfg(request.param, ["experiment=agorabench"])


def test_student_reference_and_chat_format(cfg):
    assert cfg.student.model_id == "meta-llama/Llama-3.1-8B" and cfg.student.chat_template == "llama3"
    assert cfg.reference.kind == "checkpoint" and cfg.reference.model_id == "meta-llama/Llama-3.1-8B-Instruct"
    for d in ("math", "code", "instruction_following"):
        dom = compose_cfg("train", ["experiment=agorabench", f"domain={d}"]).domain
        assert dom.system_prompt == "You are a helpful AI assistant."


def test_volume_and_data(cfg):
    assert cfg.budget.n == 10_000 and cfg.budget.data == "hub" and cfg.prompt_format.name == "free_form"


def test_sft_recipe_table6(cfg):
    t = cfg.train
    assert (t.epochs, t.learning_rate, t.per_device_batch_size, t.grad_accum, t.max_len, t.bf16, t.seed) == \
        (5, 1e-5, 4, 8, 4096, True, 42)
    assert t.launch.nproc_per_node == 4 and cfg.deepspeed.config   # 4 GPUs, sharded (ZeRO for FSDP)
    # llama-recipes packs 4,096-token bins: 4 x 8 x 4 x 4096 tokens a step, lr x 0.85 an epoch, no warm-up
    assert t.bin_tokens == 4096 and t.pack and t.lr_scheduler == "epoch_step" and t.lr_gamma == 0.85
    assert t.warmup_ratio == 0 and t.weight_decay == 0
    assert t.per_device_batch_size * t.grad_accum * t.launch.nproc_per_node * t.bin_tokens == 524_288
    assert t.val_fraction == 0 and t.include_seeds   # nothing held out; IG trains on its seeds too


def test_evaluation_settings(cfg):
    e = cfg.eval
    assert (e.max_new_tokens, e.top_p, e.repetition_penalty, e.base_fewshot) == (1024, 0.95, 1.03, 3)


def test_generator_sampling_and_prices():
    for name, (pin, pout) in PAPER_PRICES.items():
        g = compose_cfg("generate", ["experiment=agorabench", f"generator={name}"]).generator
        s = g.sampling
        assert (s.temperature, s.top_p, s.max_tokens, list(s.stop)) == (1.0, 0.9, 4096, ["[END]"]), name
        assert (g.price_usd_per_mtok.input, g.price_usd_per_mtok.output) == (pin, pout), name


def test_generation_protocol(cfg):
    assert cfg.budget.max_attempts_factor == 10   # the original tries an instruction 10 times, then drops it
    assert cfg.mode.template is None and cfg.prompt_format.response_format is None   # no file override, no enforcing
    assert cfg.mode.prompts == "original"   # the original's meta-prompts and system message (tests/test_original_prompts)
    ig = compose_cfg("generate", ["experiment=agorabench", "mode=instance_generation"])
    assert (ig.mode.n_demos, ig.mode.demos_from_generations) == (3, 1)   # 2 seeds + 1 earlier generation
    assert ig.domain_mode.max_seed_tokens == 4096
    for d, src in (("math", "magpie_math"), ("code", "magpie_code"), ("instruction_following", "magpie_pro")):
        rg = compose_cfg("generate", ["experiment=agorabench", f"domain={d}", "mode=response_generation"])
        assert rg.domain_mode.sample[src] == 10_000


def test_judges_and_intrinsic_models(cfg):
    assert cfg.judge.model == "gpt-4-1106-preview"   # AlpacaEval 2.0 / Arena-Hard's own annotator
    assert cfg.intrinsic.enabled and cfg.intrinsic.judge.model.startswith("gpt-4o")
    assert "stella_en_400M_v5" in cfg.intrinsic.embedder.model_id
    assert "Skywork-Reward-Llama-3.1-8B" in cfg.intrinsic.reward.model_id and cfg.intrinsic.reward.enabled


def test_paper_benchmarks():
    code = compose_cfg("evaluate", ["experiment=agorabench", "domain=code"]).domain.benchmarks.hub
    inst = compose_cfg("evaluate", ["experiment=agorabench", "domain=instruction_following"]).domain.benchmarks.hub
    math = compose_cfg("evaluate", ["experiment=agorabench", "domain=math"]).domain.benchmarks.hub
    assert set(code) == {"humaneval_plus", "mbpp_plus"} and set(inst) == {"alpaca_eval", "arena_hard"}
    assert "gsm8k" in math


def test_cfg_job_prints_the_preset(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "generate.py"), "experiment=agorabench", "--cfg", "job"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    shown = OmegaConf.create(out.stdout)
    assert shown.reference.model_id == "meta-llama/Llama-3.1-8B-Instruct" and shown.train.bin_tokens == 4096
    assert shown.budget.n == 10_000 and shown.student.name == "llama31_8b"
