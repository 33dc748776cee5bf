"""`experiment=agorabench` runs the original's meta-prompts and system message themselves (issue 23, item 1).

- With a checkout of neulab/data-agora (here ../shared/data/data_agora, the upstream files at their paths), every
  one of the 9 cells reads the original's file by its name, byte for byte, and sends it filled exactly as the
  original's prompt loaders fill it (plain replacement of the angle placeholders, nothing stripped), with the
  original's system message; both hashes are in the data key.
- Without a checkout, or with one whose files differ by a byte, the preset stops before any cost with one line.
- Agora's own prompts (`mode.prompts=agora`) carry the original's output-format examples, which the domain's own
  validator keeps, and RG code's "please provide the code" escape, which the validator drops as the original's does.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from agora import AgoraError
from agora.checks import check_cell
from agora.domains import code, get_domain, math
from agora.modes import get_mode, load_template
from agora.specs import cell_template, data_spec
from agora.store import digest
from conftest import ROOT, SHARED_DATA, compose_cfg, needs_shared

CHECKOUT = SHARED_DATA / "data_agora"
needs_checkout = needs_shared("data_agora", "libs", "data-agora", "data_agora", "agora.py")
DOMAINS = {"math": "math", "code": "code", "instruction_following": "general"}   # Agora's name -> the original's
MODES = ("instance_generation", "response_generation", "quality_enhancement")
# Texts that a one-pass, two-spelling fill would treat differently from the original's loaders: braces are text
# there, and `<input>` is no placeholder of instance generation.
SEEDS = [{"id": f"s{i}", "question": f"Seed question {i} with {{theme}}, {{input}} and <input>?",
          "solution": f"Seed answer {i}: {{output1}}.\n[RESULT] {i} [/RESULT]"} for i in range(6)]
POOL = [{"id": "g0", "instruction": "Generated question {demonstrations}", "response": "Generated answer"}]


def original_system_message() -> str:
    """The literal that the original's run.py passes as `system_message` (read here with a regex, independently
    of agora/originals.py, which reads AgoraConfig's default in agora.py)."""
    run = (CHECKOUT / "agora_scripts" / "run.py").read_text()
    (text,) = re.findall(r'system_message="([^"]+)"', run)
    return text


def preset(domain: str, mode: str, *extra: str):
    # (instruction following's Arena-Hard judge reads its own original, v0.1's judge config, beside it)
    return compose_cfg("generate", ["experiment=agorabench", f"domain={domain}", f"mode={mode}",
                                    f"originals.data_agora={CHECKOUT}",
                                    f"originals.arena_hard_auto={SHARED_DATA / 'arena_hard'}", *extra])


def build(cfg, template, i: int = 0):
    d = get_domain(cfg.domain._target_)
    kw = {k: v for k, v in cfg.mode.items() if k not in ("name", "version", "template")}
    return get_mode(cfg.mode.name).build(i, SEEDS, POOL, template=template, fmt=cfg.prompt_format.style,
                                         themes=d.THEMES, openers=d.OPENERS, seed=cfg.seed, **kw)


def filled_as_the_original(raw: str, mode: str, meta: dict, i: int, *, as_json: bool = False) -> str:
    """The original's loaders (libs/data-agora/data_agora/core/prompt_loaders.py at d7e66e1), step by step:
    IG replaces <inputK>/<outputK> for K = 1..3, then <input_theme>, then <first_word>; the JSON loader puts each
    text in as json.dumps and fills nothing else; RG replaces <input>; QE <input> then <output>."""
    if mode == "instance_generation":
        texts = {d["id"]: (d["question"], d["solution"]) for d in SEEDS}
        texts |= {d["id"]: (d["instruction"], d["response"]) for d in POOL}
        for k, demo in enumerate(meta["demo_ids"], 1):
            q, s = texts[demo]
            raw = raw.replace(f"<input{k}>", json.dumps(q) if as_json else q)
            raw = raw.replace(f"<output{k}>", json.dumps(s) if as_json else s)
        if as_json:
            return raw
        raw = raw.replace("<input_theme>", meta["theme"])
        if "first_word" in meta:
            raw = raw.replace("<first_word>", meta["first_word"])
        return raw
    row = SEEDS[i % len(SEEDS)]
    raw = raw.replace("<input>", row["question"])
    return raw.replace("<output>", row["solution"]) if mode == "quality_enhancement" else raw


