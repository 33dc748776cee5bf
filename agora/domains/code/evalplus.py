"""HumanEval+ and MBPP+ (EvalPlus): the paper's code benchmarks, loaded from EvalPlus's release files and scored
by differential testing in Agora's sandbox.

Why it exists: AgoraBench scores HumanEval and MBPP with EvalPlus's extended tests. A completion passes only if
it agrees with the canonical solution on every base input (the original benchmark's) and every plus input
(EvalPlus's additions), as `evalplus.evaluate` decides it:
- expected outputs come from the canonical solution (`prompt + canonical_solution`) run on a deep copy of each input;
- equal means `==`, except that float results (or a non-zero `atol`) are compared like `np.allclose(out, exp,
  rtol=1e-7, atol=atol)` with `atol` raised to 1e-6 once a float result is seen, and except the few tasks
  EvalPlus gives a special oracle (HumanEval/32 `find_zero`; MBPP+ set-valued, not-None, and three others);
- each input has a time limit of max(1 s, 4 x the canonical solution's time on it);
- plus passes only when base passes too.

What differs from EvalPlus, and why:
- The canonical solution runs inside the same sandbox, right before the candidate on each input, instead of once
  in the harness process with its outputs cached. Nothing the data set ships is executed outside the sandbox,
  and its timing is measured on the same machine under the same limits as the candidate's.
- The wall clock of each test set's run is Agora's sandbox timeout (`TIMEOUT_S`, both solutions on that set)
  rather than EvalPlus's min(60 s, sum of limits) + 1 s.
As in EvalPlus, the candidate is the sanitised completion (agora/domains/code/sanitize.py), never the prompt plus
the completion, and base and plus are two runs: base pass@1, and plus pass@1 (base and plus both pass), which is
the score the paper reports as HumanEval+ / MBPP+.

The data: EvalPlus's own release files, the versions the `evalplus` 0.3.1 package pins (HumanEvalPlus v0.1.10,
MbppPlus v0.2.0). The `evalplus` package ships no data (it downloads these at run time) and pulls in
google-generativeai, whose protobuf pin conflicts with ours, so Agora reads the files itself, in this order:
`domain.sources.<name>.local`, EvalPlus's documented override variables (HUMANEVAL_OVERRIDE_PATH,
MBPP_OVERRIDE_PATH), EvalPlus's cache (~/.cache/evalplus/<Name>-<version>.jsonl, shared with the package), and
finally a download of the release (`domain.sources.<name>.url`) into that cache.
"""
from __future__ import annotations

import base64
import gzip
import json
import marshal
import os
import random
import re
from pathlib import Path

from agora import AgoraError

BENCHMARKS = {"humaneval_plus": ("HumanEvalPlus", "v0.1.10", "HUMANEVAL_OVERRIDE_PATH"),
              "mbpp_plus": ("MbppPlus", "v0.2.0", "MBPP_OVERRIDE_PATH")}
TIMEOUT_S, MEMORY_MB = 240.0, 4096   # whole program (both solutions, base + plus); EvalPlus allows 4 GB
MIN_TIME_S, TIME_FACTOR = 1.0, 4.0   # EvalPlus's DEFAULT_MIN_TIME_LIMIT and DEFAULT_GT_TIME_LIMIT_FACTOR
FIELDS = ("task_id", "prompt", "entry_point", "canonical_solution", "base_input", "plus_input", "atol")


def cache_path(name: str) -> Path:
    """Where the `evalplus` package caches the release file (appdirs' user_cache_dir on Linux)."""
    stem, version, _ = BENCHMARKS[name]
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "evalplus"
    return root / f"{stem}-{version}.jsonl"


def data_file(name: str, source: dict) -> Path:
    """The release file to read: `local`, then EvalPlus's override variable, then its cache, else a download."""
    stem, version, env = BENCHMARKS[name]
    if source.get("local"):
        path, what = Path(str(source["local"])).expanduser(), f"domain.sources.{name}.local"
    elif os.environ.get(env):
        path, what = Path(os.environ[env]).expanduser(), env
    else:
        path, what = cache_path(name), None
        if not path.is_file():
            _download(name, source, path)
    if not path.is_file():
        raise AgoraError(f"{what}={path}: no such file (EvalPlus's {stem}.jsonl or .jsonl.gz, release {version})")
    return path


