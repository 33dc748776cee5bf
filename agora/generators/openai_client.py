"""OpenAI, OpenRouter, vLLM, llama.cpp and any OpenAI-compatible server, through the official `openai` SDK."""
from __future__ import annotations

import json
import time

import httpx
import openai

from agora.generators.client import Completion, PermanentError, TransientError, retry_after_seconds

_PERMANENT = (openai.BadRequestError, openai.AuthenticationError, openai.PermissionDeniedError,
              openai.NotFoundError, openai.UnprocessableEntityError)


class OpenAIClient:
    def __init__(self, *, model: str, base_url: str | None, api_key: str | None, timeout_s: float,
                 concurrency: int):
        self.model = model
        # Retries belong to the engine (counted, jittered, retry-after honoured, torn bodies included),
        # so the SDK makes exactly one attempt. A pool as large as the concurrency bound keeps
        # requests from queueing inside httpx.
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self.sdk = openai.AsyncOpenAI(base_url=base_url, api_key=api_key or "not-needed", max_retries=0,
                                      timeout=timeout_s, http_client=openai.DefaultAsyncHttpxClient(limits=limits))

    async def complete(self, messages, *, temperature, top_p, max_tokens, stop, response_format,
                       extra_body=None) -> Completion:
        kw = {"response_format": {"type": response_format}} if response_format else {}
        if extra_body:
            kw["extra_body"] = extra_body
        t0 = time.perf_counter()
        try:
            raw = await self.sdk.chat.completions.with_raw_response.create(
                model=self.model, messages=messages, temperature=temperature, top_p=top_p,
                max_tokens=max_tokens, stop=stop or None, **kw)
            resp = raw.parse()
            choice = resp.choices[0]
        except _PERMANENT as e:
            raise PermanentError(f"{type(e).__name__}: {e}") from e
        except openai.APIStatusError as e:  # 408, 409, 429, 5xx
            raise TransientError(f"HTTP {e.status_code}: {type(e).__name__}", retry_after_seconds(e.response.headers),
                                 rate_limited=e.status_code == 429) from e
        except (openai.APIConnectionError, openai.APIResponseValidationError, json.JSONDecodeError,
                httpx.HTTPError, IndexError, AttributeError, TypeError) as e:  # timeouts, resets, torn bodies
            raise TransientError(f"{type(e).__name__}: {e}") from e
        usage = resp.usage
        return Completion(text=choice.message.content or "", finish_reason=choice.finish_reason or "unknown",
                          input_tokens=usage.prompt_tokens if usage else 0,
                          output_tokens=usage.completion_tokens if usage else 0,
                          latency_s=time.perf_counter() - t0)

    async def aclose(self) -> None:
        await self.sdk.close()
