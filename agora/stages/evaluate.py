"""Evaluation stage: generate answers with the base, reference and student models, score them, and turn the scores into PGR.

Each of the three scores is its own cached product, keyed by the model and the benchmark settings,
so the base and the reference are scored once per sweep, not once per cell.
"""
from __future__ import annotations

import json
import logging

from omegaconf import DictConfig, OmegaConf

from agora import AgoraError
from agora import report
from agora.store import Cell, Store, digest, write_jsonl
from agora.specs import eval_spec, train_spec
from agora.tracking import Tracker

log = logging.getLogger(__name__)


def score_model(cfg: DictConfig, store: Store, *, label: str, model_path: str, model_key: str,
                benchmarks: dict[str, list[dict]], fewshot: list[tuple[str, str]]) -> dict[str, float]:
    """Accuracy per benchmark for one model; predictions are kept beside the scores."""
    from agora.domains import get_domain
    from agora.infer import GenConfig
    from agora.engine.option import Option
    from agora.scoring import judge as judging
    from agora.specs import scoring_of

    # Every model is prompted in the student's chat format (agora/chat.py), so the format keys the base's and the
    # reference's scores too: it changes their prompts.
    chat = {"template": cfg.student.chat_template, "system_prompt": cfg.domain.system_prompt}
    spec = {"model": model_key, "fewshot": len(fewshot), "chat_format": chat, **eval_spec(cfg, sorted(benchmarks))}
    judged = {b for b in benchmarks if scoring_of(cfg, b)[1] == "judge"}
    arena = judging.arena_prompt(cfg.eval.arena_hard_prompt, cfg.originals.arena_hard_auto) \
        if "arena_hard" in judged else None
    if judged:   # the judge decides these scores, so it is part of their key (with a prompt file's sha256)
        spec["judge"] = judging.judge_spec(cfg.judge.provider, cfg.judge.model, arena)
    out = store.eval_dir(label, digest(spec))
    if store.exists(out):
        print(f"evaluate: {label} cache hit {out}")
        return json.loads((out / "manifest.json").read_text())["accuracy"]
    domain = get_domain(cfg.domain._target_)
    e = cfg.eval
    temperature = cfg.domain.eval.temperature   # the domain's: math samples at 0.2, the others decode greedily
    gen = GenConfig(max_new_tokens=e.max_new_tokens, temperature=temperature, top_p=e.top_p,
                    repetition_penalty=e.repetition_penalty, batch_size=e.batch_size, seed=cfg.seed, threads=e.threads)
    outputs = completions(cfg, store, label=label, model_path=model_path, model_key=model_key, key=out.name,
                          benchmarks=benchmarks, fewshot=fewshot, gen=gen)
    accuracy, preds = {}, []
    for bench, rows in benchmarks.items():
        outs = outputs[bench]
        if bench in judged:   # AlpacaEval 2.0 LC win rate / Arena-Hard win rate, as their authors score them
            source = OmegaConf.to_container(cfg.domain.sources[bench], resolve=True)
            v = judging.score(bench, Option.from_cfg(cfg.judge), store, rows, outs, source=source,
                              max_usd=cfg.budget.max_usd, seed=cfg.seed, arena=arena)
            ok, accuracy[bench] = v.won, v.score
            print(f"evaluate: {label} {bench} judged by {cfg.judge.name}: {v.score:.1f} "
                  + ", ".join(f"{k} {x:.4g}" if isinstance(x, float) else f"{k} {x}" for k, x in v.details.items()))
        else:
            if hasattr(domain, "score_details"):   # the score and extra verdicts (EvalPlus's base beside plus)
                ok, extra = domain.score_details(bench, outs, rows)
            else:
                ok, extra = domain.score_many(bench, outs, rows), {}
            accuracy[bench] = 100.0 * sum(ok) / max(len(ok), 1)
            accuracy.update({f"{bench}/{k}": 100.0 * sum(v) / max(len(v), 1) for k, v in extra.items()})
        preds += [{"benchmark": bench, "id": r["id"], "gold": r["answer"], "output": o, "correct": c}
                  for r, o, c in zip(rows, outs, ok)]
    with store.write(out, {"spec": spec, "label": label, "model_path": model_path, "accuracy": accuracy}) as tmp:
        write_jsonl(tmp / "predictions.jsonl", preds)
    print(f"evaluate: {label} " + ", ".join(f"{b} {a:.1f}%" for b, a in accuracy.items()))
    return accuracy


