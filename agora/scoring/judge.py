"""Judge-based benchmarks, scored as their authors score them: AlpacaEval 2.0 and Arena-Hard-Auto v0.1.

Why it exists: the paper's instruction-following numbers are AlpacaEval 2.0's length-controlled win rate and
Arena-Hard's win rate against GPT-4-0314. Each has its own judge prompt, verdict format and statistic, and a
score only means the same thing if all three are kept. The judge model is the `judge` config group (any generator
option; `generator@judge=gpt4_turbo` is gpt-4-1106-preview, the authors' judge for both), and its calls go through the
generation engine: durable request cache (a rerun re-judges nothing), priced ledger and dollar cap.

AlpacaEval 2.0 (`alpaca-eval` 0.6.6, annotator `weighted_alpaca_eval_gpt4_turbo`):
- the prompt is the package's own template file, filled and split into chat messages by the package's helpers;
- the judge answers one token, "m" (the first output) or "M"; the preference is read from the top-5 logprobs of
  that token, P(second output better) = P(M) / (P(m) + P(M)), as the package's `logprob_parser` does;
- the two outputs are shown in a random order (seeded per instruction), and mapped back;
- the score is the length-controlled win rate of the package's GLM `length_controlled_v1`: a logistic model of
  the preference on tanh(standardised length difference), the instruction's difficulty and a baseline term,
  fitted together with the annotations of the authors' two "gamed" baselines (`df_gamed.csv`, regularised
  towards them with weight 0.2), and read at zero length difference. The raw win rate is logged beside it.

Arena-Hard-Auto v0.1 (lmarena/arena-hard-auto at its v0.1 release):
- each pair is judged twice, the baseline first as "Assistant A", then swapped; the judge reasons, answers the
  prompt itself, and ends with a verdict label [[A>>B]], [[A>B]], [[A=B]], [[B>A]] or [[B>>A]];
- temperature 0, up to 4,096 tokens; a judgment with no label is continued once, in the same conversation (the
  original's `number_of_judgment_attempts: 2`; the request to go on is Agora's sentence), and the label is read
  from both turns together; one with two different labels is dropped;
- a strong verdict counts as 3 battles, a slight one as 1, a tie as half a win; the score is the Bradley–Terry
  win rate against the baseline, and its 95% interval comes from 100 bootstrap resamples of the battles drawn as
  `show_result.py` draws them (numpy's global generator seeded 42, percentiles on the Elo scale), so one model's
  judgments give the original's numbers (`arena_hard_leaderboard` fits several models as the leaderboard does).
- The judge's prompt is `eval.arena_hard_prompt`: `original` reads the system prompt and the template from the
  user's checkout of arena-hard-auto v0.1 (`config/judge_config.yaml`, hash-checked, `originals.arena_hard_auto`);
  `agora` (or null) is Agora's paraphrase, the same instructions in the same order in our words; PATH is a text
  file with another system prompt. Its sha256 is part of the evaluation's key.
"""
from __future__ import annotations

import hashlib
import math
import random
import re
from dataclasses import dataclass, field
from pathlib import Path


from agora import AgoraError, originals
from agora.engine.cache import RequestCache, request_key
from agora.engine.ledger import Ledger
from agora.engine.option import Option
from agora.engine.runner import Request, Sampling
from agora.store import Store, digest

# 3: AlpacaEval scores identical outputs 1.5 without asking the judge (as the package does); Arena-Hard's
# continuation is Agora's sentence. Requests keep `_REQUEST_VERSION`: a judge's answer to the same messages is the
# same answer, so a rerun pays nothing again.
VERSION = 3
_REQUEST_VERSION = 2
JUDGED = {"alpaca_eval", "arena_hard"}

# ---------------------------------------------------------------- AlpacaEval 2.0

ALPACA_ANNOTATOR = "weighted_alpaca_eval_gpt4_turbo"   # AlpacaEval 2.0's default annotator
ALPACA_BASELINE = "gpt4_1106_preview"                   # the name the package gives the baseline's outputs
ALPACA_GLM = "length_controlled_v1"


