"""`difficulty` of each instruction and `quality` of each response: 1-5 from an LLM judge.

`generator@intrinsic.judge=` takes any generator option (gpt4o or prometheus2 as in the paper), with the domain
package's score rubrics (`rubrics/difficulty.txt`, `rubrics/quality.txt`: a criterion, then one description per score,
the structure of the original code's rubrics). The paper's judges get prometheus-eval's absolute-grading prompt
(feedback, then "[RESULT] n"), and a reply without a score is asked again; the embedded smoke judge answers a digit
under a grammar. The calls go through the generation engine: cached per request, priced, held under a dollar cap.
"""
from __future__ import annotations

import json
import logging
import re
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass

from omegaconf import DictConfig, OmegaConf

from agora import AgoraError
from agora.metrics.intrinsic.base import VERSION, Measured, mean
from agora.store import Store, digest

log = logging.getLogger(__name__)

ASPECTS = ("difficulty", "quality")

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
    # Aspect by aspect, so consecutive prompts share the system text and rubric: a llama.cpp server reuses that
    # prefix's KV cache from the previous request (the order enters no key).
    for aspect in ASPECTS:
        for i, r in enumerate(rows):
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


class JudgeMetric:
    name = "judge"

    def spec(self, cfg: DictConfig) -> dict:
        from agora.engine.option import Option

        i, j = cfg.intrinsic, cfg.intrinsic.judge
        if OmegaConf.is_missing(j, "base_url") or OmegaConf.is_missing(j, "model"):
            raise AgoraError(f"generator@intrinsic.judge={j.name} needs the server it talks to: set "
                             "intrinsic.judge.base_url=http://HOST:PORT/v1 (and intrinsic.judge.model if the server "
                             "names it differently)")
        d = cfg.domain._target_
        return {"provider": j.provider, "model": j.model, "endpoint": Option.from_cfg(j).endpoint,
                "constrain": bool(j.constrain), "grading": asdict(grading_of(j, i.grading)),
                "rubrics": {a: digest(rubric(d, a)) for a in ASPECTS},
                "prompt": digest(ABSOLUTE_SYSTEM + ABSOLUTE_PROMPT + json.dumps(DIFFICULTY_TASK) + DIGIT_SYSTEM
                                 + json.dumps(_DIGIT_PROMPT)), "max_chars": i.judge_max_chars}

    def check(self, cfg: DictConfig) -> None:
        from agora.engine.option import Option

        Option.from_cfg(cfg.intrinsic.judge).api_key("generator@intrinsic.judge=")   # before money is spent

    def measure(self, cfg: DictConfig, store: Store, rows: list[dict]) -> Measured:
        i = cfg.intrinsic
        t = time.perf_counter()
        js = judge_scores(i.judge, store, cfg.domain._target_, rows, max_chars=i.judge_max_chars, max_usd=i.max_usd,
                          grading=grading_of(i.judge, i.grading))
        return Measured({"difficulty": mean(js.difficulty), "quality": mean(js.quality)},
                        {"difficulty": js.difficulty, "quality": js.quality},
                        {"judge": i.judge.name, "judge_unparsed": js.unparsed, "judge_reasked": js.reasked,
                         "judge_failed": js.failed, "judge_truncated": js.truncated, "judge_sent": js.sent,
                         "judge_cost_usd": round(js.cost_usd, 6), "judge_spent_usd": round(js.spent_usd, 6)},
                        time.perf_counter() - t)


METRIC = JudgeMetric()
