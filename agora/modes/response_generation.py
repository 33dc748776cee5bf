"""Response generation (RG): an answer for each given instruction (Magpie prompts in the paper)."""
from __future__ import annotations

from agora.modes import SYSTEM, ParseError, Template, cut_end, gbnf, json_constraint, parse_json_object

JSON_KEYS = ("output",)   # the JSON format's object (`json_schema(JSON_KEYS)`)
ANSWER_KEY = "output"
FORMAT_INSTRUCTIONS = {
    "free_form": "Write the response after `OUTPUT:`, then write [END].",
    "json": 'Reply with one JSON object with the string key "output" (the response), and nothing else.',
}


def build(i: int, seeds: list[dict], pool: list[dict], *, template: Template, fmt: str, themes: list[str],
          seed: int, **_: object) -> tuple[list[dict], dict]:
    row = seeds[i % len(seeds)]
    shown = f"INPUT: {row['question']}\nOUTPUT:" if fmt == "free_form" else f"INPUT: {row['question']}"
    prompt = template.render(format_instructions=FORMAT_INSTRUCTIONS[fmt], demonstrations=shown)
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}], \
        {"seed_id": row["id"], "instruction": row["question"]}


def constraint(fmt: str, domain: str) -> dict:
    """Request fields that make a llama.cpp server keep this mode's output format."""
    if fmt == "json":
        return json_constraint(JSON_KEYS, ANSWER_KEY, domain)
    return {"grammar": gbnf("answer", domain)}


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