@dataclass
class Score:
    """One judged benchmark for one model: the headline score and what it was made from."""
    score: float                    # %: AlpacaEval's LC win rate, or Arena-Hard's win rate vs the baseline
    won: list[bool]                 # per item, for the predictions file: did the model beat the baseline
    details: dict = field(default_factory=dict)   # raw win rate, interval, unparsed verdicts, cost, requests


def _alpaca_config() -> tuple[dict, str]:
    """The annotator's configs.yaml and prompt template, as the installed alpaca-eval package ships them."""
    from importlib.resources import files

    import yaml

    try:
        root = files("alpaca_eval") / "evaluators_configs"
    except ModuleNotFoundError:
        raise AgoraError("AlpacaEval is scored with the alpaca-eval package: pip install alpaca-eval==0.6.6") from None
    config = yaml.safe_load((root / ALPACA_ANNOTATOR / "configs.yaml").read_text())[ALPACA_ANNOTATOR]
    return config, (root / config["prompt_template"]).read_text()


def alpaca_messages(template: str, instruction: str, output_1: str, output_2: str) -> list[dict]:
    """The judge's chat messages for one pair, made by the package's own helpers."""
    import pandas as pd
    from alpaca_eval.utils import make_prompts, prompt_to_chatml

    df = pd.DataFrame([{"instruction": instruction, "output_1": output_1, "output_2": output_2}])
    prompts, _ = make_prompts(df, template)
    return prompt_to_chatml(prompts[0])


def alpaca_preference(record: dict | None) -> float | None:
    """1..2 in the order shown (2: the second output is better), from the first token's logprobs; else from its
    text ("m" 1, "M" 2) when the server returned no logprobs; None when neither says anything."""
    if not record:
        return None
    top = {t["token"]: t["logprob"] for t in record.get("top_logprobs") or [] if t["token"] in ("m", "M")}
    if top:
        p_m, p_big = (math.exp(top.get(t, -math.inf)) for t in ("m", "M"))
        return 1.0 + p_big / (p_m + p_big)
    text = record["text"].strip()
    return {"m": 1.0, "M": 2.0}.get(text[:1]) if text else None


def alpaca_annotations(rows: list[dict], outputs: list[str], prefs: list[float | None]) -> list[dict]:
    """Rows in the package's annotation format: output_1 the baseline, output_2 the model, `index` the prompt's
    position among AlpacaEval's 805 (its key into the instruction difficulties)."""
    return [{"instruction": r["question"], "output_1": r["answer"], "output_2": o, "preference": p,
             "index": r["index"], "generator_1": ALPACA_BASELINE, "generator_2": "model", "annotator": ALPACA_ANNOTATOR}
            for r, o, p in zip(rows, outputs, prefs)]


def alpaca_win_rate(annotations: list[dict]) -> dict[str, float]:
    """AlpacaEval 2.0's leaderboard columns that need no GLM: `win_rate` (mean of preference - 1, %),
    `standard_error` (its standard error, %), `n_wins`, `n_wins_base`, `n_draws`, `n_total` and
    `discrete_win_rate`, by the package's own scoring rules."""
    from alpaca_eval.metrics.winrate import get_winrate

    return get_winrate(annotations)


def alpaca_fixed_preference(baseline: str, output: str) -> float | None:
    """The preference AlpacaEval sets without a judge: 1.5 (a draw) when the two outputs are the same text, as its
    `PairwiseAnnotator` does before any request; None: the judge decides."""
    return 1.5 if output == baseline else None


def lc_from_weights(weights: dict[str, float], instruction_difficulty) -> float:
    """The length-controlled win rate (%) of a model whose GLM `length_controlled_v1` was fitted already: the mean
    over the 805 instructions of logistic(w_baseline + w_difficulty * difficulty), the length term at zero.

    `weights` is the model's row of the package's fitted-weights table
    (`metrics/weights/<annotator>/length_controlled_v1/baseline_gpt4_1106_preview.csv`, whose baseline row is 0),
    `instruction_difficulty` the 805 values of the hub's instruction_difficulty.csv; the package's
    `predict_winrate` reads the same two tables.
    """
    import numpy as np

    d = np.asarray(instruction_difficulty, dtype=float)
    if d.shape != (805,):
        raise AgoraError(f"instruction_difficulty has {d.size} values; AlpacaEval's table has one per prompt (805)")
    x = weights["not_gamed_baseline.astype(float)"] + weights["instruction_difficulty"] * d
    return float(np.mean(np.exp(-np.logaddexp(0, -x))) * 100)