def _download(name: str, source: dict, path: Path) -> None:
    import urllib.request

    url = source.get("url")
    if not url:
        raise AgoraError(f"{name}: no local file and domain.sources.{name}.url is null; set "
                         f"domain.sources.{name}.local=/path/to/{BENCHMARKS[name][0]}.jsonl.gz")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:
            tmp.write_bytes(gzip.decompress(resp.read()))
    except OSError as e:
        raise AgoraError(f"could not download {name} from {url} ({e}). Offline, set domain.sources.{name}.local="
                         f"/path/to/{BENCHMARKS[name][0]}.jsonl.gz or {BENCHMARKS[name][2]}") from e
    tmp.replace(path)


def read_records(path: Path) -> list[dict]:
    """EvalPlus's JSONL (plain or .gz), read line by line: its inputs mix types, which Arrow cannot hold."""
    opener = gzip.open if path.suffix == ".gz" else open
    out = []
    with opener(path, "rt", encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError as e:
                raise AgoraError(f"{path}:{n}: not a JSON record ({e.msg}); fix or remove that line") from None
            missing = [k for k in FIELDS if k not in r]
            if missing:
                raise AgoraError(f"{path}:{n}: an EvalPlus record needs {missing} (is this HumanEvalPlus/MbppPlus?)")
            out.append(r)
    return out


def load(name: str, source: dict, limit: int | None, seed: int, *, fence, question) -> list[dict]:
    """The benchmark's rows (a test set: there is no other split), `limit` of them drawn with `seed`; `question`
    turns a task's own prompt into what the student is asked."""
    path = data_file(name, source)
    records = read_records(path)
    check_records(path, records)
    rows = [to_row(name, r, fence, question) for r in records]
    return random.Random(seed).sample(rows, limit) if limit is not None and limit < len(rows) else rows


# ---------------------------------------------------------------- MBPP+ inputs
# JSON has no tuples, sets or complex numbers, so the release stores some MBPP+ arguments as lists and the
# evalplus package converts them back by task number (evalplus.data.mbpp.mbpp_deserialize_inputs). The same
# conversions, task by task:
def _all_tuples(x):
    return tuple(_all_tuples(v) for v in x) if isinstance(x, list) else x


_MBPP_SHAPES: dict[str, tuple[set[int], object]] = {
    "every argument a tuple": ({2, 116, 132, 143, 222, 261, 273, 394, 399, 421, 424, 429, 470, 560, 579, 596, 616,
                                630, 726, 740, 744, 809}, lambda a: [tuple(x) for x in a]),
    "every argument a list of tuples": ({63, 64, 70, 94, 120, 237, 272, 299, 400, 409, 417, 438, 473, 614, 780},
                                        lambda a: [[tuple(y) for y in x] for x in a]),
    "first argument a list of tuples": ({75, 413, 444, 753}, lambda a: [[tuple(y) for y in a[0]], a[1]]),
    "second argument a tuple": ({106, 750}, lambda a: [a[0], tuple(a[1])]),
    "first argument a list of sets": ({115}, lambda a: [[set(y) if isinstance(y, list) and y else {} for y in a[0]]]),
    "a float and a complex": ({124}, lambda a: (float(a[0]), complex(a[1]))),
    "first argument a tuple": ({250, 405, 446, 617, 720, 763, 808}, lambda a: [tuple(a[0]), a[1]]),
    "every argument a tuple of tuples": ({259, 401, 445}, lambda a: [tuple(tuple(y) for y in x) for x in a]),
    "one tuple, its list items tuples": ({278}, lambda a: [tuple(tuple(y) if isinstance(y, list) else y
                                                                 for y in a[0])]),
    "first argument a tuple, two more": ({307}, lambda a: [tuple(a[0]), a[1], a[2]]),
    "a dict of tuples first": ({722}, lambda a: [{k: tuple(v) for k, v in a[0].items()}, *a[1:]]),
    "one complex": ({252}, lambda a: [complex(a[0])]),
    "every list a tuple": ({580, 615, 791}, _all_tuples),
}


def mbpp_inputs(task_id: str, inputs: list) -> list:
    number = int(task_id.split("/")[-1])
    for ids, convert in _MBPP_SHAPES.values():
        if number in ids:
            return [convert(a) for a in inputs]
    return inputs


# ---------------------------------------------------------------- rows

def _mbpp_statement(prompt: str) -> tuple[str, str]:
    """MBPP+'s prompt is a docstring: the task, then one assert that shows the function's name."""
    body = prompt.strip().strip('"').strip()
    lines = body.splitlines()
    first_assert = next((i for i, line in enumerate(lines) if line.lstrip().startswith("assert")), len(lines))
    return "\n".join(lines[:first_assert]).strip(), "\n".join(lines[first_assert:]).strip()


def to_row(name: str, r: dict, fence, question) -> dict:
    """An Agora benchmark row; `answer` keeps the original tests for reading, the EvalPlus fields do the scoring.
    The question wraps the task's own prompt (EvalPlus codegen strips it and adds one newline)."""
    base, plus = r["base_input"], r["plus_input"]
    if name == "mbpp_plus":
        base, plus = mbpp_inputs(r["task_id"], base), mbpp_inputs(r["task_id"], plus)
        _, test = _mbpp_statement(r["prompt"])
        row = {"solution": fence(r["canonical_solution"]), "answer": (r.get("assertion") or test).strip() + "\n"}
    else:
        row = {"solution": fence(r["prompt"] + r["canonical_solution"]),
               "answer": (r.get("test") or "") + f"\n\ncheck({r['entry_point']})\n", "prompt": r["prompt"]}
    row["question"] = question(r["prompt"].strip() + "\n")
    return {"id": r["task_id"], **row, "entry_point": r["entry_point"],
            "reference": r["prompt"] + r["canonical_solution"], "atol": float(r["atol"] or 0),
            "base_input": base, "plus_input": plus}


# ---------------------------------------------------------------- scoring in the sandbox
# The harness runs after the candidate program, in its namespace, with the standard library only. Its data
# travels as marshal (tuples, sets and complex numbers survive, unlike JSON) inside base64 text.
HARNESS = r'''
def __agora_evalplus(ns, job):
    import copy, math, signal, time

    class _TooSlow(Exception):
        pass

    def _alarm(signum, frame):
        raise _TooSlow()

    def _floats(x):
        if isinstance(x, float):
            return True
        return isinstance(x, (list, tuple)) and len(x) > 0 and all(isinstance(i, float) for i in x)

    def _close(out, exp, atol):          # np.allclose(out, exp, rtol=1e-7, atol=atol) on numbers and sequences
        if isinstance(exp, (list, tuple)):
            return isinstance(out, (list, tuple)) and len(out) == len(exp) and all(
                _close(o, e, atol) for o, e in zip(out, exp))
        try:
            if out == exp:
                return not (isinstance(exp, float) and exp != exp)
            return abs(out - exp) <= atol + 1e-7 * abs(exp)
        except Exception:
            return False

    def _poly(xs, x):
        return sum(c * math.pow(x, i) for i, c in enumerate(xs))

    def _pyramid_area(edge, height):     # MBPP+ 581's oracle: height is the apex's distance to the base
        slant = math.sqrt((edge / 2) ** 2 + height ** 2)
        return round(edge ** 2 + 2 * edge * slant)

    def _digit_distance(a, b):           # MBPP+ 558's oracle: pad the shorter number with zeros
        sa, sb = str(a), str(b)
        width = max(len(sa), len(sb))
        return sum(abs(int(x) - int(y)) for x, y in zip(sa.zfill(width), sb.zfill(width)))

    entry, kind, atol = job["entry_point"], job["kind"], job["atol"]
    reference = {"__name__": "__reference__"}
    exec(job["reference"], reference)
    want = reference[entry]
    got = ns.get(entry)
    if not callable(got):
        raise AssertionError(f"the program defines no function {entry}")
    signal.signal(signal.SIGALRM, _alarm)
    for part in job["parts"]:
        for n, inp in enumerate(job[part]):
            t0 = time.perf_counter()
            exp = want(*copy.deepcopy(inp))
            limit = max(job["min_s"], job["factor"] * (time.perf_counter() - t0))
            if kind == "mbpp" and entry in job["not_none"]:
                exp = exp is not None
            arg = copy.deepcopy(inp)
            signal.setitimer(signal.ITIMER_REAL, limit)
            try:
                out = got(*arg)
            except _TooSlow:
                raise AssertionError(f"{part} input {n}: over the time limit of {limit:.2f} s") from None
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            ok = out == exp
            if kind == "mbpp":
                if entry == "are_equivalent":
                    ok = True
                elif entry == "sum_div":
                    ok = ok or out == 0
                elif entry == "surface_Area":
                    ok = ok or abs(out - _pyramid_area(*inp)) <= atol
                elif entry == "digit_distance_nums":
                    ok = ok or out == _digit_distance(*inp)
                elif entry in job["set_eq"]:
                    ok = set(out) == set(exp)
                elif entry in job["not_none"]:
                    ok = out == exp if isinstance(out, bool) else exp == (out is not None)
            if kind == "humaneval" and entry == "find_zero":
                assert abs(_poly(*inp, out)) <= atol, f"{part} input {n}: not a zero of the polynomial"
                continue
            if atol == 0 and _floats(exp):
                atol = 1e-6
            if not ok and atol != 0:
                assert type(out) == type(exp), f"{part} input {n}: {type(out).__name__}, not {type(exp).__name__}"
                assert _close(out, exp, atol), f"{part} input {n}: {out!r} is not close to {exp!r}"
            else:
                assert ok, f"{part} input {n}: got {out!r}, expected {exp!r}"
'''
# EvalPlus's special oracles (evalplus/eval/_special_oracle.py): MBPP+ tasks compared as sets, and tasks whose
# outputs cannot be serialised, where only "not None" is checked.
MBPP_SET_EQ = ("similar_elements", "find_char_long", "common_in_nested_lists", "extract_singly", "larg_nnum",
               "intersection_array", "find_dissimilar", "Diff")
MBPP_NOT_NONE = ("check_str", "text_match_three", "text_starta_endb")


PARTS = {"base": ("base_input",), "plus": ("plus_input",)}   # EvalPlus checks each test set in a process of its own


def tests_for(benchmark: str, row: dict, *, base_only: bool = False, part: str | None = None) -> str:
    """The test code the sandbox runs after the candidate: differential testing against the canonical solution,
    on one test set (`part`: base or plus, as EvalPlus runs them) or on base then plus (`part` None)."""
    parts = PARTS[part] if part else ("base_input",) if base_only else ("base_input", "plus_input")
    job = {"entry_point": row["entry_point"], "kind": "mbpp" if benchmark == "mbpp_plus" else "humaneval",
           "atol": row["atol"], "reference": row["reference"], "base_input": row["base_input"],
           "plus_input": row["plus_input"], "parts": parts,
           "min_s": MIN_TIME_S, "factor": TIME_FACTOR, "set_eq": MBPP_SET_EQ, "not_none": MBPP_NOT_NONE}
    blob = base64.b64encode(marshal.dumps(job)).decode()
    return (f"{HARNESS}\nimport marshal as __agora_marshal, binascii as __agora_binascii\n"
            f"__agora_evalplus(globals(), __agora_marshal.loads(__agora_binascii.a2b_base64('{blob}')))\n")


def check_records(path: Path, records: list[dict]) -> None:
    ids = [r["task_id"] for r in records]
    if len(set(ids)) != len(ids):
        raise AgoraError(f"{path}: task ids repeat; is it two files concatenated?")
    bad = [r["task_id"] for r in records if not re.match(r"^(HumanEval|Mbpp)/\d+$", str(r["task_id"]))]
    if bad:
        raise AgoraError(f"{path}: {bad[:3]} are not EvalPlus task ids (HumanEval/N or Mbpp/N)")
