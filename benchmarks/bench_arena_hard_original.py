"""Arena-Hard v0.1's own scoring code and Agora's scorer on the same judgments files: score and 95% interval.

Why it exists: the published judgments (`model_judgment/gpt-4-1106-preview/*.jsonl`) are too large to keep beside the
repository, so this builds judgments files in v0.1's format (what `gen_judgment.py` writes: `question_id`, `model`,
`judge`, two `games` of `user_prompt`, `judgment`, `score`) with seeded verdicts for several models, strong and
missing labels included, runs arena-hard-auto's `show_result.py` at b00effb on them in a venv of its own, runs
Agora's `arena_hard_leaderboard` / `bootstrap_interval` on the same files, and prints both. Three layouts: each model
alone in its judge folder, all models in one folder (the leaderboard's joint fit), and the compact fixture that
tests/test_judge_published.py pins.

    python benchmarks/bench_arena_hard_original.py --repo /path/to/arena-hard-auto   # a clone (or its git dir)

The original's code is read with `git show <commit>:<file>` from that clone and run from a temporary folder; it is
never copied into this repository. The venv (numpy<2: show_result.py uses np.NAN) is made once at --venv.
"""
from __future__ import annotations

import argparse
import csv
import glob
import gzip
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agora import originals                 # noqa: E402
from agora.scoring import judge as J        # noqa: E402
from venvs import venv_python                # noqa: E402  (benchmarks/venvs.py)

COMMIT = originals.ARENA_HARD_AUTO.commit
SHARED = ROOT.parent / "shared" / "data" / "arena_hard"
BENCH = "data/arena-hard-v0.1"
FIXTURE = ROOT / "tests" / "data" / "arena_hard_judgments"
VENV_PACKAGES = ["numpy==1.26.4", "pandas==2.2.2", "scikit-learn==1.5.1", "tqdm", "plotly==5.23.0", "pyyaml",
                 "requests"]
# The model's outcome against the baseline: much better, better, tie, worse, much worse, no label, two labels.
OUTCOMES = ("much_better", "better", "tie", "worse", "much_worse", "no_label", "two_labels")
MIXES = {   # probabilities in OUTCOMES' order, chosen to spread the scores from about 17 to 81
    "gpt-4-0613": (0.04, 0.22, 0.16, 0.33, 0.19, 0.04, 0.02),
    "gpt-3.5-turbo-0125": (0.02, 0.13, 0.14, 0.36, 0.31, 0.03, 0.01),
    "synthetic-strong": (0.30, 0.30, 0.15, 0.12, 0.05, 0.06, 0.02),
    "synthetic-even": (0.12, 0.25, 0.26, 0.25, 0.12, 0.0, 0.0),
}
FIXTURE_MODELS = ("gpt-4-0613", "gpt-3.5-turbo-0125", "synthetic-strong")
_LABEL = {1: {"much_better": "B>>A", "better": "B>A", "tie": "A=B", "worse": "A>B", "much_worse": "A>>B"},
          2: {"much_better": "A>>B", "better": "A>B", "tie": "A=B", "worse": "B>A", "much_worse": "B>>A"}}


def judgments(model: str, questions: list[dict], answers: dict, *, seed: int, full: bool) -> list[dict]:
    """One model's judgment records, verdicts drawn from its mix with a seeded generator. `full`: each game's
    user_prompt is the judge config's template filled as gen_judgment.py fills it; else it is left empty."""
    template = _template() if full else None
    rng = random.Random(f"{seed}-{model}")
    base, mine = answers["gpt-4-0314"], answers.get(model, answers["gpt-4-0314"])
    out = []
    for q in questions:
        qid, games = q["question_id"], []
        for game in (1, 2):
            outcome = rng.choices(OUTCOMES, weights=MIXES[model])[0]
            if outcome == "no_label":
                text = "Both answers were weighed; the judgment stops here."
            elif outcome == "two_labels":
                text = "First [[A>B]], then on reflection [[B>A]]."
            else:
                text = f"Weighed answer by answer. My final verdict: [[{_LABEL[game][outcome]}]]"
            label, _ = J.arena_label("\n" + text)   # the score gen_judgment.py's get_score gives this judgment
            a, b = (base[qid], mine[qid]) if game == 1 else (mine[qid], base[qid])
            prompt = template.format(question_1=q["turns"][0]["content"], answer_1=a, answer_2=b) if full else ""
            games.append({"user_prompt": prompt, "judgment": "\n" + text, "score": label})
        out.append({"question_id": qid, "model": model, "judge": "gpt-4-1106-preview", "games": games})
    return out


def _template() -> str:
    import yaml

    text, _ = originals.read(originals.ARENA_HARD_AUTO, SHARED, "config/judge_config.yaml")
    return yaml.safe_load(text)["prompt_template"][0]


