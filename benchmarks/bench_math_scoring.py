"""How often each math scorer agrees with a person, on the hand-labelled outputs of tests/data/math_outputs.jsonl.

    python benchmarks/bench_math_scoring.py
    python benchmarks/bench_math_scoring.py --baseline /tmp/v1_math_answers.py   # also score with another copy

Why it exists: a base model's and a student's accuracy only mean something if the scorer reads an answer the way a
person grading it would, and PGR divides differences of those accuracies. This prints the agreement with the human
labels of agora's scorer (`agora.scoring.math_answers.is_correct`), on GSM8K and MATH rows, beside the two GSM8K
extractions of lm-evaluation-harness (task `gsm8k`, metadata version 3.0), re-implemented here from its task YAML:

- strict-match: the first match of `#### (\\-?[0-9\\.\\,]+)`, else "[invalid]";
- flexible-extract: the last match of `(-?[$0-9.,]{2,})|(-?[0-9]+)` (whichever group matched), else "[invalid]".

Both are stripped, then the prediction and the reference go through the task's exact-match normalisation: delete
every ",", every "$", everything up to and including the last "#### ", and one final "."; lower-case; compare the
strings exactly. The reference is the data set's answer field, which that normalisation cuts to the final number:
the corpus's `gold` for GSM8K is that number already.

lm-eval also stops generation at "Question:", "</s>" and "<|im_end|>"; the rows "with its stops" apply those cuts
to each output first, which is what lm-eval would have seen had it generated the same text. `--baseline PATH` scores
with another copy of math_answers.py as well (e.g. the previous version from `git show`), to measure a change.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import re
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from agora.scoring import math_answers

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "data" / "math_outputs.jsonl"
STRICT = re.compile(r"#### (\-?[0-9\.\,]+)")
FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
LM_EVAL_STOPS = ("Question:", "</s>", "<|im_end|>")


def lm_eval_normalise(s: str) -> str:
    for pattern in (r",", r"\$", r"(?s).*#### ", r"\.$"):
        s = re.sub(pattern, "", s)
    return s.lower()


def lm_eval_extract(output: str, flexible: bool) -> str:
    matches = (FLEXIBLE if flexible else STRICT).findall(output)
    if not matches:
        return "[invalid]"
    m = matches[-1] if flexible else matches[0]
    if isinstance(m, tuple):   # flexible has two groups: the one that matched
        m = next(g for g in m if g)
    return m.strip()


def lm_eval_correct(output: str, gold: str, flexible: bool, stops: bool) -> bool:
    if stops:
        for stop in LM_EVAL_STOPS:
            output = output.split(stop, 1)[0]
    return lm_eval_normalise(lm_eval_extract(output, flexible)) == lm_eval_normalise(gold)


def load_scorer(path: str) -> Callable[[dict], bool]:
    spec = importlib.util.spec_from_file_location("baseline_math_answers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def score(r: dict) -> bool:
        try:   # an older copy may not take `question`
            return module.is_correct(r["output"], r["gold"], latex=r["benchmark"] == "math", question=r["question"])
        except TypeError:
            return module.is_correct(r["output"], r["gold"], latex=r["benchmark"] == "math")
    return score


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", default=str(CORPUS))
    ap.add_argument("--baseline", help="another copy of agora/scoring/math_answers.py to score with too")
    ap.add_argument("--by-style", action="store_true", help="also break the GSM8K rows down by output style")
    args = ap.parse_args()
    rows = [json.loads(line) for line in Path(args.corpus).read_text().splitlines() if line.strip()]

    scorers: dict[str, tuple[str, Callable[[dict], bool]]] = {
        f"agora (VERSION {math_answers.VERSION})": ("both", lambda r: math_answers.is_correct(
            r["output"], r["gold"], latex=r["benchmark"] == "math", question=r["question"])),
    }
    if args.baseline:
        scorers[f"baseline ({Path(args.baseline).name})"] = ("both", load_scorer(args.baseline))
    for flexible in (False, True):
        for stops in (False, True):
            name = f"lm-eval {'flexible-extract' if flexible else 'strict-match'}{' (with its stops)' if stops else ''}"
            scorers[name] = ("gsm8k", lambda r, f=flexible, s=stops: lm_eval_correct(r["output"], r["gold"], f, s))

    batches = sorted({r["batch"] for r in rows})
    print(f"{len(rows)} labelled outputs: " + ", ".join(
        f"{b} {sum(r['benchmark'] == b for r in rows)} ({sum(r['benchmark'] == b and r['correct'] for r in rows)} "
        f"right)" for b in ("gsm8k", "math")) + "; batches " + ", ".join(
        f"{b} {sum(r['batch'] == b for r in rows)}" for b in batches))
    header = f"{'scorer':44} {'benchmark':9} {'agree':>13} " + " ".join(f"{b:>10}" for b in batches)
    print(header + "\n" + "-" * len(header))
    for name, (which, score) in scorers.items():
        for bench in ("gsm8k", "math"):
            if which != "both" and which != bench:
                continue
            sub = [r for r in rows if r["benchmark"] == bench]
            ok = [score(r) == r["correct"] for r in sub]
            per_batch = defaultdict(list)
            for r, o in zip(sub, ok):
                per_batch[r["batch"]].append(o)
            cells = " ".join(f"{100 * sum(per_batch[b]) / len(per_batch[b]):9.1f}%" if per_batch[b] else f"{'-':>10}"
                             for b in batches)
            print(f"{name:44} {bench:9} {sum(ok):4}/{len(ok):<4} {100 * sum(ok) / len(ok):5.1f}% {cells}")
    if args.by_style:
        print("\nGSM8K agreement by style")
        styles = sorted({r["style"] for r in rows if r["benchmark"] == "gsm8k"})
        print(f"{'scorer':44} " + " ".join(f"{s:>16}" for s in styles))
        for name, (_, score) in scorers.items():
            cells = []
            for s in styles:
                sub = [r for r in rows if r["benchmark"] == "gsm8k" and r["style"] == s]
                cells.append(f"{sum(score(r) == r['correct'] for r in sub):>7}/{len(sub):<3} "
                             f"{100 * sum(score(r) == r['correct'] for r in sub) / len(sub):3.0f}%")
            print(f"{name:44} " + " ".join(f"{c:>16}" for c in cells))


if __name__ == "__main__":
    main()
