"""The contamination check flags a generated instruction that repeats a test question, and only that."""
from __future__ import annotations

import json

import pytest

from agora.metrics.contamination import flag, ngrams
from conftest import SHARED_DATA, needs_shared

TEST_Q = ("Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins for her "
          "friends every day with four. She sells the remainder at the farmers' market daily for $2 per fresh duck egg.")


def test_a_copied_question_is_flagged_and_a_fresh_one_is_not():
    copied = {"instruction": "Solve this: " + TEST_Q.upper() + " How much does she make?"}   # case and framing differ
    fresh = {"instruction": "A baker sells 12 loaves a day at $3 each. How much does she earn in a week?"}
    assert flag([copied, fresh], [TEST_Q]) == [True, False]


def test_twelve_shared_words_are_not_thirteen():
    words = TEST_Q.split()[2:]   # from "lay": no apostrophes, so a word is one token
    near = {"instruction": " ".join(words[:12]) + " then something else entirely different"}
    assert flag([near], [TEST_Q], n=13) == [False]
    assert flag([near], [TEST_Q], n=12) == [True]


def test_short_texts_are_one_ngram():
    assert ngrams("Add 2 and 3.", 13) == {("add", "2", "and", "3")}
    assert ngrams("", 13) == set()


@needs_shared("gsm8k", "test.jsonl")
def test_real_gsm8k_test_questions_are_found_among_train_questions_only_when_copied():
    test = [json.loads(x)["question"] for x in (SHARED_DATA / "gsm8k" / "test.jsonl").read_text().splitlines()]
    train = [json.loads(x)["question"] for x in (SHARED_DATA / "gsm8k" / "train.jsonl").read_text().splitlines()[:300]]
    rows = [{"instruction": q} for q in train] + [{"instruction": test[5]}, {"instruction": test[700]}]
    flags = flag(rows, test)
    assert flags[-2:] == [True, True]
    assert sum(flags[:-2]) <= 3     # train and test are distinct problems; a stray stock phrase at most
