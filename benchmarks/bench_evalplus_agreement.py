"""Agora's code harness against EvalPlus's own: the same completions, sanitised and scored by both, must agree.

Why it exists: HumanEval+ / MBPP+ scores are only comparable with the paper's if Agora decides pass/fail as EvalPlus
does. This builds completions of many styles (fences, prose, several blocks, top-level asserts and prints, a
`__main__` block, missing imports, helpers, classes, decorators, duplicate definitions, wrong answers, syntax
errors, infinite loops, answers that pass base only, the prompt repeated or not) for real tasks of EvalPlus's
release files, then:
- EvalPlus: `evalplus==0.3.1` (the release that pins HumanEval+ v0.1.10 and MBPP+ v0.2.0), installed into a venv
  of its own (never a dependency of Agora), sanitises each completion (`evalplus.sanitize.sanitize`, as its
  codegen does for a chat model) and checks it (`evalplus.evaluate.check_correctness`, base and plus);
- Agora: `agora.domains.code.sanitize` and `score_parts` in Agora's sandbox.
It prints per-verdict agreement and pass@1 of both, lists every disagreement, and exits 1 on any.
`--record PATH` writes the tricky completions with EvalPlus's sanitised output (tests/test_code_sanitize.py).

    python benchmarks/bench_evalplus_agreement.py [--venv DIR] [--record tests/data/evalplus_sanitize_cases.json]
"""
from __future__ import annotations

import argparse
import ast
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
sys.path.insert(0, str(ROOT))
from venvs import venv_python   # noqa: E402  (benchmarks/venvs.py)

DATA = ROOT.parent / "shared" / "data" / "evalplus"
FILES = {"humaneval": "HumanEvalPlus-v0.1.10.jsonl.gz", "mbpp": "MbppPlus-v0.2.0.jsonl.gz"}
PINS = ["evalplus==0.3.1", "tree-sitter==0.23.2", "tree-sitter-python==0.23.6"]
TASKS = {"humaneval": ["HumanEval/0", "HumanEval/2", "HumanEval/10", "HumanEval/12", "HumanEval/32", "HumanEval/55",
                       "HumanEval/107"],
         "mbpp": ["Mbpp/2", "Mbpp/3", "Mbpp/11", "Mbpp/17", "Mbpp/56", "Mbpp/581", "Mbpp/603"]}

# Run inside EvalPlus's venv: its sanitiser and its evaluator, on the cases file; writes the verdicts file.
EVALPLUS_SIDE = r'''
import json, sys
from concurrent.futures import ThreadPoolExecutor
from evalplus.sanitize import sanitize
from evalplus.data import get_human_eval_plus, get_mbpp_plus
from evalplus.evaluate import get_groundtruth, check_correctness
from evalplus.eval._special_oracle import MBPP_OUTPUT_NOT_NONE_TASKS

cases = json.load(open(sys.argv[1]))
problems = {"humaneval": get_human_eval_plus(), "mbpp": get_mbpp_plus()}
truth = {}
for ds, oracle in (("humaneval", []), ("mbpp", MBPP_OUTPUT_NOT_NONE_TASKS)):
    need = sorted({c["task_id"] for c in cases if c["dataset"] == ds})
    truth[ds] = get_groundtruth({t: problems[ds][t] for t in need}, "agora-" + ds + "-" + str(len(need)), oracle)

def one(c):
    problem = problems[c["dataset"]][c["task_id"]]
    solution = sanitize(c["completion"], entrypoint=problem["entry_point"])
    r = check_correctness(c["dataset"], 0, problem, solution, truth[c["dataset"]][c["task_id"]])
    return {"sanitized": solution, "base": r["base"][0] == "pass",
            "plus": r["base"][0] == "pass" and r["plus"][0] == "pass"}

with ThreadPoolExecutor(2) as pool:
    json.dump(list(pool.map(one, cases)), open(sys.argv[2], "w"))
'''


def records(ds: str) -> dict[str, dict]:
    with gzip.open(DATA / FILES[ds], "rt", encoding="utf-8") as f:
        return {r["task_id"]: r for r in map(json.loads, f)}


def literal(inputs) -> str | None:
    text = repr(inputs)
    try:
        return text if ast.literal_eval(text) == inputs else None
    except (ValueError, SyntaxError):
        return None


