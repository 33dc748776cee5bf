"""Offline Python function tasks with reference solutions and assert tests, made by this project.

Why it exists: the code domain's default pipeline (seeds, then generate, train and evaluate) must run with no
download. These templated tasks stand in for MBPP: its seeds, its human-written SFT data, and its few-shot
examples. Every task is MBPP-shaped (`text`, `code`, `test_list`, `test_setup_code`), so `agora.domains.code`
turns them into records exactly as it does MBPP.

Templates vary the function name and the constants in the statement, so a few dozen of them give thousands of
distinct tasks. Each expected value is computed by running the task's own reference code in this process (the
code is ours, not a model's). The train/test split is decided by a stable hash of the statement with the
function name blanked out. So the two splits never share a task, not even under another name. Tasks come from
one random stream per seed, independent of `n` and `split`.
"""
from __future__ import annotations

import copy
import hashlib
import random
from typing import Callable

TEST_FRACTION = 0.2
N_TESTS = 3

Task = tuple[str, str, str, list[tuple]]  # statement, reference code, function name, argument tuples for the tests
LETTERS = "abcdefghijklmnopqrstuvwxyz"
WORDS = ["apple", "river", "stone", "cloud", "tiger", "lemon", "piano", "zebra", "candle", "forest", "orbit",
         "maple", "quartz", "violet", "ember", "harbor", "nectar", "pixel", "saddle", "tundra"]


def _ints(r: random.Random, lo: int = -20, hi: int = 40, size: tuple[int, int] = (3, 9)) -> list[int]:
    return [r.randint(lo, hi) for _ in range(r.randint(*size))]


def _sentence(r: random.Random, size: tuple[int, int] = (3, 8)) -> str:
    return " ".join(r.choice(WORDS) for _ in range(r.randint(*size)))


def _name(r: random.Random, *names: str) -> str:
    return r.choice(names)


def sum_multiples(r: random.Random) -> Task:
    a, b = sorted(r.sample([2, 3, 4, 5, 6, 7, 9, 11, 13], 2))
    f = _name(r, "sum_of_multiples", "multiples_total", "add_multiples")
    return (f"Write a function {f}(n) that returns the sum of all positive integers below n that are divisible "
            f"by {a} or {b}.",
            f"def {f}(n):\n    return sum(i for i in range(1, n) if i % {a} == 0 or i % {b} == 0)",
            f, [(r.randint(1, 80),) for _ in range(N_TESTS)])


def count_char(r: random.Random) -> Task:
    c, f = r.choice(LETTERS), _name(r, "count_char", "char_frequency", "occurrences")
    return (f"Write a function {f}(s) that returns how many times the letter '{c}' appears in the string s, "
            f"ignoring case.",
            f"def {f}(s):\n    return s.lower().count('{c}')",
            f, [(_sentence(r).replace(r.choice(WORDS)[0], c.upper()),) for _ in range(N_TESTS)])


def digit_power_sum(r: random.Random) -> Task:
    k, f = r.randint(2, 6), _name(r, "digit_power_sum", "sum_digit_powers", "powered_digits")
    return (f"Write a function {f}(n) that returns the sum of the digits of the non-negative integer n, each "
            f"raised to the power {k}.",
            f"def {f}(n):\n    return sum(int(d) ** {k} for d in str(n))",
            f, [(r.randint(0, 99999),) for _ in range(N_TESTS)])


def filter_above(r: random.Random) -> Task:
    t, f = r.randint(-10, 25), _name(r, "filter_above", "greater_than", "keep_large")
    return (f"Write a function {f}(nums) that returns a list of the numbers in nums that are greater than {t}, "
            f"in their original order.",
            f"def {f}(nums):\n    return [x for x in nums if x > {t}]",
            f, [(_ints(r),) for _ in range(N_TESTS)])


def replace_vowels(r: random.Random) -> Task:
    c, f = r.choice("*#_-@+"), _name(r, "mask_vowels", "replace_vowels", "hide_vowels")
    return (f"Write a function {f}(s) that returns s with every vowel (a, e, i, o, u, in either case) replaced "
            f"by '{c}'.",
            f"def {f}(s):\n    return ''.join('{c}' if ch in 'aeiouAEIOU' else ch for ch in s)",
            f, [(_sentence(r).title(),) for _ in range(N_TESTS)])


