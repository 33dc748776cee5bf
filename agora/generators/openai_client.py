"""OpenAI, OpenRouter, vLLM, llama.cpp and any OpenAI-compatible server, through the official `openai` SDK.

The SDK client decides the base URL and headers. Requests go out on the lean aiohttp path (`wire.py`,
`transport="aiohttp"`, the default) or through the SDK end to end (`transport="sdk"`); both return the
same `Completion` and raise the same two errors.
"""
from __future__ import annotations

import contextlib
import json
import time

import openai

from agora.generators.client import (BatchState, Completion, PermanentError, TransientError, retry_after_seconds,
                                     sdk_http_error)
from agora.generators.wire import Wire, sdk_headers

_PERMANENT = (openai.BadRequestError, openai.AuthenticationError, openai.PermissionDeniedError,
              openai.NotFoundError, openai.UnprocessableEntityError)
_HTTP_ERROR = sdk_http_error(openai.DefaultAsyncHttpxClient)


def chat_body(model: str, messages: list[dict], *, temperature: float, top_p: float, max_tokens: int,
              stop: list[str] | None, response_format: dict | str | None, extra_body: dict | None) -> dict:
    """The /v1/chat/completions request body (also the body of one line of a Batch input file)."""
    body = {"model": model, "messages": messages, "temperature": temperature, "top_p": top_p,
            "max_tokens": max_tokens}
    if stop:
        body["stop"] = list(stop)
    if response_format:
        body["response_format"] = response_format if isinstance(response_format, dict) else {"type": response_format}
    if extra_body:
        body.update(extra_body)
    return body


def parse_chat(data: dict, latency_s: float) -> Completion:
    """A chat.completion JSON body as a Completion; a body without a choice is a torn response."""
    try:
        choice = data["choices"][0]
        usage = data.get("usage") or {}
        tokens = (choice.get("logprobs") or {}).get("content") or []   # present when the body asked for logprobs
        top = [{"token": t["token"], "logprob": t["logprob"]} for t in tokens[0].get("top_logprobs") or []] \
            if tokens else None
        return Completion(text=(choice.get("message") or {}).get("content") or "",
                          finish_reason=choice.get("finish_reason") or "unknown",
                          input_tokens=int(usage.get("prompt_tokens") or 0),
                          output_tokens=int(usage.get("completion_tokens") or 0), latency_s=latency_s,
                          top_logprobs=top)
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as e:
        raise TransientError(f"malformed response: {type(e).__name__}: {e}") from e


def parse_completion(data: dict, latency_s: float, prompt_ids: list[int] | None = None) -> Completion:
    """A text_completion JSON body (/v1/completions) as a Completion; a body without a choice is a torn response.
    `prompt_ids`: the prompt's token ids, when it was sent as ids (to read its `prompt_logprobs`)."""
    try:
        choice = data["choices"][0]
        usage = data.get("usage") or {}
        return Completion(text=choice.get("text") or "", finish_reason=choice.get("finish_reason") or "unknown",
                          input_tokens=int(usage.get("prompt_tokens") or 0),
                          output_tokens=int(usage.get("completion_tokens") or 0), latency_s=latency_s,
                          prompt_logprobs=_prompt_logprobs(choice.get("prompt_logprobs"), prompt_ids),
                          token_ids=[int(t) for t in choice["token_ids"]] if choice.get("token_ids") is not None
                          else None)
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as e:
        raise TransientError(f"malformed response: {type(e).__name__}: {e}") from e


def _prompt_logprobs(entries: list | None, ids: list[int] | None) -> list[float | None] | None:
    """vLLM's `prompt_logprobs` (per position: None, or {token id: {logprob, ...}} holding the prompt's own token
    and the top alternatives) as the prompt tokens' own logprobs; the first position has none."""
    if entries is None:
        return None
    if ids is None or len(ids) != len(entries):
        raise TransientError(f"malformed response: {len(entries)} prompt_logprobs for "
                             f"{None if ids is None else len(ids)} prompt token ids")
    out: list[float | None] = []
    for tid, e in zip(ids, entries):
        hit = (e or {}).get(str(tid))
        out.append(None if hit is None else float(hit["logprob"]))
    return out


def _batch_line(row: dict) -> Completion | PermanentError | TransientError:
    resp, err = row.get("response"), row.get("error")
    if resp and resp.get("status_code") == 200:
        try:
            return parse_chat(resp["body"], 0.0)
        except TransientError as e:
            return e
    status = resp.get("status_code") if resp else None
    detail = json.dumps(err or (resp or {}).get("body"))[:300]
    if status is not None and 400 <= status < 500 and status not in (408, 409, 425, 429):
        return PermanentError(f"HTTP {status}: {detail}")
    return TransientError(f"batch {(err or {}).get('code') or f'HTTP {status}'}: {detail}")


@contextlib.asynccontextmanager
async def _sdk_errors():
    """The SDK's exceptions, as the engine's two kinds."""
    try:
        yield
    except _PERMANENT as e:
        raise PermanentError(f"{type(e).__name__}: {e}") from e
    except openai.APIStatusError as e:
        raise TransientError(f"HTTP {e.status_code}: {type(e).__name__}", retry_after_seconds(e.response.headers),
                             rate_limited=e.status_code == 429) from e
    except (openai.APIConnectionError, openai.APIResponseValidationError, json.JSONDecodeError,
            _HTTP_ERROR) as e:
        raise TransientError(f"{type(e).__name__}: {e}") from e


