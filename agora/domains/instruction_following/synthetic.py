"""Offline instruction-following examples with verifiable constraints, made by this project.

Why it exists: the default pipeline must run with no download, and LIMA, Magpie and WebInstruct cannot be had
offline. Each example here is a general request on one of the 28 themes ("Share tips for learning to knit.") with
one to three constraints of IFEval's kinds (exactly N bullet points, all lowercase, include keywords, end with a
phrase, N paragraphs separated by ***, a <<title>>, JSON output, at least/less than N words or sentences, no commas,
a P.S., ...), and a response built to satisfy them. Rows carry `instruction_id_list` and `kwargs` in IFEval's format,
so the IFEval checkers score them (`agora.scoring.ifeval`); every response is run past the real checkers of its own
constraints before it is kept, and a test does it again.

The split is decided by a stable hash of the request sentence (before any constraint), so a test request never
appears in training, not even with other constraints. Draws come from one random stream per seed that does not
depend on `n` or `split`, so a smaller draw is a prefix of a larger one.

No text piece contains a comma, a line starting with "*" or "-", or the word "Section", so constraints never
interfere with each other by accident; the pairs that would (JSON and a title, sections and lowercase, ...) are
never drawn together (`CONFLICTS`).
"""
from __future__ import annotations

import hashlib
import json
import random
import re

from agora.scoring import ifeval

TEST_FRACTION = 0.2  # share of the request space that belongs to the test split

THEMES = [
    "health and fitness", "travel", "cooking and food", "personal finance", "education and learning",
    "careers and work", "technology", "science", "history", "arts and crafts", "music", "books and film", "sports",
    "environment", "relationships and friendship", "parenting and family", "home and gardening",
    "pets and animals", "language and writing", "philosophy and ethics", "business and marketing",
    "law and civic life", "mental health", "fashion and style", "productivity", "creative writing",
    "games and hobbies", "community and society",
]
SUBJECTS = {
    "health and fitness": ["a morning stretching routine", "drinking enough water", "walking after meals",
                           "getting better sleep"],
    "travel": ["packing for a weekend trip", "visiting a new city", "traveling by train", "planning a road trip"],
    "cooking and food": ["baking bread at home", "cooking with seasonal vegetables", "planning weekly meals",
                         "making a simple soup"],
    "personal finance": ["building an emergency fund", "tracking monthly spending", "saving for a big purchase",
                         "avoiding impulse buys"],
    "education and learning": ["studying for an exam", "learning a new language", "taking good notes",
                               "reading more books"],
    "careers and work": ["preparing for a job interview", "asking for feedback at work", "writing a cover letter",
                         "starting a new job"],
    "technology": ["choosing a strong password", "backing up your photos", "keeping a laptop running well",
                   "learning to code"],
    "science": ["running a kitchen science experiment", "observing the night sky", "keeping a nature journal",
                "visiting a science museum"],
    "history": ["researching your family history", "visiting a historic site", "reading a history book",
                "interviewing an older relative"],
    "arts and crafts": ["painting with watercolors", "learning to knit", "sketching outdoors", "making pottery"],
    "music": ["learning to play the guitar", "practicing piano scales", "singing in a choir",
              "building a music playlist"],
    "books and film": ["starting a book club", "watching classic films", "writing a film review",
                       "choosing a novel to read"],
    "sports": ["training for a first race", "joining a local sports team", "learning to swim",
               "warming up before a match"],
    "environment": ["reducing household waste", "saving energy at home", "starting a compost bin",
                    "choosing reusable products"],
    "relationships and friendship": ["keeping in touch with old friends", "making friends in a new town",
                                     "resolving a disagreement calmly", "planning a surprise party"],
    "parenting and family": ["reading with young children", "planning a family game night",
                             "setting a bedtime routine", "teaching kids to save money"],
    "home and gardening": ["growing herbs on a windowsill", "organizing a small closet", "caring for houseplants",
                           "planting a vegetable garden"],
    "pets and animals": ["adopting a rescue dog", "caring for a new kitten", "walking a dog in hot weather",
                         "setting up a fish tank"],
    "language and writing": ["writing a clear email", "keeping a daily journal", "improving your vocabulary",
                             "editing your own writing"],
    "philosophy and ethics": ["making a hard decision", "thinking about fairness", "practicing gratitude",
                              "keeping a promise"],
    "business and marketing": ["starting a small online shop", "writing a product description",
                               "running a bake sale", "growing a newsletter"],
    "law and civic life": ["preparing for jury duty", "reading a rental lease", "registering to vote",
                           "attending a town meeting"],
    "mental health": ["managing stress before exams", "taking a screen break", "starting a meditation habit",
                      "talking about your feelings"],
    "fashion and style": ["building a capsule wardrobe", "caring for wool sweaters", "choosing comfortable shoes",
                          "shopping for secondhand clothes"],
    "productivity": ["planning your week", "beating procrastination", "keeping a tidy desk", "using a to do list"],
    "creative writing": ["writing a short story", "creating a memorable character", "writing a poem about the sea",
                         "finding story ideas"],
    "games and hobbies": ["learning to play chess", "hosting a board game night", "starting a puzzle collection",
                          "taking up birdwatching"],
    "community and society": ["volunteering at a food bank", "organizing a street cleanup",
                              "welcoming new neighbors", "supporting local shops"],
}
assert len(THEMES) == 28 and set(SUBJECTS) == set(THEMES)