def lc_win_rate(annotations: list[dict], df_gamed) -> dict[str, float]:
    """AlpacaEval 2.0's metrics for one model: `win_rate` and `length_controlled_winrate` (%), and more.

    The same computation as `alpaca_eval.metrics.glm_winrate.get_length_controlled_winrate` (GLM
    `length_controlled_v1`), with the gamed-baseline annotations passed in (`df_gamed`, a DataFrame of the hub's
    df_gamed.csv) instead of downloaded, and no weights written into the package's folder.
    """
    import pandas as pd
    from alpaca_eval.metrics import glm_winrate as glm

    info = glm.GLM_INFO[ALPACA_GLM]
    metrics = alpaca_win_rate(annotations)
    df = pd.DataFrame(annotations).reset_index()
    gamed = df_gamed.drop(columns=["model"])
    difficulty = gamed.drop_duplicates("index")["instruction_difficulty"]
    delta = df["output_1"].str.len() - df["output_2"].str.len()
    x = df[["preference", "index"]].copy()
    x["std_delta_len"] = delta / delta.std()
    x["preference"] = x["preference"].astype(float).replace({0.0: 1.5}) - 1
    x["instruction_difficulty"] = x["index"].transform(lambda i: difficulty[i])
    x["not_gamed_baseline"] = True
    test = x[["instruction_difficulty", "not_gamed_baseline"]].copy()
    test["std_delta_len"] = 0
    both = pd.concat([gamed, x], axis=0)
    train, test = glm.make_dmatrix_for_model(both, test, formula=info["formula"])
    weight = both["not_gamed_baseline"].astype(float) + (
        info["regularize_to_baseline_lambda"] * (~both["not_gamed_baseline"])).astype(float) / 2
    keep = train["preference"].notna()
    model = glm.fit_LogisticRegressionCV(train[keep], "preference", is_ytrue_proba=True,
                                         sample_weight=weight[keep], **info["kwargs"])
    predicted = model.predict_proba(test)[:, 1]
    metrics["length_controlled_winrate"] = predicted.mean() * 100
    metrics["lc_standard_error"] = pd.Series(predicted).sem() * 100
    return metrics


def load_df_gamed(source: dict):
    """AlpacaEval's df_gamed.csv (instruction difficulties and the gamed baselines' annotations): `glm_local`, or
    the hub file at `revision`."""
    import pandas as pd

    if source.get("glm_local"):
        path = Path(str(source["glm_local"])).expanduser()
        if not path.is_file():
            raise AgoraError(f"domain.sources.alpaca_eval.glm_local={path}: no such file (AlpacaEval's df_gamed.csv)")
    else:
        from huggingface_hub import hf_hub_download

        try:
            path = hf_hub_download(repo_id=source["hub"], filename=source["glm_file"], repo_type="dataset",
                                   revision=source.get("revision"))
        except Exception as e:
            raise AgoraError(f"could not download {source['glm_file']} of {source['hub']} ({type(e).__name__}: {e}); "
                             f"offline, set domain.sources.alpaca_eval.glm_local=/path/to/df_gamed.csv") from e
    df = pd.read_csv(path)
    missing = {"model", "index", "preference", "std_delta_len", "instruction_difficulty",
               "not_gamed_baseline"} - set(df.columns)
    if missing:
        raise AgoraError(f"{path}: not AlpacaEval's df_gamed.csv (no columns {sorted(missing)})")
    return df


# ---------------------------------------------------------------- Arena-Hard-Auto v0.1

