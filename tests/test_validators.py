"""`validation.rules=original` keeps exactly what the original's validators keep, and `validation.max_tokens` makes
an overlong example a drop that is made up for at generation, instead of a loss at SFT.

The original (neulab/data-agora at d7e66e1, `core/validators.py`, wired in `agora_scripts/run.py`) drops a response
that holds any of run.py's `placeholder_formats` values anywhere, in any case (QE's triggers are
`Revised Question:`/`Revised Answer:`), a math response without exactly one `[RESULT]` and one `[/RESULT]` or not
ending in `[/RESULT]`, and anything over 4,096 Llama-3 tokens. Agora's own rules were case-sensitive, looked for
markers only at a line start (instruction following) and checked no length at generation; the original's own
functions, read from ../shared/data, are the reference here. Before issue 23 none of `validation.*` existed, so
every test below failed.
"""
from __future__ import annotations

import ast
import importlib.util
import json
from pathlib import Path

import pytest

from agora import AgoraError
from agora.domains import get_domain
from agora.modes import get_mode, load_template
from agora.stages.generate import ORIGINAL_PLACEHOLDERS, checker, forbidden_strings, run
from agora.checks import check_cell
from agora.store import read_jsonl
from agora.tracking import FileTracker
from conftest import SHARED_DATA, compose_cfg, needs_shared
import pricedserver
from pricedserver import PricedServer

ORIGINAL = SHARED_DATA / "data_agora"
VALIDATORS = ORIGINAL / "libs/data-agora/data_agora/core/validators.py"
RUN_PY = ORIGINAL / "agora_scripts/run.py"
shared = needs_shared("data_agora", "libs", "data-agora", "data_agora", "core", "validators.py")


