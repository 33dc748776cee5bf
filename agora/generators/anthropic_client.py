"""Claude through the official `anthropic` SDK (Messages API), behind the same `ChatClient` interface.

As for OpenAI, the SDK client decides the base URL, auth and `anthropic-version` headers, and requests
go out on the lean aiohttp path (`transport="aiohttp"`) or through the SDK end to end (`transport="sdk"`).
"""
from __future__ import annotations

import contextlib
import json
import time

import anthropic

from agora.generators.client import (BatchState, Completion, PermanentError, TransientError, retry_after_seconds,
                                     sdk_http_error)
from agora.generators.wire import Wire, sdk_headers

_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "refusal": "content_filter"}
_PERMANENT = (anthropic.BadRequestError, anthropic.AuthenticationError, anthropic.PermissionDeniedError,
              anthropic.NotFoundError, anthropic.UnprocessableEntityError)
_HTTP_ERROR = sdk_http_error(anthropic.DefaultAsyncHttpxClient)


def messages_body(model: str, messages: list[dict], *, temperature: float, top_p: float, max_tokens: int,
                  stop: list[str] | None, response_format: dict | str | None, extra_body: dict | None) -> dict:
    """The /v1/messages body (also `params` of one Message Batches request). System turns move to `system`."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    body = {"model": model, "messages": [m for m in messages if m["role"] != "system"], "max_tokens": max_tokens,
            "temperature": temperature, "top_p": top_p}
    if system:
        body["system"] = system
    if stop:
        body["stop_sequences"] = list(stop)
    if extra_body:
        body.update(extra_body)
    return body   # response_format has no Messages equivalent: the prompt asks for the format


def parse_message(data: dict, latency_s: float) -> Completion:
    try:
        text = "".join(b.get("text", "") for b in data["content"] if b.get("type") == "text")
        reason = data.get("stop_reason") or "unknown"
        usage = data["usage"]
        return Completion(text=text, finish_reason=_FINISH.get(reason, reason),
                          input_tokens=int(usage.get("input_tokens") or 0),
                          output_tokens=int(usage.get("output_tokens") or 0), latency_s=latency_s)
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        raise TransientError(f"malformed response: {type(e).__name__}: {e}") from e


@contextlib.asynccontextmanager
async def _sdk_errors():
    """The SDK's exceptions, as the engine's two kinds."""
    try:
        yield
    except _PERMANENT as e:
        raise PermanentError(f"{type(e).__name__}: {e}") from e
    except anthropic.APIStatusError as e:  # 408, 409, 429, 5xx, 529 overloaded
        raise TransientError(f"HTTP {e.status_code}: {type(e).__name__}", retry_after_seconds(e.response.headers),
                             rate_limited=e.status_code == 429) from e
    except (anthropic.APIConnectionError, anthropic.APIResponseValidationError, json.JSONDecodeError,
            _HTTP_ERROR) as e:
        raise TransientError(f"{type(e).__name__}: {e}") from e


def _batch_result(result: dict) -> Completion | PermanentError | TransientError:
    kind = result.get("type")
    if kind == "succeeded":
        try:
            return parse_message(result["message"], 0.0)
        except TransientError as e:
            return e
    if kind == "errored":
        err = (result.get("error") or {}).get("error") or {}
        if err.get("type") in ("invalid_request_error", "authentication_error", "permission_error",
                               "not_found_error"):
            return PermanentError(f"batch errored: {err}")
        return TransientError(f"batch errored: {err.get('type')}")
    return TransientError(f"batch {kind}")   # expired or canceled: resubmitted


class AnthropicClient:
    def __init__(self, *, model: str, base_url: str | None, api_key: str | None, timeout_s: float,
                 concurrency: int = 64, transport: str = "aiohttp"):
        self.model = model
        self.transport = transport
        self.sdk = anthropic.AsyncAnthropic(base_url=base_url, api_key=api_key or "not-needed",
                                            max_retries=0, timeout=timeout_s)  # the engine retries
        self.wire = Wire(str(self.sdk.base_url).rstrip("/") + "/v1", sdk_headers(self.sdk), timeout_s=timeout_s,
                         concurrency=concurrency)

    async def complete(self, messages, *, temperature, top_p, max_tokens, stop, response_format,
                       extra_body=None) -> Completion:
        body = messages_body(self.model, messages, temperature=temperature, top_p=top_p, max_tokens=max_tokens,
                             stop=stop, response_format=response_format, extra_body=extra_body)
        if self.transport == "aiohttp":
            data, latency = await self.wire.post("/messages", body)
            return parse_message(data, latency)
        return await self._complete_sdk(body)

    def body(self, messages, **sampling) -> dict:
        return messages_body(self.model, messages, **sampling)

    # Message Batches: requests in one call, results as JSONL from the batch's results_url, by custom_id.
    async def batch_submit(self, items: list[tuple[str, dict]]) -> str:
        async with _sdk_errors():
            b = await self.sdk.messages.batches.create(
                requests=[{"custom_id": cid, "params": body} for cid, body in items])
        return b.id

    async def batch_state(self, batch_id: str) -> BatchState:
        async with _sdk_errors():
            b = await self.sdk.messages.batches.retrieve(batch_id)
        c = b.request_counts
        done = c.succeeded + c.errored + c.canceled + c.expired
        return BatchState(b.processing_status, b.processing_status == "ended", done, done + c.processing)

    async def batch_results(self, batch_id: str) -> dict[str, Completion | PermanentError | TransientError]:
        out: dict = {}
        async with _sdk_errors():
            async for entry in await self.sdk.messages.batches.results(batch_id):
                out[entry.custom_id] = _batch_result(entry.result.model_dump())
        return out

    async def _complete_sdk(self, body: dict) -> Completion:
        body = dict(body)
        # anthropic>=2 dropped temperature/top_p from create()'s signature (a TypeError); the API still takes
        # them, so they travel in extra_body with anything else the SDK has no argument for.
        known = {k: body.pop(k) for k in ("model", "messages", "max_tokens", "system", "stop_sequences") if k in body}
        t0 = time.perf_counter()
        async with _sdk_errors():
            raw = await self.sdk.messages.with_raw_response.create(**known, extra_body=body or None)
            data = json.loads(raw.http_response.content)
        return parse_message(data, time.perf_counter() - t0)

    async def aclose(self) -> None:
        await self.wire.aclose()
        await self.sdk.close()
