"""The meta-prompts as the paper lays them out, `mode.template=PATH`, and what the JSON variant sends.

- Every cell renders the paper's structure: guideline sections, numbered demonstrations, then the open new
  instance (IG); requirements, then `INPUT:`/`OUTPUT:` (RG); the pair to refine and `Revised Question:` (QE).
- The draws: a theme per request, and in instruction following an opening word, stamped into the row.
- Code: the solution's language follows the theme (7 languages), and the validator keeps any tagged block.
- A user's prompt file renders, and its content (not its path) is in the data key.
- `prompt_format=json` (the protocol) sends no `response_format` to any provider; `json_enforced` sends the schema
  to OpenAI-protocol servers and is refused for Anthropic. Checked on the wire: `generate.py` runs against a
  loopback server that records each request body and answers in the OpenAI or Anthropic shape.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from agora import AgoraError
from agora.domains import code, get_domain, instruction_following, math

MATH = math
from agora.modes import get_mode, load_template, sampling_fields
from agora.store import digest
from agora.specs import data_spec
from conftest import ROOT, compose_cfg

DOMAINS = ("math", "code", "instruction_following")
MODES = ("instance_generation", "response_generation", "quality_enhancement")
SEEDS = [{"id": f"s{i}", "question": f"Seed question {i} with {{braces}} and <input>?",
          "solution": f"Seed answer {i}.\n[RESULT] {i} [/RESULT]"} for i in range(6)]
POOL = [{"id": "g0", "instruction": "Generated question", "response": "Generated answer"}]


def render(domain: str, mode: str, fmt: str, i: int = 0, template=None, seed: int = 42, **kw) -> tuple[str, dict]:
    d = get_domain(f"agora.domains.{domain}")
    t = template or load_template(d.__name__, mode)
    messages, meta = get_mode(mode).build(i, SEEDS, POOL, template=t, fmt=fmt,
                                          themes=d.THEMES, openers=d.OPENERS, seed=seed,
                                          **{"n_demos": 3, "demos_from_generations": 1, **kw})
    assert messages[0] == {"role": "system", "content": t.system}   # the prompt choice's own system message
    return messages[1]["content"], meta


@pytest.mark.parametrize("fmt", ["free_form", "json"])
@pytest.mark.parametrize("domain", DOMAINS)
def test_instance_generation_has_the_sections_and_numbered_demonstrations(domain, fmt):
    prompt, meta = render(domain, "instance_generation", fmt)
    heads = [h for h in ("## General guidelines", "## Input requirements", "## Output requirements",
                         "## Format requirements") if h in prompt]
    assert len(heads) == 4 and [prompt.index(h) for h in heads] == sorted(prompt.index(h) for h in heads)
    assert "MUCH HARDER than every demonstration" in prompt   # the original's emphasis
    assert f"nothing else: {meta['theme']}." in prompt
    marks = [m.start() for m in re.finditer(r"^\[DEMONSTRATION (\d)\]$", prompt, re.M)]
    assert re.findall(r"^\[DEMONSTRATION (\d)\]$", prompt, re.M) == ["1", "2", "3"]
    new = prompt.rindex("[NEW EXAMPLE]")
    assert marks[-1] < new and prompt.index("## Format requirements") < marks[0]
    tail = prompt[new:].strip()
    if fmt == "free_form":
        assert tail == "[NEW EXAMPLE]\nINPUT:"
        for block in re.split(r"^\[DEMONSTRATION \d\]$", prompt[marks[0]:new], flags=re.M)[1:]:
            assert block.strip().startswith("INPUT: ") and "\nOUTPUT: " in block and block.strip().endswith("[END]")
    else:
        assert tail == "[NEW EXAMPLE]" and '"required": ["input", "output"]' in prompt
        demos = [json.loads(line) for line in prompt[marks[0]:new].splitlines() if line.startswith("{")]
        assert len(demos) == 3 and all(set(x) == {"input", "output"} for x in demos)
    # 2 seeds + 1 earlier generation, the raw texts untouched by rendering (braces, a quoted placeholder)
    assert sorted(meta["demo_ids"]) == ["g0", *sorted(x for x in meta["demo_ids"] if x != "g0")]
    assert "{braces} and <input>?" in prompt or "{braces} and <input>?" in prompt.replace('\\"', '"')


@pytest.mark.parametrize("fmt", ["free_form", "json"])
@pytest.mark.parametrize("domain", DOMAINS)
def test_response_generation_and_quality_enhancement_layouts(domain, fmt):
    rg, meta = render(domain, "response_generation", fmt, i=2)
    assert "## Requirements" in rg and "## Format requirements" in rg and meta["instruction"] == SEEDS[2]["question"]
    assert rg.rstrip().endswith(f"INPUT: {SEEDS[2]['question']}" + ("\nOUTPUT:" if fmt == "free_form" else ""))
    qe, _ = render(domain, "quality_enhancement", fmt, i=3)
    assert "question-answer pair" in qe and f"Question: {SEEDS[3]['question']}\nAnswer: {SEEDS[3]['solution']}" in qe
    # the original's four parts of a refinement, in its order
    heads = ["## 1. Formatting", "## 2. Coherence and conciseness", "## 3. Completeness", "## 4. Accuracy"]
    assert [qe.find(h) for h in heads] == sorted(qe.find(h) for h in heads) and -1 not in [qe.find(h) for h in heads]
    assert qe.rstrip().endswith("Revised Question:") == (fmt == "free_form")
    assert "Revised Answer:" in qe if fmt == "free_form" else '"revised_answer"' in qe


def test_math_prompts_carry_the_domain_rules():
    ig, _ = render("math", "instance_generation", "free_form")
    assert "unit" in ig and "single final answer" in ig and "not a proof" in ig
    for mode in MODES:
        p, _ = render("math", mode, "free_form")
        assert "once" in p and "[RESULT] answer [/RESULT]" in p, mode
        assert 'no units, words or symbols such as "meters", "dollars", "$" or "%"' in p, mode
        assert '"Q.E.D."' in p and "Do not end with a proof-style conclusion" in p, mode


def test_instruction_following_draws_an_opening_word_like_the_theme():
    seen = set()
    for i in range(40):
        prompt, meta = render("instruction_following", "instance_generation", "free_form", i=i)
        assert meta["first_word"] in instruction_following.OPENERS
        assert f'Begin the instruction with "{meta["first_word"]}"' in prompt
        seen.add(meta["first_word"])
        assert render("instruction_following", "instance_generation", "free_form", i=i)[1] == meta  # by seed
    assert len(seen) >= 15
    assert len(instruction_following.THEMES) == 28 and len(math.THEMES) == 36 and len(code.THEMES) == 14
    for domain in ("math", "code"):   # the paper draws an opening word in instruction following only
        prompt, meta = render(domain, "instance_generation", "free_form")
        assert "first_word" not in meta and "Begin the instruction" not in prompt


TAGS = {"Python": "python", "Java": "java", "C++": "cpp", "C": "c", "JavaScript": "javascript", "C#": "csharp",
        "PHP": "php"}


def test_code_prompts_follow_the_themes_language_and_the_validator_keeps_it():
    assert set(TAGS) == set(code.LANGUAGES)
    for i in range(60):
        prompt, meta = render("code", "instance_generation", "free_form", i=i)
        language = meta["theme"].split(" a ", 1)[1].rsplit(" Code", 1)[0]
        assert f"nothing else: {meta['theme']}." in prompt
        assert f"```{TAGS[language]}" in prompt   # the theme's language is one the prompt allows
        assert "theme's language" in prompt and "single ```python" not in prompt
    samples = {"python": "def add(a, b):\n    return a + b", "java": "class A { int add(int a, int b) { return a + b; } }",
               "cpp": "int add(int a, int b) { return a + b; }", "c": "int add(int a, int b) { return a + b; }",
               "javascript": "function add(a, b) { return a + b; }", "csharp": "int Add(int a, int b) => a + b;",
               "php": "<?php function add($a, $b) { return $a + $b; } ?>"}
    for tag, body in samples.items():
        assert code.validate("Write add.", f"```{tag}\n{body}\n```") is None, tag
    assert code.validate("Write add.", "```python\ndef add(a, b)\n    return a + b\n```") == "syntax_error"
    rg, _ = render("code", "response_generation", "free_form")
    assert all(f"```{t}," in rg or f"```{t} " in rg for t in ("python", "java", "swift", "css", "html"))
    qe, _ = render("code", "quality_enhancement", "free_form")
    assert "assert-style tests" in qe and "single fenced code block" in qe


# ---------------------------------------------------------------- mode.template=PATH

OURS = """version: 7
---
Write a harder problem on {theme}.
{format_instructions}

