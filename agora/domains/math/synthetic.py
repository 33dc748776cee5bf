"""Offline GSM8K-style word problems with worked solutions, made by this project.

Why it exists: the default pipeline (seeds -> generate -> train -> evaluate) must run with no
download. These templated problems stand in for GSM8K/MATH seeds and for a tiny held-out test
set. Each solution shows its arithmetic step by step and ends with the AgoraBench math output
format `[RESULT] answer [/RESULT]`.

The train/test split is decided by a stable hash of the question text, so the two splits can
never share a question, whatever seeds or sizes are drawn. Problems come from one random stream
per seed that does not depend on `n` or `split`, so a smaller draw is a prefix of a larger one.
"""
from __future__ import annotations

import hashlib
import random
from typing import Callable

TEST_FRACTION = 0.2  # share of the question space that belongs to the test split

NAMES = [("Maya", "she", "her"), ("Liam", "he", "his"), ("Aisha", "she", "her"), ("Noah", "he", "his"),
         ("Sofia", "she", "her"), ("Mateo", "he", "his"), ("Priya", "she", "her"), ("Ethan", "he", "his"),
         ("Chloe", "she", "her"), ("Kenji", "he", "his"), ("Fatima", "she", "her"), ("Lucas", "he", "his"),
         ("Grace", "she", "her"), ("Omar", "he", "his"), ("Elena", "she", "her"), ("Diego", "he", "his"),
         ("Hannah", "she", "her"), ("Tariq", "he", "his"), ("Lena", "she", "her"), ("Samuel", "he", "his")]
ITEMS = ["notebook", "pen", "apple", "sandwich", "candle", "mug", "toy car", "puzzle", "hat", "plant"]
THINGS = ["marbles", "stickers", "stamps", "seashells", "trading cards", "beads", "coins", "crayons"]

Problem = tuple[str, list[str], int]  # question, solution steps, integer answer


def _person(r: random.Random, exclude: tuple[str, ...] = ()) -> tuple[str, str, str]:
    return r.choice([p for p in NAMES if p[0] not in exclude])


def shopping_change(r: random.Random) -> Problem:
    name, he, _ = _person(r)
    (i1, i2), a, b, p, q = r.sample(ITEMS, 2), r.randint(2, 6), r.randint(2, 6), r.randint(2, 9), r.randint(2, 9)
    total = a * p + b * q
    bill = next(x for x in (20, 50, 100, 200) if x > total)
    return (f"{name} buys {a} {i1}s at ${p} each and {b} {i2}s at ${q} each. {he.capitalize()} pays with a "
            f"${bill} bill. How much change, in dollars, does {he} get back?",
            [f"The {i1}s cost {a} * {p} = {a * p} dollars.", f"The {i2}s cost {b} * {q} = {b * q} dollars.",
             f"Together that is {a * p} + {b * q} = {total} dollars.",
             f"The change is {bill} - {total} = {bill - total} dollars."], bill - total)


def trip_distance(r: random.Random) -> Problem:
    name, he, _ = _person(r)
    vehicle = r.choice(["drives", "cycles", "rides a scooter"])
    s1, h1, s2, h2 = r.randint(8, 60), r.randint(2, 5), r.randint(8, 60), r.randint(1, 4)
    d1, d2 = s1 * h1, s2 * h2
    return (f"{name} {vehicle} at {s1} miles per hour for {h1} hours, then at {s2} miles per hour for {h2} "
            f"more hours. How many miles does {he} travel in total?",
            [f"In the first part {he} goes {s1} * {h1} = {d1} miles.",
             f"In the second part {he} goes {s2} * {h2} = {d2} miles.",
             f"In total {he} travels {d1} + {d2} = {d1 + d2} miles."], d1 + d2)