def styles(ds: str, r: dict, base: list) -> list[tuple[str, str]]:
    """(style, completion) pairs for one task: right, wrong and odd ways to write it."""
    ep = r["entry_point"]
    code = (r["prompt"] + r["canonical_solution"]) if ds == "humaneval" else r["canonical_solution"]
    code = code.replace("\r\n", "\n").strip("\n")
    args0 = ", ".join(repr(a) for a in base[0])
    impl = re.sub(rf"\bdef {re.escape(ep)}\(", f"def _impl_{ep}(", code, count=1)
    imports = "\n".join(line for line in code.splitlines() if re.match(r"(import|from)\s", line))
    bare = "\n".join(line for line in code.splitlines() if not re.match(r"(import|from)\s", line))
    fenced = f"```python\n{code}\n```"
    out = [
        ("fenced", fenced),
        ("prose_around", f"Here is a solution.\n\n{fenced}\n\nThis function solves it; explanation follows.\n"),
        ("failing_top_level_assert", f"```python\n{code}\n\nassert {ep}({args0}) == 'surely not this'\n```"),
        ("prints_and_main", f"```python\n{code}\n\nprint({ep}({args0}))\n\nif __name__ == '__main__':\n"
                            f"    print({ep}({args0}))\n    raise SystemExit(1)\n```"),
        ("two_blocks", f"{fenced}\n\nExample usage:\n\n```python\nprint({ep}({args0}))\nassert False\n```\n"),
        ("no_fence", f"{code}\n\nThat is the whole program."),
        ("unclosed_fence", f"Sure:\n```python\n{code}\n"),
        ("top_level_crash", f"```python\n{code}\n\nresult = 1 / 0\nprint(result)\n```"),
        ("helper", f"```python\n{impl}\n\n\ndef {ep}(*args):\n    return _impl_{ep}(*args)\n```"),
        ("class", f"```python\n{impl}\n\n\nclass Solver:\n    def run(self, *args):\n        return _impl_{ep}(*args)"
                  f"\n\n\ndef {ep}(*args):\n    return Solver().run(*args)\n```"),
        ("constant", f"```python\n{impl}\n\n_SCALE = 1\n\n\ndef {ep}(*args):\n    if _SCALE == 1:\n"
                     f"        return _impl_{ep}(*args)\n    return None\n```"),
        ("decorated_entry_point", f"```python\nimport functools\n{impl}\n\n\n@functools.lru_cache(maxsize=None)\n"
                                  f"def {ep}(*args):\n    return _impl_{ep}(*args)\n```"),
        ("duplicate_wrong_first", f"```python\ndef {ep}(*args):\n    return None\n\n\n{code}\n```"),
        ("future_import", f"```python\nfrom __future__ import annotations\n{code}\n```"),
        ("wrong_answer", f"```python\ndef {ep}(*args):\n    return None\n```"),
        ("no_return", f"```python\ndef {ep}(*args):\n    print(args)\n```"),
        ("syntax_error", fenced.replace("return ", "return return ", 1) if "return " in code
         else fenced.replace(":", "", 1)),
        ("infinite_loop", f"```python\ndef {ep}(*args):\n    while True:\n        pass\n    return None\n```"),
        ("memorises_base", f"```python\n{impl}\n\n_SEEN = {literal(base)}\n\n\ndef {ep}(*args):\n"
                           f"    if list(args) in _SEEN:\n        return _impl_{ep}(*args)\n    return None\n```"),
    ]
    if imports:
        out.append(("missing_import", f"```python\n{bare}\n```"))
    if ds == "humaneval":
        out.append(("body_only", f"```python\n{r['canonical_solution'].strip(chr(10))}\n```"))
        out.append(("prompt_not_repeated", f"```python\n{imports}\ndef {ep}(*args):\n    return _impl_{ep}(*args)"
                                           f"\n```\nwith the helper:\n```python\n{impl}\n```"))
    return out


def cases() -> list[dict]:
    from agora.domains.code import evalplus

    out = []
    for ds, ids in TASKS.items():
        recs = records(ds)
        for tid in ids:
            r = recs[tid]
            base = evalplus.mbpp_inputs(tid, r["base_input"]) if ds == "mbpp" else r["base_input"]
            if literal(base) is None:
                raise SystemExit(f"{tid}: base inputs are not Python literals; pick another task")
            out += [{"dataset": ds, "task_id": tid, "style": s, "completion": c} for s, c in styles(ds, r, base)]
    return out