def completions(cfg: DictConfig, store: Store, *, label: str, model_path: str, model_key: str, key: str,
                benchmarks: dict[str, list[dict]], fewshot: list[tuple[str, str]], gen) -> dict[str, list[str]]:
    """Every benchmark's completions from one model, through `eval.backend`: hf (`generate` in this process) or vllm
    (a server on the model folder for this model only, fed by the engine; stopped when this returns or raises).
    Both render the same prompts in the student's chat format and stop on the same tokens."""
    from agora.chat import load_tokenizer
    from agora.hardware import resolve_bf16
    from agora.infer import (build_prompt, generate, generate_served, generation_eos_of, load_model,
                             served_from_cache, stop_token_ids)
    from agora.specs import eval_backend

    system = cfg.domain.system_prompt
    bf16 = resolve_bf16(cfg.eval.get("bf16", False), "eval.bf16")
    if eval_backend(cfg) == "hf":
        model, tok = load_model(model_path, cfg.student.chat_template, bf16=bf16)
        return {b: generate(model, tok, [build_prompt(tok, r["question"], system, fewshot) for r in rows], gen,
                            progress_desc=f"eval {label} {b}") for b, rows in benchmarks.items()}
    from agora.generators.vllm_server import eval_server

    v = cfg.eval.vllm
    if model_path.endswith(".gguf"):
        raise AgoraError(f"eval.backend=vllm serves model folders; {model_path} is a GGUF file (eval.backend=hf)")
    tok = load_tokenizer(model_path, cfg.student.chat_template)
    stops = stop_token_ids(None, tok, generation_eos_of(model_path))
    prompts = {b: [build_prompt(tok, r["question"], system, fewshot) for r in rows] for b, rows in benchmarks.items()}
    requests = store.root / "requests" / "eval"
    cache_path = requests / f"{label}-{key}.jsonl"
    cached = {b: served_from_cache(tok, ps, gen, stops, model_key=model_key, cache_path=cache_path)
              for b, ps in prompts.items()}
    if all(c is not None for c in cached.values()):   # all answered before (a crash after them): no server
        return cached
    with eval_server(model_path, log=requests / f"{label}-{key}.vllm.log", settings=v,
                     dtype="bfloat16" if bf16 else "float32") as url:
        return {b: generate_served(url, tok, ps, gen, stops, model_key=model_key, cache_path=cache_path,
                                   concurrency=v.concurrency, progress_desc=f"eval {label} {b} (vllm)")
                for b, ps in prompts.items()}


