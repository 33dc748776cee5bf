"""Modes: how a meta-prompt is built from seeds and how the generator's reply is parsed back.

A mode is a module with `build(...)` and `parse(...)`. What a cell sends is its prompt choice, a `Template`: the
meta-prompt and the system message that goes with it, both hashed into the data key. `mode.prompts` picks it:

- `agora` (the default): Agora's own files, `<domain package>/prompts/<mode>.txt`, each with a version stamped into
  every generated row, and Agora's own system message. They carry the content of the paper's meta-prompts
  (neulab/data-agora) in Agora's own words: IG has sections for guidelines, input, output and format requirements,
  then numbered demonstrations and the open new instance, a drawn theme (and opening word in instruction
  following), and asks for something much harder than the demonstrations; RG shows `INPUT:` and an open `OUTPUT:`;
  QE refines a pair into `Revised Question:`/`Revised Answer:`. One difference is on purpose: math asks for one
  checkable value and never a proof (the original let proofs end in `[RESULT] Q.E.D. [/RESULT]`, which no
  benchmark can score). The JSON variant is the free-form content with the output asked for as one JSON object.
- `original` (`experiment=agorabench`): the original's own files, read from the user's checkout
  (`originals.data_agora`, hash-checked by agora/originals.py), filled as the original's prompt loaders fill them.

`mode.template=PATH` runs another file in place of the meta-prompt (its sha256 is in the data key).
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from types import ModuleType

from agora import AgoraError

# Agora's own system message: the original's content (a generator of new instances that follows the guidelines,
# requirements and examples in the prompt), in Agora's words. `mode.prompts=original` sends the original's instead.
AGORA_SYSTEM = ("You are an agent that writes new data instances, following the guidelines, requirements and "
                "examples you are given.")
PROMPT_SOURCES = ("agora", "original")   # `mode.prompts`
# How a meta-prompt asks for the output and how the reply is read back: `prompt_format.style`. Enforcement by the
# server (OpenAI structured output) is a separate field, `prompt_format.response_format` (see `sampling_fields`).
FORMATS = ("free_form", "json")


class ParseError(ValueError):
    """The reply does not have the requested shape; the message is the drop reason."""


# The placeholders a template may use. `{theme}` and `{first_word}` are the draws of instance generation;
# `{demonstrations}` (IG) and `{instance}` (RG, QE) are the blocks Agora lays out for the prompt format (numbered
# demonstrations, then the open new instance); `{inputK}`/`{outputK}` (IG, K = 1..n_demos) and `{input}`/`{output}`
# (RG, QE: the given instruction and answer) are the raw texts, for a file that lays them out itself. The angle
# spellings are the original AgoraBench files' (neulab/data-agora), so those files run unchanged with `mode.template`.
PLACEHOLDER_RE = re.compile(r"\{(theme|first_word|demonstrations|instance|format_instructions|(?:input|output)\d*)\}"
                            r"|<(input_theme|first_word|(?:input|output)\d*)>")
# An original file is filled as the original's loaders fill it (agora/core/prompt_loaders.py at d7e66e1): only the
# angle spellings, by plain replacement in their order (demonstration k's input then output, k = 1..n, then the
# theme, then the opening word; RG's and QE's `<input>` then `<output>`), nothing stripped. Braces are text there.
ORIGINAL_RE = re.compile(r"<(input_theme|first_word|(?:input|output)\d*)>")
ALIASES = {"input_theme": "theme"}


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _original_order(name: str) -> tuple:
    m = re.fullmatch(r"(input|output)(\d+)", name)
    if m:
        return (0, int(m.group(2)), m.group(1) == "output")
    return (1, ("input_theme", "first_word", "input", "output").index(name), False)


@dataclass(frozen=True)
class Template:
    """A cell's prompt choice: the meta-prompt's text, its version (stamped into rows), its name (file name, user
    path or the original's file) and the sha256 of the file, and the system message sent with it and its sha256.
    Both hashes go into the data key, so that an edited prompt or another system message is a new cell.
    `fill` is how placeholders are filled: `agora` (one pass, both spellings) or `original` (as the original's
    loaders do)."""
    text: str
    version: int
    name: str
    sha256: str = ""
    system: str = AGORA_SYSTEM
    system_sha256: str = _sha(AGORA_SYSTEM)
    fill: str = "agora"

    @property
    def placeholders(self) -> set[str]:
        if self.fill == "original":
            return {ALIASES.get(a, a) for a in ORIGINAL_RE.findall(self.text)}
        return {ALIASES.get(a or b, a or b) for a, b in PLACEHOLDER_RE.findall(self.text)}

    def messages(self, prompt: str) -> list[dict]:
        """The chat a generator is sent: this choice's system message, then the rendered prompt."""
        return [{"role": "system", "content": self.system}, {"role": "user", "content": prompt}]

    def render(self, **fields: str) -> str:
        """The prompt. Agora's files: each placeholder replaced in one pass (filled-in text is never read again:
        demonstrations hold LaTeX braces and may quote placeholders). An original file: as its loaders fill it."""
        missing = sorted(self.placeholders - set(fields))
        if missing:
            raise AgoraError(f"prompt template {self.name} uses {', '.join('{' + m + '}' for m in missing)}, which "
                             f"this cell does not fill; known here: {sorted(fields)}")
        if self.fill == "original":
            # Every angle name the mode fills is replaced, present in the file or not: the original replaces after
            # the demonstrations are in, so a demonstration that quotes `<input_theme>` gets the theme there too.
            names = [n for n in ("input_theme", "first_word", "input", "output") if ALIASES.get(n, n) in fields]
            names += [n for n in fields if re.fullmatch(r"(input|output)\d+", n)]
            prompt = self.text
            for n in sorted(names, key=_original_order):
                prompt = prompt.replace(f"<{n}>", fields[ALIASES.get(n, n)])
            return prompt

        def fill(m: re.Match) -> str:
            name = m.group(1) or m.group(2)
            return fields[ALIASES.get(name, name)]
        return PLACEHOLDER_RE.sub(fill, self.text)

    def require(self, *alternatives: set[str], what: str) -> None:
        """At least one of `alternatives` (sets of placeholder names) must be wholly in the template."""
        have = self.placeholders
        if not any(alt <= have for alt in alternatives):
            need = " or ".join(" + ".join("{" + n + "}" for n in sorted(alt)) for alt in alternatives)
            raise AgoraError(f"prompt template {self.name} lacks {need} ({what})")


def _parse_template(raw: str, name: str, *, header_required: bool) -> Template:
    header, sep, body = raw.partition("\n---\n")
    m = re.match(r"version:\s*(\d+)\s*$", header.strip()) if sep else None
    if not m:
        if header_required:
            raise AgoraError(f"prompt template {name} lacks its `version: N` header")
        body, version = raw, 0   # a user's file: its sha256 identifies it
    else:
        version = int(m.group(1))
    return Template(body.strip() + "\n", version, name, hashlib.sha256(raw.encode()).hexdigest())


@cache
def _packaged_template(domain: str, mode: str) -> Template:
    from agora.domains import package_text

    name = f"{domain}/prompts/{mode}.txt"
    raw = package_text(domain, "prompts", f"{mode}.txt")
    if raw is None:
        raise AgoraError(f"no prompt template {name}: the domain package {domain} has no prompt for mode={mode}")
    return _parse_template(raw, name, header_required=True)


def load_template(domain: str, mode: str, path: str | None = None, *, prompts: str = "agora",
                  style: str = "free_form", data_agora: str | None = None) -> Template:
    """The cell's prompt choice (`mode.prompts`): the meta-prompt and the system message, checked for the
    placeholders the mode fills.

    - `prompts="agora"`: `prompts/<mode>.txt` of the domain package `domain` (its `_target_`), Agora's system message.
    - `prompts="original"`: the original's file for the cell (`agora_scripts/prompts/<mode>_<domain>_prompt.txt`, the
      `_json_formatted` one for `style="json"`) and its system message, read from the checkout at `data_agora` and
      checked against the pinned commit's sha256 (agora/originals.py); the text exactly as the file holds it.
    - `path` (`mode.template=PATH`) replaces the meta-prompt either way. A user file may start with the same
      `version: N` + `---` header; without one its version is 0 and its sha256 alone tells versions apart.
    """
    from agora import originals

    if prompts not in PROMPT_SOURCES:
        raise AgoraError(f"mode.prompts={prompts!r}; known: {list(PROMPT_SOURCES)} (agora: Agora's own meta-prompts; "
                         "original: the original's files, from originals.data_agora)")
    if prompts == "original" and data_agora is None:
        raise AgoraError(f"mode.prompts=original runs the original's meta-prompts and system message, read from a "
                         f"checkout of {originals.DATA_AGORA.repo} at {originals.DATA_AGORA.commit[:7]}, and "
                         f"{originals.DATA_AGORA.key} is not set: {originals.DATA_AGORA.how} (or set "
                         "AGORA_DATA_AGORA); or run Agora's own prompts with mode.prompts=agora, a deviation the "
                         "README's protocol table names")
    system = {}
    if prompts == "original":
        text, sha = originals.system_message(data_agora)
        system = {"system": text, "system_sha256": sha}
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise AgoraError(f"mode.template={path}: no such file (a prompt file with this mode's placeholders)")
        try:
            raw = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise AgoraError(f"mode.template={path}: cannot be read as UTF-8 text ({e})") from None
        t = _parse_template(raw, str(p), header_required=False)
    elif prompts == "original":
        file = originals.prompt_path(domain.rsplit(".", 1)[-1], mode, style)
        raw, sha = originals.read(originals.DATA_AGORA, data_agora, file)
        t = Template(raw, 0, f"{originals.DATA_AGORA.repo}@{originals.DATA_AGORA.commit[:7]}:{file}", sha,
                     fill="original")
    else:
        t = _packaged_template(domain, mode)
    if system:
        t = replace(t, **system)
    get_mode(mode).check_template(t, style)
    return t


def get_mode(name: str) -> ModuleType:
    from agora.modes import instance_generation, quality_enhancement, response_generation

    known = {"instance_generation": instance_generation, "response_generation": response_generation,
             "quality_enhancement": quality_enhancement}
    if name not in known:
        raise AgoraError(f"unknown mode {name!r}; known: {sorted(known)}")
    return known[name]


# Constrained decoding for the embedded smoke generator (`generator=local`, SmolLM2-135M through llama.cpp): a
# 135M model cannot keep a meta-prompt's format on its own, so `generator.constrain: true` sends a llama.cpp grammar
# of the mode's output with every request, free_form and JSON alike. It is a property of that tiny model, not of a
# prompt format; every other generator has `constrain: false` and gets the prompt alone (`sampling_fields`).
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
def gbnf(root: str, answer: tuple[str, str]) -> str:
    """A llama.cpp grammar: `root` may use `text` and `answer` (the domain's `ANSWER_GBNF`, built on the rules here)."""
    return f"root ::= {root}\nanswer ::= {answer[0]}\n{GBNF_TEXT}"


def json_schema(keys: tuple[str, ...]) -> dict:
    """The JSON format's schema: an object of required string `keys`."""
    return {"type": "object", "properties": {k: {"type": "string"} for k in keys}, "required": list(keys),
            "additionalProperties": False}


def response_format(kind: str | None, keys: tuple[str, ...]) -> dict | None:
    """The OpenAI `response_format` of a prompt format: none, JSON mode, or structured output with the schema.

    Only `prompt_format=json_enforced` sets one (`json_schema`, which OpenAI and vLLM enforce server-side); the
    protocol's `prompt_format=json` leaves it null, so the prompt alone asks for JSON, for every provider alike.
    """
    if kind in (None, "text"):
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": "example", "strict": True, "schema": json_schema(keys)}}
    raise AgoraError(f"prompt_format.response_format={kind!r}; known: null, json_object, json_schema")


def sampling_fields(style: str, enforce: str | None, mode: ModuleType, answer: tuple[str, str], *, provider: str,
                    constrain: bool) -> tuple[dict | None, dict | None]:
    """`(response_format, extra_body)` of a generation request: what, beyond the prompt, holds the reply's format.

    - `prompt_format=free_form` and `json` (the protocol): nothing; the meta-prompt alone asks for the format, so
      JSON means the same thing for OpenAI, Anthropic, vLLM and OpenRouter generators.
    - `prompt_format=json_enforced`: the server enforces the mode's schema (OpenAI structured output). Anthropic's
      Messages API has no such field, so there it is an error rather than a silent prompt-only run.
    - `generator.constrain` (the embedded 135M smoke model only, which cannot keep any format on its own): a
      llama.cpp grammar for the mode's output, applied to free_form and JSON alike; it replaces `response_format`.
    """
    if style not in FORMATS:
        raise AgoraError(f"prompt_format.style={style!r}; known: {list(FORMATS)}")
    if constrain:
        return None, mode.constraint(style, answer)
    if enforce not in (None, "text") and provider == "anthropic":
        raise AgoraError(f"prompt_format.response_format={enforce} needs a server that enforces a JSON schema; "
                         "Anthropic's Messages API has none (use prompt_format=json, the prompt-only variant)")
    return response_format(enforce, mode.JSON_KEYS), None


def json_format_instructions(keys: dict[str, str]) -> str:
    """The JSON variant's format section: one object with these string keys (name -> what it holds), its schema."""
    named = ", ".join(f'"{k}" ({what})' for k, what in keys.items())
    schema = json.dumps(json_schema(tuple(keys)))
    return ("- Do not greet or comment: write the JSON object only, with nothing before or after it.\n"
            f"- The object has exactly these string keys: {named}. It must satisfy this JSON schema: {schema}\n"
            "- Every requirement above applies to the text inside the strings; escape newlines and quotes as JSON "
            "requires.")


def json_constraint(keys: tuple[str, ...], answer_key: str, answer: tuple[str, str]) -> dict:
    """Request fields that make a llama.cpp server write `json_schema(keys)` with `answer_key` in the domain's shape.

    The grammar emits that object as strict JSON (code newlines as `\\n`); `response_format` is cleared because
    llama-cpp-python lets a JSON response_format override an explicit grammar.
    """
    fields = []
    for k in keys:
        fields.append(f'"\\"{k}\\": \\"" ' + ("janswer" if k == answer_key else "jtext") + ' "\\""')
    root = ' ", " '.join(fields)
    grammar = f'root ::= "{{" {root} "}}"\njanswer ::= {answer[1]}\n{JSON_GBNF}'
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
