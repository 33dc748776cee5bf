"""What every intrinsic metric is: a `Metric` owns its part of intrinsic.json's spec (the cache key) and measures
a data set's rows; `Measured` is what it returns.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from omegaconf import DictConfig

from agora.store import Store

VERSION = 2                      # the judge prompts, the score parsers, the retry rule and the aggregation
FILENAME = "intrinsic.json"


@dataclass
class Measured:
    metrics: dict[str, float | None]                              # data-set values, logged as intrinsic/<name>
    per_example: dict[str, list] = field(default_factory=dict)     # name -> one value per row
    summary: dict[str, Any] = field(default_factory=dict)          # counts and costs
    seconds: float = 0.0


class Metric(Protocol):
    """One intrinsic metric. `name` is its key in the spec; `spec` returns everything that changes its numbers
    (None: it is off for this config), so a changed setting is a new measurement and never a stale cache hit; `check`
    fails before anything is spent (a missing key or server); `measure` computes it for the rows."""
    name: str

    def spec(self, cfg: DictConfig) -> dict | None: ...
    def check(self, cfg: DictConfig) -> None: ...
    def measure(self, cfg: DictConfig, store: Store, rows: list[dict]) -> Measured: ...


def torch_device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def one_line(e: BaseException) -> str:
    return " ".join(str(e).split())


def mean(xs: list) -> float | None:
    vals = [x for x in xs if x is not None and not (isinstance(x, float) and x != x)]
    return sum(vals) / len(vals) if vals else None