STEMS = ["Give some practical advice on {s}.", "Write a short guide to {s} for a beginner.", "Share tips for {s}.",
         "Write a brief note to a friend about {s}.", "Explain how to get started with {s}.",
         "Write a short blog post about {s}."]
INTROS = ["Here are a few ideas about {s}.", "This is how to approach {s}.", "Good news: {s} is easier than it looks.",
          "Many people enjoy {s} once they get going."]
SENTENCES = [
    "Start small when it comes to {s} and build from there.", "Set aside a regular time each week for {s}.",
    "Ask someone with experience for honest feedback.", "Keep simple notes so you can see what works for you.",
    "Small and steady steps make {s} much easier.", "Do not try to change everything at once.",
    "Look for free guides at your local library before you spend money.",
    "Track your progress so you can celebrate each small win.",
    "Mistakes are normal and they show you what to adjust.", "Invite a friend to join you so you stay motivated.",
    "Prepare what you need the night before to save time.",
    "Review your plan every month and change what is not working.",
    "A clear goal makes {s} feel less overwhelming.", "Rest matters as much as effort over the long run.",
    "Be patient with yourself because real progress takes time.", "Write down one reason why {s} matters to you.",
]
KEYWORDS = ["patience", "routine", "budget", "curiosity", "balance", "habit", "focus", "confidence", "schedule",
            "community", "energy", "kindness"]
FORBIDDEN = ["very", "really", "amazing", "simply", "basically", "literally", "awesome", "obviously", "actually",
             "perfect", "never", "always"]
PLACEHOLDERS = ["[name]", "[date]", "[place]", "[email]", "[phone number]"]
CAPS = {1: "This is the KEY idea to remember.", 2: "This is a VERY IMPORTANT point.",
        3: "KEEP IT SIMPLE whenever you can."}
POSTSCRIPTS = ["Let me know how it goes.", "Good luck and have fun.", "Take it one day at a time."]
END_PHRASES = ["Any other questions?", "Is there anything else I can help with?",
               "Let me know if you have additional questions."]
LETTERS = "abcdefghilmnoprstuwy"

BULLETS, PARAGRAPHS, SECTIONS = ("detectable_format:number_bullet_lists", "length_constraints:number_paragraphs",
                                 "detectable_format:multiple_sections")
JSON, TWO = "detectable_format:json_format", "combination:two_responses"
LOWER, UPPER, CAPWORDS = ("change_case:english_lowercase", "change_case:english_capital",
                          "change_case:capital_word_frequency")