def rotate(r: random.Random) -> Task:
    side, f = r.choice(["left", "right"]), _name(r, "rotate_list", "rotate", "shift_list")
    body = "nums[k:] + nums[:k]" if side == "left" else "nums[-k:] + nums[:-k]"
    return (f"Write a function {f}(nums, k) that returns a new list with the elements of nums rotated {side} by "
            f"k positions (k may be larger than the length of nums).",
            f"def {f}(nums, k):\n    if not nums:\n        return []\n    k %= len(nums)\n    return {body}",
            f, [(_ints(r), r.randint(0, 12)) for _ in range(N_TESTS)])


def clamp(r: random.Random) -> Task:
    lo = r.randint(-10, 5)
    hi, f = lo + r.randint(3, 20), _name(r, "clamp_all", "clip_values", "bound_list")
    return (f"Write a function {f}(nums) that returns a list where each number of nums is limited to the range "
            f"from {lo} to {hi} inclusive.",
            f"def {f}(nums):\n    return [min(max(x, {lo}), {hi}) for x in nums]",
            f, [(_ints(r, -30, 40),) for _ in range(N_TESTS)])


def gcd_lcm(r: random.Random) -> Task:
    which = r.choice(["greatest common divisor", "least common multiple"])
    names = ("list_gcd", "gcd_of_list", "common_divisor") if which[0] == "g" else ("list_lcm", "lcm_of_list")
    f = _name(r, *names)
    op = "math.gcd(acc, x)" if which[0] == "g" else "acc * x // math.gcd(acc, x)"
    start = 0 if which[0] == "g" else 1
    return (f"Write a function {f}(nums) that returns the {which} of a non-empty list of positive integers.",
            f"import math\n\ndef {f}(nums):\n    acc = {start}\n    for x in nums:\n        acc = {op}\n    return acc",
            f, [([r.randint(1, 12) * r.choice([1, 2, 3, 6]) for _ in range(r.randint(2, 5))],) for _ in range(N_TESTS)])


def fizzbuzz(r: random.Random) -> Task:
    a, b = r.sample([2, 3, 4, 5, 7], 2)
    wa, wb = r.sample(["Fizz", "Buzz", "Bang", "Pop", "Zap"], 2)
    f = _name(r, "fizz_buzz", "word_counter", "say_numbers")
    return (f"Write a function {f}(n) that returns a list of strings for the numbers 1 to n: '{wa}{wb}' for "
            f"multiples of both {a} and {b}, '{wa}' for other multiples of {a}, '{wb}' for other multiples of {b}, "
            f"and the number itself as a string otherwise.",
            f"def {f}(n):\n    out = []\n    for i in range(1, n + 1):\n"
            f"        s = ('{wa}' if i % {a} == 0 else '') + ('{wb}' if i % {b} == 0 else '')\n"
            f"        out.append(s or str(i))\n    return out",
            f, [(r.randint(1, 25),) for _ in range(N_TESTS)])


def count_long_words(r: random.Random) -> Task:
    k, f = r.randint(3, 6), _name(r, "count_long_words", "long_word_count", "words_longer")
    return (f"Write a function {f}(sentence) that returns how many space-separated words in sentence have more "
            f"than {k} characters.",
            f"def {f}(sentence):\n    return sum(1 for w in sentence.split() if len(w) > {k})",
            f, [(_sentence(r),) for _ in range(N_TESTS)])


def second_extreme(r: random.Random) -> Task:
    which = r.choice(["largest", "smallest"])
    f = _name(r, f"second_{which}", f"runner_up_{which}", f"next_{which}")
    key = "reverse=True" if which == "largest" else "reverse=False"
    return (f"Write a function {f}(nums) that returns the second {which} distinct value in nums, or None if "
            f"there are fewer than two distinct values.",
            f"def {f}(nums):\n    values = sorted(set(nums), {key})\n    return values[1] if len(values) > 1 else None",
            f, [(_ints(r, 0, 9),) for _ in range(N_TESTS - 1)] + [([r.randint(0, 9)] * 3,)])


