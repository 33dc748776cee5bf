"""A loopback stand-in for a paid API, cheap enough on CPU that the client under test is what gets measured.

It answers OpenAI `/v1/chat/completions` and Anthropic `/v1/messages` after a fixed latency, with `usage`,
over HTTP/1.1 keep-alive, and counts every request. With `--rpm` it enforces a rate limit the way the
providers do: a token bucket refilled continuously (burst of one second's worth), and a 429 carrying
`retry-after-ms` and `retry-after` when it is empty. Raw asyncio, no framework: a framework's per-request
CPU would eat into the 2 cores the client needs.

    python benchmarks/latency_server.py --port 8711 --latency 0.2 [--rpm 3000]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import time

_OPENAI = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 0, "model": "bench",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "42"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 20, "completion_tokens": 8, "total_tokens": 28}}).encode()
_ANTHROPIC = json.dumps({
    "id": "msg_bench", "type": "message", "role": "assistant", "model": "bench",
    "content": [{"type": "text", "text": "42"}], "stop_reason": "end_turn", "stop_sequence": None,
    "usage": {"input_tokens": 20, "output_tokens": 8}}).encode()
_LIMITED = json.dumps({"error": {"type": "rate_limit_error", "message": "rate limited"}}).encode()


class Bucket:
    def __init__(self, rpm: float):
        self.rate = rpm / 60.0
        self.capacity = max(1.0, self.rate)
        self.tokens = self.capacity
        self.t = time.monotonic()

    def take(self) -> float:
        """0 if admitted, else the seconds until a token is available."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.t) * self.rate)
        self.t = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class Stats:
    def __init__(self):
        self.ok = 0
        self.limited = 0


def _response(status: str, body: bytes, extra: str = "") -> bytes:
    return (f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            f"{extra}\r\n").encode() + body


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, latency: float,
                  bucket: Bucket | None, stats: Stats) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            path = lines[0].split(" ")[1]
            length = 0
            for line in lines[1:]:
                if line[:15].lower() == "content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            if path.startswith("/stats"):
                writer.write(_response("200 OK", json.dumps(vars(stats)).encode()))
                continue
            wait = bucket.take() if bucket else 0.0
            if wait:
                stats.limited += 1
                writer.write(_response("429 Too Many Requests", _LIMITED,
                                       f"retry-after-ms: {int(wait * 1000) + 1}\r\nretry-after: {wait:.3f}\r\n"))
                continue
            await asyncio.sleep(latency)
            stats.ok += 1
            writer.write(_response("200 OK", _ANTHROPIC if path.endswith("/messages") else _OPENAI))
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def serve(port: int, latency: float, rpm: float | None) -> None:
    stats, bucket = Stats(), (Bucket(rpm) if rpm else None)
    server = await asyncio.start_server(lambda r, w: _handle(r, w, latency, bucket, stats), "127.0.0.1", port,
                                        backlog=4096)
    async with server:
        await server.serve_forever()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--latency", type=float, default=0.2)
    p.add_argument("--rpm", type=float, default=None)
    a = p.parse_args()
    try:
        import uvloop  # noqa: F401  (not required; only used when present)
        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(a.port, a.latency, a.rpm))


if __name__ == "__main__":
    main()