def evalplus_verdicts(py: Path, work: Path, items: list[dict]) -> list[dict]:
    env = {**os.environ, "XDG_CACHE_HOME": str(work / "cache")}
    for ds, var in (("humaneval", "HUMANEVAL_OVERRIDE_PATH"), ("mbpp", "MBPP_OVERRIDE_PATH")):
        plain = work / FILES[ds].removesuffix(".gz")
        plain.write_bytes(gzip.decompress((DATA / FILES[ds]).read_bytes()))
        env[var] = str(plain)
    (work / "side.py").write_text(EVALPLUS_SIDE)
    (work / "cases.json").write_text(json.dumps(items))
    subprocess.run([str(py), str(work / "side.py"), str(work / "cases.json"), str(work / "verdicts.json")],
                   check=True, env=env, cwd=work)
    return json.loads((work / "verdicts.json").read_text())


def agora_verdicts(items: list[dict]) -> list[dict]:
    from agora.domains import code
    from agora.domains.code.sanitize import sanitize

    names = {"humaneval": "humaneval_plus", "mbpp": "mbpp_plus"}
    rows = {ds: {r["id"]: r for r in code.load(names[ds], "test", {"local": str(DATA / FILES[ds])}, None, 0)}
            for ds in names}
    out = [{} for _ in items]
    for ds, bench in names.items():
        idx = [i for i, c in enumerate(items) if c["dataset"] == ds]
        parts = code.score_parts(bench, [items[i]["completion"] for i in idx],
                                 [rows[ds][items[i]["task_id"]] for i in idx])
        for k, i in enumerate(idx):
            entry = rows[ds][items[i]["task_id"]]["entry_point"]
            out[i] = {"sanitized": sanitize(items[i]["completion"], entry), "base": parts["base"][k],
                      "plus": parts["plus"][k]}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--venv", default=str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
                                          / "agora-bench" / "evalplus-0.3.1"), help="EvalPlus's own venv")
    ap.add_argument("--record", help="write the completions and EvalPlus's sanitised outputs here (JSON)")
    args = ap.parse_args()
    items = cases()
    py = venv_python(Path(args.venv), PINS)
    with tempfile.TemporaryDirectory(prefix="agora-evalplus-") as tmp:
        t0 = time.monotonic()
        theirs = evalplus_verdicts(py, Path(tmp), items)
        t1 = time.monotonic()
    ours = agora_verdicts(items)
    t2 = time.monotonic()
    print(f"{len(items)} completions ({len({c['task_id'] for c in items})} tasks, "
          f"{len({c['style'] for c in items})} styles); EvalPlus {t1 - t0:.0f} s, Agora {t2 - t1:.0f} s")
    bad = 0
    for ds in TASKS:
        idx = [i for i, c in enumerate(items) if c["dataset"] == ds]
        line = [f"{ds}: n={len(idx)}"]
        for v in ("base", "plus"):
            agree = sum(ours[i][v] == theirs[i][v] for i in idx)
            line.append(f"{v} agree {agree}/{len(idx)}, pass@1 EvalPlus {100 * sum(theirs[i][v] for i in idx) / len(idx):.1f}"
                        f" Agora {100 * sum(ours[i][v] for i in idx) / len(idx):.1f}")
        same = sum(ours[i]["sanitized"] == theirs[i]["sanitized"] for i in idx)
        print("  ".join(line) + f"  sanitised text identical {same}/{len(idx)}")
    for i, c in enumerate(items):
        diff = [v for v in ("base", "plus") if ours[i][v] != theirs[i][v]]
        if diff:
            bad += 1
            print(f"DISAGREE {c['task_id']} {c['style']}: " + ", ".join(
                f"{v} EvalPlus {theirs[i][v]} Agora {ours[i][v]}" for v in diff))
        if ours[i]["sanitized"] != theirs[i]["sanitized"]:
            print(f"sanitised text differs: {c['task_id']} {c['style']}\n--- EvalPlus\n{theirs[i]['sanitized']}\n"
                  f"--- Agora\n{ours[i]['sanitized']}")
    if args.record:
        tricky = [{"task_id": c["task_id"], "style": c["style"], "completion": c["completion"],
                   "entry_point": _entry(c), "evalplus_sanitized": theirs[i]["sanitized"],
                   "evalplus_base": theirs[i]["base"], "evalplus_plus": theirs[i]["plus"]}
                  for i, c in enumerate(items) if c["task_id"] in ("HumanEval/10", "Mbpp/2")]
        Path(args.record).write_text(json.dumps({"recorded_with": PINS, "cases": tricky}, indent=1) + "\n")
        print(f"recorded {len(tricky)} cases to {args.record}")
    print("agreement: 100%" if not bad else f"{bad} disagreements")
    return 1 if bad else 0


def _entry(c: dict) -> str:
    return records(c["dataset"])[c["task_id"]]["entry_point"]


if __name__ == "__main__":
    raise SystemExit(main())