def original_validators():
    spec = importlib.util.spec_from_file_location("original_validators", VALIDATORS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def original_placeholders() -> dict[str, set[str]]:
    """run.py's `placeholder_formats` per mode, read from its source: the dict, QE's trigger overrides and IF IG's
    `first_word`, as `main()` sets them."""
    tree = ast.parse(RUN_PY.read_text())
    base = next(ast.literal_eval(n.value) for n in ast.walk(tree) if isinstance(n, ast.Assign)
                and getattr(n.targets[0], "id", None) == "placeholder_formats")
    sets = {k: ast.literal_eval(n.value) for n in ast.walk(tree) if isinstance(n, ast.Assign)
            and isinstance(n.targets[0], ast.Subscript) and getattr(n.targets[0].value, "id", None) == "placeholder_formats"
            for k in [ast.literal_eval(n.targets[0].slice)]}
    qe = {**base, **{k: v for k, v in sets.items() if k.startswith("test_")}}
    return {"instance_generation": set(base.values()), "response_generation": set(base.values()),
            "quality_enhancement": set(qe.values()), "instance_generation+first_word": {*base.values(), sets["first_word"]}}


def template(domain: str, mode: str):
    """The packaged meta-prompt of the cell (Agora's own: IF's instance generation draws `{first_word}`)."""
    return load_template(f"agora.domains.{domain}", mode)


@shared
@pytest.mark.parametrize("mode", ["instance_generation", "response_generation", "quality_enhancement"])
@pytest.mark.parametrize("domain", ["math", "code", "instruction_following"])
def test_the_forbidden_strings_are_the_originals_placeholders(domain, mode):
    want = original_placeholders()
    key = f"{mode}+first_word" if (domain, mode) == ("instruction_following", "instance_generation") else mode
    assert set(forbidden_strings(get_mode(mode), template(domain, mode))) == want[key]
    assert set(ORIGINAL_PLACEHOLDERS) <= want[mode]


# Responses on both sides of each rule: markers mid-line and in other cases, result tags counted, the end checked.
MATH = ["x = 2. [RESULT] 2 [/RESULT]", "x = 2.\n[RESULT]  [/RESULT]", "[RESULT] 2 [/RESULT] then [RESULT] 3 [/RESULT]",
        "so [RESULT] 2", "x = 2 [/RESULT]", "[RESULT] 2 [/RESULT]\nDone.", "See the input: x. [RESULT] 2 [/RESULT]",
        "Write OUTPUT: 2 [RESULT] 2 [/RESULT]", "Answer [end] [RESULT] 2 [/RESULT]", "<Input_Theme> [RESULT] 2 [/RESULT]",
        "Revised answer: 2 [RESULT] 2 [/RESULT]", "x [RESULT] 2 [/RESULT] [/RESULT]"]
GENERAL = ["A plain answer.", "Line one\nINPUT: again", "the input: field", "Output: 3", "stop [END] here",
           "a <first_word> left", "Revised Question: what?", "revised answer: yes", "[RESULT] 3 [/RESULT]",
           "<output1> is fine for the original", "<OUTPUT> is not", "<input>"]


@shared
@pytest.mark.parametrize("mode", ["instance_generation", "quality_enhancement"])
def test_math_keeps_what_the_originals_math_validator_keeps(mode):
    v = original_validators()
    forbidden = forbidden_strings(get_mode(mode), template("math", mode))
    check = checker("original", get_domain("agora.domains.math"), forbidden)
    for r in MATH:
        theirs = (v.validate_keywords(r, keyword_occurance={"[RESULT]": 1, "[/RESULT]": 1}, end_keywords=["[/RESULT]"])
                  and v.validate_forbidden_keywords(r, list(original_placeholders()[mode])))
        assert (check("Find x.", r) is None) == theirs, (mode, r, check("Find x.", r))


@shared
@pytest.mark.parametrize("mode", ["instance_generation", "response_generation", "quality_enhancement"])
def test_instruction_following_keeps_what_the_originals_general_validator_keeps(mode):
    v = original_validators()
    key = f"{mode}+first_word" if mode == "instance_generation" else mode
    forbidden = forbidden_strings(get_mode(mode), template("instruction_following", mode))
    check = checker("original", get_domain("agora.domains.instruction_following"), forbidden)
    for r in GENERAL:
        theirs = v.validate_forbidden_keywords(r, list(original_placeholders()[key]))
        assert (check("Do it.", r) is None) == theirs, (mode, r, check("Do it.", r))


def test_agora_rules_are_unchanged_and_the_original_rules_differ():
    """Agora's rules (the default, data keys unchanged) keep a mid-line `INPUT:` and an empty result; the original's
    drop the first and keep the second."""
    IF, math = get_domain("agora.domains.instruction_following"), get_domain("agora.domains.math")
    forbidden = forbidden_strings(get_mode("response_generation"), template("instruction_following", "response_generation"))
    assert checker("agora", IF, forbidden)("Do it.", "Fill the input: field") is None
    assert checker("original", IF, forbidden)("Do it.", "Fill the input: field") == "placeholder"
    assert checker("agora", math, forbidden)("Find x.", "x [RESULT]  [/RESULT]") == "empty_result"
    assert checker("original", math, forbidden)("Find x.", "x [RESULT]  [/RESULT]") is None
    from agora.specs import data_spec

    assert "validation" not in data_spec(compose_cfg("generate", []))


def test_the_preset_runs_the_originals_rules_at_the_students_length():
    from agora.specs import _validation_spec

    cfg = compose_cfg("generate", ["experiment=agorabench"])
    assert (cfg.validation.rules, cfg.validation.max_tokens, cfg.train.max_len) == ("original", 4096, 4096)
    spec = _validation_spec(cfg)   # in the data key; the default cell's has no `validation` (test above)
    assert spec["tokenizer"]["student"] == "llama31_8b" and spec["max_tokens"] == 4096


def test_the_code_syntax_check_is_its_own_option():
    """`validation.compile`: code's compile() check, a filter the original lacks, is off under the original's rules
    and on under Agora's unless set; it reaches the domain's validator through the stage's checker and the key."""
    from agora.specs import _validation_spec

    code = get_domain("agora.domains.code")
    broken = "```python\ndef f(:\n    return 1\n```"
    for rules, default in (("agora", "syntax_error"), ("original", None)):
        assert checker(rules, code, ())("Write f.", broken) == default
        assert checker(rules, code, (), compile=True)("Write f.", broken) == "syntax_error"
        assert checker(rules, code, (), compile=False)("Write f.", broken) is None
    cfg = compose_cfg("generate", ["domain=code", "validation.compile=true"])
    assert _validation_spec(cfg)["compile"] is True and _validation_spec(compose_cfg("generate", ["domain=code"])) is None


@pytest.mark.parametrize("override, message", [("validation.rules=paper", "validation.rules=paper; known: agora, original"),
                                               ("validation.max_tokens=0", "validation.max_tokens=0"),
                                               ("validation.compile=true", "has no syntax check")])
def test_a_wrong_validation_setting_stops_before_any_cost(tmp_path, override, message):
    cfg = compose_cfg("generate", [override, "generator=gpt4o", "tracking=none", f"store_dir={tmp_path}"])
    with pytest.raises(AgoraError, match=message):
        run(cfg, FileTracker(tmp_path / "tracking", set()))   # no key is set: it stops before asking for one


PAD = " Each step is checked once more." * 90   # about 630 SmolLM2 tokens: over the smoke cell's 512


def padded(reply_text):
    """The first reply to every third prompt (by a hash of it) made too long for 512 student tokens; a prompt sent
    again (RG's retry of the same instruction) gets the example as it is, as a sampled generator may."""
    import hashlib

    seen: set[bytes] = set()

    def reply(messages):
        text = reply_text(messages)
        h = hashlib.blake2b(json.dumps(messages, sort_keys=True).encode(), digest_size=4).digest()
        first = h not in seen
        seen.add(h)
        return text.replace(" [RESULT]", PAD + " [RESULT]") if first and h[0] % 3 == 0 else text
    return reply


@pytest.mark.parametrize("mode, n", [("instance_generation", 12), ("response_generation", 4)])
def test_overlong_examples_are_made_up_for_at_generation(tmp_path, store_dir, monkeypatch, mode, n):
    """The smoke cell with `validation.max_tokens=${train.max_len}` (512 for SmolLM2): overlong replies are dropped
    as too_long, IG makes them up and RG retries the same instruction, the cell keeps its n, and SFT's own count
    (`encode_example`) drops none of what was kept."""
    from agora.chat import load_tokenizer
    from agora.train.data import encode_example
    from agora.train.student import student_folder

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-agora-validators-NOT-A-KEY")
    monkeypatch.setattr(pricedserver, "reply_text", padded(pricedserver.reply_text))
    store = tmp_path / "store"
    store.mkdir()
    (store / "models").symlink_to(Path(store_dir) / "models", target_is_directory=True)
    (Path(store_dir) / "models").mkdir(exist_ok=True)
    with PricedServer(latency_s=0.01) as srv:
        cfg = compose_cfg("generate", ["generator=gpt4o", "generator.limits.tpm=null", f"generator.base_url={srv.url}",
                                       f"mode={mode}", f"budget.n={n}", "validation.max_tokens=${train.max_len}",
                                       "tracking=none", f"store_dir={store}"])
        check_cell(cfg)
        run(cfg, FileTracker(tmp_path / "tracking", set()))
    (manifest,) = (store / "data").rglob("manifest.json")
    m = json.loads(manifest.read_text())
    rows, dropped = read_jsonl(manifest.parent / "data.jsonl"), read_jsonl(manifest.parent / "dropped.jsonl")
    assert m["summary"]["kept"] == n and m["drop_reasons"].get("too_long", 0) >= 1, m["drop_reasons"]
    tok = load_tokenizer(student_folder(cfg.student, store / "models"), cfg.student.chat_template)
    assert all(encode_example(tok, r["instruction"], r["response"], cfg.domain.system_prompt, 512) for r in rows)
    assert all(PAD not in r["response"] for r in rows)
    if mode == "response_generation":   # the same instructions as ever: the pool's first n, each retried in place
        assert sorted(r["seed_id"] for r in rows) == sorted({d["seed_id"] for d in dropped} | {r["seed_id"] for r in rows})
        assert all(d["attempt"] >= 0 and not d.get("given_up") for d in dropped)
