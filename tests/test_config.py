"""Every option of every config group composes offline, and no option holds a secret."""
from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from agora import AgoraError
from agora.generators import require_key
from conftest import CONF, compose_cfg

GROUPS = ["generator", "domain", "mode", "budget", "prompt_format", "student", "reference", "tracking", "deepspeed"]
REQUIRED = {
    "generator": {"local", "gpt4o", "gpt4o_mini", "claude35_sonnet", "llama31_8b", "llama31_70b", "llama31_405b", "vllm"},
    "domain": {"math", "code", "instruction_following"},
    "mode": {"instance_generation", "response_generation", "quality_enhancement"},
    "budget": {"smoke", "n10k", "n50k", "usd"},
    "prompt_format": {"free_form", "json"},
}
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONF / g).glob("*.yaml")) if not p.stem.startswith("_")]


def test_required_options_exist():
    for group, names in REQUIRED.items():
        assert names <= {p.stem for p in (CONF / group).glob("*.yaml")}, group


@pytest.mark.parametrize("stage", ["generate", "train", "evaluate"])
@pytest.mark.parametrize("group,option", OPTIONS)
def test_every_option_composes(stage, group, option):
    extra = ["budget.usd=500"] if (group, option) == ("budget", "usd") else []  # the one `???` a user supplies
    cfg = compose_cfg(stage, [f"{group}={option}", *extra])
    assert cfg[group] is not None
    if group in ("generator", "domain", "mode", "budget", "prompt_format", "student", "reference", "tracking"):
        assert cfg[group].name == option  # the name users type is the name W&B shows
    # everything resolves except the values a user must supply (???)
    OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)


@pytest.mark.parametrize("option", sorted(REQUIRED["generator"]))
def test_generator_options_carry_prices_and_key_names_not_keys(option):
    g = compose_cfg("generate", [f"generator={option}"]).generator
    assert g.price_usd_per_mtok.input is not None and g.price_usd_per_mtok.output is not None
    assert g.price_usd_per_mtok.as_of
    assert g.provider in ("openai", "anthropic")
    assert "api_key" not in g  # only the variable's name
    if g.api_key_env:
        assert g.api_key_env.isupper() and g.api_key_env.endswith("_API_KEY")


def test_paper_prices():
    assert compose_cfg("generate", ["generator=gpt4o"]).generator.price_usd_per_mtok.output == 10.0
    assert compose_cfg("generate", ["generator=gpt4o_mini"]).generator.price_usd_per_mtok.input == 0.15
    assert compose_cfg("generate", ["generator=claude35_sonnet"]).generator.price_usd_per_mtok.output == 15.0


def test_missing_key_is_one_line_error(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(AgoraError) as e:
        require_key("OPENAI_API_KEY", "gpt4o")
    assert "OPENAI_API_KEY" in str(e.value) and "\n" not in str(e.value)


def test_the_three_stages_share_the_cell():
    a, b, c = (compose_cfg(s, ["generator=gpt4o_mini", "mode=response_generation"]) for s in
               ("generate", "train", "evaluate"))
    for g in ("generator", "domain", "mode", "budget", "prompt_format"):
        assert a[g] == b[g] == c[g]


def test_specialised_seed_config_per_domain_and_mode():
    cfg = compose_cfg("generate", ["mode=quality_enhancement"])
    assert list(cfg.domain_mode.seeds.hub) == ["webinstruct_math"]


def test_long_sweeps_get_short_distinct_folder_names():
    from agora.cli import MAX_DIRNAME, short_dirname

    a = ",".join(f"reference.source{i}=gguf_package" for i in range(12))
    b = a + ",train.seed=2"
    assert short_dirname("domain=math") == "domain=math"
    assert short_dirname("domain.sources.gsm8k.local=/data/x") == "domain.sources.gsm8k.local=_data_x"
    assert len(short_dirname(a).encode()) <= MAX_DIRNAME and short_dirname(a) != short_dirname(b)
