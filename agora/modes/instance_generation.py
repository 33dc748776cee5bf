"""Instance generation (IG): new problems and solutions written from 3 demonstrations.

The paper's intended mix is 2 seed demonstrations and 1 from earlier generations (the original code
reversed it). Requests go out in rounds so that "earlier generations" is deterministic: round r draws
only from rounds < r, which keeps every prompt reproducible and every rerun a cache hit.
"""
from __future__ import annotations

import json
import random
import re

from agora.modes import SYSTEM, ParseError, Template, cut_end, gbnf, json_constraint, parse_json_object

JSON_KEYS = ("input", "output")   # the JSON format's object (`json_schema(JSON_KEYS)`)
ANSWER_KEY = "output"
FORMAT_INSTRUCTIONS = {
    "free_form": "Write the new problem after `INPUT:`, its solution after `OUTPUT:`, and then write [END], "
                 "exactly as in the demonstrations.",
    "json": 'Write the new example as one JSON object with the string keys "input" (the problem) and "output" '
            "(the solution), exactly as in the demonstrations, and nothing else.",
}


def _demo(q: str, s: str, fmt: str) -> str:
    if fmt == "json":
        return json.dumps({"input": q, "output": s}, ensure_ascii=False)
    return f"INPUT: {q}\nOUTPUT: {s}\n[END]"


def build(i: int, seeds: list[dict], pool: list[dict], *, template: Template, fmt: str, themes: list[str],
          seed: int, n_demos: int, demos_from_generations: int) -> tuple[list[dict], dict]:
    rng = random.Random(f"{seed}-ig-{i}")
    k_gen = min(demos_from_generations, len(pool))
    demos = [(d["question"], d["solution"], d["id"]) for d in rng.sample(seeds, n_demos - k_gen)]
    demos += [(d["instruction"], d["response"], d["id"]) for d in rng.sample(pool, k_gen)]
    rng.shuffle(demos)
    theme = rng.choice(themes)
    shown = "\n\n".join(_demo(q, s, fmt) for q, s, _ in demos)
    shown += "\n\nINPUT:" if fmt == "free_form" else "\n\nNow the new, harder example as one JSON object:"
    prompt = template.render(theme=theme, format_instructions=FORMAT_INSTRUCTIONS[fmt], demonstrations=shown)
    meta = {"theme": theme, "demo_ids": [d for _, _, d in demos]}
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}], meta


def constraint(fmt: str, domain: str) -> dict:
    """Request fields that make a llama.cpp server keep this mode's output format."""
    if fmt == "json":
        return json_constraint(JSON_KEYS, ANSWER_KEY, domain)
    return {"grammar": gbnf('"INPUT: " text "\\nOUTPUT: " answer', domain)}


def parse(text: str, fmt: str, meta: dict) -> tuple[str, str]:
    if fmt == "json":
        return parse_json_object(text, JSON_KEYS)
    body = re.sub(r"^\s*INPUT:", "", cut_end(text), flags=re.I)
    parts = re.split(r"^\s*OUTPUT:", body, maxsplit=1, flags=re.I | re.M)
    if len(parts) < 2:
        raise ParseError("no_output_marker")
    q, s = parts
    s = re.split(r"^\s*INPUT:", s, maxsplit=1, flags=re.I | re.M)[0]  # the model went on to a second example
    return q.strip(), s.strip()
