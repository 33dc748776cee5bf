"""OpenAI, OpenRouter, vLLM, llama.cpp and any OpenAI-compatible server, through the official `openai` SDK."""
from __future__ import annotations

import time

import httpx
import openai

from agora.generators.client import Completion, PermanentError


class OpenAIClient:
    def __init__(self, *, model: str, base_url: str | None, api_key: str | None, max_retries: int,
                 timeout_s: float, concurrency: int):
        self.model = model
        # The SDK retries 408/409/429/5xx and connection errors with backoff and honours retry-after.
        # A pool as large as the concurrency bound keeps requests from queueing inside httpx.
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self.sdk = openai.AsyncOpenAI(base_url=base_url, api_key=api_key or "not-needed", max_retries=max_retries,
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
        except (openai.BadRequestError, openai.AuthenticationError, openai.PermissionDeniedError,
                openai.NotFoundError, openai.UnprocessableEntityError) as e:
            raise PermanentError(f"{type(e).__name__}: {e}") from e
        resp = raw.parse()
        retries = int(raw.retries_taken)
        choice = resp.choices[0]
        usage = resp.usage
        return Completion(text=choice.message.content or "", finish_reason=choice.finish_reason or "unknown",
                          input_tokens=usage.prompt_tokens if usage else 0,
                          output_tokens=usage.completion_tokens if usage else 0,
                          latency_s=time.perf_counter() - t0, retries=retries)

    async def aclose(self) -> None:
        await self.sdk.close()
