"""`perplexity` of each response given its instruction under the base student, per example (the original code gave
every item the batch mean), rendered and masked exactly as training renders it (agora/train/data.py), so only the
response tokens and the end-of-turn token that closes them count.
"""
from __future__ import annotations

import math
import time

from omegaconf import DictConfig, OmegaConf

from agora import AgoraError
from agora.generators.vllm_server import eval_backend
from agora.metrics.intrinsic.base import Measured, torch_device, mean
from agora.store import Store

# ---------------------------------------------------------------- perplexity under the base student

def _token_batches(lengths: list[tuple[int, int]], batch_tokens: int) -> list[list[int]]:
    """Indices grouped so that each padded batch holds at most `batch_tokens` tokens (one long row goes alone)."""
    batches: list[list[int]] = []
    cur: list[int] = []
    for i, n in sorted(lengths, key=lambda x: x[1]):
        if cur and n * (len(cur) + 1) > batch_tokens:   # sorted ascending: n is the batch's padded length
            batches.append(cur)
            cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    return batches


def perplexities(model_path: str, rows: list[dict], *, system: str | None, max_len: int,
                 batch_tokens: int = 4096, chat_template: str | None = None) -> list[float | None]:
    """exp(mean NLL of the learned tokens) of each row under the model; None for a row longer than `max_len`.

    The tokenizer is loaded in the student's chat format (`chat_template`, as `student.chat_template`) and the
    rows are rendered and masked by `encode_example`, the function training uses, so the tokens scored are exactly
    the tokens the student would learn. Rows are padded into batches of at most `batch_tokens` tokens; the logits
    of a batch are what bounds memory.
    """
    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm
    from transformers import AutoModelForCausalLM

    from agora.chat import load_tokenizer
    from agora.train.data import IGNORE_INDEX, encode_example

    try:
        tok = load_tokenizer(model_path, chat_template)
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    except (OSError, ValueError) as e:
        raise AgoraError(f"cannot load the base student from {model_path} for perplexity: {e}") from e
    device = torch_device()
    model.to(device).eval()
    enc = [encode_example(tok, r["instruction"], r["response"], system, max_len) for r in rows]
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id   # masked out, so any id does
    out: list[float | None] = [None] * len(rows)
    batches = _token_batches([(i, len(e["input_ids"])) for i, e in enumerate(enc) if e], batch_tokens)
    with torch.inference_mode():
        for idx in tqdm(batches, desc="intrinsic perplexity", unit="batch", delay=0.5):
            width = max(len(enc[i]["input_ids"]) for i in idx)
            ids = torch.full((len(idx), width), pad, dtype=torch.long)
            labels = torch.full((len(idx), width), IGNORE_INDEX, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for b, i in enumerate(idx):
                n = len(enc[i]["input_ids"])
                ids[b, :n] = torch.tensor(enc[i]["input_ids"])
                labels[b, :n] = torch.tensor(enc[i]["labels"])
                mask[b, :n] = 1
            # Logits only from the first position that predicts a learned token on (`logits_to_keep`, the model's
            # own head, soft-capping included): the instructions need none, and a whole batch of logits is
            # batch x width x vocabulary floats (800 MB for the 12 smoke rows).
            first = int((labels[:, 1:] != IGNORE_INDEX).float().argmax(1).min())
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device),
                           logits_to_keep=width - first).logits[:, :-1].float()
            target = labels[:, first + 1:].to(device)
            nll = F.cross_entropy(logits.transpose(1, 2), target, ignore_index=IGNORE_INDEX, reduction="none")
            counts = (target != IGNORE_INDEX).sum(1)
            for b, i in enumerate(idx):
                if counts[b] > 0:
                    out[i] = math.exp(float(nll[b].sum() / counts[b]))
    return out


