"""Claude through the official `anthropic` SDK (Messages API), behind the same `ChatClient` interface."""
from __future__ import annotations

import json
import time

import anthropic
import httpx

from agora.generators.client import Completion, PermanentError, TransientError, retry_after_seconds

_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "refusal": "content_filter"}
_PERMANENT = (anthropic.BadRequestError, anthropic.AuthenticationError, anthropic.PermissionDeniedError,
              anthropic.NotFoundError, anthropic.UnprocessableEntityError)


class AnthropicClient:
    def __init__(self, *, model: str, base_url: str | None, api_key: str | None, timeout_s: float):
        self.model = model
        self.sdk = anthropic.AsyncAnthropic(base_url=base_url, api_key=api_key or "not-needed",
                                            max_retries=0, timeout=timeout_s)  # the engine retries

    async def complete(self, messages, *, temperature, top_p, max_tokens, stop, response_format,
                       extra_body=None) -> Completion:
        system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
        chat = [m for m in messages if m["role"] != "system"]
        kw = {"system": system} if system else {}
        t0 = time.perf_counter()
        try:
            raw = await self.sdk.messages.with_raw_response.create(
                model=self.model, messages=chat, temperature=temperature, top_p=top_p, max_tokens=max_tokens,
                stop_sequences=stop or anthropic.NOT_GIVEN, extra_body=extra_body, **kw)
            msg = raw.parse()
            text = "".join(b.text for b in msg.content if getattr(b, "type", "") == "text")
        except _PERMANENT as e:
            raise PermanentError(f"{type(e).__name__}: {e}") from e
        except anthropic.APIStatusError as e:  # 408, 409, 429, 5xx, 529 overloaded
            raise TransientError(f"HTTP {e.status_code}: {type(e).__name__}", retry_after_seconds(e.response.headers),
                                 rate_limited=e.status_code == 429) from e
        except (anthropic.APIConnectionError, anthropic.APIResponseValidationError, json.JSONDecodeError,
                httpx.HTTPError, AttributeError, TypeError) as e:
            raise TransientError(f"{type(e).__name__}: {e}") from e
        return Completion(text=text, finish_reason=_FINISH.get(msg.stop_reason or "", msg.stop_reason or "unknown"),
                          input_tokens=msg.usage.input_tokens, output_tokens=msg.usage.output_tokens,
                          latency_s=time.perf_counter() - t0)

    async def aclose(self) -> None:
        await self.sdk.close()