KEYWORD, FREQUENCY, FORBID, LETTER = ("keywords:existence", "keywords:frequency", "keywords:forbidden_words",
                                      "keywords:letter_frequency")
NO_COMMA, PLACEHOLDER, HIGHLIGHT = ("punctuation:no_comma", "detectable_content:number_placeholders",
                                    "detectable_format:number_highlighted_sections")
TITLE, REPEAT, POSTSCRIPT, END, QUOTE = ("detectable_format:title", "combination:repeat_prompt",
                                         "detectable_content:postscript", "startend:end_checker",
                                         "startend:quotation")
WORDS, SENTENCE_COUNT = "length_constraints:number_words", "length_constraints:number_sentences"

STRUCTURES = [BULLETS, PARAGRAPHS, SECTIONS, JSON, TWO]
OTHERS = [LOWER, UPPER, CAPWORDS, KEYWORD, FREQUENCY, FORBID, LETTER, NO_COMMA, PLACEHOLDER, HIGHLIGHT, TITLE,
          REPEAT, POSTSCRIPT, END, QUOTE, WORDS, SENTENCE_COUNT]
GROUPS = [set(STRUCTURES), {LOWER, UPPER, CAPWORDS}]  # at most one of each
CONFLICTS = {frozenset(p) for p in [
    *((JSON, x) for x in (LOWER, UPPER, CAPWORDS, NO_COMMA, HIGHLIGHT, TITLE, REPEAT, POSTSCRIPT, END, QUOTE,
                          SENTENCE_COUNT)),
    (SECTIONS, LOWER), (SECTIONS, UPPER),  # the checker looks for "Section" with that exact case
    (BULLETS, HIGHLIGHT),                  # "* *text*" is a bullet but not a highlight
    (QUOTE, REPEAT), (TWO, QUOTE), (TWO, REPEAT)]}


def split_of(request: str) -> str:
    """The split a request belongs to, from a stable hash of its text (not Python's salted hash)."""
    h = int.from_bytes(hashlib.sha256(request.encode("utf-8")).digest()[:8], "big")
    return "test" if h / 2**64 < TEST_FRACTION else "train"


def _compatible(chosen: list[str], cand: str) -> bool:
    if cand in chosen or any(frozenset((cand, c)) in CONFLICTS for c in chosen):
        return False
    return not any(cand in g and g & set(chosen) for g in GROUPS)


def _draw_constraints(r: random.Random) -> list[str]:
    n = r.choices([1, 2, 3], weights=[4, 4, 2])[0]
    pool = STRUCTURES + OTHERS * 2  # structures are single choices; the rest are drawn twice as often
    chosen: list[str] = []
    for _ in range(50):
        if len(chosen) == n:
            break
        cand = r.choice(pool)
        if _compatible(chosen, cand):
            chosen.append(cand)
    return chosen


def _groups(items: list[str], k: int, r: random.Random) -> list[list[str]]:
    """`items` cut into `k` consecutive non-empty groups."""
    cuts = sorted(r.sample(range(1, len(items)), k - 1))
    return [items[a:b] for a, b in zip([0, *cuts], [*cuts, len(items)])]


def make_example(r: random.Random) -> tuple[str, str, str, list[str], list[dict]]:
    """(request sentence, instruction, response, instruction ids, kwargs) for one random draw."""
    s = r.choice(SUBJECTS[r.choice(THEMES)])
    stem = r.choice(STEMS).format(s=s)
    ids = _draw_constraints(r)
    kwargs: dict[str, dict] = {}
    sentences = _content(r, s, ids, kwargs)
    text = _layout(r, s, sentences, ids, kwargs)
    text = _wrap(r, stem, text, ids, kwargs)
    _set_counts(r, text, ids, kwargs)
    instruction = " ".join([stem, *(_describe(i, kwargs[i]) for i in ids)])
    return stem, instruction, text, ids, [kwargs[i] for i in ids]


