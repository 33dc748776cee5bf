"""The interface every generator client meets, so the engine never knows which SDK is behind it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass
class Completion:
    text: str
    finish_reason: str          # normalised: "stop" | "length" | "content_filter" | other
    input_tokens: int
    output_tokens: int
    latency_s: float
    retries: int = 0


class PermanentError(Exception):
    """A request that will never succeed as sent (400, 401, 403, 404, content filter): recorded, not retried."""


class ChatClient(Protocol):
    async def complete(self, messages: list[dict], *, temperature: float, top_p: float, max_tokens: int,
                       stop: list[str] | None, response_format: str | None,
                       extra_body: dict | None = None) -> Completion: ...

    async def aclose(self) -> None: ...