ARENA_SYSTEM = (
    "You are an impartial judge of two AI assistants' responses to the user prompt shown below: assistant A's "
    "answer and assistant B's answer. Decide which of the two is better.\n\n"
    "First write your own answer to the prompt. Do this before you judge either assistant's answer.\n\n"
    "Then compare both assistants' answers with yours, and point out and correct any mistakes or inaccurate "
    "information.\n\n"
    "Next, judge whether each answer is helpful, relevant and concise. Helpful: it correctly responds to the prompt "
    "or follows the instructions. Where the prompt is ambiguous or open to more than one reading, asking the user "
    "for clarification or more information is more helpful and appropriate than answering on assumptions. "
    "Relevant: every part of the answer is connected or appropriate to what was asked. Concise: clear, and not "
    "verbose or excessive.\n\n"
    "Then weigh creativity and novelty where the prompt calls for them. Finally, note any important information "
    "missing from the assistants' answers that would help in responding to the user prompt.\n\n"
    "After your explanation, output exactly one of these labels as your final verdict:\n\n"
    "1. Assistant A is significantly better: [[A>>B]]\n"
    "2. Assistant A is slightly better: [[A>B]]\n"
    "3. Tie, relatively the same: [[A=B]]\n"
    "4. Assistant B is slightly better: [[B>A]]\n"
    "5. Assistant B is significantly better: [[B>>A]]\n\n"
    "Example output: \"My final verdict is tie: [[A=B]]\".")
ARENA_USER = ("<|User Prompt|>\n{question}\n\n<|The Start of Assistant A's Answer|>\n{answer_a}\n"
              "<|The End of Assistant A's Answer|>\n\n<|The Start of Assistant B's Answer|>\n{answer_b}\n"
              "<|The End of Assistant B's Answer|>")
# Sent when a judgment ends with no label. The original asks in its own words (gen_judgment.py, not a config file);
# this sentence is ours.
ARENA_CONTINUE = "You stopped before giving a verdict. Go on from where you stopped, and end with one of the five labels."
ARENA_LABEL = re.compile(r"\[\[([AB<>=]+)\]\]")
ARENA_MAX_TOKENS, ARENA_ATTEMPTS, ARENA_STRONG_WEIGHT, ARENA_ROUNDS = 4096, 2, 3, 100
ARENA_JUDGE_CONFIG = "config/judge_config.yaml"   # in arena-hard-auto v0.1: the judge's prompts and settings
# What a label says about the model, when it is assistant B (game 1) or assistant A (game 2): (outcome, battles)
_AS_B = {"A>>B": (0.0, 3), "A>B": (0.0, 1), "A=B": (0.5, 1), "B>A": (1.0, 1), "B>>A": (1.0, 3)}
_AS_A = {"A>>B": (1.0, 3), "A>B": (1.0, 1), "A=B": (0.5, 1), "B>A": (0.0, 1), "B>>A": (0.0, 3)}


def arena_label(judgment: str) -> tuple[str | None, bool]:
    """(label, ask again): no label asks for a continuation; two different labels are no verdict."""
    labels = {m.strip("\n") for m in ARENA_LABEL.findall(judgment) if m}
    if not labels:
        return None, True
    return (labels.pop(), False) if len(labels) == 1 else (None, False)


def arena_battles(labels: list[tuple[str | None, str | None]]) -> list[float]:
    """Battle outcomes for the model (1 win, 0.5 tie, 0 loss) from (game 1, game 2) labels: the baseline is
    assistant A in game 1 and assistant B in game 2. A strong verdict is `ARENA_STRONG_WEIGHT` battles."""
    out: list[float] = []
    for first, second in labels:
        for label, table in ((first, _AS_B), (second, _AS_A)):
            if label in table:
                outcome, n = table[label]
                out += [outcome] * (ARENA_STRONG_WEIGHT if n == 3 else 1)
    return out


def bradley_terry_win_rate(battles: list[float]) -> float:
    """The model's Bradley–Terry win probability (%) against the baseline, fitted to the battles.

    With two players the maximum-likelihood strength difference d solves sigmoid(d) = mean outcome (a tie counts
    as one win and one loss, as arena-hard-auto encodes it), so the fitted win rate is that mean; all wins -> 100.
    """
    if not battles:
        return float("nan")
    return 100.0 * sum(battles) / len(battles)


def arena_judgment_battles(records: list[dict]) -> list[tuple[str, float]]:
    """(model, outcome) battles from judgment records in v0.1's format (`model_judgment/<judge>/<model>.jsonl`:
    `model` and two `games`, each with its `score` label), in the order `show_result.py` builds them: record by
    record, game 1 then game 2, a strong verdict repeated."""
    return [(r["model"], outcome) for r in records
            for outcome in arena_battles([(r["games"][0].get("score"), r["games"][1].get("score"))])]