def _content(r: random.Random, s: str, ids: list[str], kwargs: dict[str, dict]) -> list[str]:
    """The response's sentences: advice on subject `s`, plus what the content constraints ask to include."""
    body = [t.format(s=s) for t in r.sample(SENTENCES, 3 if TWO in ids else r.randint(4, 6))]
    extras = []
    if KEYWORD in ids:
        kws = r.sample(KEYWORDS, r.randint(1, 2))
        extras.append(f"Above all remember that {' and '.join(kws)} {'go' if len(kws) > 1 else 'goes'} a long way.")
        kwargs[KEYWORD] = {"keywords": kws}
    if FREQUENCY in ids and r.random() < 0.6:  # else "less than", set from the finished text
        word = r.choice([k for k in KEYWORDS if k not in kwargs.get(KEYWORD, {}).get("keywords", [])])
        times = r.randint(1, 2)
        extras.append(f"Make {word} part of the plan." if times == 1 else
                      f"Give {word} a place in your plan and let {word} guide you.")
        kwargs[FREQUENCY] = {"keyword": word, "frequency": times, "relation": "at least"}
    if CAPWORDS in ids and r.random() < 0.6:  # else "less than", set from the finished text
        n_caps = r.randint(1, 3)
        extras.append(CAPS[n_caps])
        kwargs[CAPWORDS] = {"capital_frequency": n_caps, "capital_relation": "at least"}
    if PLACEHOLDER in ids:
        ph = r.sample(PLACEHOLDERS, r.randint(1, 3))
        extras.append(f"You can fill in your own details here: {' and '.join(ph)}.")
        kwargs[PLACEHOLDER] = {"num_placeholders": r.randint(1, len(ph))}
    if HIGHLIGHT in ids:
        k = r.randint(1, 3)
        for i in r.sample(range(len(body)), k):
            body[i] = f"*{body[i]}*"
        kwargs[HIGHLIGHT] = {"num_highlights": r.randint(1, k)}
    return body + extras


def _layout(r: random.Random, s: str, sentences: list[str], ids: list[str], kwargs: dict[str, dict]) -> str:
    """An intro and `sentences` as bullets, paragraphs, sections, JSON, two responses or one plain paragraph."""
    intro = r.choice(INTROS).format(s=s)
    if BULLETS in ids:
        k = r.randint(2, min(5, len(sentences)))
        rest = sentences[k:]
        kwargs[BULLETS] = {"num_bullets": k}
        return intro + "\n" + "\n".join(f"* {x}" for x in sentences[:k]) + ("\n\n" + " ".join(rest) if rest else "")
    if PARAGRAPHS in ids:
        k = r.randint(2, min(4, len(sentences)))
        kwargs[PARAGRAPHS] = {"num_paragraphs": k}
        return "\n\n***\n\n".join(" ".join(g) for g in _groups([intro, *sentences], k, r))
    if SECTIONS in ids:
        k, word = r.randint(2, min(3, len(sentences))), r.choice(["Section", "Part"])
        kwargs[SECTIONS] = {"section_spliter": word, "num_sections": k}
        return intro + "\n\n" + "\n\n".join(f"{word} {i}\n" + " ".join(g)
                                              for i, g in enumerate(_groups(sentences, k, r), 1))
    if JSON in ids:
        kwargs[JSON] = {}
        text = json.dumps({"topic": s, "advice": [intro, *sentences]}, indent=2)
        return f"```json\n{text}\n```" if r.random() < 0.5 else text
    if TWO in ids:
        kwargs[TWO] = {}
        other = [t.format(s=s) for t in r.sample([t for t in SENTENCES if t.format(s=s) not in sentences], 3)]
        return " ".join([intro, *sentences]) + "\n******\n" + " ".join([r.choice(INTROS).format(s=s), *other])
    return " ".join([intro, *sentences])


