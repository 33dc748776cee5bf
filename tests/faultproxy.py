"""A fault-injecting HTTP proxy on loopback, in front of a real OpenAI-compatible server.

It forwards POSTs to the upstream and, on a fixed schedule of request numbers, answers instead with
429 + retry-after, 500, a connection reset, a truncated 200 body, or a hang past the client's timeout.
It counts what it injected and every request the upstream really served (by body hash), so tests can
check retries, failure counts and that nothing was paid for twice. `garble(body)` picks requests by content
instead: those it says yes to get a well-formed 200 whose reply is unparsable (`[END]` alone, an empty example),
so a test can make chosen instructions fail to parse, once or every time, whatever order they arrive in.
"""
from __future__ import annotations

import hashlib
import json
import socket
import struct
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAULTS = ("429", "500", "reset", "truncate", "hang", "garble")


class FaultProxy:
    def __init__(self, upstream: str, schedule: dict[int, str] | None = None, hang_s: float = 0.0,
                 garble: Callable[[dict], bool] | None = None):
        self.upstream = upstream.rstrip("/")
        self.schedule = schedule or {}
        self.garble = garble
        self.hang_s = hang_s
        self.n = 0
        self.injected: Counter = Counter()
        self.served: Counter = Counter()   # body hash -> times the upstream completed it
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):  # quiet
                pass

            def do_GET(self):
                self._forward(None)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with proxy.lock:
                    proxy.n += 1
                    fault = proxy.schedule.get(proxy.n)
                    if not fault and proxy.garble is not None and proxy.garble(json.loads(body)):
                        fault = "garble"
                    if fault:
                        proxy.injected[fault] += 1
                if fault == "429":
                    return self._reply(429, b'{"error": {"message": "rate limited"}}', {"retry-after": "0.5"})
                if fault == "500":
                    return self._reply(500, b'{"error": {"message": "boom"}}')
                if fault == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                    self.close_connection = True
                    return None
                if fault == "hang":
                    time.sleep(proxy.hang_s)
                    self.close_connection = True
                    return None
                if fault == "garble":
                    reply = {"id": "garbled", "object": "chat.completion", "created": 0, "model": "garbled",
                             "choices": [{"index": 0, "message": {"role": "assistant", "content": "[END]"},
                                          "finish_reason": "stop"}],
                             "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
                    return self._reply(200, json.dumps(reply).encode())
                self._forward(body, truncate=fault == "truncate")

            def _forward(self, body, truncate=False):
                req = urllib.request.Request(proxy.upstream + self.path.removeprefix("/v1"), data=body,
                                             method="POST" if body is not None else "GET",
                                             headers={"content-type": "application/json"})
                try:
                    with urllib.request.urlopen(req, timeout=600) as r:
                        status, data = r.status, r.read()
                except urllib.error.HTTPError as e:
                    status, data = e.code, e.read()
                if body is not None and status == 200:
                    with proxy.lock:
                        proxy.served[hashlib.sha256(body).hexdigest()] += 1
                if truncate:
                    data = data[: len(data) // 2]
                self._reply(status, data)

            def _reply(self, status, data, headers=None):
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout) or was killed
                    self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FaultProxy":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