{demonstrations}
"""
# The original repository's placeholder spelling (our own sentences around it).
ORIGINAL_STYLE = """Make one more example on "<input_theme>", harder than these.

[EXAMPLE 1]
INPUT: <input1>
OUTPUT: <output1>
[END]

[EXAMPLE 2]
INPUT: <input2>
OUTPUT: <output2>
[END]

[EXAMPLE 3]
INPUT: <input3>
OUTPUT: <output3>
[END]

[NEW INSTANCE]
INPUT: """


def test_a_user_template_renders_and_its_content_is_in_the_data_key(tmp_path):
    a, b, c = tmp_path / "a.txt", tmp_path / "copy" / "b.txt", tmp_path / "c.txt"
    b.parent.mkdir()
    a.write_text(OURS)
    b.write_text(OURS)
    c.write_text(OURS.replace("harder", "much harder"))
    t = load_template("agora.domains.math", "instance_generation", str(a))
    assert t.version == 7 and t.name == str(a)
    prompt, meta = render("math", "instance_generation", "free_form", template=t)
    assert prompt.startswith(f"Write a harder problem on {meta['theme']}.") and "[DEMONSTRATION 3]" in prompt

    def key(*over):
        return digest(data_spec(compose_cfg("generate", list(over))))
    default = key()
    assert key(f"mode.template={a}") != default
    assert key(f"mode.template={a}") == key(f"mode.template={b}")   # the same content at another path
    assert key(f"mode.template={c}") != key(f"mode.template={a}")   # an edited prompt is a new cell
    assert key("mode.template=null") == default


def test_an_original_agorabench_style_file_runs_unchanged(tmp_path):
    f = tmp_path / "ig.txt"
    f.write_text(ORIGINAL_STYLE)
    t = load_template("agora.domains.code", "instance_generation", str(f))
    assert t.version == 0 and t.placeholders == {"theme", "input1", "input2", "input3", "output1", "output2", "output3"}
    prompt, meta = render("code", "instance_generation", "free_form", template=t)
    assert f'on "{meta["theme"]}"' in prompt and "<input" not in prompt.replace("<input>?", "")
    assert prompt.count("Seed question") + prompt.count("Generated question") == 3
    assert prompt.rstrip().endswith("[NEW INSTANCE]\nINPUT:")
    with pytest.raises(AgoraError, match=r"n_demos=4"):   # the file places 3 demonstrations
        render("code", "instance_generation", "free_form", template=t, n_demos=4, demos_from_generations=0)
    with pytest.raises(AgoraError, match=r"\{first_word\}"):   # instruction following draws an opening word
        render("instruction_following", "instance_generation", "free_form", template=t)
    rg = tmp_path / "rg.txt"
    rg.write_text("Answer this well.\nINPUT:\n<input>\n\nOUTPUT:\n")
    prompt, _ = render("math", "response_generation", "free_form", i=1,
                       template=load_template("agora.domains.math", "response_generation", str(rg)))
    assert prompt == f"Answer this well.\nINPUT:\n{SEEDS[1]['question']}\n\nOUTPUT:\n"


def test_a_missing_template_or_placeholder_is_one_clear_error(tmp_path):
    with pytest.raises(AgoraError, match=r"mode.template=.*nope.txt: no such file"):
        load_template("agora.domains.math", "instance_generation", str(tmp_path / "nope.txt"))
    f = tmp_path / "t.txt"
    f.write_text("Write a problem.\n{demonstrations}\n")
    with pytest.raises(AgoraError, match=r"t.txt lacks \{theme\} \(the drawn theme\)"):
        load_template("agora.domains.math", "instance_generation", str(f))
    f.write_text("Theme {theme}, no examples.\n")
    with pytest.raises(AgoraError, match=r"lacks \{demonstrations\} or \{input1\} \+ \{output1\}"):
        load_template("agora.domains.math", "instance_generation", str(f))
    with pytest.raises(AgoraError, match=r"lacks \{input\} \+ \{output\} or \{instance\}|lacks \{instance\}"):
        load_template("agora.domains.math", "quality_enhancement", str(f))
    f.write_text("Refine: <input>\n")   # the answer is missing
    with pytest.raises(AgoraError, match=r"question-answer pair"):
        load_template("agora.domains.math", "quality_enhancement", str(f))
    f.write_text("{theme} {demonstrations} {first_word}")
    with pytest.raises(AgoraError, match=r"uses \{first_word\}, which this cell does not fill"):
        render("math", "instance_generation", "free_form", template=load_template("agora.domains.math", "instance_generation", str(f)))
    p = subprocess.run([sys.executable, str(ROOT / "generate.py"), f"mode.template={tmp_path / 'nope.txt'}",
                        "tracking=none", f"store_dir={tmp_path / 'store'}"], capture_output=True, text=True,
                       timeout=300, cwd=tmp_path)
    assert p.returncode != 0 and "mode.template=" in p.stderr and "no such file" in p.stderr
    assert "Traceback" not in p.stderr


# ---------------------------------------------------------------- json vs json_enforced on the wire

def test_sampling_fields_per_prompt_format_and_provider():
    for gen in ("gpt4o", "claude35_sonnet", "llama31_70b", "vllm"):
        for pf in ("free_form", "json"):
            cfg = compose_cfg("generate", [f"generator={gen}", f"prompt_format={pf}"])
            mode = get_mode(cfg.mode.name)
            rf, extra = sampling_fields(cfg.prompt_format.style, cfg.prompt_format.response_format, mode,
                                        get_domain(cfg.domain._target_).ANSWER_GBNF, provider=cfg.generator.provider,
                                        constrain=bool(cfg.generator.constrain))
            assert (rf, extra) == (None, None), (gen, pf)   # the prompt alone, for every provider
    cfg = compose_cfg("generate", ["generator=gpt4o", "prompt_format=json_enforced"])
    rf, _ = sampling_fields("json", cfg.prompt_format.response_format, get_mode("instance_generation"), MATH.ANSWER_GBNF,
                            provider="openai", constrain=False)
    assert rf["type"] == "json_schema" and rf["json_schema"]["schema"]["required"] == ["input", "output"]
    with pytest.raises(AgoraError, match="Anthropic"):
        sampling_fields("json", "json_schema", get_mode("instance_generation"), MATH.ANSWER_GBNF, provider="anthropic",
                        constrain=False)
    # the smoke model's grammar is the same crutch in free_form and json
    for pf in ("free_form", "json", "json_enforced"):
        cfg = compose_cfg("generate", [f"prompt_format={pf}"])
        rf, extra = sampling_fields(cfg.prompt_format.style, cfg.prompt_format.response_format,
                                    get_mode(cfg.mode.name), MATH.ANSWER_GBNF, provider="openai", constrain=True)
        assert rf is None and "grammar" in extra, pf
    with pytest.raises(AgoraError, match="prompt_format.style='yaml'"):
        sampling_fields("yaml", None, get_mode("instance_generation"), MATH.ANSWER_GBNF, provider="openai", constrain=False)


class Recorder:
    """A loopback server that records every request body and answers in the OpenAI or Anthropic shape with a math
    example as one JSON object (so a JSON-format cell keeps it)."""

    def __init__(self):
        self.bodies: list[tuple[str, dict]] = []
        rec = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                rec.bodies.append((self.path, body))
                n = len(rec.bodies)
                text = json.dumps({"input": f"A shelf holds {n + 2} boxes of 3 jars. How many jars are there?",
                                   "output": f"{n + 2} * 3 = {3 * (n + 2)}.\n[RESULT] {3 * (n + 2)} [/RESULT]"})
                if self.path.endswith("/messages"):
                    out = {"id": "m", "type": "message", "role": "assistant", "model": body["model"],
                           "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
                           "usage": {"input_tokens": 100, "output_tokens": 20}}
                else:
                    out = {"id": "c", "object": "chat.completion", "model": body["model"], "created": 0,
                           "choices": [{"index": 0, "finish_reason": "stop",
                                        "message": {"role": "assistant", "content": text}}],
                           "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}}
                data = json.dumps(out).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def generate(tmp_path: Path, generator: str, base_url: str, prompt_format: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OPENAI_API_KEY": "sk-test-NOT-A-KEY", "ANTHROPIC_API_KEY": "sk-ant-test-NOT-A-KEY"}
    args = [f"generator={generator}", f"generator.base_url={base_url}", "generator.limits.tpm=null",
            "budget.data=embedded", "budget.n=2", f"prompt_format={prompt_format}", "tracking=none",
            f"store_dir={tmp_path / 'store'}", "intrinsic.enabled=false"]
    return subprocess.run([sys.executable, str(ROOT / "generate.py"), *args], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path, env=env)


def test_json_is_prompt_only_for_every_provider_and_json_enforced_sends_the_schema(tmp_path):
    rec = Recorder()
    try:
        runs = {}
        for gen, base, pf in [("gpt4o", rec.url + "/v1", "json"), ("claude35_sonnet", rec.url, "json"),
                              ("gpt4o", rec.url + "/v1", "json_enforced")]:
            before = len(rec.bodies)
            p = generate(tmp_path, gen, base, pf)
            assert p.returncode == 0, p.stderr[-3000:]
            runs[gen, pf] = rec.bodies[before:]
        before = len(rec.bodies)
        p = generate(tmp_path, "claude35_sonnet", rec.url, "json_enforced")
        assert p.returncode != 0 and "Anthropic" in p.stderr and "Traceback" not in p.stderr
        assert len(rec.bodies) == before   # refused before anything was sent
    finally:
        rec.close()
    for (gen, pf), bodies in runs.items():
        assert bodies, (gen, pf)
        for path, body in bodies:
            prompt = body["messages"][-1]["content"]
            assert '"required": ["input", "output"]' in prompt and "[NEW EXAMPLE]" in prompt   # the same prompt
            assert "grammar" not in body
            if pf == "json":
                assert "response_format" not in body, (gen, path)
            else:
                assert body["response_format"]["type"] == "json_schema", (gen, path)
                assert body["response_format"]["json_schema"]["schema"]["required"] == ["input", "output"]
    assert {p for p, _ in runs["claude35_sonnet", "json"]} == {"/v1/messages"}
    assert {p for p, _ in runs["gpt4o", "json"]} == {"/v1/chat/completions"}
    # the two formats are two cells: their data lives apart, and each row names its format and template
    rows = [json.loads(x) for f in (tmp_path / "store" / "data").rglob("data.jsonl") for x in f.read_text().split("\n")
            if x.strip()]
    assert {(r["generator"], r["prompt_format"]) for r in rows} == {("gpt4o", "json"), ("claude35_sonnet", "json"),
                                                                    ("gpt4o", "json_enforced")}
    assert all(r["template_version"] == 3 and len(r["template_sha256"]) == 64 for r in rows)