def caesar(r: random.Random) -> Task:
    k, f = r.randint(1, 25), _name(r, "caesar_shift", "encode_shift", "rotate_letters")
    return (f"Write a function {f}(s) that shifts every lowercase letter of s forward by {k} places in the "
            f"alphabet, wrapping around from 'z' to 'a', and leaves every other character unchanged.",
            f"def {f}(s):\n    return ''.join(chr((ord(c) - 97 + {k}) % 26 + 97) if 'a' <= c <= 'z' else c "
            f"for c in s)",
            f, [(_sentence(r, (1, 4)),) for _ in range(N_TESTS)])


def chunk(r: random.Random) -> Task:
    k, f = r.randint(2, 5), _name(r, "chunk_list", "split_into_groups", "batches")
    return (f"Write a function {f}(items) that splits the list items into consecutive groups of {k} elements; "
            f"the last group may be shorter. Return a list of lists.",
            f"def {f}(items):\n    return [items[i:i + {k}] for i in range(0, len(items), {k})]",
            f, [(_ints(r, 0, 9, (0, 11)),) for _ in range(N_TESTS)])


def dedupe(r: random.Random) -> Task:
    keep, f = r.choice(["first", "last"]), _name(r, "dedupe", "unique_in_order", "remove_repeats")
    code = (f"def {f}(items):\n    seen, out = set(), []\n    for x in items:\n        if x not in seen:\n"
            f"            seen.add(x)\n            out.append(x)\n    return out")
    if keep == "last":
        code = (f"def {f}(items):\n    seen, out = set(), []\n    for x in reversed(items):\n"
                f"        if x not in seen:\n            seen.add(x)\n            out.append(x)\n    return out[::-1]")
    return (f"Write a function {f}(items) that removes repeated values from the list items, keeping only the "
            f"{keep} occurrence of each and the relative order of the kept elements.",
            code, f, [(_ints(r, 0, 6, (2, 10)),) for _ in range(N_TESTS)])


def polygonal(r: random.Random) -> Task:
    sides = r.choice([3, 4, 5, 6, 7, 8])
    kind = {3: "triangular", 4: "square", 5: "pentagonal", 6: "hexagonal", 7: "heptagonal", 8: "octagonal"}[sides]
    f = _name(r, f"{kind}_number", f"nth_{kind}", f"{kind}")
    return (f"Write a function {f}(n) that returns the n-th {kind} number, where the first one (n = 1) is 1. "
            f"The n-th s-gonal number is ((s - 2) * n * n - (s - 4) * n) / 2; return it as an int.",
            f"def {f}(n):\n    return (({sides} - 2) * n * n - ({sides} - 4) * n) // 2",
            f, [(r.randint(1, 30),) for _ in range(N_TESTS)])


def longest_run(r: random.Random) -> Task:
    f = _name(r, "longest_run", "max_streak", "longest_repeat")
    what = r.choice(["equal adjacent elements", "strictly increasing adjacent elements"])
    cond = "items[i] == items[i - 1]" if what.startswith("equal") else "items[i] > items[i - 1]"
    return (f"Write a function {f}(items) that returns the length of the longest run of {what} in the list "
            f"items (0 for an empty list).",
            f"def {f}(items):\n    if not items:\n        return 0\n    best = cur = 1\n"
            f"    for i in range(1, len(items)):\n        cur = cur + 1 if {cond} else 1\n"
            f"        best = max(best, cur)\n    return best",
            f, [(_ints(r, 0, 3, (0, 12)),) for _ in range(N_TESTS)])


def alternating_sum(r: random.Random) -> Task:
    k, f = r.randint(1, 9), _name(r, "alternating_sum", "even_minus_odd", "signed_total")
    return (f"Write a function {f}(nums) that returns {k} times the difference between the sum of the elements "
            f"at even indices and the sum of the elements at odd indices of nums.",
            f"def {f}(nums):\n    return {k} * (sum(nums[0::2]) - sum(nums[1::2]))",
            f, [(_ints(r),) for _ in range(N_TESTS)])


