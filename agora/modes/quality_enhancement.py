"""Quality enhancement (QE): a given question-answer pair rewritten into a better one (WebInstruct in the paper).

The prompt asks to refine an educational pair (formatting, coherence, completeness, accuracy), shows the original
`Question:`/`Answer:`, and takes the reply as `Revised Question:` / `Revised Answer:`, ended by [END].
"""
from __future__ import annotations

import re

from agora.modes import (ParseError, Template, cut_end, gbnf, json_constraint, json_format_instructions,
                         parse_json_object)

JSON_KEYS = ("revised_question", "revised_answer")   # the JSON format's object (`json_schema(JSON_KEYS)`)
ANSWER_KEY = "revised_answer"
TRIGGERS = ("Revised Question:", "Revised Answer:")   # the original's triggers, forbidden in a response
FORMAT_INSTRUCTIONS = {
    "free_form": "- Do not greet or comment: write one revised pair only.\n"
                 "- Write `Revised Question:` followed by the revised question, then a new line that starts with "
                 "`Revised Answer:` followed by the revised answer, then `[END]` on a line of its own.",
    "json": json_format_instructions({"revised_question": "the revised question",
                                      "revised_answer": "the revised answer"}),
}


def instance(question: str, answer: str, fmt: str) -> str:
    """The original pair, and the open revision in the free-form layout."""
    shown = f"### Original pair\nQuestion: {question}\nAnswer: {answer}"
    return shown + "\n\n### Revised pair\nRevised Question:" if fmt == "free_form" else shown


def check_template(t: Template, style: str = "free_form") -> None:
    t.require({"instance"}, {"input", "output"}, what="the question-answer pair to refine")


def build(i: int, seeds: list[dict], pool: list[dict], *, template: Template, fmt: str, themes: list[str],
          seed: int, **_: object) -> tuple[list[dict], dict]:
    row = seeds[i % len(seeds)]
    prompt = template.render(format_instructions=FORMAT_INSTRUCTIONS[fmt],
                             instance=instance(row["question"], row["solution"], fmt),
                             input=row["question"], output=row["solution"])
    return template.messages(prompt), {"seed_id": row["id"]}


def constraint(fmt: str, answer: tuple[str, str]) -> dict:
    """Request fields that make a llama.cpp server keep this mode's output format."""
    if fmt == "json":
        return json_constraint(JSON_KEYS, ANSWER_KEY, answer)
    return {"grammar": gbnf('"Revised Question: " text "\\nRevised Answer: " answer', answer)}


def parse(text: str, fmt: str, meta: dict) -> tuple[str, str]:
    if fmt == "json":
        return parse_json_object(text, JSON_KEYS)
    body = re.sub(r"^\s*Revised Question:", "", cut_end(text), flags=re.I)
    parts = re.split(r"Revised Answer:", body, maxsplit=1, flags=re.I)
    if len(parts) < 2:
        raise ParseError("no_revised_answer")
    return parts[0].strip(), parts[1].strip()
