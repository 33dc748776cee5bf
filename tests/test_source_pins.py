"""Every hub source is read at a pinned commit (issue 23, item 5): `main` moves, so a run at paper scale could read
other rows next month and its data key would not say so. The pins are checked twice: in the composed configs of
the preset, and at the library call each loader makes, so a loader that drops `revision` is caught too."""
from __future__ import annotations

import json
import re

import datasets
import pytest
from conftest import compose_cfg

from agora import AgoraError
from agora.domains import code, instruction_following, math
from agora.scoring import judge

DOMAINS = {"math": math, "code": code, "instruction_following": instruction_following}
COMMIT = re.compile(r"[0-9a-f]{40}")

# Sources no full commit id could be checked for from here (the hub is out of reach; ids were read from stored hub
# pages, and a short id is never extended). Each reads `main`; its YAML comment says so.
UNPINNED = {
    "webinstruct_math": "TIGER-Lab/WebInstructSub: only short ids of its 45 commits seen",
    "webinstruct_general": "TIGER-Lab/WebInstructSub: the same repository",
    "lima": "GAIR/lima: gated, no commit page of it stored",
    "arena_hard": "lmarena-ai/arena-hard-auto: no commit page of it stored",
}


def _hub_sources(domain: str) -> dict[str, dict]:
    cfg = compose_cfg("generate", ["experiment=agorabench", f"domain={domain}"])
    srcs = {k: dict(v) for k, v in cfg.domain.sources.items()}
    return {k: v for k, v in srcs.items() if v.get("hub")}


@pytest.mark.parametrize("domain", sorted(DOMAINS))
def test_every_hub_source_of_the_preset_is_pinned_to_a_commit(domain):
    for name, source in _hub_sources(domain).items():
        rev = source.get("revision")
        if name in UNPINNED:
            assert not (rev and COMMIT.fullmatch(str(rev))), f"{name} is pinned now: drop it from UNPINNED"
            continue
        assert rev and COMMIT.fullmatch(str(rev)), f"domain.sources.{name} ({source['hub']}): revision={rev!r}"


class _Stop(Exception):
    """Raised by the recording stand-ins once the call is seen: what the loader does with the rows is tested
    elsewhere."""


@pytest.mark.parametrize("domain", sorted(DOMAINS))
def test_the_pinned_revision_reaches_the_library_call(domain, monkeypatch, tmp_path):
    calls: list[dict] = []

    def load_dataset(path, name=None, **kw):
        calls.append({"path": path, "name": name, **kw})
        raise _Stop

    def config_names(path, **kw):   # EleutherAI/hendrycks_math: one config per subject
        calls.append({"path": path, "configs": True, **kw})
        return ["algebra"]

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    monkeypatch.setattr(datasets, "get_dataset_config_names", config_names)
    hub_cache = _offline_hub(monkeypatch, tmp_path)
    for name, source in _hub_sources(domain).items():
        rev = source.get("revision")
        calls.clear()
        if name in ("alpaca_eval", "arena_hard"):   # raw files through huggingface_hub (judged.py, judge.py)
            _check_raw_files(name, source, hub_cache)
            continue
        with pytest.raises(AgoraError):
            DOMAINS[domain].load(name, "train", dict(source), 1, 0)
        assert calls, f"{name}: no library call was made"
        for call in calls:
            if source.get("data_files"):   # plain files of a loading-script repository, as hf:// URLs
                urls = call["data_files"]
                assert all(f"@{rev}/" in u for u in urls) if rev else all("@" not in u for u in urls), (name, urls)
            else:
                assert (call["path"], call.get("revision")) == (source["hub"], rev), (name, call)
        if name not in UNPINNED:
            assert COMMIT.fullmatch(str(rev)), f"{name}: revision={rev!r}"


def _offline_hub(monkeypatch, tmp_path):
    """huggingface_hub itself, offline, over a cache that holds files only under the commits the YAML names."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return tmp_path / "hub"


def _put(hub_cache, repo: str, revision: str, files: dict[str, str]) -> None:
    root = hub_cache / f"datasets--{repo.replace('/', '--')}"
    commit = revision
    if not COMMIT.fullmatch(revision):   # a branch: the cache maps it to a commit
        commit = "0" * 40
        (root / "refs").mkdir(parents=True, exist_ok=True)
        (root / "refs" / revision).write_text(commit)
    for rel, text in files.items():
        path = root / "snapshots" / commit / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _check_raw_files(name: str, source: dict, hub_cache) -> None:
    """The files exist only at `revision`: read at any other (`main`, none) they are not found offline."""
    from agora.domains.instruction_following import judged

    rev = source["revision"]
    if name == "alpaca_eval":
        rows = [{"instruction": f"q{i}", "output": f"a{i}", "generator": "gpt4_turbo"} for i in range(judged.ALPACA_N)]
        cols = "model,index,preference,std_delta_len,instruction_difficulty,not_gamed_baseline\n"
        _put(hub_cache, source["hub"], rev, {source["file"]: json.dumps(rows), source["glm_file"]: cols + "m,0,1,0,0,1\n"})
        assert len(judged.alpaca_eval_rows(source)) == judged.ALPACA_N
        assert list(judge.load_df_gamed(source)["model"]) == ["m"]
        with pytest.raises(AgoraError):
            judged.alpaca_eval_rows({**source, "revision": None})
    else:
        q = {"question_id": "u1", "turns": [{"content": "Q?"}]}
        a = {"question_id": "u1", "choices": [{"turns": [{"content": "A."}]}]}
        _put(hub_cache, source["hub"], rev, {source["questions"]: json.dumps(q) + "\n",
                                             source["baseline_answers"]: json.dumps(a) + "\n"})
        assert [r["answer"] for r in judged.arena_hard_rows(source)] == ["A."]