def _jsonl(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write(folder: Path, records: list[dict], gz: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (records[0]["model"] + (".jsonl.gz" if gz else ".jsonl"))
    opener = gzip.open if gz else open
    with opener(path, "wt", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return path


def original(py: Path, work: Path, judge: str, rounds: int) -> tuple[dict, list[str]]:
    """show_result.py's leaderboard for data/arena-hard-v0.1/model_judgment/<judge>/: {model: (score, lower,
    upper)} as its CSV prints them, and the file order its glob saw."""
    for f in work.glob("leaderboard/*.csv"):
        f.unlink()
    subprocess.run([str(py), "show_result.py", "--judge-name", judge, "--num-rounds", str(rounds), "--output"],
                   cwd=work, check=True, capture_output=True, text=True)
    (table,) = work.glob("leaderboard/*.csv")
    with open(table) as f:
        rows = {r["model"]: (float(r["score"]), float(r["rating_q025"]), float(r["rating_q975"]))
                for r in csv.DictReader(f)}
    order = glob.glob(f"{work}/{BENCH}/model_judgment/{judge}/*jsonl")   # the same call, the same directory
    return rows, order


def agora(files: list[str], rounds: int) -> dict:
    battles = [b for f in files for b in J.arena_judgment_battles(_jsonl(Path(f)))]
    return {m: tuple(round(x, 2) for x in v) for m, v in J.arena_hard_leaderboard(battles, rounds=rounds).items()}


def agora_alone(files: list[str], rounds: int) -> dict:
    """Each model fitted alone against the baseline, as the evaluate stage scores one student."""
    out = {}
    for f in files:
        recs = _jsonl(Path(f))
        battles = [o for _, o in J.arena_judgment_battles(recs)]
        lo, hi = J.bootstrap_interval(battles, rounds=rounds, seed=42)
        out[recs[0]["model"]] = tuple(round(x, 2) for x in (J.bradley_terry_win_rate(battles), lo, hi))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", required=True, help="a clone of lmarena/arena-hard-auto (or its git dir)")
    ap.add_argument("--venv", default=str(Path.home() / ".cache" / "agora" / "arena-hard-v0.1-venv"))
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--write-fixture", action="store_true", help=f"(re)write {FIXTURE.relative_to(ROOT)}")
    args = ap.parse_args()

    questions = _jsonl(SHARED / BENCH / "question.jsonl")
    answers = {p.stem: {r["question_id"]: r["choices"][0]["turns"][0]["content"] for r in _jsonl(p)}
               for p in (SHARED / BENCH / "model_answer").glob("*.jsonl")}
    py = venv_python(Path(args.venv), VENV_PACKAGES)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in ("show_result.py", "utils.py"):
            text = subprocess.run(["git", f"--git-dir={_git_dir(args.repo)}", "show", f"{COMMIT}:{name}"],
                                  check=True, capture_output=True, text=True).stdout
            (work / name).write_text(text)
        (work / "leaderboard").mkdir()
        judged = work / BENCH / "model_judgment"
        full = {m: judgments(m, questions, answers, seed=args.seed, full=True) for m in MIXES}
        layouts = {"joint": list(MIXES), **{f"alone-{m}": [m] for m in MIXES}, "fixture": list(FIXTURE_MODELS)}
        for layout, models in layouts.items():
            for m in models:
                recs = full[m] if layout != "fixture" else \
                    judgments(m, questions, answers, seed=args.seed, full=False)
                write(judged / layout, recs)
        results = {}
        for layout in layouts:
            theirs, order = original(py, work, layout, args.rounds)
            results[layout] = {"order": [Path(f).name for f in order], "original": theirs,
                               "agora_joint": agora(order, args.rounds), "agora_alone": agora_alone(order, args.rounds)}
        if args.write_fixture:
            for m in FIXTURE_MODELS:
                write(FIXTURE, judgments(m, questions, answers, seed=args.seed, full=False), gz=True)
    report(results)


def _git_dir(repo: str) -> str:
    p = Path(repo)
    return str(p / ".git") if (p / ".git").exists() else str(p)


def report(results: dict) -> None:
    worst = {"score": 0.0, "interval": 0.0}
    print("| layout | model | original: score (lower, upper) | Agora, fitted as the original | Agora, each model alone |")
    print("|---|---|---|---|---|")
    for layout, r in results.items():
        for m, (s, lo, hi) in sorted(r["original"].items(), key=lambda kv: -kv[1][0]):
            if m == "gpt-4-0314":
                continue
            a, alone = r["agora_joint"][m], r["agora_alone"][m]
            worst["score"] = max(worst["score"], abs(a[0] - s))
            worst["interval"] = max(worst["interval"], abs(a[1] - lo), abs(a[2] - hi))
            print(f"| {layout} | {m} | {s:.2f} ({lo:.2f}, {hi:.2f}) | {a[0]:.2f} ({a[1]:.2f}, {a[2]:.2f}) "
                  f"| {alone[0]:.2f} ({alone[1]:.2f}, {alone[2]:.2f}) |")
    print(f"\nlargest |Agora - original|, Agora fitted as the original: score {worst['score']:.2f}, "
          f"interval ends {worst['interval']:.2f}")
    print("file order (the original's glob):", json.dumps({k: v["order"] for k, v in results.items()}))
    print(json.dumps({k: v["original"] for k, v in results.items()}))
    ok = worst["score"] == 0.0 and worst["interval"] <= 0.5
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
