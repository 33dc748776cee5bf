"""Stage 1: the generator writes the cell's SFT data. `python generate.py [cell overrides]`.

Reads seeds, builds meta-prompts, sends them through the engine (cache, ledger, cap), parses and
validates every reply, and commits `data.jsonl` + `dropped.jsonl` + `surplus.jsonl` + `seeds.jsonl` + `ledger.json`
to the store. Nothing is dropped silently: every drop has a reason in `dropped.jsonl` and a count.
"""
from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import time
from collections import Counter
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from agora import AgoraError, controls
from agora.domains import get_domain, pool
from agora.engine.cache import RequestCache, request_key
from agora.engine.ledger import Ledger, Price
from agora.engine.option import Option
from agora.engine.runner import CAP_MESSAGE, CapReached, Progress, Request, Sampling, UpstreamGone, run_requests
from agora.metrics import contamination
from agora.modes import ParseError, get_mode, sampling_fields
from agora.stages import benchmark_rows, human_rows, split_rows, without_benchmarks
from agora.specs import cell_draws, cell_template, data_spec
from agora.store import Cell, Store, digest, write_jsonl
from agora.tracking import Tracker

log = logging.getLogger(__name__)


def load_seeds(cfg: DictConfig) -> tuple[list[dict], int]:
    """Seeds for the cell: each source's filtered pool or its seeded sample (domain_mode.sample, the same rows for
    every generator), minus seeds whose question is a benchmark question and, in instance generation, seeds longer
    than domain_mode.max_seed_tokens student tokens."""
    data, dm = cfg.budget.data, cfg.domain_mode
    seeds = split_rows(cfg, list(dm.seeds[data]), "train", cfg.budget.n_seeds,
                       OmegaConf.to_container(dm.sample, resolve=True))
    kept = without_benchmarks(cfg, seeds)
    dropped = len(seeds) - len(kept)
    if dm.max_seed_tokens is not None:
        count = None if cfg.dry_run else _student_tokens(cfg)   # a dry run loads no tokenizer
        kept, too_long, unchecked = pool.drop_long(kept, int(dm.max_seed_tokens), cfg.domain.system_prompt, count)
        dropped += too_long
        if too_long or unchecked:
            log.info("seeds over %s student tokens: %d dropped, %d unchecked (dry run)", dm.max_seed_tokens,
                     too_long, unchecked)
    if not kept:
        raise AgoraError(f"no seeds for domain={cfg.domain.name} mode={cfg.mode.name} ({data} data)")
    return kept, dropped


def _student_tokens(cfg: DictConfig):
    """A counter of a seed's student tokens as the student sees it in training (its chat format); the tokenizer
    loads on the first seed that could be too long, so short pools (every embedded one) never load it."""
    from functools import cache

    from agora.chat import load_tokenizer, render, token_ids
    from agora.train.student import student_folder

    @cache
    def tokenizer():
        path = student_folder(cfg.student, Store(cfg.store_dir).models_dir())
        return load_tokenizer(path, cfg.student.chat_template)

    def count(row: dict) -> int:
        tok = tokenizer()
        return len(token_ids(tok, render(tok, row["question"], cfg.domain.system_prompt, row.get("solution") or "")))
    return count


