"""Instance generation (IG): new problems and solutions written from numbered demonstrations.

The prompt lays out the paper's structure: guideline sections, then `n_demos` numbered demonstrations, then the
open new instance, with a theme (and, in instruction following, an opening word) drawn per request for diversity.
The paper's intended mix is 2 seed demonstrations and 1 from earlier generations (the original code reversed it).
Requests go out in rounds so that "earlier generations" is deterministic: round r draws only from rounds < r,
which keeps every prompt reproducible and every rerun a cache hit.
"""
from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence

from agora import AgoraError
from agora.modes import (ParseError, Template, cut_end, gbnf, json_constraint, json_format_instructions,
                         parse_json_object)

JSON_KEYS = ("input", "output")   # the JSON format's object (`json_schema(JSON_KEYS)`)
ORIGINAL_JSON_KEYS = ("instruction", "response")   # the object the original's JSON files ask for
ANSWER_KEY = "output"
TRIGGERS = ("INPUT:", "OUTPUT:")   # what the reply is read by: the original's triggers, forbidden in a response
FORMAT_INSTRUCTIONS = {
    "free_form": "- Do not greet or comment: write the new example only.\n"
                 "- Write the new INPUT after `INPUT:`, then a new line that starts with `OUTPUT:` followed by its "
                 "OUTPUT, then `[END]` on a line of its own, exactly as the demonstrations are written.",
    "json": json_format_instructions({"input": "the new INPUT", "output": "its OUTPUT"}),
}
DEMO_HEADER, NEW_HEADER = "[DEMONSTRATION {k}]", "[NEW EXAMPLE]"


def demonstrations(demos: list[tuple[str, str]], fmt: str) -> str:
    """The numbered demonstrations in the prompt format's layout, then the open new instance."""
    blocks = []
    for k, (q, s) in enumerate(demos, 1):
        body = (json.dumps({"input": q, "output": s}, ensure_ascii=False) if fmt == "json"
                else f"INPUT: {q}\nOUTPUT: {s}\n[END]")
        blocks.append(f"{DEMO_HEADER.format(k=k)}\n{body}")
    blocks.append(f"{NEW_HEADER}\nINPUT:" if fmt == "free_form" else NEW_HEADER)
    return "\n\n".join(blocks)


def original_json(template: Template, fmt: str) -> bool:
    """An original JSON file (`mode.prompts=original prompt_format=json`): the original's JSON loader puts each
    demonstration in as a JSON string and draws no theme or opening word (its JSON files place neither)."""
    return template.fill == "original" and fmt == "json"


def check_template(t: Template, style: str = "free_form") -> None:
    if not original_json(t, style):
        t.require({"theme"}, what="the drawn theme")
    t.require({"demonstrations"}, {"input1", "output1"}, what="the demonstrations")


def build(i: int, seeds: list[dict], pool: list[dict], *, template: Template, fmt: str, themes: list[str],
          seed: int, n_demos: int, demos_from_generations: int, openers: Sequence[str] = (), **_: object
          ) -> tuple[list[dict], dict]:
    rng = random.Random(f"{seed}-ig-{i}")
    k_gen = min(demos_from_generations, len(pool))
    demos = [(d["question"], d["solution"], d["id"]) for d in rng.sample(seeds, n_demos - k_gen)]
    demos += [(d["instruction"], d["response"], d["id"]) for d in rng.sample(pool, k_gen)]
    rng.shuffle(demos)
    theme = rng.choice(themes)
    fields = {"theme": theme, "format_instructions": FORMAT_INSTRUCTIONS[fmt],
              "demonstrations": demonstrations([(q, s) for q, s, _ in demos], fmt)}
    for k, (q, s, _) in enumerate(demos, 1):   # the raw texts, for a template that lays the demonstrations out
        fields[f"input{k}"], fields[f"output{k}"] = ((json.dumps(q), json.dumps(s)) if original_json(template, fmt)
                                                     else (q, s))
    meta = {"theme": theme, "demo_ids": [d for _, _, d in demos]}
    if original_json(template, fmt):
        del fields["theme"], meta["theme"]
    elif openers:   # instruction following: the new instruction opens with a drawn word, as the theme is drawn
        if "first_word" not in template.placeholders:
            raise AgoraError(f"prompt template {template.name} lacks {{first_word}}: this domain draws an opening "
                             "word for every new instruction")
        fields["first_word"] = meta["first_word"] = rng.choice(openers)
    used = {p for p in template.placeholders if re.fullmatch(r"(input|output)\d+", p)}
    if used and used != {f"{x}{k}" for x in ("input", "output") for k in range(1, n_demos + 1)}:
        raise AgoraError(f"prompt template {template.name} places {sorted(used)}, but mode.n_demos={n_demos} "
                         f"demonstrations are drawn: place input1..input{n_demos} and output1..output{n_demos}")
    prompt = template.render(**fields)
    return template.messages(prompt), meta


def constraint(fmt: str, answer: tuple[str, str]) -> dict:
    """Request fields that make a llama.cpp server keep this mode's output format."""
    if fmt == "json":
        return json_constraint(JSON_KEYS, ANSWER_KEY, answer)
    return {"grammar": gbnf('"INPUT: " text "\\nOUTPUT: " answer', answer)}


def parse(text: str, fmt: str, meta: dict) -> tuple[str, str]:
    if fmt == "json":
        try:
            return parse_json_object(text, JSON_KEYS)
        except ParseError as e:   # the original's JSON files name the keys `instruction` and `response`
            if str(e) != "json_missing_keys":
                raise
            return parse_json_object(text, ORIGINAL_JSON_KEYS)
    body = re.sub(r"^\s*(\[NEW EXAMPLE\]\s*)?INPUT:", "", cut_end(text), flags=re.I)
    parts = re.split(r"^\s*OUTPUT:", body, maxsplit=1, flags=re.I | re.M)
    if len(parts) < 2:
        raise ParseError("no_output_marker")
    q, s = parts
    s = re.split(r"^\s*(\[NEW EXAMPLE\]|\[DEMONSTRATION \d+\]|INPUT:)", s, maxsplit=1, flags=re.I | re.M)[0]
    return q.strip(), s.strip()
