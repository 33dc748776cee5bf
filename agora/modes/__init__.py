"""Modes: how a meta-prompt is built from seeds and how the generator's reply is parsed back.

A mode is a module with `build(...)` and `parse(...)`; prompt templates live in `prompts/` as
`<domain>_<mode>.txt`, each with a version that is stamped into every generated row.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from types import ModuleType

from agora import AgoraError

SYSTEM = "You are a data generator agent that produces novel, high-quality instances for training language models."
FORMATS = ("free_form", "json")


class ParseError(ValueError):
    """The reply does not have the requested shape; the message is the drop reason."""


@dataclass(frozen=True)
class Template:
    text: str
    version: int
    name: str

    def render(self, **fields: str) -> str:
        out = self.text
        for k, v in fields.items():  # plain replace: demonstrations hold LaTeX braces
            out = out.replace("{" + k + "}", v)
        return out


@cache
def load_template(domain: str, mode: str) -> Template:
    name = f"{domain}_{mode}.txt"
    try:
        raw = (resources.files("agora.modes") / "prompts" / name).read_text()
    except FileNotFoundError:
        raise AgoraError(f"no prompt template {name} for domain={domain} mode={mode}") from None
    header, _, body = raw.partition("\n---\n")
    m = re.match(r"version:\s*(\d+)", header)
    if not m:
        raise AgoraError(f"prompt template {name} lacks its `version: N` header")
    return Template(body.strip() + "\n", int(m.group(1)), name)


def get_mode(name: str) -> ModuleType:
    from agora.modes import instance_generation, quality_enhancement, response_generation

    known = {"instance_generation": instance_generation, "response_generation": response_generation,
             "quality_enhancement": quality_enhancement}
    if name not in known:
        raise AgoraError(f"unknown mode {name!r}; known: {sorted(known)}")
    return known[name]


# Constrained decoding for servers that take a llama.cpp grammar (the embedded 135M generator cannot keep the
# meta-prompt's format on its own). Paid APIs never get these: the option `generator.constrain: false`.
GBNF_TEXT = r"""text ::= line ("\n" line){0,4}
line ::= [^\n\[]{1,120}
result ::= "\n[RESULT] " [^\n\[\]]{1,30} " [/RESULT]"
code ::= "```python\n" codeline{1,30} "```"
codeline ::= [^\n`]{0,100} "\n"
"""
# What the answer of each domain must look like: a GBNF expression, and a regex for the answer's JSON string
# (None: any string; code holds quotes and escapes that a pattern on the raw JSON cannot describe).
_JSON_TEXT = r'[^"\\\[\]]{1,300}'  # no quotes or escapes, so a pattern on the string holds on the raw JSON
ANSWERS = {
    "math": ("text result", "^" + _JSON_TEXT + r" \[RESULT\] " + r'[^"\\\[\]]{1,30}' + r" \[/RESULT\]$"),
    "code": ("code", None),
    "instruction_following": ("text", "^" + _JSON_TEXT + "$"),
}


def gbnf(root: str, domain: str) -> str:
    """A llama.cpp grammar: `root` may use `text` and `answer` (the domain's answer shape)."""
    return f"root ::= {root}\nanswer ::= {ANSWERS[domain][0]}\n{GBNF_TEXT}"


def json_schema(keys: tuple[str, ...], answer_key: str, domain: str) -> dict:
    """A schema of string `keys`, with `answer_key` in the domain's answer shape (llama.cpp makes it a grammar)."""
    props = {k: {"type": "string", "pattern": f"^{_JSON_TEXT}$"} for k in keys}
    pattern = ANSWERS[domain][1]
    props[answer_key] = {"type": "string", **({"pattern": pattern} if pattern else {})}
    return {"type": "object", "properties": props, "required": list(keys)}


def cut_end(text: str) -> str:
    """The reply up to the [END] marker (servers that ignore `stop` still get cut)."""
    return text.split("[END]", 1)[0].strip()


def parse_json_object(text: str, keys: tuple[str, ...]) -> tuple[str, ...]:
    """The string values of `keys` in the first JSON object in `text`."""
    start = text.find("{")
    if start < 0:
        raise ParseError("no_json_object")
    try:
        obj, _ = json.JSONDecoder().raw_decode(text[start:])
    except json.JSONDecodeError:
        raise ParseError("invalid_json") from None
    if not isinstance(obj, dict) or any(not isinstance(obj.get(k), str) for k in keys):
        raise ParseError("json_missing_keys")
    return tuple(obj[k].strip() for k in keys)