def plan_volume(cfg: DictConfig, price: Price, seeds: list[dict]) -> tuple[int, str]:
    """The number of examples to keep, and a line saying how it was decided."""
    b = cfg.budget
    if b.n is not None:
        return int(b.n), f"budget={b.name}: {b.n} examples, cap ${b.max_usd}"
    # budget=usd: a pre-flight estimate from prompt sizes (~4 chars a token) and half of max_tokens out.
    prompt_tokens = 1200 if cfg.mode.name == "instance_generation" else 400
    per = price.cost(prompt_tokens, cfg.generator.sampling.max_tokens // 2)
    if per <= 0:
        raise AgoraError(f"budget=usd needs a priced generator; generator={cfg.generator.name} costs $0 "
                         "(use budget.n=... instead)")
    n = int(b.usd / per)
    return n, f"budget=usd: ${b.usd} / est. ${per:.5f} per example = {n} examples"


async def _generate(cfg: DictConfig, option: Option, base_url: str | None, api_key: str | None, *, seeds: list[dict],
                    n: int, ledger: Ledger, cache: RequestCache, template, health=None) -> tuple[list[dict], list[dict], dict]:
    """Kept rows, dropped rows with reasons, and the volume plan as it ended (refined for budget=usd)."""
    g, mode, domain = cfg.generator, get_mode(cfg.mode.name), get_domain(cfg.domain._target_)
    fmt = cfg.prompt_format.style
    rf, extra = sampling_fields(fmt, cfg.prompt_format.response_format, mode, domain.ANSWER_GBNF, provider=g.provider,
                                constrain=bool(g.constrain))
    s = Sampling(g.sampling.temperature, g.sampling.top_p, g.sampling.max_tokens,
                 list(g.sampling.stop) if g.sampling.stop else None, rf, extra_body=extra)
    sampling_key = {"temperature": s.temperature, "top_p": s.top_p, "max_tokens": s.max_tokens, "stop": s.stop,
                    "response_format": s.response_format, "extra_body": s.extra_body}
    mode_kw = {k: v for k, v in OmegaConf.to_container(cfg.mode).items() if k not in ("name", "version", "template")}
    themes, openers = cell_draws(cfg)
    factor = cfg.budget.max_attempts_factor
    # A dollar budget: the volume starts from the pre-flight estimate and follows the measured cost per
    # kept example after every round; rounds are an eighth of the target so the estimate is refined early.
    usd = cfg.budget.usd if cfg.budget.n is None else None
    plan = {"estimated_n": n, "target": n, "cost_per_kept_usd": None, "stopped_at_cap": False}
    kept: list[dict] = []
    dropped: list[dict] = []
    client = option.client(base_url, api_key)
    send = _sender(option, client, s, cache, ledger, health)
    progress = Progress(ledger, f"generate {g.name}")
    check = checker(cfg.validation.rules, domain, forbidden_strings(mode, template),
                    None if cfg.validation.max_tokens is None else _too_long(cfg, int(cfg.validation.max_tokens)),
                    compile=cfg.validation.compile)

    def request(j: int, attempt: int | None = None) -> Request:
        """The request for position j; `attempt` (paired modes) is the how-many-th try of j's instruction."""
        messages, meta = mode.build(j, seeds, kept, template=template, fmt=fmt, themes=themes, openers=openers,
                                    seed=cfg.seed, **mode_kw)
        key = request_key(endpoint=option.endpoint, model=g.model, messages=messages, sampling=sampling_key,
                          replicate=j if attempt is None else replicate_of(j, attempt))
        return Request(key, messages, {"index": j, **meta, **({} if attempt is None else {"attempt": attempt})})

    async def send_round(reqs: list[Request]) -> list[tuple[dict, bool]]:
        """(row, kept?) of every request that was sent, in request order (so reruns are identical)."""
        landed: list[tuple[int, dict, bool]] = []   # as results land, any order

        def take(j: int, r) -> None:
            if r.error != CAP_MESSAGE:   # a request the cap kept from being sent is not a drop
                landed.append((j, *_sort(r, mode, check, fmt)))

        try:
            await send(reqs, progress, take)
        except CapReached:
            if usd is None:
                raise
            plan["stopped_at_cap"] = True   # the dollar budget is spent: done
        return [(row, ok) for _, row, ok in sorted(landed, key=lambda x: x[0])]

    def refine() -> None:
        """budget=usd: the target follows the measured cost per kept example."""
        if usd is not None and kept:
            per_kept = ledger.totals.cost_usd / len(kept)
            plan["cost_per_kept_usd"] = round(per_kept, 8)
            if per_kept > 0:
                plan["target"] = len(kept) + int(max(0.0, usd - ledger.totals.cost_usd) / per_kept)

    try:
        if cfg.mode.name in PAIRED_MODES:
            await _paired_rounds(request, send_round, refine, plan, kept, dropped, factor=factor, usd=usd)
        else:
            await _open_rounds(request, send_round, refine, plan, kept, dropped, factor=factor, usd=usd,
                               first=int(cfg.mode.rounds.first), growth=float(cfg.mode.rounds.growth))
    finally:
        progress.close()
        await client.aclose()
    return kept, dropped, plan


# Modes that answer given instructions (RG answers them, QE rewrites them). Every generator must answer the same
# ones, the first n of the seed pool in its order (a paired design: a comparison of generators is then about the
# generators, not about which instructions each one happened to keep). A dropped reply is retried on its own
# instruction, and an instruction that fails every attempt is dropped and recorded, never replaced by the next one.
PAIRED_MODES = ("response_generation", "quality_enhancement")


def attempts_per_instruction(factor: float) -> int:
    """Paired modes: tries per instruction, so that n instructions never cost more than n * factor requests."""
    return max(1, int(factor))


def replicate_of(position: int, attempt: int) -> int | str:
    """The replicate in a paired request's key. A first attempt keeps the position (the key every earlier run gave
    it, so old caches still hit); a retry of the same instruction is "position.attempt", which no first attempt can
    equal, so it is a new request rather than a cache hit of the failed one, and the same one on every rerun."""
    return position if attempt == 0 else f"{position}.{attempt}"


def open_round_size(target: int, kept: int, sent: int, *, factor: float, first: int, growth: float) -> int:
    """Instance generation: the size of the next round, given the examples kept and the requests sent so far.

    A round's prompts show examples kept in earlier rounds only (so every prompt is fixed before it is sent, and a
    rerun rebuilds the same prompts: cache hits), so the demonstration pool grows only between rounds. The original
    adds every kept example to its pool at once; here round 0 is `first` requests and every later round at most
    `growth` times the requests sent so far, so the pool keeps pace (growth 1: a round's pool is at least about half
    of what the original's would hold there). A round asks for what is missing, scaled by the keep rate so far."""
    if sent == 0:
        return min(target, first)
    missing = math.ceil((target - kept) / max(kept / sent, 1 / factor))
    return min(missing, max(first, math.ceil(sent * growth)))


async def _open_rounds(request, send_round, refine, plan: dict, kept: list[dict], dropped: list[dict], *,
                       factor: float, usd: float | None, first: int, growth: float) -> None:
    """Instance generation: every request is a new instance; a drop is made up for by more requests, in rounds whose
    sizes `open_round_size` sets."""
    target, max_requests, i = plan["target"], int(math.ceil(plan["target"] * factor)), 0
    while len(kept) < target and i < max_requests:
        size = open_round_size(target, len(kept), i, factor=factor, first=first, growth=growth)
        if usd is not None:
            size = min(size, max(16, math.ceil(target / 8)))
        size = min(size, max_requests - i)
        rows = await send_round([request(j) for j in range(i, i + size)])
        for row, ok in rows:
            (kept if ok else dropped).append(row)
        i += size
        if usd is not None and kept:
            refine()
            target = plan["target"]
            max_requests = int(math.ceil(target * factor))
        if plan["stopped_at_cap"]:
            break


async def _paired_rounds(request, send_round, refine, plan: dict, kept: list[dict], dropped: list[dict], *,
                         factor: float, usd: float | None) -> None:
    """RG and QE: positions 0, 1, 2, ... of the seed pool, each retried on its own instruction until one reply is
    kept or its attempts (`attempts_per_instruction`) are spent. A drop row says which attempt it was; the last one
    of an instruction given up carries `given_up: true` (with its seed_id). A request that failed after the
    engine's own retries is not retried here: it is unfinished, so the cell misses its target and commits nothing
    until a rerun finishes it. With budget.n the positions are exactly 0..n-1; budget=usd opens new positions an
    eighth of the target at a time (at most target * factor in all) until the measured cost says the dollars are
    spent, so there an instruction given up is followed by more of the pool rather than replaced by a chosen one."""
    attempts = attempts_per_instruction(factor)
    kept_at: dict[int, dict] = {}
    tried: dict[int, int] = {}   # position -> attempts made
    retry: list[int] = []
    failed: set[int] = set()
    opened = 0
    while True:
        if usd is None:
            new = plan["target"] - opened
        else:
            new = min(max(16, math.ceil(plan["target"] / 8)), plan["target"] - len(kept_at) - len(retry) - len(failed),
                      math.ceil(plan["target"] * factor) - opened)
        new = max(new, 0)
        batch = sorted(retry + list(range(opened, opened + new)))
        opened += new
        if not batch:
            break
        rows = await send_round([request(j, tried.get(j, 0)) for j in batch])
        retry = []
        for row, ok in rows:
            j = row["index"]
            tried[j] = tried.get(j, 0) + 1
            if ok:
                kept_at[j] = row
                continue
            if row["reason"] == "request_failed":
                failed.add(j)
            elif tried[j] < attempts:
                retry.append(j)
            else:
                row["given_up"] = True
            dropped.append(row)
        kept[:] = [kept_at[j] for j in sorted(kept_at)]
        refine()
        if plan["stopped_at_cap"]:
            break


# The original's placeholders (run.py's `placeholder_formats` at d7e66e1; the stop phrase among them), which its
# validators forbid anywhere in a response, in any case, beside each mode's triggers (`TRIGGERS`: `INPUT:`/`OUTPUT:`,
# QE's `Revised Question:`/`Revised Answer:`) and, where an opening word is drawn, `<first_word>`.
ORIGINAL_PLACEHOLDERS = ("<input@>", "<output@>", "<input>", "<output>", "[END]", "<input_theme>")
VALIDATION_RULES = ("agora", "original")


def forbidden_strings(mode, template) -> tuple[str, ...]:
    """What `validation.rules=original` forbids in a response of this mode and meta-prompt."""
    return (*ORIGINAL_PLACEHOLDERS, *mode.TRIGGERS, *(("<first_word>",) if "first_word" in template.placeholders else ()))


def checker(rules: str, domain, forbidden: tuple[str, ...], too_long=None, compile: bool | None = None):
    """Why a parsed example is dropped (None: kept): the domain's checks under `rules` (and `compile`, a domain's
    own syntax check where it has one: null leaves it to the rules); under `original` also the original's
    placeholders and triggers anywhere in the response (`placeholder`); then, when `too_long` is given, its length
    (`too_long`), so an overlong example is made up for here rather than lost at SFT."""
    from agora.domains import forbidden_anywhere

    extra = {} if compile is None else {"compile": bool(compile)}

    def check(instruction: str, response: str) -> str | None:
        if rules == "agora":
            why = domain.validate(instruction, response, **extra)
        else:
            why = domain.validate(instruction, response, rules=rules, **extra)
            if why is None and forbidden_anywhere(response, forbidden):
                why = "placeholder"
        if why is None and too_long is not None and too_long(instruction, response):
            why = "too_long"
        return why
    return check


def check_validation(cfg: DictConfig, domain) -> None:
    """`validation.*`, checked before anything is sent."""
    import inspect

    v = cfg.validation
    if v.rules not in VALIDATION_RULES:
        raise AgoraError(f"validation.rules={v.rules}; known: {', '.join(VALIDATION_RULES)}")
    if v.rules != "agora" and "rules" not in inspect.signature(domain.validate).parameters:
        raise AgoraError(f"validation.rules={v.rules}, but domain={cfg.domain.name}'s validate() takes no `rules` "
                         "argument (agora/domains/__init__.py, `Domain`); use validation.rules=agora")
    if v.compile is not None and not isinstance(v.compile, bool):
        raise AgoraError(f"validation.compile={v.compile}; known: true, false, null (the rules' default)")
    if v.compile is not None and "compile" not in inspect.signature(domain.validate).parameters:
        raise AgoraError(f"validation.compile={v.compile}, but domain={cfg.domain.name}'s validate() has no syntax "
                         "check (`compile`); leave validation.compile=null")
    if v.max_tokens is not None and (isinstance(v.max_tokens, bool) or not isinstance(v.max_tokens, int)
                                     or v.max_tokens < 1):
        raise AgoraError(f"validation.max_tokens={v.max_tokens}: a number of student tokens (e.g. "
                         "${train.max_len}), or null for no length check")


def _too_long(cfg: DictConfig, max_tokens: int):
    """Whether an example is over `max_tokens` student tokens, counted as SFT counts it (`agora.train.data`: the
    student's chat format and the cell's system prompt), so that no kept example is dropped there. The tokenizer
    loads on the first example checked."""
    from functools import cache

    from agora.chat import load_tokenizer
    from agora.train.data import encode_example
    from agora.train.student import student_folder

    @cache
    def tokenizer():
        path = student_folder(cfg.student, Store(cfg.store_dir).models_dir())
        return load_tokenizer(path, cfg.student.chat_template)

    system = cfg.domain.system_prompt

    def too_long(instruction: str, response: str) -> bool:
        return encode_example(tokenizer(), instruction, response, system, max_tokens) is None
    return too_long


def _sort(r, mode, check, fmt: str) -> tuple[dict, bool]:
    """A finished request as (row, kept?): the example, or the drop with its reason."""
    idx = r.request.meta["index"]
    base = {"index": idx, "request_key": r.request.key,   # a paired drop names its instruction and attempt
            **{k: r.request.meta[k] for k in ("seed_id", "attempt") if k in r.request.meta}}
    if r.record is None:   # gave up after retries (blocks the commit), or refused for good (a drop like any other)
        reason = "request_rejected" if r.error.startswith("permanent:") else "request_failed"
        return {**base, "reason": reason, "error": r.error}, False
    text = r.record["text"]
    if r.record["finish_reason"] != "stop":
        return {**base, "reason": f"finish_{r.record['finish_reason']}", "text": text}, False
    try:
        instruction, response = mode.parse(text, fmt, r.request.meta)
    except ParseError as e:
        return {**base, "reason": f"parse_{e}", "text": text}, False
    why = check(instruction, response)
    if why:
        return {**base, "reason": why, "text": text}, False
    meta = {k: v for k, v in r.request.meta.items() if k not in ("index", "instruction")}
    return {"id": f"gen-{idx}", "instruction": instruction, "response": response, **base, **meta}, True


def _sender(option: Option, client, s: Sampling, cache: RequestCache, ledger: Ledger, health):
    """How a round is sent: live requests through the engine, or the provider's batch API."""
    if option.batch:
        from agora.engine.batch import run_batch

        async def batch(reqs, progress, on_result) -> None:
            try:
                results = await run_batch(client, reqs, s, cache=cache, ledger=ledger, progress=progress,
                                          poll_s=option.batch_poll_s, max_resubmits=option.limits.max_retries)
            except CapReached as e:
                for j, r in enumerate(e.results):
                    on_result(j, r)
                raise
            for j, r in enumerate(results):
                on_result(j, r)
        return batch

    async def live(reqs, progress, on_result) -> None:
        await run_requests(client, reqs, s, cache=cache, ledger=ledger, limits=option.limits, progress=progress,
                           on_result=on_result, health=health)
    return live


def run(cfg: DictConfig, tracker: Tracker) -> float | None:
    cell, store = Cell.from_cfg(cfg), Store(cfg.store_dir)
    # A control replays human data: it needs no seeds.
    if cfg.domain_mode is None and not controls.is_control(cfg.generator.provider):
        raise AgoraError(f"no seeds are defined for domain={cell.domain} mode={cell.mode} "
                         f"(domain.modes.{cell.mode} in its YAML)")
    check_validation(cfg, get_domain(cfg.domain._target_))
    template = cell_template(cfg)
    spec = data_spec(cfg, template)
    key = digest(spec)
    out = store.data_dir(cell, key)
    if store.exists(out):
        manifest = json.loads((out / "manifest.json").read_text())
        log.info("cache hit: %s (no request sent)", out)
        print(f"generate: cache hit {out}")
        tracker.summary({**{f"gen/{k}": v for k, v in manifest["summary"].items()}, "gen/cache_hit": 1,
                         "gen/data_dir": str(out)})
        return float(manifest["summary"]["kept"])

    g, option = cfg.generator, Option.from_cfg(cfg.generator)
    price = option.price
    if controls.is_control(g.provider):   # human data, clean or corrupted: no model, no request, $0 (agora/controls.py)
        return _control(cfg, tracker, out, spec, template, price)
    if g.batch and price.batch_discount is None:
        raise AgoraError(f"generator={g.name} has no batch API price (generator.price_usd_per_mtok.batch_discount "
                         "is null); batch=true works with OpenAI and Anthropic")
    if not cfg.dry_run:
        api_key = option.api_key()  # before anything is spent
    seeds, overlap = load_seeds(cfg)
    n, plan = plan_volume(cfg, price, seeds)
    print(f"generate {cell.name}: {plan}; {len(seeds)} seeds ({overlap} dropped: benchmark overlap or too long)")
    if cfg.dry_run:   # sends nothing, so it needs no key: a user sees the cost before buying one
        est = _preflight(cfg, seeds, template, price, n)
        print(f"generate {cell.name}: pre-flight estimate {est.requests} requests, {est.input_tokens:,} tokens in + "
              f"{est.output_tokens:,} out = ${est.cost_usd:,.2f} at {g.name}'s prices ({price.as_of})")
        tracker.summary({f"plan/{k}": v for k, v in est.as_dict().items()})
        if est.cost_usd > cfg.budget.max_usd:
            print(f"generate {cell.name}: the estimate is over budget.max_usd=${cfg.budget.max_usd}; a real run "
                  "would stop at that cap and commit nothing")
        if g.api_key_env and not os.environ.get(g.api_key_env):
            print(f"generate {cell.name}: dry run; ${g.api_key_env} is not set, and a real run will need it")
        return None
    ledger = Ledger(price, cfg.budget.max_usd)
    cache = RequestCache(store.requests_path(digest({"endpoint": option.endpoint, "model": g.model})))
    t0 = time.perf_counter()
    with option.serving(_run_dir() / "llama_server.log") as (base_url, health):
        try:
            kept_all, dropped, plan = asyncio.run(_generate(cfg, option, base_url, api_key, seeds=seeds,
                                                            n=n, ledger=ledger, cache=cache, template=template,
                                                            health=health))
        except CapReached as e:
            raise AgoraError(f"stopped at the dollar cap: {e}. Nothing committed; finished requests are cached, "
                             "rerun with a higher budget.max_usd to resume") from None
        except UpstreamGone as e:
            raise AgoraError(f"{e}. Nothing committed; finished requests are cached, rerun the same command to "
                             "send only the missing ones") from None
        finally:
            cache.close()
    failed = [d for d in dropped if d["reason"] == "request_failed"]
    if failed and len(kept_all) < plan["target"]:
        last = " ".join(str(failed[-1]["error"]).split())[:300]   # one line, however the server worded it
        raise AgoraError(f"{len(failed)} requests failed after {g.limits.max_retries} retries each (last: "
                         f"{last}), so the cell kept {len(kept_all)} of {plan['target']}. Nothing "
                         "committed; finished requests are cached, rerun the same command to send only the "
                         "missing ones")
    return _commit(cfg, tracker, out, spec, template, kept_all, dropped, seeds, ledger, plan,
                   time.perf_counter() - t0)


def _control(cfg: DictConfig, tracker: Tracker, out: Path, spec: dict, template, price: Price) -> float | None:
    """A control cell (generator=human, human_corrupted): the human rows, committed like generated ones."""
    n, line = plan_volume(cfg, price, [])   # budget=usd refuses a $0 generator: a control has no dollar volume
    t0 = time.perf_counter()
    human = human_rows(cfg)
    c = cfg.generator.corrupt
    rows = controls.control_rows(human, n=cfg.budget.n, corrupt_=None if c is None else OmegaConf.to_container(c),
                                 name=cfg.generator.name, domain=cfg.domain._target_, seed=cfg.seed)
    bad = sum(r["corrupted"] for r in rows)
    print(f"generate {Cell.from_cfg(cfg).name}: {line}; control: {len(rows)} of {len(human)} human rows "
          f"({bad} corrupted), no model, $0; the mode is ignored")
    if cfg.dry_run:
        return None
    plan = {"estimated_n": n, "target": len(rows), "cost_per_kept_usd": None, "stopped_at_cap": False}
    return _commit(cfg, tracker, out, spec, template, rows, [], human[:len(rows)], Ledger(price, cfg.budget.max_usd),
                   plan, time.perf_counter() - t0, {"control": cfg.generator.name, "human_rows": len(human),
                                                    "corrupted": bad})


def _commit(cfg: DictConfig, tracker: Tracker, out: Path, spec: dict, template, kept_all: list[dict],
            dropped: list[dict], seeds: list[dict], ledger: Ledger, plan: dict, seconds: float,
            extra: dict | None = None) -> float:
    """Check the kept rows for contamination and commit the data product; `extra` joins the summary."""
    cell, store, g = Cell.from_cfg(cfg), Store(cfg.store_dir), cfg.generator
    key = digest(spec)
    versions = {"template": template.name, "template_version": template.version, "template_sha256": template.sha256,
                "mode_version": cfg.mode.version,
                "domain_version": get_domain(cfg.domain._target_).VERSION, "prompt_format": cfg.prompt_format.name,
                "prompt_format_version": cfg.prompt_format.version, "generator": g.name, "model": g.model}
    # Checked before anything is committed for training: generated instructions that repeat a test question.
    test_questions = [r["question"] for r in benchmark_rows(cfg)]
    flags = contamination.flag(kept_all, test_questions, cfg.contamination.ngram)
    contaminated = sum(flags)
    if cfg.contamination.drop:
        dropped += [{**r, "reason": "contaminated"} for r, f in zip(kept_all, flags) if f]
        kept_all = [r for r, f in zip(kept_all, flags) if not f]
    else:
        kept_all = [{**r, "contaminated": f} for r, f in zip(kept_all, flags)]
    # The last round may overshoot the target: the surplus is kept aside in surplus.jsonl, not lost.
    n = plan["target"]
    rows = [{**r, **versions} for r in kept_all[:n]]
    surplus = [{**r, **versions} for r in kept_all[n:]]
    reasons = Counter(d["reason"] for d in dropped)
    t = ledger.totals
    summary = {"kept": len(rows), "target": n, "dropped": len(dropped), "surplus": len(surplus), "failed": t.failed,
               "requests": t.requests, "sent": t.sent, "cached": t.cached, "cost_usd": round(t.cost_usd, 6),
               "input_tokens": t.input_tokens, "output_tokens": t.output_tokens, "retries": t.retries,
               "transient_errors": sum(t.errors.values()),
               "seconds": round(seconds, 2), "keep_rate": round(len(rows) / max(len(rows) + len(dropped), 1), 4),
               "cost_per_kept_usd": round(t.cost_usd / max(len(rows), 1), 8), "estimated_n": plan["estimated_n"],
               "stopped_at_cap": plan["stopped_at_cap"], "batch": bool(g.batch), "contaminated": contaminated,
               "contamination_rate": round(contaminated / max(len(flags), 1), 4)}
    if cfg.mode.name in PAIRED_MODES:   # the instructions this generator answered none of, each named in dropped.jsonl
        summary["instructions_given_up"] = sum(1 for d in dropped if d.get("given_up"))
    summary.update(extra or {})
    for reason, count in sorted(reasons.items()):
        log.info("dropped %d: %s", count, reason)
    if not rows:   # nothing to train on is a failed cell, not a product (in a -m sweep: error.txt, and it goes on)
        raise AgoraError(f"generator={g.name} kept 0 of {n} examples ({len(dropped)} dropped: {dict(reasons)}); "
                         "nothing committed")
    with store.write(out, {"spec": spec, "key": key, "cell": cell.__dict__, "summary": summary,
                           "drop_reasons": dict(reasons), "versions": versions}) as tmp:
        write_jsonl(tmp / "data.jsonl", rows)
        write_jsonl(tmp / "dropped.jsonl", dropped)
        write_jsonl(tmp / "surplus.jsonl", surplus)
        write_jsonl(tmp / "seeds.jsonl", seeds)
        (tmp / "ledger.json").write_text(json.dumps(ledger.as_dict(), indent=2))
    print(f"generate {cell.name}: kept {len(rows)}/{n}, dropped {len(dropped)} {dict(reasons)}, "
          f"${t.cost_usd:.4f}, {t.input_tokens}+{t.output_tokens} tokens, {seconds:.0f} s -> {out}")
    tracker.summary({**{f"gen/{k}": v for k, v in summary.items()}, "gen/cache_hit": 0, "gen/data_dir": str(out),
                     **{f"gen/dropped/{k}": v for k, v in reasons.items()}})
    tracker.table("gen/samples", [{"instruction": r["instruction"], "response": r["response"]} for r in rows[:50]])
    return float(len(rows))


def _preflight(cfg: DictConfig, seeds: list[dict], template, price: Price, n: int):
    """The cell's cost before anything is sent: its first prompts rendered for real, scaled to `n` (agora/estimate.py)."""
    from agora.estimate import preflight, reply_chars

    mode = get_mode(cfg.mode.name)
    mode_kw = {k: v for k, v in OmegaConf.to_container(cfg.mode).items() if k not in ("name", "version", "template")}
    themes, openers = cell_draws(cfg)
    k = min(n, 64)
    prompts, replies = [], []
    for j in range(k):
        messages, meta = mode.build(j, seeds, [], template=template, fmt=cfg.prompt_format.style, themes=themes,
                                    openers=openers, seed=cfg.seed, **mode_kw)
        prompts.append(messages)
        row = next((s for s in seeds if s["id"] == meta.get("seed_id")), seeds[j % len(seeds)])
        replies.append(reply_chars(cfg.mode.name, row, cfg.generator.sampling.max_tokens))
    return preflight(prompts, replies, n, price, batch=bool(cfg.generator.batch))


def _run_dir() -> Path:
    try:
        return Path(HydraConfig.get().runtime.output_dir)
    except ValueError:
        return Path.cwd()