def ages(r: random.Random) -> Problem:
    name = _person(r)[0]
    sib = _person(r, (name,))[0]
    a, k, y = r.randint(3, 15), r.randint(2, 4), r.randint(2, 12)
    old = k * a
    return (f"{name} is {k} times as old as {sib}. {sib} is {a} years old. In {y} years, what will be the "
            f"sum of their ages?",
            [f"{name} is {k} * {a} = {old} years old now.",
             f"In {y} years {name} will be {old} + {y} = {old + y} and {sib} will be {a} + {y} = {a + y}.",
             f"The sum of their ages will be {old + y} + {a + y} = {old + a + 2 * y}."], old + a + 2 * y)


def discount(r: random.Random) -> Problem:
    name, he, _ = _person(r)
    item = r.choice(["jacket", "lamp", "backpack", "watch", "suitcase", "desk chair", "rug"])
    d, p, n = r.choice([10, 20, 25, 50]), 20 * r.randint(1, 15), r.randint(2, 6)
    off = p * d // 100
    return (f"A {item} normally costs ${p}. This week it is {d}% off. {name} buys {n} of them. How many "
            f"dollars does {he} spend?",
            [f"The discount is {d}% of {p}, which is {p} * {d} / 100 = {off} dollars.",
             f"Each {item} costs {p} - {off} = {p - off} dollars on sale.",
             f"For {n} of them {he} spends {n} * {p - off} = {n * (p - off)} dollars."], n * (p - off))


def fraction_left(r: random.Random) -> Problem:
    name, he, _ = _person(r)
    f1 = _person(r, (name,))[0]
    f2 = _person(r, (name, f1))[0]
    thing, a, b = r.choice(THINGS), r.randint(2, 5), r.randint(2, 4)
    total = a * b * r.randint(2, 9)
    g1 = total // a
    rest = total - g1
    g2 = rest // b
    return (f"{name} has {total} {thing}. {he.capitalize()} gives 1/{a} of them to {f1} and then 1/{b} of "
            f"the rest to {f2}. How many {thing} does {name} have left?",
            [f"{f1} gets {total} / {a} = {g1} {thing}, leaving {total} - {g1} = {rest}.",
             f"{f2} gets {rest} / {b} = {g2} {thing}.",
             f"{name} has {rest} - {g2} = {rest - g2} {thing} left."], rest - g2)


def rope_pieces(r: random.Random) -> Problem:
    name, he, _ = _person(r)
    feet, inch = r.randint(3, 30), r.choice([2, 3, 4, 6, 8, 12])
    total = feet * 12
    pieces = total // inch
    extra = r.randint(2, min(5, pieces - 1))
    return (f"{name} has a rope that is {feet} feet long. {he.capitalize()} cuts it into pieces that are "
            f"each {inch} inches long, then loses {extra} of the pieces. How many pieces are left? "
            f"(1 foot = 12 inches)",
            [f"The rope is {feet} * 12 = {total} inches long.",
             f"That makes {total} / {inch} = {pieces} pieces.",
             f"After losing {extra}, {pieces} - {extra} = {pieces - extra} pieces are left."], pieces - extra)


def juice_cups(r: random.Random) -> Problem:
    litres, cup = r.randint(2, 9), r.choice([100, 125, 200, 250, 500])
    ml = litres * 1000
    cups = ml // cup
    drunk = r.randint(2, 3)
    name, _, _ = _person(r)
    return (f"{name} makes {litres} liters of lemonade and pours it into cups that hold {cup} milliliters "
            f"each. {drunk} cups are spilled. How many full cups are left to serve?",
            [f"{litres} liters is {litres} * 1000 = {ml} milliliters.",
             f"That fills {ml} / {cup} = {cups} cups.",
             f"After {drunk} are spilled, {cups} - {drunk} = {cups - drunk} cups are left."], cups - drunk)