def arena_hard_leaderboard(battles: list[tuple[str, float]], *, rounds: int = ARENA_ROUNDS,
                           seed: int = 42) -> dict[str, tuple[float, float, float]]:
    """(score, 2.5th, 97.5th percentile) in % for each model, fitted jointly against the baseline as
    arena-hard-auto v0.1's `show_result.py` fits them.

    Every battle is a model against the baseline, so the joint Bradley–Terry likelihood falls apart into one factor
    per model and each model's fitted win rate is its mean outcome; what couples the models is the bootstrap, which
    resamples all battles at once. So the rounds draw indices into the whole list in its order with numpy's legacy
    generator (`np.random.seed(seed)`, then `DataFrame.sample(frac=1, replace=True)` each round, i.e.
    `choice(n, n)`), take each model's percentiles on the Elo scale (400 · log10 odds) as the original does, and
    turn them back into win rates. The original rounds each number to 2 decimals; these are not rounded.
    """
    import numpy as np

    if not battles:
        return {}
    names = list(dict.fromkeys(m for m, _ in battles))
    owner = np.array([names.index(m) for m, _ in battles])
    outcome = np.array([o for _, o in battles], dtype=float)

    def elo(idx: np.ndarray) -> np.ndarray:   # one per model; a model with no battle in a resample counts as even
        wins = np.bincount(owner[idx], weights=outcome[idx], minlength=len(names))
        n = np.bincount(owner[idx], minlength=len(names))
        p = np.clip(np.divide(wins, n, out=np.full(len(names), 0.5), where=n > 0), 1e-12, 1 - 1e-12)
        return 400 * np.log10(p / (1 - p))

    rng = np.random.RandomState(seed)
    boot = np.array([elo(rng.choice(len(outcome), size=len(outcome), replace=True)) for _ in range(rounds)])
    point = elo(np.arange(len(outcome)))

    def rate(e: float) -> float:
        return float(100 / (1 + 10 ** (-e / 400)))

    return {m: (rate(point[k]), rate(np.percentile(boot[:, k], 2.5)), rate(np.percentile(boot[:, k], 97.5)))
            for k, m in enumerate(names)}


def bootstrap_interval(battles: list[float], *, rounds: int = ARENA_ROUNDS, seed: int = 42) -> tuple[float, float]:
    """95% interval (%) of one model's win rate against the baseline, as `show_result.py` gives it for a judgments
    folder that holds this model only (`arena_hard_leaderboard`)."""
    if not battles:
        return float("nan"), float("nan")
    _, lo, hi = arena_hard_leaderboard([("model", b) for b in battles], rounds=rounds, seed=seed)["model"]
    return lo, hi


@dataclass(frozen=True)
class ArenaPrompt:
    """Arena-Hard's judge prompt: the system message, the user template (`{question_1}`, `{answer_1}` the first
    assistant's, `{answer_2}` the second's, as v0.1's config names them), and where it came from."""
    name: str                  # agora | original | the file's path
    system: str
    template: str
    sha256: str | None = None  # of the file it was read from; None: Agora's own text (versioned by VERSION)

    def user(self, question: str, answer_a: str, answer_b: str) -> str:
        return self.template.format(question_1=question, answer_1=answer_a, answer_2=answer_b)


def arena_prompt(choice: str | None, checkout: str | None = None) -> ArenaPrompt:
    """`eval.arena_hard_prompt` resolved, before any cost: `agora` or null (Agora's paraphrase), `original` (v0.1's
    config/judge_config.yaml from the checkout `originals.arena_hard_auto`, hash-checked), or a text file with the
    judge's system prompt. Every failure is one line that names both ways out."""
    template = ARENA_USER.replace("{question}", "{question_1}").replace("{answer_a}", "{answer_1}") \
        .replace("{answer_b}", "{answer_2}")
    if choice is None or str(choice) == "agora":
        return ArenaPrompt("agora", ARENA_SYSTEM, template)
    if str(choice) == "original":
        import yaml

        try:
            text, sha = originals.read(originals.ARENA_HARD_AUTO, checkout, ARENA_JUDGE_CONFIG)
        except AgoraError as e:
            raise AgoraError(f"eval.arena_hard_prompt=original: {e}; or eval.arena_hard_prompt=agora runs Agora's "
                             f"paraphrase of the judge prompt (a named deviation)") from None
        config = yaml.safe_load(text)   # hash-checked above: v0.1's one-template, pairwise config
        return ArenaPrompt("original", config["system_prompt"], config["prompt_template"][0], sha)
    path = Path(str(choice)).expanduser()
    if not path.is_file():
        raise AgoraError(f"eval.arena_hard_prompt={choice}: no such file; the choices are original (v0.1's judge "
                         f"config, from {originals.ARENA_HARD_AUTO.key}), agora (Agora's paraphrase) or a text file "
                         f"with the judge's system prompt")
    raw = path.read_bytes()
    return ArenaPrompt(str(path), raw.decode("utf-8"), template, hashlib.sha256(raw).hexdigest())


