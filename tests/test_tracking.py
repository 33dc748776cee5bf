"""No API key reaches W&B or a run folder: `scrub`, `secret_values`, and a real offline W&B run."""
from __future__ import annotations

import pytest

from agora import tracking
from conftest import compose_cfg

KEY = "sk-agora-unit-7c1e-DO-NOT-LOG"


def test_scrub_masks_key_fields_and_secret_values_anywhere():
    obj = {"generator": {"api_key": "abc", "api_key_env": "OPENAI_API_KEY", "base_url": f"https://h/v1?k={KEY}"},
           "notes": [f"prefix {KEY} suffix", {"password": "pw", "token": None}], "n": 3}
    out = tracking.scrub(obj, {KEY})
    assert out["generator"]["api_key"] == "***" and out["generator"]["base_url"] == "https://h/v1?k=***"
    assert out["generator"]["api_key_env"] == "OPENAI_API_KEY"     # the variable's name is no secret
    assert out["notes"] == ["prefix *** suffix", {"password": "***", "token": None}] and out["n"] == 3


def test_secret_values_reads_every_option_that_names_a_key(monkeypatch):
    cfg = compose_cfg("evaluate", ["generator=gpt4o", "generator@judge=claude35_sonnet", "generator@intrinsic.judge=gpt4o_mini"])
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    assert tracking.secret_values(cfg) == set()
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY + "-anthropic")
    assert tracking.secret_values(cfg) == {KEY, KEY + "-anthropic"}
    assert tracking.secret_values(compose_cfg("generate")) == {KEY}      # the default judge is gpt4_turbo (OPENAI_API_KEY)
    assert tracking.secret_values(compose_cfg("generate", ["generator@judge=local"])) == set()   # local options name no key


def test_a_real_offline_wandb_run_never_holds_the_key(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("WANDB_MODE", "offline")
    # A key pasted into a URL by mistake: the config that W&B records must not carry it.
    cfg = compose_cfg("generate", ["generator=gpt4o", f"generator.base_url='https://proxy.example/v1?key={KEY}'"])
    t = tracking.start(cfg, stage="generate", name="generate/test", group=None, out_dir=tmp_path)
    t.summary({"gen/note": f"sent with {KEY}"})
    t.finish()
    files = [f for f in tmp_path.rglob("*") if f.is_file()]
    assert any(f.suffix == ".wandb" for f in files)
    assert not [f for f in files if KEY.encode() in f.read_bytes()]
    logged = b"".join(f.read_bytes() for f in files if f.name == "config.yaml" or f.suffix == ".wandb")
    assert b"proxy.example/v1?key=***" in logged


def test_two_training_curves_in_one_run_are_both_kept(tmp_path, monkeypatch):
    # A train job fits the human_sft reference, then the student, each from step 1. On W&B's one run-wide step the
    # student's first steps were dropped ("less than the current step"); each curve now has its own x axis.
    from wandb_file import curve, history

    monkeypatch.setenv("WANDB_MODE", "offline")
    t = tracking.start(compose_cfg("train"), stage="train", name="train/test", group=None, out_dir=tmp_path)
    for prefix in ("train_reference", "train"):
        for step in (1, 2, 3):
            t.curve(prefix, {f"{prefix}/loss": 1.0 / step, f"{prefix}/lr": 1e-4}, step)
    t.finish()
    (run,) = tmp_path.rglob("offline-run-*/*.wandb")
    rows = history(run)
    for prefix in ("train_reference", "train"):
        assert curve(rows, prefix) == [(1, 1.0), (2, 0.5), (3, pytest.approx(1 / 3))], prefix
