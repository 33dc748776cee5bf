"""The interface every generator client meets, so the engine never knows which SDK is behind it.

Clients classify failures: `TransientError` (429, 5xx, timeouts, resets, truncated bodies) is retried by
the engine with backoff that honours `retry-after`; `PermanentError` (400, 401, 403, 404, 422) is recorded
once and never retried.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Protocol


@dataclass
class Completion:
    text: str
    finish_reason: str          # normalised: "stop" | "length" | "content_filter" | other
    input_tokens: int
    output_tokens: int
    latency_s: float
    top_logprobs: list[dict] | None = None   # the first token's alternatives, when the request asked for logprobs
    prompt_logprobs: list[float | None] | None = None   # log p(each prompt token | the ones before), when asked
    token_ids: list[int] | None = None   # the completion's token ids, when the request asked for them


class PermanentError(Exception):
    """A request that will never succeed as sent (400, 401, 403, 404, content filter): recorded, not retried."""


class TransientError(Exception):
    """Worth another try: the server said so (429, 5xx) or the exchange broke (timeout, reset, torn body)."""

    def __init__(self, message: str, retry_after: float | None = None, rate_limited: bool = False):
        super().__init__(message)
        self.retry_after = retry_after
        self.rate_limited = rate_limited


def sdk_http_error(default_http_client: type) -> type[Exception]:
    """The base HTTP error of whichever httpx the SDK is built on (`httpx`, or `httpx2` in openai 3 / anthropic 2)."""
    for cls in default_http_client.__mro__[1:]:
        module = sys.modules.get(cls.__module__.split(".")[0])
        if module is not None and hasattr(module, "HTTPError") and module.__name__.startswith("httpx"):
            return module.HTTPError
    return OSError


def retry_after_seconds(headers) -> float | None:
    """`retry-after-ms` or `retry-after` (seconds; an HTTP date is ignored) from response headers."""
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                continue
    return None


@dataclass
class BatchState:
    status: str                 # the provider's word: in_progress, completed, ended, expired, failed, ...
    ended: bool                 # no more results will come
    done: int
    total: int


class ChatClient(Protocol):
    async def complete(self, messages: list[dict], *, temperature: float, top_p: float, max_tokens: int,
                       stop: list[str] | None, response_format: dict | str | None,
                       extra_body: dict | None = None) -> Completion: ...

    async def aclose(self) -> None: ...


class BatchClient(Protocol):
    """The provider's batch API (OpenAI Batch, Anthropic Message Batches), spoken through its official SDK."""

    def body(self, messages: list[dict], *, temperature: float, top_p: float, max_tokens: int,
             stop: list[str] | None, response_format: dict | str | None, extra_body: dict | None = None) -> dict: ...

    async def batch_submit(self, items: list[tuple[str, dict]]) -> str: ...   # (custom_id, body) -> batch id

    async def batch_state(self, batch_id: str) -> BatchState: ...

    async def batch_results(self, batch_id: str) -> dict[str, Completion | PermanentError | TransientError]: ...