def _wrap(r: random.Random, stem: str, text: str, ids: list[str], kwargs: dict[str, dict]) -> str:
    """What goes around the text: title, repeated request, P.S., closing phrase, case, quotation marks."""
    if TITLE in ids:
        text = f"<<{stem.rstrip('.').split(' ', 1)[1].title()}>>\n\n{text}"  # "Share tips for x." -> <<Tips For X>>
        kwargs[TITLE] = {}
    if REPEAT in ids:
        text = f"{stem}\n\n{text}"
        kwargs[REPEAT] = {"prompt_to_repeat": stem}
    if POSTSCRIPT in ids:
        text += f"\n\nP.S. {r.choice(POSTSCRIPTS)}"
        kwargs[POSTSCRIPT] = {"postscript_marker": "P.S."}
    if END in ids:
        phrase = r.choice(END_PHRASES)
        text += f"\n\n{phrase}"
        kwargs[END] = {"end_phrase": phrase}
    if LOWER in ids:
        text = text.lower()
        kwargs[LOWER] = {}
    if UPPER in ids:
        text = text.upper()
        kwargs[UPPER] = {}
    if QUOTE in ids:
        text = f'"{text}"'
        kwargs[QUOTE] = {}
    if NO_COMMA in ids:  # no text piece has a comma
        kwargs[NO_COMMA] = {}
    return text


def _set_counts(r: random.Random, text: str, ids: list[str], kwargs: dict[str, dict]) -> None:
    """Constraints on counts, set from the finished response with a random margin on the safe side."""
    margin = r.randint(0, 3)
    if WORDS in ids:
        words = len(re.findall(r"\w+", text))  # IFEval counts words with nltk's RegexpTokenizer(r"\w+")
        kwargs[WORDS] = ({"num_words": max(1, words - 5 * margin), "relation": "at least"} if r.random() < 0.5
                         else {"num_words": words + 1 + 5 * margin, "relation": "less than"})
    if SENTENCE_COUNT in ids:
        count = len(ifeval.split_sentences(text))
        kwargs[SENTENCE_COUNT] = ({"num_sentences": max(1, count - margin), "relation": "at least"} if r.random() < 0.5
                                  else {"num_sentences": count + 1 + margin, "relation": "less than"})
    if LETTER in ids:
        letter = r.choice(LETTERS)
        count = text.lower().count(letter)
        kwargs[LETTER] = ({"letter": letter, "let_frequency": count - margin, "let_relation": "at least"}
                          if count > margin else
                          {"letter": letter, "let_frequency": count + 1 + margin, "let_relation": "less than"})
    if FREQUENCY in ids and FREQUENCY not in kwargs:
        word = r.choice(KEYWORDS)
        count = len(re.findall(word, text, flags=re.I))
        kwargs[FREQUENCY] = {"keyword": word, "frequency": count + 1 + margin, "relation": "less than"}
    if CAPWORDS in ids and CAPWORDS not in kwargs:
        caps = sum(1 for t in text.split() if t.strip(".,!?:;\"'*<>[]()").isupper())
        kwargs[CAPWORDS] = {"capital_frequency": caps + 1 + margin, "capital_relation": "less than"}
    if FORBID in ids:
        absent = [w for w in FORBIDDEN if not re.search(rf"\b{w}\b", text, flags=re.I)]
        kwargs[FORBID] = {"forbidden_words": r.sample(absent, min(len(absent), r.randint(1, 3)))}


