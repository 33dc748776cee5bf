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
"""


def python_gbnf(prefix: str, nl: str) -> str:
    """GBNF for a small subset of Python that compiles: one function whose blocks nest two deep (if/elif/else,
    for, while, a loop's else, a nested def) around simple statements, with expressions of names, numbers,
    single-quoted strings, calls, subscripts, slices, lists and comprehensions. Left free, the 135M model writes code that parses about half the time in free text and almost
    never inside a JSON string (every one of 9 replies in a smoke run failed `ast.parse`). `nl` is the newline as it
    appears in the output: a real one in free text, the two characters backslash-n in a JSON string; the strings
    hold no double quote or backslash, so the same code needs no other JSON escaping. Names are built so that none
    spells a keyword (`_names_gbnf`); what can still fail to compile is a parameter named twice (`def f(a, a)`),
    which the domain's validator drops as `syntax_error`.
    """
    p, i1, i2, i3 = prefix, '"    "', '"        "', '"            "'
    return "\n".join([
        f'{p}code ::= "```python" {nl} "def " {p}name "(" {p}params "):" {nl} ({i1} {p}stmt1 {nl}){{1,8}} "```"',
        f'{p}params ::= ({p}name (", " {p}name){{0,3}})?',
        # Blocks nest two deep, with elif/else (and a loop's else) and a nested def: a model that wants one of
        # these where the grammar has none spells the keyword as a name (`else += 1`), which never compiles.
        f'{p}stmt1 ::= {p}simple | {p}if {p}body2 ({nl} {i1} {p}elif {p}body2){{0,3}} ({nl} {i1} "else:" {p}body2)? | '
        f'{p}loop {p}body2 ({nl} {i1} "else:" {p}body2)? | "def " {p}name "(" {p}params "):" {p}body2',
        f'{p}body2 ::= {nl} {i2} {p}stmt2 ({nl} {i2} {p}stmt2){{0,3}}',
        f'{p}stmt2 ::= {p}simple | {p}if {p}body3 ({nl} {i2} {p}elif {p}body3){{0,3}} ({nl} {i2} "else:" {p}body3)? | '
        f'{p}loop {p}body3 ({nl} {i2} "else:" {p}body3)?',
        f'{p}body3 ::= {nl} {i3} {p}simple ({nl} {i3} {p}simple){{0,2}}',
        f'{p}if ::= "if " {p}expr ":"',
        f'{p}elif ::= "elif " {p}expr ":"',
        f'{p}loop ::= ("while " {p}expr | "for " {p}name " in " {p}expr) ":"',
        f'{p}simple ::= "return " {p}expr | {p}target (" = " | " += " | " -= ") {p}expr | {p}name "(" {p}args ")" '
        f'| "pass"',
        f'{p}target ::= {p}name ("[" {p}expr "]")?',
        f'{p}expr ::= {p}unary ({p}op {p}unary){{0,5}}',
        # A number takes no trailer: `5.lo` and `26.replace(...)` are syntax errors.
        f'{p}unary ::= ("not " | "-")? ("0" | [1-9] [0-9]{{0,5}} | {p}atom {p}trailer{{0,3}})',   # no 007
        f'{p}atom ::= {p}name | "\'" [a-zA-Z0-9 ,.:;!?_-]{{0,30}} "\'" | "True" | "False" | "None" | '
        f'"(" {p}expr ")" | "[" {p}args "]" | "[" {p}expr " for " {p}name " in " {p}expr (" if " {p}expr)? "]"',
        f'{p}trailer ::= "(" {p}args ")" | "[" {p}expr "]" | "[" {p}expr? ":" {p}expr? "]" | "." {p}name',
        f'{p}args ::= ({p}expr (", " {p}expr){{0,3}})?',
        f'{p}op ::= " + " | " - " | " * " | " / " | " // " | " % " | " ** " | " == " | " != " | " < " | " > " | '
        f'" <= " | " >= " | " and " | " or " | " in " | " not in "',
    ]) + "\n" + _names_gbnf(p)


def _names_gbnf(p: str) -> str:
    """`{p}name`: a lower-case identifier of at most 16 characters that is not a Python keyword.

    GBNF has no negation, so the rule walks the keywords' trie: at each keyword prefix the next character either
    follows the trie (rule `{p}kw-<prefix>`) or leaves it, after which any identifier characters may follow. A
    prefix that is itself a keyword must go on; any other may end there.
    """
    import keyword

    words = [w for w in keyword.kwlist if w.islower()]
    alphabet, first = "abcdefghijklmnopqrstuvwxyz0123456789_", "abcdefghijklmnopqrstuvwxyz_"
    prefixes = sorted({w[:i] for w in words for i in range(len(w) + 1)})

    def node(prefix: str) -> str:
        nexts = sorted({w[len(prefix)] for w in words if w.startswith(prefix) and len(w) > len(prefix)})
        chars = first if not prefix else alphabet
        alts = [f'"{c}" {p}kw-{prefix + c}' for c in nexts]   # GBNF rule names take letters, digits and -
        others = "".join(c for c in chars if c not in nexts)
        tail = 15 - len(prefix)
        if others and tail >= 0:
            alts.append(f"[{others}] [a-z0-9_]{{0,{tail}}}")
        body = " | ".join(alts)
        if prefix and prefix not in words:
            body = f"({body})?"
        return f"{p}kw-{prefix} ::= {body}" if prefix else f"{p}name ::= {body}"

    return "\n".join(node(x) for x in prefixes) + "\n"


GBNF_TEXT += python_gbnf("", r'"\n"')
# The same answers inside a JSON string, where a newline is the two characters `\\n` (GBNF again: a JSON-schema
# `pattern` on code is long enough to crash llama.cpp's grammar compiler, and a schema without one lets a 135M model
# write prose instead of code).
JSON_GBNF = r"""jtext ::= [^"\\\n\[\]]{1,300}
""" + python_gbnf("j", r'"\\n"')
ANSWERS = {
    "math": ("text result", r'jtext " [RESULT] " [^"\\\n\[\]]{1,30} " [/RESULT]"'),
    "code": ("code", "jcode"),
    "instruction_following": ("text", "jtext"),
}


def gbnf(root: str, domain: str) -> str:
    """A llama.cpp grammar: `root` may use `text` and `answer` (the domain's answer shape)."""
    return f"root ::= {root}\nanswer ::= {ANSWERS[domain][0]}\n{GBNF_TEXT}"


def json_schema(keys: tuple[str, ...]) -> dict:
    """The JSON format's schema: an object of required string `keys`."""
    return {"type": "object", "properties": {k: {"type": "string"} for k in keys}, "required": list(keys),
            "additionalProperties": False}


def response_format(kind: str | None, keys: tuple[str, ...]) -> dict | None:
    """The OpenAI `response_format` of a prompt format: none, JSON mode, or structured output with the schema.

    `json_schema` (the `json` format's default) is what OpenAI and vLLM enforce server-side; Anthropic's Messages
    API has no such field, so there the prompt's format instructions carry the schema alone.
    """
    if kind in (None, "text"):
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": "example", "strict": True, "schema": json_schema(keys)}}
    raise AgoraError(f"prompt_format.response_format={kind!r}; known: null, json_object, json_schema")


def json_constraint(keys: tuple[str, ...], answer_key: str, domain: str) -> dict:
    """Request fields that make a llama.cpp server write `json_schema(keys)` with `answer_key` in the domain's shape.

    The grammar emits that object as strict JSON (code newlines as `\\n`); `response_format` is cleared because
    llama-cpp-python lets a JSON response_format override an explicit grammar.
    """
    fields = []
    for k in keys:
        fields.append(f'"\\"{k}\\": \\"" ' + ("janswer" if k == answer_key else "jtext") + ' "\\""')
    root = ' ", " '.join(fields)
    grammar = f'root ::= "{{" {root} "}}"\njanswer ::= {ANSWERS[domain][1]}\n{JSON_GBNF}'
    return {"response_format": None, "grammar": grammar}


def cut_end(text: str) -> str:
    """The reply up to the [END] marker (servers that ignore `stop` still get cut)."""
    return text.split("[END]", 1)[0].strip()


# A raw newline inside a JSON string is the commonest slip of a model writing code as JSON (json.loads rejects it
# by default); it is read as the newline it means. Anything else that is not JSON is a counted `invalid_json` drop.
_LENIENT = json.JSONDecoder(strict=False)


def parse_json_object(text: str, keys: tuple[str, ...]) -> tuple[str, ...]:
    """The string values of `keys` in the first JSON object in `text`."""
    start = text.find("{")
    if start < 0:
        raise ParseError("no_json_object")
    try:
        obj, _ = _LENIENT.raw_decode(text[start:])
    except json.JSONDecodeError:
        raise ParseError("invalid_json") from None
    if not isinstance(obj, dict) or any(not isinstance(obj.get(k), str) for k in keys):
        raise ParseError("json_missing_keys")
    return tuple(obj[k].strip() for k in keys)
