"""The cost ledger and the hard dollar cap.

Cost comes from each response's `usage`, priced from the generator option's dated table. Before a
request is sent its worst case (every prompt character a token, plus max_tokens out) is reserved,
and the reservation is settled when the response lands, so concurrency can never carry spend past
`budget.max_usd`. An unknown price is an error, never $0.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from agora import AgoraError


@dataclass(frozen=True)
class Price:
    input_per_mtok: float
    output_per_mtok: float
    as_of: str
    batch_discount: float | None = None   # 0.5: the provider's batch API charges half; None: no batch API

    @classmethod
    def from_table(cls, table: dict | None, generator: str) -> "Price":
        if not table or table.get("input") is None or table.get("output") is None:
            raise AgoraError(f"generator={generator} has no price; set generator.price_usd_per_mtok.input/output "
                             "(USD per 1M tokens; 0 for a self-hosted server)")
        discount = table.get("batch_discount")
        return cls(float(table["input"]), float(table["output"]), str(table.get("as_of")),
                   None if discount is None else float(discount))

    def cost(self, input_tokens: int, output_tokens: int, batch: bool = False) -> float:
        usd = (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1e6
        if batch:
            if self.batch_discount is None:
                raise AgoraError("a batch result was priced, but the price table has no batch_discount")
            usd *= 1.0 - self.batch_discount
        return usd


@dataclass
class Totals:
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    requests: int = 0          # finished requests that make up the data (sent now or earlier)
    sent: int = 0              # requests sent by this process
    cached: int = 0            # answered from the request cache
    failed: int = 0            # gave up after retries, or a permanent error
    retries: int = 0
    latency_s: float = 0.0
    errors: dict = field(default_factory=dict)   # transient errors seen, by kind (each retried or counted failed)


@dataclass
class Ledger:
    price: Price
    max_usd: float | None
    totals: Totals = field(default_factory=Totals)
    reserved_usd: float = 0.0

    def worst_case(self, prompt_chars: int, max_tokens: int, batch: bool = False) -> float:
        return self.price.cost(prompt_chars, max_tokens, batch)

    def reserve(self, usd: float) -> bool:
        """Hold `usd` against the cap; False when that could cross it (the caller stops sending)."""
        if self.max_usd is not None and self.totals.cost_usd + self.reserved_usd + usd > self.max_usd:
            return False
        self.reserved_usd += usd
        return True

    def release(self, usd: float) -> None:
        self.reserved_usd -= usd

    def record(self, rec: dict, *, cached: bool) -> float:
        """Account for one finished request (a cache record); returns its cost."""
        cost = self.price.cost(rec["input_tokens"], rec["output_tokens"], rec.get("batch", False))
        t = self.totals
        t.cost_usd += cost
        t.input_tokens += rec["input_tokens"]
        t.output_tokens += rec["output_tokens"]
        t.requests += 1
        t.cached += cached
        t.sent += not cached
        t.retries += rec.get("retries", 0)
        t.latency_s += rec.get("latency_s", 0.0)
        return cost

    def as_dict(self) -> dict:
        return {"price": asdict(self.price), "max_usd": self.max_usd, **asdict(self.totals)}