def _describe(iid: str, kw: dict) -> str:
    """The instruction's wording, after IFEval's own descriptions."""
    k = kw
    return {
        BULLETS: lambda: f"Your answer must contain exactly {k.get('num_bullets')} bullet points. Use the markdown "
                         f"bullet points such as:\n* This is point 1.\n* This is point 2",
        PARAGRAPHS: lambda: f"There should be {k.get('num_paragraphs')} paragraphs. Paragraphs are separated with "
                            f"the markdown divider: ***",
        SECTIONS: lambda: (f"Your response must have {k.get('num_sections')} sections. Mark the beginning of each "
                           f"section with {k.get('section_spliter')} X, such as:\n{k.get('section_spliter')} 1\n"
                           f"[content of section 1]\n{k.get('section_spliter')} 2\n[content of section 2]"),
        JSON: lambda: "Entire output should be wrapped in JSON format. You can use markdown ticks such as ```.",
        TWO: lambda: "Give two different responses. Responses and only responses should be separated by 6 asterisk "
                     "symbols: ******.",
        LOWER: lambda: "Your entire response should be in English, and in all lowercase letters. No capital letters "
                       "are allowed.",
        UPPER: lambda: "Your entire response should be in English, and in all capital letters.",
        CAPWORDS: lambda: (f"In your response, words with all capital letters should appear "
                           f"{k.get('capital_relation')} {k.get('capital_frequency')} times."),
        KEYWORD: lambda: f"Include the keywords {' and '.join(k.get('keywords', []))} in the response.",
        FREQUENCY: lambda: (f"In your response, the word {k.get('keyword')} should appear {k.get('relation')} "
                            f"{k.get('frequency')} times."),
        FORBID: lambda: f"Do not include the keywords {' or '.join(k.get('forbidden_words', []))} in the response.",
        LETTER: lambda: (f"In your response, the letter {k.get('letter')} should appear {k.get('let_relation')} "
                         f"{k.get('let_frequency')} times."),
        NO_COMMA: lambda: "In your entire response, refrain from the use of any commas.",
        PLACEHOLDER: lambda: (f"The response must contain at least {k.get('num_placeholders')} placeholders "
                              f"represented by square brackets, such as [address]."),
        HIGHLIGHT: lambda: (f"Highlight at least {k.get('num_highlights')} sections in your answer with markdown, "
                            f"i.e. *highlighted section*."),
        TITLE: lambda: "Your answer must contain a title, wrapped in double angular brackets, such as <<poem of joy>>.",
        REPEAT: lambda: ("First repeat the first sentence of this request word for word without change, then give "
                         "your answer (do not say anything before repeating it)."),
        POSTSCRIPT: lambda: "At the end of your response, please explicitly add a postscript starting with P.S.",
        END: lambda: (f"Finish your response with this exact phrase: {k.get('end_phrase')} No other words should "
                      f"follow this phrase."),
        QUOTE: lambda: "Wrap your entire response with double quotation marks.",
        WORDS: lambda: f"Answer with {k.get('relation')} {k.get('num_words')} words.",
        SENTENCE_COUNT: lambda: f"Your response should contain {k.get('relation')} {k.get('num_sentences')} sentences.",
    }[iid]()


def make_examples(n: int, split: str, seed: int = 0) -> list[dict]:
    """`n` distinct examples of `split` ("train" or "test"); deterministic in (n, split, seed).

    Every response is run past the real IFEval checkers of its own constraints, and one that fails is drawn again.
    By construction that is rare (langdetect reading an all-caps text as another language); more than 1% of drafts
    failing means a template is broken, and that stops the run.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split={split!r}: use 'train' or 'test'")
    r, out, seen, failed = random.Random(seed), [], set(), []
    for _ in range(200 * n + 1000):  # the space is large; the bound only guards a broken template
        if len(out) >= n:
            break
        stem, instruction, response, ids, kwargs = make_example(r)
        if instruction in seen or split_of(stem) != split:
            continue
        seen.add(instruction)
        if not all(ok for _, ok, _ in ifeval.check("ifeval", instruction, response, ids, kwargs)):
            failed.append(instruction)
            continue
        digest = hashlib.sha256(instruction.encode("utf-8")).hexdigest()[:12]
        out.append({"id": f"synif-{digest}", "question": instruction, "solution": response,
                    "answer": ifeval.gold(ids, kwargs), "instruction_id_list": ids, "kwargs": kwargs,
                    "request": stem})
    if len(failed) > max(2, len(out) // 100):
        raise RuntimeError(f"{len(failed)} synthetic responses failed their own checks, e.g. {failed[0]!r}")
    if len(out) < n:
        raise RuntimeError(f"only {len(out)} of {n} distinct {split} examples could be drawn with seed={seed}")
    return out
