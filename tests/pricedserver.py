"""A loopback stand-in for a paid OpenAI-compatible API, to check what the dollar budget buys.

The dollar cap and `budget=usd` can only be judged against replies that are priced like a paid API's:
`usage` says how many tokens went in and out, and the cost follows from the generator option's price
table. This server answers `/v1/chat/completions` after a fixed latency with a math example that
Agora keeps (free_form, instance_generation and response_generation alike), `finish_reason: "stop"`,
and a `usage` of prompt_tokens = (characters of all message contents) // 4 and a fixed number of
completion tokens (64 unless told), so a test knows what each request costs. The problem in the reply
varies with a hash of the request, so rows are distinct. It counts the requests it answered
(`served`), which a test compares with the ledger's `sent`; `GET /stats` returns the same count.

Raw asyncio on a background thread, no framework: it sustains 64 concurrent requests at 200 ms on
2 cores next to the client under test (`python tests/pricedserver.py --selftest` measures it).

    with PricedServer(latency_s=0.2) as srv:      # srv.url == "http://127.0.0.1:PORT/v1"; srv.served
        ...
    python tests/pricedserver.py --port 8712 --latency 0.2 --completion-tokens 64   # prints its URL, serves
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import threading
import time


def reply_text(messages: list[dict]) -> str:
    """A kept math example: a problem and a worked answer for instance generation, the answer alone when the
    prompt already ends with the problem's `OUTPUT:` (response generation)."""
    last = str(messages[-1].get("content", "")) if messages else ""
    h = int.from_bytes(hashlib.blake2b(json.dumps(messages, sort_keys=True).encode(), digest_size=8).digest(),
                       "big")
    a, b, c = 3 + h % 97, 2 + (h >> 8) % 41, 1 + (h >> 16) % 29
    boxes = a * b
    answer = boxes - c
    problem = (f"A warehouse shelf holds {a} crates with {b} jars in each crate. On lot {h % 100003} a clerk "
               f"removes {c} jars for inspection. How many jars stay on the shelf?")
    solution = (f"The shelf holds {a} * {b} = {boxes} jars. After removing {c}, {boxes} - {c} = {answer} jars "
                f"remain. [RESULT] {answer} [/RESULT]")
    if last.rstrip().endswith("OUTPUT:"):
        return solution
    return f"INPUT: {problem}\nOUTPUT: {solution}"


def completion(body: bytes, completion_tokens: int) -> bytes:
    req = json.loads(body)
    messages = req.get("messages") or []
    chars = sum(len(m["content"]) if isinstance(m.get("content"), str) else
                sum(len(p.get("text", "")) for p in m.get("content") or []) for m in messages)
    prompt_tokens = chars // 4
    return json.dumps({
        "id": "chatcmpl-priced", "object": "chat.completion", "created": int(time.time()),
        "model": req.get("model", "priced"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply_text(messages)},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens}}).encode()


def _response(status: str, body: bytes) -> bytes:
    return (f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            f"\r\n").encode() + body


class PricedServer:
    """The server on its own event loop in a daemon thread; `served` counts the completions it answered."""

    def __init__(self, latency_s: float = 0.2, completion_tokens: int = 64, port: int = 0):
        self.latency_s = latency_s
        self.completion_tokens = completion_tokens
        self.port = port
        self.served = 0
        self.authorizations: set[str] = set()   # the Authorization headers seen: proof that a key was sent
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, daemon=True, name="priced-server")

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path = lines[0].split(" ")[:2]
                length, chunked = 0, False
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    name = name.strip().lower()
                    if name == "content-length":
                        length = int(value)
                    elif name == "transfer-encoding" and "chunked" in value.lower():
                        chunked = True
                    elif name == "authorization":
                        self.authorizations.add(value.strip())
                body = await self._chunked(reader) if chunked else await reader.readexactly(length)
                if method == "GET" and path.rstrip("/").endswith("/stats"):
                    writer.write(_response("200 OK", json.dumps({"served": self.served}).encode()))
                elif method == "POST" and path.rstrip("/").endswith("/chat/completions"):
                    try:
                        reply = completion(body, self.completion_tokens)
                    except (ValueError, KeyError, TypeError) as e:
                        writer.write(_response("400 Bad Request",
                                               json.dumps({"error": {"message": f"bad request: {e}"}}).encode()))
                        continue
                    await asyncio.sleep(self.latency_s)
                    self.served += 1
                    writer.write(_response("200 OK", reply))
                else:
                    writer.write(_response("404 Not Found", b'{"error": {"message": "not found"}}'))
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    @staticmethod
    async def _chunked(reader: asyncio.StreamReader) -> bytes:
        out = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return out
            out += await reader.readexactly(size)
            await reader.readexactly(2)

    async def _serve(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, backlog=4096)
        self.port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._ready.set()
        async with self._server:
            try:
                await self._server.serve_forever()
            except asyncio.CancelledError:
                pass

    def _main(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as e:   # noqa: BLE001  (reported to the thread that waits for the server)
            self._error = e
            self._ready.set()
        finally:
            self._loop.close()

    def start(self) -> "PricedServer":
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None or not self.url:
            raise RuntimeError(f"the priced server did not start: {self._error!r}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._server is not None and not self._loop.is_closed():
            def close() -> None:
                self._server.close()
                for task in asyncio.all_tasks(self._loop):
                    task.cancel()
            try:
                self._loop.call_soon_threadsafe(close)
            except RuntimeError:   # the loop already closed
                pass
        self._thread.join(10)

    def __enter__(self) -> "PricedServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def selftest(concurrency: int, requests: int, latency_s: float) -> None:
    """Requests/s at `concurrency` against the ideal concurrency / latency (aiohttp client in this process)."""
    import aiohttp

    body = json.dumps({"model": "m", "messages": [{"role": "system", "content": "s" * 300},
                                                   {"role": "user", "content": "u" * 4500 + "\n\nINPUT:"}],
                       "max_tokens": 4096})

    async def go(url: str) -> float:
        todo = iter(range(requests))
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as s:
            async def worker() -> None:
                for _ in todo:
                    async with s.post(url + "/chat/completions", data=body) as r:
                        await r.read()
            t0 = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return time.perf_counter() - t0

    with PricedServer(latency_s=latency_s) as srv:
        seconds = asyncio.run(go(srv.url))
        ideal = concurrency / latency_s
        print(f"{srv.served} requests in {seconds:.2f} s: {srv.served / seconds:.0f} req/s at concurrency "
              f"{concurrency}, ideal {ideal:.0f} req/s ({srv.served / seconds / ideal:.0%})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0, help="0: any free port (the URL is printed)")
    p.add_argument("--latency", type=float, default=0.2, help="seconds before each reply")
    p.add_argument("--completion-tokens", type=int, default=64, help="usage.completion_tokens of every reply")
    p.add_argument("--selftest", action="store_true", help="measure requests/s at --concurrency and exit")
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--requests", type=int, default=2000)
    a = p.parse_args()
    if a.selftest:
        selftest(a.concurrency, a.requests, a.latency)
        return
    srv = PricedServer(a.latency, a.completion_tokens, a.port).start()
    print(srv.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