def judge_spec(provider: str, model: str, arena: ArenaPrompt | None) -> dict:
    """What of the judge goes into an evaluation's key: the judge model, this module's VERSION and, where Arena-Hard
    is judged with a prompt read from a file, that file's name and sha256."""
    spec = {"provider": provider, "model": model, "version": VERSION}
    if arena is not None and arena.sha256 is not None:
        spec["arena_hard_prompt"] = {"name": arena.name, "sha256": arena.sha256}
    return spec


# ---------------------------------------------------------------- running the judge

class _Judge:
    """One judge option bound to a store: sends chat requests through the engine, one ledger for the benchmark."""

    def __init__(self, judge: Option, store: Store, max_usd: float | None):
        self.option, self.store = judge, store
        self.api_key = self.option.api_key("generator@judge=")
        self.ledger = Ledger(self.option.price, max_usd)
        self.endpoint = self.option.endpoint

    def run(self, conversations: list[list[dict]], sampling: Sampling, skey: dict, desc: str) -> list[dict | None]:
        j = self.option
        reqs = [Request(request_key(endpoint=self.endpoint, model=j.model, messages=m, sampling=skey, replicate=0), m)
                for m in conversations]
        cache = RequestCache(self.store.requests_path(digest({"endpoint": self.endpoint, "model": j.model})))
        try:
            results = j.run(reqs, sampling, cache=cache, ledger=self.ledger, api_key=self.api_key, desc=desc,
                            server_log=self.store.root / "judge_server.log")
        finally:
            cache.close()
        return [r.record for r in results]

    def totals(self) -> dict:
        t = self.ledger.totals
        return {"cost_usd": t.cost_usd, "sent": t.sent}


def judge_alpaca_eval(judge: Option, store: Store, rows: list[dict], outputs: list[str], *,
                      source: dict, max_usd: float | None, seed: int) -> Score:
    config, template = _alpaca_config()
    kw = config["completions_kwargs"]
    j = _Judge(judge, store, max_usd)
    swapped = [random.Random(f"{seed}-alpaca-{r['id']}").random() < 0.5 for r in rows]
    fixed = [alpaca_fixed_preference(r["answer"], o) for r, o in zip(rows, outputs)]
    ask = [i for i, f in enumerate(fixed) if f is None]
    conversations = [alpaca_messages(template, rows[i]["question"],
                                     *((outputs[i], rows[i]["answer"]) if swapped[i] else (rows[i]["answer"], outputs[i])))
                     for i in ask]
    # Logprobs exist on the OpenAI protocol only; another provider's judge (Anthropic) is read from its one token.
    extra = {"logprobs": bool(kw.get("logprobs")), "top_logprobs": int(kw.get("top_logprobs") or 5)} \
        if judge.provider == "openai" else {}
    if judge.constrain:   # the embedded smoke judge: a grammar keeps it to the two identifiers
        extra["grammar"] = 'root ::= "m" | "M"'
    sampling = Sampling(temperature=float(kw["temperature"]), top_p=1.0, max_tokens=int(kw["max_tokens"]),
                        stop=None, response_format=None, extra_body=extra or None)
    skey = {"judge": f"alpaca_eval:{ALPACA_ANNOTATOR}", "judge_version": _REQUEST_VERSION, "extra": extra,
            "temperature": sampling.temperature, "max_tokens": sampling.max_tokens}
    records = dict(zip(ask, j.run(conversations, sampling, skey, f"judge {judge.name} alpaca_eval")))
    prefs, unparsed, no_logprobs = [], 0, 0
    for i, s in enumerate(swapped):
        if fixed[i] is not None:
            prefs.append(fixed[i])
            continue
        rec = records[i]
        p = alpaca_preference(rec)
        if p is None:
            unparsed += 1
        elif s:
            p = 3.0 - p   # shown as (model, baseline): back to (baseline, model)
        no_logprobs += bool(rec and p is not None and not rec.get("top_logprobs"))
        prefs.append(p)
    metrics = lc_win_rate(alpaca_annotations(rows, outputs, prefs), load_df_gamed(source))
    details = {"win_rate": float(metrics["win_rate"]), "lc_standard_error": float(metrics["lc_standard_error"]),
               "unparsed": unparsed, "no_logprobs": no_logprobs, **j.totals()}
    return Score(float(metrics["length_controlled_winrate"]), [p is not None and p > 1.5 for p in prefs], details)


