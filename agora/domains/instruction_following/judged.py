"""The judged instruction-following benchmarks' data: AlpacaEval 2.0's 805 prompts with the GPT-4 Turbo baseline,
and Arena-Hard-Auto v0.1's 500 prompts with the GPT-4-0314 baseline.

Why it exists: both live on the hub as plain files in repositories that `datasets>=4` cannot load
(tatsu-lab/alpaca_eval is a loading-script repository; lmarena-ai/arena-hard-auto keeps questions and each
model's answers in separate JSONL files). So they are fetched as files with `huggingface_hub`, at the revision
the source names, or read from `domain.sources.<name>.local`. Scoring lives in `agora.scoring.judge`.

Every row is `{"id", "question", "solution": "", "answer": <the baseline's output>}`; AlpacaEval rows also keep
`index`, the prompt's position among the 805, which the length-controlled GLM uses to look up its difficulty.
"""
from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

from agora import AgoraError

BENCHMARKS = ("alpaca_eval", "arena_hard")
ALPACA_N = 805   # AlpacaEval 2.0 prompts (the length-controlled GLM needs every one)


def _read_json_records(path: Path, what: str) -> list[dict]:
    """A JSON array or JSONL file (plain or .gz) of records, with the file and line named on bad input."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise AgoraError(f"{what}={path}: cannot be read ({e})") from None
    if text.lstrip().startswith("["):
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise AgoraError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise AgoraError(f"{path}:{n}: not a JSON record ({e.msg}); fix or remove that line") from None
    return out


def _hub_file(name: str, source: dict, filename: str) -> Path:
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo_id=source["hub"], filename=filename, repo_type="dataset",
                                    revision=source.get("revision")))
    except Exception as e:
        raise AgoraError(f"could not download {filename} of {source['hub']} for {name!r} ({type(e).__name__}: {e}). "
                         f"Offline, set domain.sources.{name}.local=/path/to/the/file(s), or use budget=smoke") from e


def _local(name: str, source: dict) -> Path:
    path = Path(str(source["local"])).expanduser()
    if not path.exists():
        raise AgoraError(f"domain.sources.{name}.local={path}: no such file or folder")
    return path


# ---------------------------------------------------------------- AlpacaEval 2.0

def alpaca_eval_rows(source: dict) -> list[dict]:
    """The 805 prompts with the baseline outputs (alpaca_eval_gpt4_baseline.json: instruction, output, generator)."""
    what = "domain.sources.alpaca_eval.local"
    path = _local("alpaca_eval", source) if source.get("local") else _hub_file("alpaca_eval", source, source["file"])
    if path.is_dir():
        path = path / source["file"]
    records = _read_json_records(path, what)
    rows = []
    for i, r in enumerate(records):
        if not {"instruction", "output"} <= set(r):
            raise AgoraError(f"{path}: record {i + 1} has no `instruction`/`output`; AlpacaEval's files have both")
        rows.append({"id": f"alpaca-{i}", "question": r["instruction"], "solution": "", "answer": r["output"] or "",
                     "baseline": r.get("generator", ""), "index": i})
    if len(rows) != ALPACA_N:   # the GLM's instruction difficulties are keyed by position among the 805
        raise AgoraError(f"{path}: {len(rows)} AlpacaEval prompts, not {ALPACA_N}; the length-controlled win rate "
                         f"needs the whole set in its published order (use budget.eval_limit to score fewer)")
    return rows


# ---------------------------------------------------------------- Arena-Hard-Auto v0.1

def _answer_text(r: dict) -> str:
    """A model answer in either of arena-hard-auto's layouts: `messages` (its content may be {"answer": ...}), or
    the older `choices[0].turns[0].content`."""
    if "messages" in r:
        content = r["messages"][-1]["content"]
        return content["answer"] if isinstance(content, dict) else content
    return r["choices"][0]["turns"][0]["content"]


def _question_text(r: dict) -> str:
    return r["prompt"] if "prompt" in r else r["turns"][0]["content"]


def _uid(r: dict) -> str:
    return str(r.get("uid") or r.get("question_id"))


def arena_hard_rows(source: dict) -> list[dict]:
    """The v0.1 questions, each with the baseline's answer: the repository's question.jsonl and
    model_answer/<baseline>.jsonl (from the hub, or a local folder laid out the same way), or one local JSONL of
    {uid, prompt, baseline} records."""
    q_file, a_file = source["questions"], source["baseline_answers"]
    if source.get("local"):
        path = _local("arena_hard", source)
        if path.is_file():   # one file with question and baseline answer per record
            recs = _read_json_records(path, "domain.sources.arena_hard.local")
            try:
                return [{"id": f"arena-{_uid(r) if _uid(r) != 'None' else i}", "question": _question_text(r),
                         "solution": "", "answer": r.get("baseline") or r["baseline_answer"]}
                        for i, r in enumerate(recs)]
            except KeyError as e:
                raise AgoraError(f"{path}: a record has no {e}; expected {{uid, prompt, baseline}}") from None
        q_path = next((p for p in (path / q_file, path / Path(q_file).name) if p.is_file()), path / q_file)
        a_path = next((p for p in (path / a_file, path / "model_answer" / Path(a_file).name, path / Path(a_file).name)
                       if p.is_file()), path / a_file)
        for p in (q_path, a_path):
            if not p.is_file():
                raise AgoraError(f"domain.sources.arena_hard.local={path}: no {p.relative_to(path)} in that folder")
    else:
        q_path, a_path = _hub_file("arena_hard", source, q_file), _hub_file("arena_hard", source, a_file)
    questions = _read_json_records(q_path, "arena_hard questions")
    answers = {_uid(r): _answer_text(r) for r in _read_json_records(a_path, "arena_hard baseline answers")}
    missing = [_uid(q) for q in questions if _uid(q) not in answers]
    if missing:
        raise AgoraError(f"{a_path}: no baseline answer for {len(missing)} questions of {q_path.name} "
                         f"(first: {missing[0]}); are they the same version?")
    return [{"id": f"arena-{_uid(q)}", "question": _question_text(q), "solution": "", "answer": answers[_uid(q)]}
            for q in questions]


def load(name: str, source: dict, limit: int | None, seed: int) -> list[dict]:
    """The benchmark's rows (one published split), `limit` of them drawn with `seed`."""
    rows = alpaca_eval_rows(source) if name == "alpaca_eval" else arena_hard_rows(source)
    return random.Random(seed).sample(rows, limit) if limit is not None and limit < len(rows) else rows