@needs_checkout
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("domain", sorted(DOMAINS))
def test_the_preset_sends_the_originals_files_byte_for_byte(domain, mode):
    cfg = preset(domain, mode)
    assert cfg.mode.prompts == "original"
    check_cell(cfg)   # the checkout is there and every file has the pinned hash
    t = cell_template(cfg)
    file = CHECKOUT / "agora_scripts" / "prompts" / f"{mode}_{DOMAINS[domain]}_prompt.txt"
    raw = file.read_bytes()
    assert t.text.encode() == raw and t.sha256 == hashlib.sha256(raw).hexdigest()
    assert t.system == original_system_message()
    assert t.system_sha256 == hashlib.sha256(original_system_message().encode()).hexdigest()
    for i in range(4):
        messages, meta = build(cfg, t, i)
        assert messages == [{"role": "system", "content": original_system_message()},
                            {"role": "user", "content": filled_as_the_original(raw.decode(), mode, meta, i)}]
        if mode == "instance_generation":
            assert "<input" not in messages[1]["content"].replace("<input>?", "")   # every placeholder filled
            assert ("first_word" in meta) == (domain == "instruction_following")
    # both hashes are in the data key: the original's files make other cells than Agora's own prompts
    spec = data_spec(cfg, t)
    assert spec["mode"]["template_sha256"] == t.sha256 and spec["mode"]["system_sha256"] == t.system_sha256
    assert digest(spec) != digest(data_spec(preset(domain, mode, "mode.prompts=agora")))


@needs_checkout
def test_the_system_message_is_part_of_the_prompt_choice_and_of_the_data_key():
    cfg = compose_cfg("generate", ["domain=math", "mode=response_generation"])
    t = cell_template(cfg)
    other = replace(t, system="You write data.", system_sha256=hashlib.sha256(b"You write data.").hexdigest())
    assert build(cfg, other)[0][0] == {"role": "system", "content": "You write data."}
    assert digest(data_spec(cfg, other)) != digest(data_spec(cfg, t))
    # mode.template=PATH replaces the meta-prompt only: the original's system message stays with mode.prompts
    orig = cell_template(preset("math", "response_generation", f"mode.template={CHECKOUT}/agora_scripts/prompts/"
                                                               "response_generation_code_prompt.txt"))
    assert orig.system == original_system_message() and "Please provide the code" in orig.text


@needs_checkout
def test_the_json_variant_is_the_originals_json_file_filled_by_its_json_loader():
    for domain in DOMAINS:
        cfg = preset(domain, "instance_generation", "prompt_format=json")
        check_cell(cfg)
        t = cell_template(cfg)
        raw = (CHECKOUT / "agora_scripts" / "prompts" /
               f"instance_generation_{DOMAINS[domain]}_prompt_json_formatted.txt").read_text()
        assert t.text == raw
        messages, meta = build(cfg, t)
        assert messages[1]["content"] == filled_as_the_original(raw, "instance_generation", meta, 0, as_json=True)
        assert "theme" not in meta and "first_word" not in meta   # the original's JSON loader draws neither
    # its reply names the keys as the file asks
    assert get_mode("instance_generation").parse('{"instruction": "Q?", "response": "A."}', "json", {}) == ("Q?", "A.")
    # the original has JSON files for instance generation only, and none enforces Agora's schema
    with pytest.raises(AgoraError, match=r"no json meta-prompt for response_generation"):
        check_cell(preset("math", "response_generation", "prompt_format=json"))
    with pytest.raises(AgoraError, match=r"response_format=json_schema"):
        check_cell(preset("math", "instance_generation", "prompt_format=json_enforced"))


def run_generate(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "AGORA_DATA_AGORA" and not k.endswith("_API_KEY")}
    return subprocess.run([sys.executable, str(ROOT / "generate.py"), "experiment=agorabench", "generator=gpt4o",
                           "tracking=none", f"store_dir={tmp_path / 'store'}", *overrides],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)


def test_without_a_checkout_the_preset_stops_before_any_cost_with_one_line(tmp_path):
    with pytest.raises(AgoraError) as e:
        check_cell(compose_cfg("generate", ["experiment=agorabench", "originals.data_agora=null"]))
    line = str(e.value)
    assert "\n" not in line and "originals.data_agora" in line and "mode.prompts=agora" in line
    assert "git clone https://github.com/neulab/data-agora" in line and "d7e66e1" in line
    p = run_generate(tmp_path)
    assert p.returncode != 0 and "Traceback" not in p.stderr
    assert "originals.data_agora" in p.stderr and "mode.prompts=agora" in p.stderr
    assert not (tmp_path / "store").exists()   # stopped before the store, the server or a request
    # the explicit deviation: Agora's own prompts and system message, no checkout needed
    cfg = compose_cfg("generate", ["experiment=agorabench", "originals.data_agora=null", "mode.prompts=agora"])
    check_cell(cfg)
    assert cell_template(cfg).name == "agora.domains.math/prompts/instance_generation.txt"
    with pytest.raises(AgoraError, match=r"mode.prompts='theirs'; known: \['agora', 'original'\]"):
        cell_template(compose_cfg("generate", ["mode.prompts=theirs"]))


@needs_checkout
@pytest.mark.parametrize("path", ["agora_scripts/prompts/quality_enhancement_math_prompt.txt",
                                  "libs/data-agora/data_agora/agora.py"])
