"""Batched generation with a local Hugging Face causal LM, for scoring base, reference and student.

Evaluation runs on CPU with small students, so the throughput that matters comes from
batching: prompts are sorted by length so that each batch carries little padding, padded on
the left so every row's continuation starts at the same position, and returned in the
caller's order. Sampling settings follow the paper (the paper, "Evaluation"): temperature
0 means greedy decoding; anything else samples under a fixed seed.

Prompts come from `agora.chat.render`, the rendering SFT trains on, on a tokenizer loaded in the student's chat
format (`load_model(path, chat_template)`): the base, the reference and the student see the format the student
learned, and a zero-shot prompt's ids are exactly the masked prompt ids of an SFT example.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, PreTrainedModel, PreTrainedTokenizerBase

from agora.chat import load_tokenizer, render

# End-of-turn markers of common chat templates. A chat model ends its answer with one of these,
# which is not always the tokenizer's eos token (Llama 3 ends turns with <|eot_id|> but its eos
# is <|end_of_text|>), so generation must stop on both.
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "<|eom_id|>")
# Start-of-turn markers: a model that opens a new turn without closing its own (a base model prompted few-shot,
# writing on into the next example) has finished its answer, so generation stops there too.
START_OF_TURN_TOKENS = ("<|im_start|>", "<|start_header_id|>", "<start_of_turn>")


@dataclass
class GenConfig:
    """Decoding settings; the paper's are temperature 0.2 (math) or 0.0, top_p 0.95,
    1,024 new tokens and repetition penalty 1.03."""

    max_new_tokens: int = 1024
    temperature: float = 0.0
    top_p: float = 0.95
    repetition_penalty: float = 1.03
    batch_size: int = 8
    seed: int = 0
    threads: int | None = None  # torch intra-op threads; None leaves torch's default


def load_model(
    path: str | Path, chat_template: str | None = None, bf16: bool = False
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM and its tokenizer for batched generation, in eval mode, fp32 (bf16 weights when ``bf16``).

    ``path`` is a model directory (or hub id), or a ``.gguf`` file, which transformers
    dequantises to fp32. ``chat_template`` is the student's chat format (``student.chat_template``:
    a name replaces the tokenizer's own template; None keeps it), see ``agora.chat``.
    """
    path = Path(path)
    kwargs: dict = {}
    if path.suffix == ".gguf":
        if not path.is_file():
            raise FileNotFoundError(f"load_model: GGUF file {str(path)!r} does not exist")
        kwargs["gguf_file"] = path.name
        path = path.parent
    tokenizer = load_tokenizer(path, chat_template, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16 if bf16 else torch.float32, **kwargs)
    model.eval()
    tokenizer.padding_side = "left"  # decoder-only: new tokens must follow each prompt directly
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError(f"load_model: tokenizer at {str(path)!r} has neither a pad nor an eos token")
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def build_prompt(
    tokenizer: PreTrainedTokenizerBase,
    question: str,
    system: str | None,
    fewshot: Sequence[tuple[str, str]] = (),
) -> str:
    """Render one question in the tokenizer's chat format, ready for generation (``agora.chat.render``).

    Each few-shot ``(question, answer)`` pair becomes a prior user/assistant turn in the same format; the
    paper prompts the base model few-shot and the student and reference zero-shot.
    """
    return render(tokenizer, question, system, fewshot=fewshot)


def stop_token_ids(model: PreTrainedModel | None, tokenizer: PreTrainedTokenizerBase,
                   generation_eos: int | list[int] | None = None) -> list[int]:
    """The eos token plus the chat template's end-of-turn and start-of-turn tokens, where they differ.

    `model` gives the checkpoint's generation eos; without a loaded model (a served one) pass `generation_eos`
    (`generation_eos_of(path)`)."""
    ids: list[int] = []
    if model is not None:
        generation_eos = model.generation_config.eos_token_id
    for source in (tokenizer.eos_token_id, generation_eos):
        if source is not None:
            ids += source if isinstance(source, list) else [source]
    template = tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else ""
    vocab = tokenizer.get_vocab()
    ids += [vocab[tok] for tok in END_OF_TURN_TOKENS + START_OF_TURN_TOKENS if tok in template and tok in vocab]
    if not ids:
        raise ValueError(f"generate: found no eos token for {tokenizer.name_or_path!r}; set tokenizer.eos_token")
    return list(dict.fromkeys(ids))


