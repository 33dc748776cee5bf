"""Response generation (RG): an answer for each given instruction (Magpie prompts in the paper).

The prompt is the domain's requirements, then the instruction as `INPUT:` and an open `OUTPUT:`, ended by [END].
"""
from __future__ import annotations

from agora.modes import (ParseError, Template, cut_end, gbnf, json_constraint, json_format_instructions,
                         parse_json_object)

JSON_KEYS = ("output",)   # the JSON format's object (`json_schema(JSON_KEYS)`)
ANSWER_KEY = "output"
TRIGGERS = ("INPUT:", "OUTPUT:")   # what the reply is read by: the original's triggers, forbidden in a response
FORMAT_INSTRUCTIONS = {
    "free_form": "- Do not greet or comment: write the response only.\n"
                 "- Write the response after `OUTPUT:`, then `[END]` on a line of its own.",
    "json": json_format_instructions({"output": "the response"}),
}


def instance(question: str, fmt: str) -> str:
    """The given instruction, and the open output in the free-form layout."""
    return f"INPUT: {question}\nOUTPUT:" if fmt == "free_form" else f"INPUT: {question}"


def check_template(t: Template, style: str = "free_form") -> None:
    t.require({"instance"}, {"input"}, what="the given instruction")


def build(i: int, seeds: list[dict], pool: list[dict], *, template: Template, fmt: str, themes: list[str],
          seed: int, **_: object) -> tuple[list[dict], dict]:
    row = seeds[i % len(seeds)]
    prompt = template.render(format_instructions=FORMAT_INSTRUCTIONS[fmt], instance=instance(row["question"], fmt),
                             input=row["question"])
    return template.messages(prompt), \
        {"seed_id": row["id"], "instruction": row["question"]}


def constraint(fmt: str, answer: tuple[str, str]) -> dict:
    """Request fields that make a llama.cpp server keep this mode's output format."""
    if fmt == "json":
        return json_constraint(JSON_KEYS, ANSWER_KEY, answer)
    return {"grammar": gbnf("answer", answer)}


def parse(text: str, fmt: str, meta: dict) -> tuple[str, str]:
    if fmt == "json":
        (out,) = parse_json_object(text, JSON_KEYS)
    else:
        out = cut_end(text)
        if out.startswith("OUTPUT:"):
            out = out[len("OUTPUT:"):].strip()
    if not out:
        raise ParseError("empty_response")
    return meta["instruction"], out