def fewshot_examples(cfg: DictConfig) -> list[tuple[str, str]]:
    """The base model's few-shot (question, solution) pairs: `eval.base_fewshot` of them in all.

    They are drawn in turn from the domain's human data sets (math at hub scale has two, GSM8K and MATH: 3 shots
    are 2 from GSM8K and 1 from MATH), so the setting counts shots, not shots per data set.
    """
    from agora.stages import split_rows

    k, names = cfg.eval.base_fewshot, list(cfg.domain.human[cfg.budget.data])
    if not k:
        return []
    per_source = [split_rows(cfg, [name], "train", -(-k // len(names))) for name in names]   # ceil(k / sources)
    turns = [rows[i] for i in range(max(map(len, per_source))) for rows in per_source if i < len(rows)]
    return [(r["question"], r["solution"]) for r in turns[:k]]


def run(cfg: DictConfig, tracker: Tracker) -> float | None:
    from agora.stages import rerun_command
    from agora.metrics.pgr import aggregate
    from agora.stages import split_rows
    from agora.stages.train import data_dir, reference_dir, student_path

    cell, store = Cell.from_cfg(cfg), Store(cfg.store_dir)
    data = cfg.budget.data
    src = data_dir(cfg, store)
    data_manifest = json.loads((src / "manifest.json").read_text())
    data_key = data_manifest["key"]
    student_out = store.student_dir(cell, digest({"data_key": data_key, **train_spec(cfg)}))
    if not store.exists(student_out):
        raise AgoraError(f"no trained student for cell {cell.name} (looked in {student_out}); make it with: "
                         f"{rerun_command('train')}")
    if cfg.reference.kind == "human_sft":
        ref_out, _ = reference_dir(cfg, store)
        if not store.exists(ref_out):
            raise AgoraError(f"no human_sft reference at {ref_out}; make it with: {rerun_command('train')}")
        ref_path, ref_key = str(ref_out / "model"), ref_out.name
    elif cfg.reference.kind == "checkpoint":
        ref_path = student_path(cfg.reference, store)
        ref_key = f"checkpoint:{cfg.reference.name}:{cfg.reference.model_id or cfg.reference.filename}"
    else:
        raise AgoraError(f"unknown reference.kind {cfg.reference.kind!r}; known: ['checkpoint', 'human_sft']")

    names = list(cfg.domain.benchmarks[data])
    from agora.generators import require_key
    from agora.specs import scoring_of

    judged = {b for b in names if scoring_of(cfg, b)[1] == "judge"}
    if judged:   # a judged benchmark needs the judge's key: say so before any model runs
        require_key(cfg.judge.api_key_env, f"{cfg.judge.name} (generator@judge=)")
    from agora.metrics import intrinsic

    intrinsic.run(cfg, store, src, tracker)   # the data set's own qualities, once per data cell (intrinsic.json)
    benchmarks = {b: split_rows(cfg, [b], scoring_of(cfg, b)[0], cfg.budget.eval_limit) for b in names}
    fewshot = fewshot_examples(cfg)
    base_path = student_path(cfg.student, store)
    scores = {
        "base": score_model(cfg, store, label="base", model_path=base_path, model_key=f"base:{cfg.student.name}",
                            benchmarks=benchmarks, fewshot=fewshot),
        "reference": score_model(cfg, store, label="reference", model_path=ref_path, model_key=ref_key,
                                 benchmarks=benchmarks, fewshot=[]),
    }
    twin_of = json.loads((student_out / "manifest.json").read_text()).get("twin_of")
    if cfg.reference.kind == "human_sft" and twin_of == ref_key:
        # The human control: train.py committed the reference's own weights (the same rows, settings and seed), and
        # the student is prompted as the reference is (no shots), so its scores are the reference's.
        print(f"evaluate: student = the reference's weights ({ref_out.name}): its scores")
        scores["student"] = dict(scores["reference"])
    else:
        scores["student"] = score_model(cfg, store, label="student", model_path=str(student_out / "model"),
                                        model_key=student_out.name, benchmarks=benchmarks, fewshot=[])
    per_bench = {b: {who: scores[who][b] for who in scores} for b in names}
    agg = aggregate(per_bench)
    metrics: dict = {}
    for b, s in per_bench.items():
        metrics.update({f"eval/{b}/{who}_accuracy": v for who, v in s.items()})
        metrics[f"pgr/{b}"] = agg["per_benchmark"][b]
    for who, acc in scores.items():   # extra verdicts (eval/humaneval_plus/base/...): logged, never in a PGR
        metrics.update({f"eval/{k}/{who}_accuracy": v for k, v in acc.items() if k not in per_bench})
    d = cfg.domain.name
    metrics[f"pgr/{d}"] = agg["mean_of_pgrs"]                 # mean of per-benchmark PGRs
    metrics[f"pgr/{d}_pgr_of_means"] = agg["pgr_of_means"]    # PGR of the mean scores
    metrics["pgr/undefined"] = ",".join(agg["undefined"])
    gen = data_manifest["summary"]
    metrics["gen/cost_usd"] = gen["cost_usd"]
    tracker.summary(metrics)
    tracker.log({k: v for k, v in metrics.items() if isinstance(v, (int, float))})
    mean = {who: sum(per_bench[b][who] for b in names) / len(names) for who in scores}
    # The report's row (agora/report/): a cell and train seed, with every setting that made its scores
    # (`settings`: the student, training, evaluation, reference). The report never merges rows whose settings differ
    # in anything but the train seed (`report.group_key`), and shows the settings in which rows differ.
    from omegaconf import OmegaConf

    from agora.metrics.pgr import summary_line
    from agora.scoring.judge import VERSION as JUDGE_VERSION

    spec, es = train_spec(cfg), eval_spec(cfg, names)
    reference = {**OmegaConf.to_container(cfg.reference, resolve=True), "key": ref_key}
    if cfg.reference.kind == "human_sft":   # its weights also follow from the human data it is fine-tuned on
        sources = OmegaConf.to_container(cfg.domain.sources, resolve=True)
        reference.update(human={h: sources.get(h) for h in cfg.domain.human[data]}, n_seeds=cfg.budget.n_seeds)
    settings = {
        "student": spec["student"], "reference": reference,
        "train": {**spec["train"], "system_prompt": spec["system_prompt"], "deepspeed": spec["deepspeed"]},
        "eval": {**es["eval"], **{k: v for k, v in es.items() if k != "eval"}, "judge": ({"provider": cfg.judge.provider, "model": cfg.judge.model, "version": JUDGE_VERSION}
                           if judged else None)},
    }
    agg = aggregate(per_bench, n={b: len(benchmarks[b]) for b in names})   # with the problem counts: noise flags
    row = {
        **cell.__dict__, "budget_n": gen["target"], "budget_usd": cfg.budget.usd, "train_seed": cfg.train.seed,
        "seed": cfg.seed, "reference_kind": cfg.reference.name,
        "pgr": agg["mean_of_pgrs"], "pgr_of_means": agg["pgr_of_means"], "pgr_undefined": agg["undefined"],
        "pgr_partial": agg["partial"],
        "benchmarks": {b: {**per_bench[b], "pgr": agg["per_benchmark"][b], "n": len(benchmarks[b]),
                           "gap_noise": agg["gap_noise"][b], "gap_within_noise": agg["gap_within_noise"][b]}
                       for b in names}, **mean,
        **{k: gen[k] for k in ("cost_usd", "input_tokens", "output_tokens", "kept", "dropped", "surplus", "failed")},
        "drop_reasons": data_manifest["drop_reasons"], "data_key": data_key,
        "data_dir": str(src.relative_to(store.root)), "student_key": student_out.name, "settings": settings,
    }
    row["group"] = report.group_key(row)
    store.record_result(student_out.name + "-" + cfg.reference.name, row, run_dir=report.hydra_run_dir())
    if report.in_multirun():
        print("evaluate: the sweep report is built when the multirun ends (agora/callbacks.py)")
    else:
        print(f"evaluate: sweep report {report.build_store(store.root)}")
    for b in names:
        p = agg["per_benchmark"][b]
        s = per_bench[b]
        print(f"evaluate {cell.name} {b}: base {s['base']:.1f}% reference {s['reference']:.1f}% "
              f"student {s['student']:.1f}% -> PGR " + (f"{p:.1f}%" if p is not None else
                                                         "undefined (reference <= base)"))
    m = agg["mean_of_pgrs"]
    print(summary_line(d, agg))   # "PGR <domain> (mean over benchmarks): ...", partial and noisy gaps named
    return m