def boxes_stock(r: random.Random) -> Problem:
    b, p, c, item = r.randint(2, 12), r.randint(2, 8), r.randint(3, 12), r.choice(ITEMS)
    total = b * p * c
    sold = r.randint(1, total - 1)
    return (f"A shop receives {b} boxes. Each box holds {p} packs, and each pack has {c} {item}s. The shop "
            f"sells {sold} {item}s. How many {item}s are left?",
            [f"There are {b} * {p} = {b * p} packs.", f"That is {b * p} * {c} = {total} {item}s.",
             f"After selling {sold}, {total} - {sold} = {total - sold} {item}s are left."], total - sold)


def share_cookies(r: random.Random) -> Problem:
    name, he, _ = _person(r)
    t, c, f = r.randint(2, 6), r.randint(10, 24), r.randint(2, 5)
    total = t * c
    keep = total % f + f * r.randint(1, total // f - 2)  # keeps some, leaves each friend at least 2
    rest = total - keep
    return (f"{name} bakes {t} trays of {c} cookies. {he.capitalize()} keeps {keep} cookies and shares the "
            f"rest equally among {f} friends. How many cookies does each friend get?",
            [f"{name} bakes {t} * {c} = {total} cookies.", f"After keeping {keep}, {total} - {keep} = {rest} remain.",
             f"Each friend gets {rest} / {f} = {rest // f} cookies."], rest // f)


def weekly_pay(r: random.Random) -> Problem:
    name, he, _ = _person(r)
    w, h, h2, weeks = r.randint(9, 30), r.randint(2, 8), r.randint(2, 6), r.randint(2, 4)
    hours = 5 * h + h2
    return (f"{name} earns ${w} per hour. {he.capitalize()} works {h} hours each weekday (Monday to Friday) "
            f"and {h2} hours on Saturday. How much does {he} earn in {weeks} weeks?",
            [f"On weekdays {he} works 5 * {h} = {5 * h} hours.",
             f"Each week {he} works {5 * h} + {h2} = {hours} hours and earns {hours} * {w} = {hours * w} dollars.",
             f"In {weeks} weeks {he} earns {weeks} * {hours * w} = {weeks * hours * w} dollars."], weeks * hours * w)


def fence_cost(r: random.Random) -> Problem:
    l, w, c = r.randint(5, 40), r.randint(3, 30), r.randint(2, 15)
    per = 2 * (l + w)
    return (f"A rectangular garden is {l} meters long and {w} meters wide. Fencing costs ${c} per meter. "
            f"How many dollars does it cost to fence the whole garden?",
            [f"The perimeter is 2 * ({l} + {w}) = 2 * {l + w} = {per} meters.",
             f"The fence costs {per} * {c} = {per * c} dollars."], per * c)


def paint_cans(r: random.Random) -> Problem:
    cover, h, walls = r.choice([20, 25, 40, 50]), r.randint(6, 12), r.randint(2, 4)
    l = cover * r.randint(1, 3)
    area = l * h
    cans = area * walls // cover
    return (f"Each wall of a hall is {l} feet long and {h} feet high. One can of paint covers {cover} "
            f"square feet. How many cans are needed to paint {walls} walls?",
            [f"One wall has an area of {l} * {h} = {area} square feet.",
             f"{walls} walls have {walls} * {area} = {walls * area} square feet.",
             f"That needs {walls * area} / {cover} = {cans} cans."], cans)


def test_average(r: random.Random) -> Problem:
    name, he, _ = _person(r)
    a, b, c, d = (r.randint(60, 98) for _ in range(4))
    d = d + (-(a + b + c + d)) % 4 if d <= 96 else d - (a + b + c + d) % 4
    avg = (a + b + c + d) // 4
    return (f"{name} scored {a}, {b} and {c} on three tests. What score does {he} need on the fourth test "
            f"to average exactly {avg}?",
            [f"To average {avg} over 4 tests {he} needs 4 * {avg} = {4 * avg} points.",
             f"So far {he} has {a} + {b} + {c} = {a + b + c} points.",
             f"{he.capitalize()} needs {4 * avg} - {a + b + c} = {d} on the fourth test."], d)


def savings_weeks(r: random.Random) -> Problem:
    name, he, his = _person(r)
    item = r.choice(["bike", "guitar", "tablet", "skateboard", "telescope"])
    s, g, w, k = r.randint(5, 60), r.randint(5, 40), r.randint(4, 25), r.randint(2, 12)
    price = s + g + w * k
    return (f"{name} wants a {item} that costs ${price}. {he.capitalize()} has ${s} saved and "
            f"{his} grandmother gives {'him' if he == 'he' else 'her'} ${g}. If {he} saves "
            f"${w} each week, how many weeks will it take to afford the {item}?",
            [f"{name} already has {s} + {g} = {s + g} dollars.",
             f"{he.capitalize()} still needs {price} - {s + g} = {w * k} dollars.",
             f"That takes {w * k} / {w} = {k} weeks."], k)


def recipe_scale(r: random.Random) -> Problem:
    s, m, fl, su = r.randint(2, 6), r.randint(2, 5), r.randint(1, 4), r.randint(1, 3)
    t = s * m
    return (f"A recipe uses {fl} cups of flour and {su} cups of sugar to make {s} servings. How many cups of "
            f"flour and sugar together are needed for {t} servings?",
            [f"{t} servings is {t} / {s} = {m} batches.", f"One batch uses {fl} + {su} = {fl + su} cups.",
             f"{m} batches use {m} * {fl + su} = {m * (fl + su)} cups."], m * (fl + su))


def meeting_time(r: random.Random) -> Problem:
    a = _person(r)[0]
    b, s1, s2, t = _person(r, (a,))[0], r.randint(3, 30), r.randint(3, 30), r.randint(2, 6)
    d = (s1 + s2) * t
    return (f"{a} and {b} are {d} kilometers apart and travel toward each other. {a} moves at {s1} km per "
            f"hour and {b} at {s2} km per hour. After how many hours do they meet?",
            [f"Together they close the gap at {s1} + {s2} = {s1 + s2} km per hour.",
             f"They meet after {d} / {s1 + s2} = {t} hours."], t)


def library_books(r: random.Random) -> Problem:
    n, lent, back, bx, per = r.randint(200, 900), r.randint(20, 150), r.randint(5, 60), r.randint(2, 6), r.randint(6, 25)
    back = min(back, lent)
    after = n - lent + back
    return (f"A library has {n} books. On Monday it lends out {lent} books. On Tuesday {back} of them are "
            f"returned. On Wednesday it buys {bx} boxes of {per} new books. How many books are in the library now?",
            [f"After Monday there are {n} - {lent} = {n - lent} books.",
             f"After Tuesday there are {n - lent} + {back} = {after} books.",
             f"The new books number {bx} * {per} = {bx * per}, so there are {after} + {bx * per} = "
             f"{after + bx * per} books."], after + bx * per)


def population_growth(r: random.Random) -> Problem:
    p, g = 1000 * r.randint(1, 40), r.choice([10, 20, 30])
    y1 = p + p * g // 100
    y2 = y1 + y1 * g // 100
    town = r.choice(["Riverton", "Oakdale", "Millbrook", "Pinecrest", "Lakeside"])
    return (f"{town} has {p} residents. Its population grows by {g}% each year. How many residents will it "
            f"have after 2 years?",
            [f"After one year it has {p} + {p} * {g} / 100 = {p} + {p * g // 100} = {y1} residents.",
             f"After two years it has {y1} + {y1} * {g} / 100 = {y1} + {y1 * g // 100} = {y2} residents."], y2)


def class_soccer(r: random.Random) -> Problem:
    club = r.choice(["chess club", "school band", "science club", "drama club", "art class", "swim team"])
    pct, k = r.choice([25, 40, 50, 60, 75]), r.randint(2, 5)
    n = 20 * k * r.randint(1, 12)
    girls = n * pct // 100
    boys = n - girls  # n is a multiple of 20k, so boys is a multiple of k for every pct above
    return (f"The {club} has {n} students, and {pct}% of them are girls. 1/{k} of the boys play soccer. "
            f"How many boys in the {club} play soccer?",
            [f"There are {n} * {pct} / 100 = {girls} girls.", f"So there are {n} - {girls} = {boys} boys.",
             f"{boys} / {k} = {boys // k} boys play soccer."], boys // k)


def reading_pages(r: random.Random) -> Problem:
    name, he, _ = _person(r)
    p, q, w = r.randint(5, 40), r.randint(10, 60), r.randint(2, 5)
    week = 5 * p + 2 * q
    return (f"{name} reads {p} pages each weekday and {q} pages on each day of the weekend. How many pages "
            f"does {he} read in {w} weeks?",
            [f"On weekdays {he} reads 5 * {p} = {5 * p} pages, and on the weekend 2 * {q} = {2 * q} pages.",
             f"That is {5 * p} + {2 * q} = {week} pages a week.",
             f"In {w} weeks {he} reads {w} * {week} = {w * week} pages."], w * week)


def marbles_compare(r: random.Random) -> Problem:
    a = _person(r)[0]
    b = _person(r, (a,))[0]
    c = _person(r, (a, b))[0]
    thing, x, k, m = r.choice(THINGS), r.randint(3, 40), r.randint(2, 4), r.randint(2, 25)
    bx, ax = k * x, k * x + m
    return (f"{c} has {x} {thing}. {b} has {k} times as many {thing} as {c}, and {a} has {m} more than {b}. "
            f"How many {thing} do the three of them have altogether?",
            [f"{b} has {k} * {x} = {bx} {thing}.", f"{a} has {bx} + {m} = {ax} {thing}.",
             f"Altogether they have {x} + {bx} + {ax} = {x + bx + ax} {thing}."], x + bx + ax)


TEMPLATES: dict[str, Callable[[random.Random], Problem]] = {f.__name__: f for f in (
    shopping_change, trip_distance, ages, discount, fraction_left, rope_pieces, juice_cups, boxes_stock,
    share_cookies, weekly_pay, fence_cost, paint_cans, test_average, savings_weeks, recipe_scale,
    meeting_time, library_books, population_growth, class_soccer, reading_pages, marbles_compare)}


def split_of(question: str) -> str:
    """The split a question belongs to, from a stable hash of its text (not Python's salted hash)."""
    h = int.from_bytes(hashlib.sha256(question.encode("utf-8")).digest()[:8], "big")
    return "test" if h / 2**64 < TEST_FRACTION else "train"


def make_problems(n: int, split: str, seed: int = 0) -> list[dict]:
    """`n` distinct problems of `split` ("train" or "test"); deterministic in (n, split, seed)."""
    if split not in ("train", "test"):
        raise ValueError(f"split={split!r}: use 'train' or 'test'")
    r, names, out, seen = random.Random(seed), list(TEMPLATES), [], set()
    for _ in range(200 * n + 1000):  # the question space is huge; the bound only guards a broken template
        if len(out) >= n:
            break
        name = r.choice(names)
        question, steps, answer = TEMPLATES[name](r)
        if question in seen or split_of(question) != split:
            continue
        seen.add(question)
        if not (isinstance(answer, int) and answer > 0):
            raise RuntimeError(f"template {name} made a non-positive or non-integer answer {answer!r}: {question}")
        digest = hashlib.sha256(question.encode("utf-8")).hexdigest()[:12]
        out.append({"id": f"synmath-{digest}", "question": question,
                    "solution": "\n".join(steps) + f"\n[RESULT] {answer} [/RESULT]",
                    "answer": str(answer), "template": name})
    if len(out) < n:
        raise RuntimeError(f"only {len(out)} of {n} distinct {split} problems could be drawn with seed={seed}")
    return out