class OpenAIClient:
    def __init__(self, *, model: str, base_url: str | None, api_key: str | None, timeout_s: float,
                 concurrency: int, transport: str = "aiohttp"):
        self.model = model
        self.transport = transport
        # Retries belong to the engine (counted, jittered, retry-after honoured, torn bodies included),
        # so the SDK makes exactly one attempt.
        self.sdk = openai.AsyncOpenAI(base_url=base_url, api_key=api_key or "not-needed", max_retries=0,
                                      timeout=timeout_s)
        self.wire = Wire(str(self.sdk.base_url), sdk_headers(self.sdk), timeout_s=timeout_s,
                         concurrency=concurrency)

    async def complete(self, messages, *, temperature, top_p, max_tokens, stop, response_format,
                       extra_body=None) -> Completion:
        body = chat_body(self.model, messages, temperature=temperature, top_p=top_p, max_tokens=max_tokens,
                         stop=stop, response_format=response_format, extra_body=extra_body)
        if self.transport == "aiohttp":
            data, latency = await self.wire.post("/chat/completions", body)
            return parse_chat(data, latency)
        return await self._complete_sdk(body)

    def body(self, messages, **sampling) -> dict:
        return chat_body(self.model, messages, **sampling)

    # The Batch API: a JSONL file of requests in, an output file and an error file out, matched by custom_id.
    async def batch_submit(self, items: list[tuple[str, dict]]) -> str:
        lines = "".join(json.dumps({"custom_id": cid, "method": "POST", "url": "/v1/chat/completions", "body": body},
                                   ensure_ascii=False) + "\n" for cid, body in items)
        async with _sdk_errors():
            f = await self.sdk.files.create(file=("agora-batch.jsonl", lines.encode(), "application/jsonl"),
                                            purpose="batch")
            b = await self.sdk.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions",
                                              completion_window="24h", metadata={"client": "agora"})
        return b.id

    async def batch_state(self, batch_id: str) -> BatchState:
        async with _sdk_errors():
            b = await self.sdk.batches.retrieve(batch_id)
        c = b.request_counts
        if b.status == "failed":   # the whole input was rejected (validation): it will fail the same way again
            raise PermanentError(f"batch {batch_id} failed: {b.errors}")
        return BatchState(b.status, b.status in ("completed", "expired", "cancelled"),
                          (c.completed + c.failed) if c else 0, c.total if c else 0)

    async def batch_results(self, batch_id: str) -> dict[str, Completion | PermanentError | TransientError]:
        async with _sdk_errors():
            b = await self.sdk.batches.retrieve(batch_id)
            texts = [(await self.sdk.files.content(fid)).text for fid in (b.output_file_id, b.error_file_id) if fid]
        out: dict = {}
        for text in texts:
            for line in text.splitlines():
                if line.strip():
                    row = json.loads(line)
                    out[row["custom_id"]] = _batch_line(row)
        return out   # a custom_id missing here expired unanswered: the engine resubmits it

    async def _complete_sdk(self, body: dict) -> Completion:
        body = dict(body)
        known = {k: body.pop(k) for k in ("model", "messages", "temperature", "top_p", "max_tokens", "stop",
                                           "response_format") if k in body}
        t0 = time.perf_counter()
        async with _sdk_errors():   # 429/5xx/timeouts/resets/torn bodies transient; 400/401/403/404/422 permanent
            raw = await self.sdk.chat.completions.with_raw_response.create(**known, extra_body=body or None)
            data = json.loads(raw.http_response.content)
        return parse_chat(data, time.perf_counter() - t0)

    async def aclose(self) -> None:
        await self.wire.aclose()
        await self.sdk.close()


PROMPT_ROLE = "prompt"   # a request's one message of this role is a raw prompt, sent as it is to /v1/completions


class PromptClient:
    """Raw prompts to an OpenAI-compatible /v1/completions endpoint (an evaluation server Agora started).

    The evaluator renders and tokenises every prompt in the student's chat format itself (`agora.chat.render`), so
    the server applies no template of its own and both evaluation backends see the same token ids. A request is one
    message `{"role": "prompt", "content": token ids}` (or text), so the engine's cache, retries and ledger work
    unchanged; `prompt_logprobs` (perplexity) and `token_ids` (the completion's, when asked) come back with it.
    """

    def __init__(self, *, model: str, base_url: str, timeout_s: float, concurrency: int):
        self.model = model
        self.wire = Wire(base_url.rstrip("/"), {"Content-Type": "application/json"}, timeout_s=timeout_s,
                         concurrency=concurrency)

    async def complete(self, messages, *, temperature, top_p, max_tokens, stop, response_format,
                       extra_body=None) -> Completion:
        if len(messages) != 1 or messages[0].get("role") != PROMPT_ROLE:
            raise PermanentError(f"PromptClient takes one {PROMPT_ROLE!r} message, got roles "
                                 f"{[m.get('role') for m in messages]}")
        body = {"model": self.model, "prompt": messages[0]["content"], "temperature": temperature, "top_p": top_p,
                "max_tokens": max_tokens, **({"stop": list(stop)} if stop else {}), **(extra_body or {})}
        data, latency = await self.wire.post("/completions", body)
        prompt = messages[0]["content"]
        return parse_completion(data, latency, prompt if isinstance(prompt, list) else None)

    async def aclose(self) -> None:
        await self.wire.aclose()