def generation_eos_of(path: str | Path) -> int | list[int] | None:
    """The eos token id(s) of a model folder's generation_config.json, without loading its weights."""
    from transformers import GenerationConfig

    try:
        return GenerationConfig.from_pretrained(path).eos_token_id
    except OSError:   # no generation_config.json: the tokenizer's eos is all there is
        return None


def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    cfg: GenConfig,
    progress_desc: str | None = None,
) -> list[str]:
    """Generate one completion per prompt, returned in the order of ``prompts``.

    Prompts are already rendered (see ``build_prompt``), so no special tokens are added
    when tokenizing. Completions exclude the prompt and special tokens.
    With sampling, a prompt's completion depends on the batch it lands in, so results are
    reproducible for a fixed prompt list, seed and batch size.
    """
    if cfg.batch_size < 1:
        raise ValueError(f"generate: batch_size is {cfg.batch_size}; it must be >= 1")
    if cfg.max_new_tokens < 1:
        raise ValueError(f"generate: max_new_tokens is {cfg.max_new_tokens}; it must be >= 1")
    if tokenizer.padding_side != "left":
        raise ValueError("generate: tokenizer.padding_side must be 'left' for a decoder-only model; use load_model")
    if not prompts:
        return []

    gen_kwargs: dict = {
        "max_new_tokens": cfg.max_new_tokens,
        "repetition_penalty": cfg.repetition_penalty,
        "eos_token_id": stop_token_ids(model, tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
    }
    if cfg.temperature > 0:
        gen_kwargs.update(do_sample=True, temperature=cfg.temperature, top_p=cfg.top_p)
    else:
        # Greedy; unset the checkpoint's sampling defaults so they neither apply nor warn.
        gen_kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)

    # Longest first: similar lengths share a batch (little padding), and the peak memory
    # shows up in the first batch rather than the last.
    lengths = [len(ids) for ids in tokenizer(prompts, add_special_tokens=False)["input_ids"]]
    order = sorted(range(len(prompts)), key=lambda i: -lengths[i])
    completions: list[str | None] = [None] * len(prompts)

    prev_threads = torch.get_num_threads()
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    try:
        with torch.random.fork_rng(devices=[]), torch.inference_mode():
            torch.manual_seed(cfg.seed)
            with tqdm(total=len(prompts), desc=progress_desc, unit="prompt") as bar:
                for start in range(0, len(order), cfg.batch_size):
                    idx = order[start : start + cfg.batch_size]
                    batch = tokenizer(
                        [prompts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False
                    ).to(model.device)
                    out = model.generate(**batch, **gen_kwargs)
                    new_tokens = out[:, batch["input_ids"].shape[1] :]
                    for i, text in zip(idx, tokenizer.batch_decode(new_tokens, skip_special_tokens=True)):
                        completions[i] = text
                    bar.update(len(idx))
    finally:
        torch.set_num_threads(prev_threads)
    return completions  # type: ignore[return-value]


def _served_plan(tokenizer: PreTrainedTokenizerBase, prompts: list[str], cfg: GenConfig, stop_ids: list[int],
                 model_key: str) -> tuple[list, object]:
    """The engine requests of a served generation (`generate_served`) and their sampling settings."""
    from agora.engine.cache import request_key
    from agora.engine.runner import Request, Sampling
    from agora.generators.openai_client import PROMPT_ROLE

    if cfg.max_new_tokens < 1:
        raise ValueError(f"generate: max_new_tokens is {cfg.max_new_tokens}; it must be >= 1")
    greedy = cfg.temperature <= 0
    extra = {"stop_token_ids": list(stop_ids), "repetition_penalty": cfg.repetition_penalty,
             "return_token_ids": True, **({} if greedy else {"seed": cfg.seed})}
    sampling = Sampling(temperature=0.0 if greedy else cfg.temperature, top_p=1.0 if greedy else cfg.top_p,
                        max_tokens=cfg.max_new_tokens, stop=None, response_format=None, extra_body=extra)
    s = {"temperature": sampling.temperature, "top_p": sampling.top_p, "max_tokens": sampling.max_tokens, **extra}
    ids = tokenizer(prompts, add_special_tokens=False)["input_ids"] if prompts else []
    requests = []
    for i, p in enumerate(ids):
        messages = [{"role": PROMPT_ROLE, "content": list(p)}]
        requests.append(Request(request_key(endpoint="served", model=model_key, messages=messages, sampling=s,
                                            replicate=0), messages, {"index": i}))
    return requests, sampling


def served_from_cache(tokenizer: PreTrainedTokenizerBase, prompts: list[str], cfg: GenConfig, stop_ids: list[int],
                      *, model_key: str, cache_path: Path) -> list[str] | None:
    """`generate_served`'s completions when the request cache holds every one of them (no server needed), else None."""
    from agora.engine.cache import RequestCache

    if not Path(cache_path).exists():
        return None
    requests, _ = _served_plan(tokenizer, prompts, cfg, stop_ids, model_key)
    cache = RequestCache(cache_path)
    try:
        records = [cache.get(r.key) for r in requests]
    finally:
        cache.close()
    if any(r is None or "token_ids" not in r for r in records):
        return None
    return [tokenizer.decode(r["token_ids"], skip_special_tokens=True) for r in records]


def generate_served(url: str, tokenizer: PreTrainedTokenizerBase, prompts: list[str], cfg: GenConfig,
                    stop_ids: list[int], *, model_key: str, cache_path: Path, served_name: str = "model",
                    concurrency: int = 64, timeout_s: float = 3600, progress_desc: str | None = None,
                    health=None) -> list[str]:
    """`generate`'s completions from a served model (`eval.backend=vllm`), in the order of ``prompts``.

    What makes the two backends comparable: the server gets the prompt's token ids, tokenised here exactly as
    `generate` tokenises them (no special tokens added: the rendered chat format already has them), so no server-side
    template or BOS can differ; the same decoding settings and stop token ids; and the completion comes back as token
    ids that this tokenizer decodes as `generate` does (special tokens skipped), not as the server's detokenised text.

    The engine gives concurrency, retries and a request cache at `cache_path`, keyed by the model's identity
    (`model_key`, not the server's port) and the settings: a killed evaluation resumes without resending what
    finished. Greedy when temperature is 0; otherwise every request samples under `cfg.seed` (vLLM seeds each request
    on its own), so a completion does not depend on what else is in flight, unlike HF's batch-dependent sampling.
    """
    requests, sampling = _served_plan(tokenizer, prompts, cfg, stop_ids, model_key)
    if not requests:
        return []
    results = run_served(url, requests, sampling, cache_path=cache_path, served_name=served_name,
                         concurrency=concurrency, timeout_s=timeout_s, desc=progress_desc or "eval", health=health)
    failed = [r for r in results if r.record is None]
    if failed:
        raise RuntimeError(f"generate_served: {len(failed)} of {len(prompts)} prompts failed, e.g. {failed[0].error}; "
                           "rerun to resume (finished prompts are cached)")
    return [tokenizer.decode(r.record["token_ids"], skip_special_tokens=True) for r in results]


def run_served(url: str, requests: list, sampling, *, cache_path: Path, served_name: str = "model",
               concurrency: int = 64, timeout_s: float = 3600, desc: str = "served", health=None) -> list:
    """Requests of raw prompts (`PromptClient`) to a server Agora started for one model, through the engine: its
    concurrency, retries and a request cache at `cache_path`. Nothing is priced (the server is local)."""
    import asyncio

    from agora.engine.cache import RequestCache
    from agora.engine.ledger import Ledger, Price
    from agora.engine.runner import Limits, Progress, run_requests
    from agora.generators.openai_client import PromptClient

    cache = RequestCache(cache_path)
    ledger = Ledger(Price(0.0, 0.0, "served"), max_usd=None)
    client = PromptClient(model=served_name, base_url=f"{url}/v1", timeout_s=timeout_s, concurrency=concurrency)

    async def go():
        try:
            return await run_requests(client, requests, sampling, cache=cache, ledger=ledger,
                                      limits=Limits(concurrency=concurrency, max_retries=3),
                                      progress=Progress(ledger, desc), desc=desc, health=health)
        finally:
            await client.aclose()

    try:
        return asyncio.run(go())
    finally:
        cache.close()
