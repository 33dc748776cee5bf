"""Claude through the official `anthropic` SDK (Messages API), behind the same `ChatClient` interface."""
from __future__ import annotations

import time

import anthropic

from agora.generators.client import Completion, PermanentError

_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "refusal": "content_filter"}


class AnthropicClient:
    def __init__(self, *, model: str, base_url: str | None, api_key: str | None, max_retries: int, timeout_s: float):
        self.model = model
        self.sdk = anthropic.AsyncAnthropic(base_url=base_url, api_key=api_key or "not-needed",
                                            max_retries=max_retries, timeout=timeout_s)

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
        except (anthropic.BadRequestError, anthropic.AuthenticationError, anthropic.PermissionDeniedError,
                anthropic.NotFoundError, anthropic.UnprocessableEntityError) as e:
            raise PermanentError(f"{type(e).__name__}: {e}") from e
        msg = raw.parse()
        text = "".join(b.text for b in msg.content if getattr(b, "type", "") == "text")
        return Completion(text=text, finish_reason=_FINISH.get(msg.stop_reason or "", msg.stop_reason or "unknown"),
                          input_tokens=msg.usage.input_tokens, output_tokens=msg.usage.output_tokens,
                          latency_s=time.perf_counter() - t0, retries=int(raw.retries_taken))

    async def aclose(self) -> None:
        await self.sdk.close()