def count_primes(r: random.Random) -> Task:
    bound, f = r.choice(["below n", "up to and including n"]), _name(r, "count_primes", "prime_count", "num_primes")
    top = "n" if bound == "below n" else "n + 1"
    return (f"Write a function {f}(n) that returns how many prime numbers there are {bound}.",
            f"def {f}(n):\n    return sum(1 for k in range(2, {top})\n"
            f"               if all(k % d for d in range(2, int(k ** 0.5) + 1)))",
            f, [(r.randint(0, 120),) for _ in range(N_TESTS)])


def palindrome(r: random.Random) -> Task:
    f = _name(r, "is_palindrome", "reads_same_backwards", "palindrome_check")
    rule = r.choice(["ignoring case and every character that is not a letter or digit", "ignoring case and spaces"])
    keep = "ch.isalnum()" if rule.startswith("ignoring case and every") else "ch != ' '"
    cases = [("Never odd, or even",), ("Step on no pets!",), (r.choice(WORDS),), ("A man a plan",), ("Race car",)]
    return (f"Write a function {f}(s) that returns True if s reads the same forwards and backwards, {rule}, and "
            f"False otherwise.",
            f"def {f}(s):\n    t = [ch.lower() for ch in s if {keep}]\n    return t == t[::-1]",
            f, r.sample(cases, N_TESTS))


def diagonal_sum(r: random.Random) -> Task:
    which, f = r.choice(["main diagonal", "anti-diagonal"]), _name(r, "diagonal_sum", "trace_of", "sum_diagonal")
    idx = "m[i][i]" if which == "main diagonal" else "m[i][len(m) - 1 - i]"

    def square() -> list[list[int]]:
        n = r.randint(1, 4)
        return [[r.randint(-9, 9) for _ in range(n)] for _ in range(n)]
    return (f"Write a function {f}(m) that returns the sum of the {which} of the square matrix m, given as a "
            f"list of rows.",
            f"def {f}(m):\n    return sum({idx} for i in range(len(m)))",
            f, [(square(),) for _ in range(N_TESTS)])


def padded_binary(r: random.Random) -> Task:
    k, f = r.randint(4, 12), _name(r, "to_binary", "padded_binary", "binary_string")
    return (f"Write a function {f}(n) that returns the binary representation of the non-negative integer n as a "
            f"string, padded on the left with zeros to at least {k} digits.",
            f"def {f}(n):\n    return bin(n)[2:].zfill({k})",
            f, [(r.randint(0, 5000),) for _ in range(N_TESTS)])


def pairs_divisible(r: random.Random) -> Task:
    k, f = r.randint(2, 7), _name(r, "count_pairs", "divisible_pairs", "pair_sums")
    return (f"Write a function {f}(nums) that returns the number of index pairs i < j such that nums[i] + nums[j] "
            f"is divisible by {k}.",
            f"def {f}(nums):\n    return sum(1 for i in range(len(nums)) for j in range(i + 1, len(nums)) "
            f"if (nums[i] + nums[j]) % {k} == 0)",
            f, [(_ints(r, 0, 30),) for _ in range(N_TESTS)])


def interleave(r: random.Random) -> Task:
    f = _name(r, "interleave", "merge_alternately", "zip_strings")
    first = r.choice(["a", "b"])
    x, y = ("a", "b") if first == "a" else ("b", "a")
    return (f"Write a function {f}(a, b) that builds a string by taking characters alternately from {x} and {y}, "
            f"starting with {x}; when one string runs out, the rest of the other is appended.",
            f"def {f}(a, b):\n    out = []\n    for i in range(max(len(a), len(b))):\n"
            f"        out.append({x}[i:i + 1] + {y}[i:i + 1])\n    return ''.join(out)",
            f, [(r.choice(WORDS)[: r.randint(0, 6)], r.choice(WORDS)) for _ in range(N_TESTS)])


def capitalize_every(r: random.Random) -> Task:
    k, f = r.randint(2, 4), _name(r, "capitalize_every", "shout_words", "upper_every_kth")
    return (f"Write a function {f}(sentence) that returns the sentence with every {k}-th word (the {k}-th, the "
            f"{2 * k}-th, and so on) written in upper case; words are separated by single spaces.",
            f"def {f}(sentence):\n    words = sentence.split(' ')\n"
            f"    return ' '.join(w.upper() if (i + 1) % {k} == 0 else w for i, w in enumerate(words))",
            f, [(_sentence(r, (1, 9)),) for _ in range(N_TESTS)])