def test_a_checkout_changed_by_one_byte_stops_before_any_cost(tmp_path, path):
    bad = tmp_path / "data-agora"
    shutil.copytree(CHECKOUT, bad)
    f = bad / path
    raw = bytearray(f.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    f.write_bytes(bytes(raw))
    with pytest.raises(AgoraError) as e:
        check_cell(compose_cfg("generate", ["experiment=agorabench", "domain=math", "mode=quality_enhancement",
                                            f"originals.data_agora={bad}"]))
    assert "\n" not in str(e.value) and path in str(e.value) and "sha256" in str(e.value)
    p = run_generate(tmp_path, "domain=math", "mode=quality_enhancement", f"originals.data_agora={bad}")
    assert p.returncode != 0 and "Traceback" not in p.stderr and path in p.stderr
    assert not (tmp_path / "store").exists()   # stopped before the store, the server or a request


# ---------------------------------------------------------------- Agora's own prompts

def examples(prompt: str) -> list[str]:
    """The output-format examples of one of Agora's prompts: the body of each `## ... Example ... of the output
    format` section."""
    return re.findall(r"^## (?:[\d-]+[a-z]?\. )?Example (?:\d )?of the output format\n(.*?)(?=\n\n## )", prompt,
                      re.M | re.S)


def own(domain: str, mode: str, i: int = 0) -> str:
    cfg = compose_cfg("generate", [f"domain={domain}", f"mode={mode}"])
    return build(cfg, cell_template(cfg), i)[0][1]["content"]


def test_own_prompts_show_the_output_format_and_the_validator_keeps_it():
    rg = examples(own("math", "response_generation"))
    assert len(rg) == 2
    for ex in rg:
        assert math.validate("What is x?", ex) is None, ex
    qe = examples(own("math", "quality_enhancement"))
    assert len(qe) == 2
    for ex in qe:
        q, a = get_mode("quality_enhancement").parse("Revised Question: What is x?\n" + ex, "free_form", {})
        assert math.validate(q, a) is None, ex
    (ex,) = examples(own("code", "response_generation"))
    assert ex.startswith("```python\n") and code.validate("Write it.", ex) is None


def test_own_code_response_offers_the_originals_escape_and_the_validator_drops_it_as_the_original_does():
    prompt = own("code", "response_generation")
    (escape,) = re.findall(r'begin the response with "([^"]+)"', prompt)
    assert escape.lower() == "please provide the code"
    # the original's CodeValidator requires the response to start and end with a fence: the escape is a drop,
    # and the instruction is tried again (RG's retries), never kept as training data
    assert code.validate("Fix my function.", f"{escape} you want me to fix.") is not None


def _run_py_lists() -> dict[str, list]:
    """The list literals of the original's run.py, parsed here with `ast` (independently of agora/originals.py)."""
    import ast

    tree = ast.parse((CHECKOUT / "agora_scripts" / "run.py").read_text())
    return {n.targets[0].id: ast.literal_eval(n.value) for n in tree.body
            if isinstance(n, ast.Assign) and isinstance(n.value, ast.List) and isinstance(n.targets[0], ast.Name)}


@needs_checkout
def test_the_preset_draws_the_originals_themes_and_opening_words(tmp_path, monkeypatch):
    """Under the original's prompts the generate stage draws run.py's own themes and opening words (123 entries,
    121 distinct: a missing comma joins two), not Agora's lists, and the data key says so."""
    from agora.stages.generate import run
    from agora.store import read_jsonl
    from agora.tracking import FileTracker
    from pricedserver import PricedServer

    lists = _run_py_lists()
    assert (len(lists["general_triggers"]), len(set(lists["general_triggers"]))) == (123, 121)
    assert (len(lists["math_themes"]), len(set(lists["math_themes"]))) == (36, 35)
    own = ["mode=instance_generation", f"originals.data_agora={CHECKOUT}"]
    for domain, themes, openers in (("math", "math_themes", None), ("instruction_following", "general_themes",
                                                                     "general_triggers")):
        orig = compose_cfg("generate", [f"domain={domain}", "mode.prompts=original", *own])
        assert digest(data_spec(orig)["mode"]["draws"]) != digest(data_spec(compose_cfg(
            "generate", [f"domain={domain}", *own]))["mode"]["draws"])
        d = get_domain(orig.domain._target_)
        assert not set(lists[themes]) & set(d.THEMES)   # Agora's own lists are other words
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-agora-draws-NOT-A-KEY")
    with PricedServer(latency_s=0.01) as srv:
        cfg = compose_cfg("generate", ["domain=math", "mode.prompts=original", *own, "generator=gpt4o",
                                       "generator.limits.tpm=null", "generator.sampling.max_tokens=128",
                                       f"generator.base_url={srv.url}", "generator.limits.max_retries=0",
                                       "budget.n=12", "tracking=none", f"store_dir={tmp_path / 'store'}"])
        check_cell(cfg)
        run(cfg, FileTracker(tmp_path / "tracking", set()))
    (manifest,) = (tmp_path / "store" / "data").rglob("manifest.json")
    rows = read_jsonl(manifest.parent / "data.jsonl")
    assert len(rows) == 12 and all(r["theme"] in lists["math_themes"] for r in rows), [r["theme"] for r in rows]
