"""Quality enhancement (QE): a given question-answer pair rewritten into a better one (WebInstruct in the paper)."""
from __future__ import annotations

import re

from agora.modes import SYSTEM, ParseError, Template, cut_end, gbnf, json_constraint, parse_json_object

JSON_KEYS = ("revised_question", "revised_answer")   # the JSON format's object (`json_schema(JSON_KEYS)`)
ANSWER_KEY = "revised_answer"
FORMAT_INSTRUCTIONS = {
    "free_form": "Write `Revised Question:` followed by the revised question, then `Revised Answer:` followed by "
                 "the revised answer, then [END].",
    "json": 'Reply with one JSON object with the string keys "revised_question" and "revised_answer", '
            "and nothing else.",
}


def build(i: int, seeds: list[dict], pool: list[dict], *, template: Template, fmt: str, themes: list[str],
          seed: int, **_: object) -> tuple[list[dict], dict]:
    row = seeds[i % len(seeds)]
    shown = f"Question: {row['question']}\nAnswer: {row['solution']}"
    if fmt == "free_form":
        shown += "\n\nRevised Question:"
    prompt = template.render(format_instructions=FORMAT_INSTRUCTIONS[fmt], demonstrations=shown)
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}], {"seed_id": row["id"]}


def constraint(fmt: str, domain: str) -> dict:
    """Request fields that make a llama.cpp server keep this mode's output format."""
    if fmt == "json":
        return json_constraint(JSON_KEYS, ANSWER_KEY, domain)
    return {"grammar": gbnf('"Revised Question: " text "\\nRevised Answer: " answer', domain)}


def parse(text: str, fmt: str, meta: dict) -> tuple[str, str]:
    if fmt == "json":
        return parse_json_object(text, JSON_KEYS)
    body = re.sub(r"^\s*Revised Question:", "", cut_end(text), flags=re.I)
    parts = re.split(r"Revised Answer:", body, maxsplit=1, flags=re.I)
    if len(parts) < 2:
        raise ParseError("no_revised_answer")
    return parts[0].strip(), parts[1].strip()