def perplexities_served(url: str, model_key: str, model_path: str, rows: list[dict], *, system: str | None,
                        max_len: int, chat_template: str | None, cache_path,
                        concurrency: int = 64) -> list[float | None]:
    """`perplexities` from a served model (`eval.backend=vllm`): the same rendered, masked token ids are sent as the
    prompt with `prompt_logprobs`, and each row's perplexity is exp(mean NLL) over the same learned positions.

    Requests go through the engine (cache at `cache_path`, resumable), one token generated per row and ignored."""
    from agora.chat import load_tokenizer
    from agora.engine.cache import request_key
    from agora.engine.runner import Request, Sampling
    from agora.generators.openai_client import PROMPT_ROLE
    from agora.infer import run_served
    from agora.train.data import IGNORE_INDEX, encode_example

    tok = load_tokenizer(model_path, chat_template)
    enc = [encode_example(tok, r["instruction"], r["response"], system, max_len) for r in rows]
    extra = {"prompt_logprobs": 0}
    sampling = Sampling(temperature=0.0, top_p=1.0, max_tokens=1, stop=None, response_format=None, extra_body=extra)
    s = {"temperature": 0.0, "max_tokens": 1, **extra}
    todo = [i for i, e in enumerate(enc) if e]
    requests = [Request(request_key(endpoint="served", model=model_key, messages=m, sampling=s, replicate=0), m)
                for i in todo for m in [[{"role": PROMPT_ROLE, "content": list(enc[i]["input_ids"])}]]]
    results = run_served(url, requests, sampling, cache_path=cache_path, concurrency=concurrency,
                         desc="intrinsic perplexity (vllm)")
    out: list[float | None] = [None] * len(rows)
    for i, r in zip(todo, results):
        if r.record is None:
            raise AgoraError(f"served perplexity failed for row {i}: {r.error}; rerun to resume")
        lp = r.record["prompt_logprobs"]
        nll = [-lp[t] for t, lab in enumerate(enc[i]["labels"]) if lab != IGNORE_INDEX and t > 0]
        if nll:
            out[i] = math.exp(sum(nll) / len(nll))
    return out


class PerplexityMetric:
    name = "perplexity"

    def spec(self, cfg: DictConfig) -> dict:
        out = {"student": OmegaConf.to_container(cfg.student, resolve=True),
               "system_prompt": cfg.domain.system_prompt, "max_len": cfg.train.max_len}
        if (backend := eval_backend(cfg.eval)) != "hf":   # other kernels: the last digits may differ
            out["backend"] = backend
        return out

    def check(self, cfg: DictConfig) -> None:
        return None

    def measure(self, cfg: DictConfig, store: Store, rows: list[dict]) -> Measured:
        from agora.train.student import student_folder

        t = time.perf_counter()
        folder = student_folder(cfg.student, store.models_dir())
        if eval_backend(cfg.eval) == "vllm":
            from agora.generators.vllm_server import eval_server
            from agora.store import digest

            v, key = cfg.eval.vllm, digest(self.spec(cfg))
            where = store.root / "requests" / "perplexity"
            with eval_server(folder, log=where / f"{key}.vllm.log", settings=v, dtype="float32") as url:   # as hf's
                ppl = perplexities_served(url, f"base:{cfg.student.name}", str(folder), rows,
                                          system=cfg.domain.system_prompt, max_len=cfg.train.max_len,
                                          chat_template=cfg.student.chat_template, cache_path=where / f"{key}.jsonl",
                                          concurrency=v.concurrency)
        else:
            ppl = perplexities(folder, rows, system=cfg.domain.system_prompt, max_len=cfg.train.max_len,
                               batch_tokens=cfg.intrinsic.perplexity.batch_tokens,
                               chat_template=cfg.student.chat_template)
        return Measured({"perplexity": mean(ppl)}, {"perplexity": ppl},
                        {"perplexity_too_long": sum(p is None for p in ppl)}, time.perf_counter() - t)


METRIC = PerplexityMetric()