def judge_arena_hard(judge: Option, store: Store, rows: list[dict], outputs: list[str], *,
                     max_usd: float | None, seed: int, prompt: ArenaPrompt | None = None) -> Score:
    j = _Judge(judge, store, max_usd)
    prompt = prompt or arena_prompt(None)
    system = prompt.system
    extra = {"grammar": 'root ::= "My final verdict is: [[" ("A>>B" | "A>B" | "A=B" | "B>A" | "B>>A") "]]"'} \
        if judge.constrain else None   # the embedded smoke judge cannot write a judgment; it gives a label
    sampling = Sampling(temperature=0.0, top_p=1.0, max_tokens=ARENA_MAX_TOKENS, stop=None, response_format=None,
                        extra_body=extra)
    skey = {"judge": "arena_hard:v0.1", "judge_version": _REQUEST_VERSION, "system": digest(system), "extra": extra,
            "max_tokens": ARENA_MAX_TOKENS}
    games = []   # per row: game 1 (baseline is A), game 2 (model is A)
    for r, o in zip(rows, outputs):
        for a, b in ((r["answer"], o), (o, r["answer"])):
            games.append([{"role": "system", "content": system},
                          {"role": "user", "content": prompt.user(r["question"], a, b)}])
    judgments = [""] * len(games)
    pending = list(range(len(games)))
    for attempt in range(ARENA_ATTEMPTS):
        records = j.run([games[i] for i in pending], sampling, skey, f"judge {judge.name} arena_hard")
        again = []
        for i, rec in zip(pending, records):
            if rec is None:
                continue
            judgments[i] += "\n" + rec["text"]
            if arena_label(judgments[i])[1] and attempt + 1 < ARENA_ATTEMPTS:
                games[i] = games[i] + [{"role": "assistant", "content": rec["text"]},
                                       {"role": "user", "content": ARENA_CONTINUE}]
                again.append(i)
        pending = again
        if not pending:
            break
    labels = [arena_label(t)[0] if t else None for t in judgments]
    pairs = list(zip(labels[0::2], labels[1::2]))
    battles = arena_battles(pairs)
    lo, hi = bootstrap_interval(battles, seed=seed)
    won = [sum(v) / len(v) > 0.5 if (v := arena_battles([p])) else False for p in pairs]
    details = {"ci_low": lo, "ci_high": hi, "battles": len(battles), "unparsed": sum(x is None for x in labels),
               **j.totals()}
    return Score(bradley_terry_win_rate(battles), won, details)


def score(benchmark: str, judge: Option, store: Store, rows: list[dict], outputs: list[str], *,
          source: dict, max_usd: float | None, seed: int, arena: ArenaPrompt | None = None) -> Score:
    """The benchmark's headline score for one model's outputs, judged against the rows' baseline `answer`s
    (`arena`: Arena-Hard's judge prompt, from `arena_prompt`; None: Agora's paraphrase)."""
    if benchmark == "alpaca_eval":
        return judge_alpaca_eval(judge, store, rows, outputs, source=source, max_usd=max_usd, seed=seed)
    if benchmark == "arena_hard":
        return judge_arena_hard(judge, store, rows, outputs, max_usd=max_usd, seed=seed, prompt=arena)
    raise AgoraError(f"no judge for benchmark {benchmark!r}; judged: {sorted(JUDGED)}")
