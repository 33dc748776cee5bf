"""Where a domain's data sets come from: one loader for every domain and every stage.

A data set is a named entry of `domain.sources`: `local` (a JSONL, JSON or Parquet file, gzipped or not, or a folder
of them) or `hub` (a Hugging Face dataset, or with `data_files` plain files of a hub repository at a pinned revision:
the loading-script repositories that `datasets>=4` refuses, LIMA, xP3x and CoNaLa, read that way). Domains turn the
raw records into rows (`{"id", "question", "solution", "answer", ...}`); this module only finds and reads them, and
says in one line which file and line is wrong when one is.

`load_split` is what the stages call: rows of named sources through a domain's `load`, each capped; `held_out`
removes benchmark questions and tasks from seeds and human data.
"""
from __future__ import annotations

import gzip
import json
import re
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from urllib.parse import quote

from agora import AgoraError

DATA_FILE_RE = re.compile(r"\.(jsonl|json|parquet)(\.gz)?$")


def check_jsonl(path: Path) -> None:
    """Name the file and line of the first record of a JSONL file (plain or .gz) that is not JSON."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    json.loads(line)
                except json.JSONDecodeError as e:
                    raise AgoraError(f"{path}:{n}: not a JSON record ({e.msg}); fix or remove that line") from None


def check_data_file(path: Path) -> None:
    """A JSONL file record by record, a `.json` file as one document (an array of records); Parquet is left to
    its reader."""
    if ".parquet" in path.name:
        return
    if re.search(r"\.json(\.gz)?$", path.name):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as f:
            try:
                json.load(f)
            except json.JSONDecodeError as e:
                raise AgoraError(f"{path}:{e.lineno}: not valid JSON ({e.msg}); fix that line") from None
        return
    check_jsonl(path)


def local_files(name: str, local: str, split: str, *, single_split: bool = False) -> list[Path]:
    """The files of `domain.sources.<name>.local`: the file itself, or in a folder the data files whose name holds
    `split`; a folder with one data file, or a data set published as one split (`single_split`), uses all of them."""
    p = Path(local).expanduser()
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise AgoraError(f"domain.sources.{name}.local={local}: no such file or folder")
    data = sorted(x for x in p.iterdir() if x.is_file() and DATA_FILE_RE.search(x.name))
    picked = [x for x in data if split in x.name] or (data if data and (single_split or len(data) == 1) else [])
    if not picked:
        raise AgoraError(f"domain.sources.{name}.local={local}: no *{split}* JSONL/JSON/Parquet file in that folder"
                         f" (found {[x.name for x in data]}); name a file instead")
    return picked


def read_files(name: str, files: list[Path]):
    """The records of local data files as a `datasets.Dataset` (each file checked first, so a bad line is named)."""
    import datasets

    kinds = {"parquet" if ".parquet" in f.name else "json" for f in files}
    if len(kinds) > 1:
        raise AgoraError(f"domain.sources.{name}.local mixes JSON and Parquet files: {[f.name for f in files]}")
    for f in files:
        check_data_file(f)
    kind = kinds.pop()
    try:
        return datasets.load_dataset(kind, data_files=[str(f) for f in files], split="train")
    except Exception as e:
        raise AgoraError(f"domain.sources.{name}.local: could not read {[str(f) for f in files]} as {kind} "
                         f"({type(e).__name__}: {e})") from e


def hub_files(name: str, source: dict, split: str) -> tuple[str, list[str]] | None:
    """(builder, hf:// URLs) for a source that names `data_files`, or None to use `load_dataset(repo, config)`.

    `data_files` is a pattern or a {split: pattern(s)} map, relative to the repository root at `revision`.
    A revision with slashes (`refs/convert/parquet`) is URL-quoted, as the hub's file system expects.
    """
    files = source.get("data_files")
    if not files:
        return None
    if isinstance(files, Mapping):
        if split not in files:
            raise AgoraError(f"domain.sources.{name}.data_files has no {split!r} entry (has: {sorted(files)})")
        files = files[split]
    patterns = [files] if isinstance(files, str) else list(files)
    rev = source.get("revision")
    root = f"hf://datasets/{source['hub']}" + (f"@{quote(str(rev), safe='')}" if rev else "")
    urls = [f"{root}/{p.lstrip('/')}" for p in patterns]
    kinds = {"parquet" if ".parquet" in p else "json" for p in patterns}
    if len(kinds) > 1:
        raise AgoraError(f"domain.sources.{name}.data_files mixes JSON and Parquet: {patterns}")
    return kinds.pop(), urls


def load_hub(name: str, source: dict, split: str, *, config: str | None = None):
    """The source's rows from the Hugging Face hub as a `datasets.Dataset` (one line of AgoraError if it fails)."""
    import datasets

    if not source.get("hub"):
        raise AgoraError(f"domain.sources.{name} has neither `hub` nor `local`")
    files = hub_files(name, source, split)
    try:
        if files:
            kind, urls = files
            return datasets.load_dataset(kind, data_files=urls, split="train")
        return datasets.load_dataset(source["hub"], config or source.get("config"), split=split,
                                     revision=source.get("revision"))
    except Exception as e:
        where = files[1] if files else f"{source['hub']} ({split})"
        msg = " ".join(str(e).split())[:300]
        raise AgoraError(f"could not load {where} for source {name!r} from the Hugging Face hub: {msg}. Offline, "
                         f"set domain.sources.{name}.local=/path/to/file.jsonl (or .parquet, or a folder of them), "
                         f"or use budget=smoke") from e


def load_rows(name: str, split: str, source: dict, *, single_split: bool = False):
    """The raw records of one source as a `datasets.Dataset`: its `local` files, else the hub. A data set published
    as one split (`single_split`) reads that split whatever split is asked for."""
    if source.get("local"):
        return read_files(name, local_files(name, source["local"], split, single_split=single_split))
    return load_hub(name, source, "train" if single_split else split)


# ------------------------------------------------------------------ what the stages read


def load_split(domain: ModuleType, sources: Mapping[str, dict], names: list[str], split: str, limit: int | None,
               seed: int, caps: Mapping[str, int] | None = None) -> list[dict]:
    """Rows of the named sources through the domain's `load`; `caps` (a mode's `sample`) caps a source below
    `limit`."""
    rows: list[dict] = []
    for name in names:
        if name not in sources:
            raise AgoraError(f"data set {name!r} is not in domain.sources; known: {sorted(sources)}")
        n = [c for c in (limit, (caps or {}).get(name)) if c is not None]
        rows += domain.load(name, split, dict(sources[name]), min(n) if n else None, seed)
    return rows


def task_of(row_id: str) -> str | None:
    """A benchmark task's identity across its versions: MBPP's `mbpp-726` and MBPP+'s `Mbpp/726` are one task."""
    m = re.fullmatch(r"(mbpp|humaneval)[-/_](\d+)", str(row_id), flags=re.I)
    return f"{m.group(1).lower()}/{m.group(2)}" if m else None


def held_out(rows: list[dict], benchmark_rows: list[dict]) -> list[dict]:
    """`rows` minus any whose question is a benchmark question, or whose task is a benchmark task (MBPP+ keeps some
    MBPP train-split tasks, reworded, so the text alone does not catch them)."""
    questions = {" ".join(r["question"].split()) for r in benchmark_rows}
    tasks = {t for t in (task_of(r["id"]) for r in benchmark_rows) if t}
    return [r for r in rows if " ".join(r["question"].split()) not in questions and task_of(r["id"]) not in tasks]