def running(r: random.Random) -> Task:
    what = r.choice(["sum", "maximum", "minimum", "product"])
    f = _name(r, f"running_{what}", f"prefix_{what}", f"cumulative_{what}")
    op = {"sum": "acc + x", "maximum": "max(acc, x)", "minimum": "min(acc, x)", "product": "acc * x"}[what]
    return (f"Write a function {f}(nums) that returns a list whose i-th element is the {what} of nums[0] through "
            f"nums[i].",
            f"def {f}(nums):\n    out = []\n    for i, x in enumerate(nums):\n"
            f"        acc = x if i == 0 else {op}\n        out.append(acc)\n    return out",
            f, [(_ints(r, -5, 9, (0, 7)),) for _ in range(N_TESTS)])


def collatz(r: random.Random) -> Task:
    what = r.choice(["number of steps", "largest value"])
    f = _name(r, "collatz_steps", "hailstone_length") if what[0] == "n" else _name(r, "collatz_peak", "hailstone_max")
    ret = "steps" if what[0] == "n" else "peak"
    return (f"Write a function {f}(n) that follows the Collatz rule from the positive integer n (halve an even "
            f"number, replace an odd number m by 3 * m + 1) until it reaches 1, and returns the {what} "
            f"{'taken' if what[0] == 'n' else 'seen, n included'}.",
            f"def {f}(n):\n    steps, peak = 0, n\n    while n != 1:\n        n = n // 2 if n % 2 == 0 else 3 * n + 1\n"
            f"        steps += 1\n        peak = max(peak, n)\n    return {ret}",
            f, [(r.randint(1, 60),) for _ in range(N_TESTS)])


def count_vowels(r: random.Random) -> Task:
    with_y, f = r.choice([True, False]), _name(r, "count_vowels", "vowel_count", "vowels_in")
    vowels = "aeiouy" if with_y else "aeiou"
    return (f"Write a function {f}(s) that returns the number of vowels in s, counting {', '.join(vowels)} in "
            f"either case.",
            f"def {f}(s):\n    return sum(1 for ch in s.lower() if ch in '{vowels}')",
            f, [(_sentence(r).title() + r.choice(["", " yy", " Yay"]),) for _ in range(N_TESTS)])


def convert_temperature(r: random.Random) -> Task:
    d, way = r.randint(0, 2), r.choice(["Celsius to Fahrenheit", "Fahrenheit to Celsius"])
    f = _name(r, "c_to_f", "to_fahrenheit") if way[0] == "C" else _name(r, "f_to_c", "to_celsius")
    expr = "t * 9 / 5 + 32" if way[0] == "C" else "(t - 32) * 5 / 9"
    return (f"Write a function {f}(t) that converts the temperature t from {way} and rounds the result to {d} "
            f"decimal places with round().",
            f"def {f}(t):\n    return round({expr}, {d})",
            f, [(r.randint(-40, 120),) for _ in range(N_TESTS)])


def sort_words(r: random.Random) -> Task:
    key = r.choice(["length", "last letter", "number of vowels"])
    f = _name(r, "sort_words", "order_words", "arrange_words")
    expr = {"length": "len(w)", "last letter": "w[-1]", "number of vowels": "sum(c in 'aeiou' for c in w)"}[key]
    return (f"Write a function {f}(words) that returns the list of lowercase words sorted by {key}, breaking "
            f"ties alphabetically.",
            f"def {f}(words):\n    return sorted(words, key=lambda w: ({expr}, w))",
            f, [(r.sample(WORDS, r.randint(2, 7)),) for _ in range(N_TESTS)])


def digital_root(r: random.Random) -> Task:
    base, f = r.choice([10, 8, 16]), _name(r, "digital_root", "repeated_digit_sum", "reduce_digits")
    return (f"Write a function {f}(n) that repeatedly replaces the non-negative integer n by the sum of its digits "
            f"in base {base} until a single base-{base} digit remains, and returns that digit as an int.",
            f"def {f}(n):\n    while n >= {base}:\n        total = 0\n        while n:\n"
            f"            total += n % {base}\n            n //= {base}\n        n = total\n    return n",
            f, [(r.randint(0, 10**6),) for _ in range(N_TESTS)])


def custom_fibonacci(r: random.Random) -> Task:
    a, b, f = r.randint(0, 5), r.randint(1, 7), _name(r, "sequence_term", "fib_like", "nth_term")
    return (f"Write a function {f}(n) that returns the n-th term (counting from 0) of the sequence that starts "
            f"{a}, {b} and in which every later term is the sum of the two before it.",
            f"def {f}(n):\n    x, y = {a}, {b}\n    for _ in range(n):\n        x, y = y, x + y\n    return x",
            f, [(r.randint(0, 25),) for _ in range(N_TESTS)])


def count_cells(r: random.Random) -> Task:
    t, f = r.randint(-3, 6), _name(r, "count_cells", "cells_above", "grid_count")

    def grid() -> list[list[int]]:
        return [[r.randint(-9, 9) for _ in range(r.randint(1, 4))] for _ in range(r.randint(1, 4))]
    return (f"Write a function {f}(grid) that returns how many numbers in the list of lists grid are at least {t}.",
            f"def {f}(grid):\n    return sum(1 for row in grid for x in row if x >= {t})",
            f, [(grid(),) for _ in range(N_TESTS)])


def word_lengths(r: random.Random) -> Task:
    k, f = r.randint(0, 4), _name(r, "word_lengths", "length_map", "measure_words")
    return (f"Write a function {f}(sentence) that returns a dictionary mapping each distinct space-separated word "
            f"of sentence to its length plus {k}.",
            f"def {f}(sentence):\n    return {{w: len(w) + {k} for w in sentence.split()}}",
            f, [(_sentence(r),) for _ in range(N_TESTS)])


TEMPLATES: dict[str, Callable[[random.Random], Task]] = {f.__name__: f for f in (
    sum_multiples, count_char, digit_power_sum, filter_above, replace_vowels, rotate, clamp, gcd_lcm, fizzbuzz,
    count_long_words, second_extreme, caesar, chunk, dedupe, polygonal, longest_run, alternating_sum, count_primes,
    palindrome, diagonal_sum, padded_binary, pairs_divisible, interleave, capitalize_every, running, collatz,
    count_vowels, convert_temperature, sort_words, digital_root, custom_fibonacci, count_cells, word_lengths)}


def split_of(text: str, name: str) -> str:
    """The split of a task: a stable hash (not Python's salted one) of its statement without the function name."""
    h = int.from_bytes(hashlib.sha256(text.replace(name, "<f>").encode("utf-8")).digest()[:8], "big")
    return "test" if h / 2**64 < TEST_FRACTION else "train"


def _tests(code: str, name: str, args_list: list[tuple]) -> list[str]:
    """`assert name(args) == expected`, the expected values computed by running our reference code."""
    namespace: dict = {}
    exec(compile(code, f"<synthetic {name}>", "exec"), namespace)  # noqa: S102 - our own template code
    out = []
    for args in args_list:
        expected = namespace[name](*copy.deepcopy(args))
        out.append(f"assert {name}({', '.join(map(repr, args))}) == {expected!r}")
    return out


def make_tasks(n: int, split: str, seed: int = 0) -> list[dict]:
    """`n` distinct MBPP-shaped tasks of `split` ("train" or "test"); deterministic in (n, split, seed)."""
    if split not in ("train", "test"):
        raise ValueError(f"split={split!r}: use 'train' or 'test'")
    r, names, out, seen = random.Random(seed), list(TEMPLATES), [], set()
    for _ in range(200 * n + 1000):
        if len(out) >= n:
            break
        template = r.choice(names)
        text, code, name, args_list = TEMPLATES[template](r)
        if text in seen or split_of(text, name) != split:
            continue
        seen.add(text)
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
        out.append({"task_id": f"syncode-{digest}", "text": text, "code": code, "test_setup_code": "",
                    "test_list": _tests(code, name, args_list), "entry_point": name, "template": template})
    if len(out) < n:
        raise RuntimeError(f"only {len(out)} of {n} distinct {split} tasks could be drawn with seed={seed}")
    return out
