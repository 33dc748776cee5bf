"""A loopback emulator of the OpenAI Batch API and the Anthropic Message Batches API, over a real server.

No local server implements a batch API, so tests of the batch path point the official SDKs at this one:
`openai.AsyncOpenAI(base_url=url + "/v1")` and `anthropic.AsyncAnthropic(base_url=url)`. It speaks their wire
formats (multipart file upload, batch objects, output and error JSONL files, results JSONL, unix-int and
RFC 3339 timestamps) and executes every request of a batch for real, with `workers` threads after
`process_delay_s`, against an upstream server: OpenAI lines go to upstream + "/chat/completions" (llama.cpp,
vLLM), Anthropic params to upstream + "/messages" (vLLM). Result files are shuffled, so a client must match
by custom_id.

On a fixed schedule of request numbers (0-based, across all batches, in submission order) it answers a
request instead of executing it: "expire" (OpenAI: a batch_expired line in the error file and the batch ends
"expired"; Anthropic: {"type": "expired"}), "500" or "400" (an error response; Anthropic: "errored"). A
resubmitted request gets a new number, so each fault fires once. It counts what it injected and every request
the upstream really completed (by custom_id), so tests can check failure counts and that nothing was paid for
twice; `batches` holds each batch's state for assertions.
"""
from __future__ import annotations

import email.parser
import json
import random
import re
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAULTS = ("expire", "500", "400")
WINDOW_S = 24 * 3600
EXPIRED = ("batch_expired", "This request could not be executed before the completion window expired.")
CANCELLED = ("batch_cancelled", "This request was not executed because the batch was cancelled.")
CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")   # Anthropic's rule for custom_id
ANTHROPIC_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                         404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
                         504: "timeout_error", 529: "overloaded_error"}   # else api_error


def _id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


def _rfc3339(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, timezone.utc).isoformat().replace("+00:00", "Z")


def _jsonl(rows: list[dict]) -> bytes:
    # "\n" only: the anthropic SDK's JSONLDecoder reads 64-byte chunks and would split a "\r\n" across two.
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()


def _multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """The fields of a multipart/form-data body: name -> (filename, bytes). (The `cgi` module is gone.)"""
    m = Message()
    m["content-type"] = content_type
    boundary = m.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise ValueError("multipart/form-data without a boundary")
    fields = {}
    for part in body.split(b"--" + boundary.encode())[1:]:
        if part.startswith(b"--"):   # the closing delimiter
            break
        head, sep, data = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("a multipart part without a blank line after its headers")
        h = email.parser.BytesHeaderParser().parsebytes(head + b"\r\n\r\n")
        name = h.get_param("name", header="content-disposition")
        if name:
            fields[str(name)] = (h.get_filename(), data.removesuffix(b"\r\n"))
    return fields


class ApiError(Exception):
    def __init__(self, status: int, message: str, kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind


class BatchServer:
    def __init__(self, upstream: str, *, faults: dict[int, str] | None = None, process_delay_s: float = 0.3,
                 workers: int = 2):
        bad = {k: v for k, v in (faults or {}).items() if v not in FAULTS}
        if bad:
            raise ValueError(f"unknown faults {bad}; known: {FAULTS}")
        self.upstream = upstream.rstrip("/")
        self.faults = dict(faults or {})
        self.process_delay_s = process_delay_s
        self.workers = workers
        self.n = 0                           # requests submitted so far, all batches: the next request's number
        self.injected: Counter = Counter()   # fault kind -> times injected
        self.served: Counter = Counter()     # custom_id -> times the upstream completed it
        self.files: dict[str, dict] = {}     # file id -> {"object": FileObject JSON, "data": bytes}
        # batch id -> {"api": "openai" | "anthropic", "object": the JSON the API returns, "requests": [{"custom_id",
        # "body", "n"}], "outcomes": {custom_id: "succeeded" | "expired" | "canceled" | "error <status>"}, ...}
        self.batches: dict[str, dict] = {}
        self.lock = threading.Lock()
        self.closed = threading.Event()
        srv = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):  # quiet
                pass

            def do_GET(self):
                self._route("GET")

            def do_POST(self):
                self._route("POST")

            def _read_body(self) -> bytes:
                if "chunked" in self.headers.get("transfer-encoding", "").lower():
                    out = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return out
                        out += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("content-length", 0)))

            def _route(self, method: str):
                path = self.path.split("?", 1)[0].rstrip("/")
                anthropic = path.startswith("/v1/messages")
                try:
                    body = self._read_body() if method == "POST" else b""
                    status, data, ctype = srv._handle(method, path, self.headers.get("content-type", ""), body)
                except ApiError as e:
                    status, ctype = e.status, "application/json"
                    if anthropic:
                        err = {"type": "error", "error": {"type": e.kind, "message": e.message}}
                    else:
                        err = {"error": {"message": e.message, "type": e.kind, "param": None, "code": None}}
                    data = json.dumps(err).encode()
                self._reply(status, data, ctype)

            def _reply(self, status, data, ctype):
                rid = _id("req_")
                self.send_response(status)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(data)))
                self.send_header("x-request-id", rid)   # what the openai SDK reads
                self.send_header("request-id", rid)     # what the anthropic SDK reads
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up or was killed
                    self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "BatchServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.closed.set()   # batches still running stop executing requests
        self.server.shutdown()
        self.server.server_close()

    # ---- routing ----------------------------------------------------------------------------------------------
    def _handle(self, method: str, path: str, ctype: str, body: bytes) -> tuple[int, bytes, str]:
        parts = path.strip("/").split("/")
        js = "application/json"
        if parts[:1] != ["v1"]:
            raise ApiError(404, f"no route {method} {path}", "not_found_error")
        parts = parts[1:]
        if parts[:2] == ["messages", "batches"]:
            rest = parts[2:]
            if method == "POST" and not rest:
                return 200, self._json(self._anthropic_create(self._body_json(body))), js
            if method == "GET" and not rest:
                with self.lock:
                    data = [st["object"] for st in reversed(self.batches.values()) if st["api"] == "anthropic"]
                page = {"data": data, "has_more": False, "first_id": data[0]["id"] if data else None,
                        "last_id": data[-1]["id"] if data else None}
                return 200, self._json(page), js
            st = self._batch(rest[0], "anthropic")
            if method == "GET" and len(rest) == 1:
                return 200, self._json(st["object"]), js
            if method == "GET" and rest[1:] == ["results"]:
                with self.lock:
                    results = st.get("results")
                if results is None:
                    raise ApiError(404, f"Message batch {rest[0]} has not ended; results are not available yet",
                                   "not_found_error")
                return 200, results, "application/x-jsonl"
            if method == "POST" and rest[1:] == ["cancel"]:
                return 200, self._json(self._cancel(st)), js
        elif parts[:1] == ["files"]:
            if method == "POST" and len(parts) == 1:
                return 200, self._json(self._upload(ctype, body)), js
            f = self.files.get(parts[1]) if len(parts) > 1 else None
            if f is None:
                raise ApiError(404, f"No such File object: {parts[1] if len(parts) > 1 else ''}")
            if method == "GET" and len(parts) == 2:
                return 200, self._json(f["object"]), js
            if method == "GET" and parts[2:] == ["content"]:
                return 200, f["data"], "application/octet-stream"
        elif parts[:1] == ["batches"]:
            if method == "POST" and len(parts) == 1:
                return 200, self._json(self._openai_create(self._body_json(body))), js
            if method == "GET" and len(parts) == 1:
                with self.lock:
                    data = [st["object"] for st in reversed(self.batches.values()) if st["api"] == "openai"]
                page = {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
                        "last_id": data[-1]["id"] if data else None, "has_more": False}
                return 200, self._json(page), js
            st = self._batch(parts[1], "openai")
            if method == "GET" and len(parts) == 2:
                return 200, self._json(st["object"]), js
            if method == "POST" and parts[2:] == ["cancel"]:
                return 200, self._json(self._cancel(st)), js
        raise ApiError(404, f"no route {method} {path}", "not_found_error")

    def _json(self, obj) -> bytes:
        with self.lock:   # batch objects change under the workers
            return json.dumps(obj, ensure_ascii=False).encode()

    @staticmethod
    def _body_json(body: bytes) -> dict:
        try:
            obj = json.loads(body)
        except ValueError:
            raise ApiError(400, "The request body is not valid JSON") from None
        if not isinstance(obj, dict):
            raise ApiError(400, "The request body must be a JSON object")
        return obj

    def _batch(self, bid: str, api: str) -> dict:
        st = self.batches.get(bid)
        if st is None or st["api"] != api:
            raise ApiError(404, f"No batch found with id '{bid}'", "not_found_error")
        return st

    def _number(self, requests: list[dict]) -> None:
        """Give each request its global number, in submission order (call under the lock)."""
        for r in requests:
            r["n"] = self.n
            self.n += 1

    # ---- OpenAI -----------------------------------------------------------------------------------------------
    def _upload(self, ctype: str, body: bytes) -> dict:
        if not ctype.lower().startswith("multipart/form-data"):
            raise ApiError(400, f"files.create needs multipart/form-data, got {ctype!r}")
        try:
            fields = _multipart(ctype, body)
        except ValueError as e:
            raise ApiError(400, f"malformed multipart body: {e}") from None
        if "file" not in fields or "purpose" not in fields:
            raise ApiError(400, f"files.create needs the fields 'file' and 'purpose', got {sorted(fields)}")
        purpose = fields["purpose"][1].decode()
        if purpose != "batch":
            raise ApiError(400, f"this emulator only takes purpose='batch', got {purpose!r}")
        filename, data = fields["file"]
        return self._store(filename or "upload.jsonl", data, "batch")["object"]

    def _store(self, filename: str, data: bytes, purpose: str) -> dict:
        fid = _id("file-")
        f = {"object": {"id": fid, "object": "file", "bytes": len(data), "created_at": int(time.time()),
                        "filename": filename, "purpose": purpose, "status": "processed", "expires_at": None,
                        "status_details": None},
             "data": data}
        with self.lock:
            self.files[fid] = f
        return f

    def _openai_create(self, req: dict) -> dict:
        for k in ("input_file_id", "endpoint", "completion_window"):
            if k not in req:
                raise ApiError(400, f"Missing required parameter: '{k}'.")
        if req["endpoint"] != "/v1/chat/completions":
            raise ApiError(400, f"this emulator only runs endpoint '/v1/chat/completions', got {req['endpoint']!r}")
        if req["completion_window"] != "24h":
            raise ApiError(400, f"Invalid completion_window {req['completion_window']!r}: only '24h' is supported")
        f = self.files.get(req["input_file_id"])
        if f is None:
            raise ApiError(404, f"No such File object: {req['input_file_id']}")
        requests, errors = self._parse_input(f["data"], req["endpoint"])
        now = int(time.time())
        bid = _id("batch_")
        obj = {"id": bid, "object": "batch", "endpoint": req["endpoint"], "errors": None,
               "input_file_id": req["input_file_id"], "completion_window": "24h", "status": "validating",
               "output_file_id": None, "error_file_id": None, "created_at": now, "in_progress_at": None,
               "expires_at": now + WINDOW_S, "finalizing_at": None, "completed_at": None, "failed_at": None,
               "expired_at": None, "cancelling_at": None, "cancelled_at": None,
               "request_counts": {"total": 0, "completed": 0, "failed": 0}, "metadata": req.get("metadata"),
               "model": requests[0]["body"].get("model") if requests and not errors else None,
               "usage": {"input_tokens": 0, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 0,
                         "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 0}}
        st = {"api": "openai", "object": obj, "requests": [] if errors else requests, "errors": errors,
              "outcomes": {}, "rows": {}, "cancel": False}
        with self.lock:
            if not errors:
                self._number(requests)
            self.batches[bid] = st
        threading.Thread(target=self._run, args=(bid,), daemon=True).start()
        return obj

    @staticmethod
    def _parse_input(data: bytes, endpoint: str) -> tuple[list[dict], list[dict]]:
        """The requests of an input file, or the errors that fail the batch (as OpenAI reports them)."""
        requests, errors, seen, model = [], [], set(), None
        lines = [(i, ln) for i, ln in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1)
                 if ln.strip()]
        if not lines:
            return [], [{"code": "empty_file", "line": None, "message": "The input file is empty.", "param": None}]
        for i, ln in lines:
            def err(code, message, param=None, i=i):
                errors.append({"code": code, "line": i, "message": message, "param": param})
            try:
                row = json.loads(ln)
            except ValueError:
                err("invalid_json_line", "This line is not parseable as valid JSON.")
                continue
            if not isinstance(row, dict):
                err("invalid_json_line", "This line is not a JSON object.")
                continue
            missing = [k for k in ("custom_id", "method", "url", "body") if k not in row]
            if missing:
                err("missing_required_parameter", f"Missing required parameter: '{missing[0]}'.", missing[0])
                continue
            if row["method"] != "POST":
                err("invalid_method", f"Only POST is supported, got {row['method']!r}.", "method")
            elif row["url"] != endpoint:
                err("url_mismatch", f"The URL provided for this request does not match the batch endpoint "
                                    f"{endpoint}.", "url")
            elif not isinstance(row["body"], dict):
                err("invalid_request", "The request body must be a JSON object.", "body")
            elif row["custom_id"] in seen:
                err("duplicate_custom_id", "The custom_id for this request is a duplicate of another request. "
                                           "The custom_id parameter must be unique for each request in a batch.",
                    "custom_id")
            elif model is not None and row["body"].get("model") != model:
                err("model_mismatch", "The provided model does not match the model of other requests in this "
                                      "batch.", "body.model")
            else:
                seen.add(row["custom_id"])
                model = row["body"].get("model")
                requests.append({"custom_id": row["custom_id"], "body": row["body"]})
        return requests, errors

    # ---- Anthropic --------------------------------------------------------------------------------------------
    def _anthropic_create(self, req: dict) -> dict:
        requests = req.get("requests")
        if not isinstance(requests, list) or not requests:
            raise ApiError(400, "requests: a non-empty list is required")
        seen = set()
        for i, r in enumerate(requests):
            cid = r.get("custom_id") if isinstance(r, dict) else None
            if not isinstance(cid, str) or not CUSTOM_ID.match(cid):
                raise ApiError(400, f"requests.{i}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'")
            if cid in seen:
                raise ApiError(400, f"requests.{i}.custom_id: Duplicate custom_id {cid!r}; custom_id must be "
                                    "unique within a batch")
            seen.add(cid)
            params = r.get("params")
            if not isinstance(params, dict):
                raise ApiError(400, f"requests.{i}.params: Field required")
            for k in ("model", "max_tokens", "messages"):
                if k not in params:
                    raise ApiError(400, f"requests.{i}.params.{k}: Field required")
            if params.get("stream"):
                raise ApiError(400, f"requests.{i}.params.stream: streaming is not supported in batches")
        now = time.time()
        bid = _id("msgbatch_")
        obj = {"id": bid, "type": "message_batch", "processing_status": "in_progress",
               "request_counts": {"processing": len(requests), "succeeded": 0, "errored": 0, "canceled": 0,
                                  "expired": 0},
               "ended_at": None, "created_at": _rfc3339(now), "expires_at": _rfc3339(now + WINDOW_S),
               "archived_at": None, "cancel_initiated_at": None, "results_url": None}
        st = {"api": "anthropic", "object": obj, "outcomes": {}, "rows": {}, "cancel": False,
              "requests": [{"custom_id": r["custom_id"], "body": r["params"]} for r in requests], "results": None}
        with self.lock:
            self._number(st["requests"])
            self.batches[bid] = st
        threading.Thread(target=self._run, args=(bid,), daemon=True).start()
        return obj

    # ---- both -------------------------------------------------------------------------------------------------
    def _cancel(self, st: dict) -> dict:
        obj = st["object"]
        with self.lock:
            if st["api"] == "openai":
                if obj["status"] in ("validating", "in_progress"):
                    st["cancel"] = True
                    obj["status"], obj["cancelling_at"] = "cancelling", int(time.time())
                elif obj["status"] != "cancelling":
                    raise ApiError(409, f"Cannot cancel a batch with status '{obj['status']}'.")
            elif obj["processing_status"] == "in_progress":
                st["cancel"] = True
                obj["processing_status"], obj["cancel_initiated_at"] = "canceling", _rfc3339(time.time())
        return obj

    def _run(self, bid: str) -> None:
        st = self.batches[bid]
        obj, openai = st["object"], st["api"] == "openai"
        time.sleep(self.process_delay_s)
        if openai:
            with self.lock:
                now = int(time.time())
                if st["errors"]:
                    obj.update(status="failed", failed_at=now, errors={"object": "list", "data": st["errors"]})
                    return
                obj["request_counts"]["total"] = len(st["requests"])
                if not st["cancel"]:
                    obj.update(status="in_progress", in_progress_at=now)
        with ThreadPoolExecutor(self.workers) as pool:
            list(pool.map(lambda r: self._safe(st, r), st["requests"]))
        with self.lock:
            if openai and not st["cancel"]:
                obj.update(status="finalizing", finalizing_at=int(time.time()))
        self._finish(st)

    def _safe(self, st: dict, r: dict) -> None:
        try:
            self._one(st, r)
        except Exception as e:  # noqa: BLE001  a bug here must not leave the batch in progress forever
            self._settle(st, r["custom_id"], 500, {"error": {"message": f"batchserver: {e!r}", "type": "server_error",
                                                             "param": None, "code": None}})

    def _one(self, st: dict, r: dict) -> None:
        cid, openai = r["custom_id"], st["api"] == "openai"
        with self.lock:
            fault = None if st["cancel"] or self.closed.is_set() else self.faults.pop(r["n"], None)
            if fault:
                self.injected[fault] += 1
        if st["cancel"] or self.closed.is_set():
            return self._settle(st, cid, "canceled", None)
        if fault == "expire":
            return self._settle(st, cid, "expired", None)
        if fault in ("500", "400"):
            status = int(fault)
            kind = "invalid_request_error" if status == 400 else ("server_error" if openai else "api_error")
            return self._settle(st, cid, status, {"error": {"message": f"injected {fault}", "type": kind,
                                                            "param": None, "code": None}})
        path = "/chat/completions" if openai else "/messages"
        req = urllib.request.Request(self.upstream + path, data=json.dumps(r["body"]).encode(), method="POST",
                                     headers={"content-type": "application/json", "anthropic-version": "2023-06-01"})
        try:
            with urllib.request.urlopen(req, timeout=600) as resp:
                status, data = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            status, data = e.code, e.read()
        except OSError as e:   # refused, reset, timed out
            return self._settle(st, cid, 500, {"error": {"message": f"upstream failed: {e}", "type": "server_error",
                                                         "param": None, "code": None}})
        try:
            body = json.loads(data)
        except ValueError:
            text = data[:500].decode(errors="replace")
            status, body = (500 if status == 200 else status), {"error": {"message": text, "type": "server_error"}}
        if status == 200:
            with self.lock:
                self.served[cid] += 1
        self._settle(st, cid, status, body)

    def _settle(self, st: dict, cid: str, status: int | str, body: dict | None) -> None:
        """Record one request's outcome and its row in the result file(s)."""
        openai = st["api"] == "openai"
        if openai:
            if status in ("expired", "canceled"):
                code, what = EXPIRED if status == "expired" else CANCELLED
                row = {"id": _id("batch_req_"), "custom_id": cid, "response": None,
                       "error": {"code": code, "message": what}}
            else:
                row = {"id": _id("batch_req_"), "custom_id": cid,
                       "response": {"status_code": status, "request_id": _id("req_"), "body": body}, "error": None}
        elif status in ("expired", "canceled"):
            row = {"custom_id": cid, "result": {"type": status}}
        elif status == 200:
            row = {"custom_id": cid, "result": {"type": "succeeded", "message": body}}
        else:
            err = (body or {}).get("error")
            msg = (err.get("message") if isinstance(err, dict) else None) or json.dumps(body)[:500]
            row = {"custom_id": cid, "result": {"type": "errored", "error": {
                "type": "error", "error": {"type": ANTHROPIC_ERROR_TYPES.get(status, "api_error"), "message": msg}}}}
        with self.lock:
            st["rows"][cid] = row
            st["outcomes"][cid] = status if isinstance(status, str) else ("succeeded" if status == 200
                                                                           else f"error {status}")
            if openai:   # OpenAI counts as it goes; Anthropic only once the batch ends
                counts = st["object"]["request_counts"]
                counts["completed" if status == 200 else "failed"] += 1
                usage = (body or {}).get("usage") if status == 200 else None
                if isinstance(usage, dict):
                    u = st["object"]["usage"]
                    u["input_tokens"] += usage.get("prompt_tokens", 0)
                    u["output_tokens"] += usage.get("completion_tokens", 0)
                    u["total_tokens"] = u["input_tokens"] + u["output_tokens"]

    def _finish(self, st: dict) -> None:
        obj, bid = st["object"], st["object"]["id"]
        with self.lock:
            rows = [st["rows"][r["custom_id"]] for r in st["requests"] if r["custom_id"] in st["rows"]]
            outcomes = dict(st["outcomes"])
        random.shuffle(rows)   # the APIs promise no order: clients must match by custom_id
        now = time.time()
        if st["api"] == "openai":
            ok = [r for r in rows if r["response"] and r["response"]["status_code"] == 200]
            bad = [r for r in rows if not (r["response"] and r["response"]["status_code"] == 200)]
            out = self._store(f"batch_{bid}_output.jsonl", _jsonl(ok), "batch_output") if ok else None
            err = self._store(f"batch_{bid}_error.jsonl", _jsonl(bad), "batch_output") if bad else None
            with self.lock:
                obj.update(output_file_id=out and out["object"]["id"], error_file_id=err and err["object"]["id"])
                if st["cancel"]:
                    obj.update(status="cancelled", cancelled_at=int(now))
                elif "expired" in outcomes.values():   # requests left unexecuted when the window closed
                    obj.update(status="expired", expired_at=int(now))
                else:
                    obj.update(status="completed", completed_at=int(now))
        else:
            counts = Counter(r["result"]["type"] for r in rows)
            with self.lock:
                st["results"] = _jsonl(rows)
                obj["request_counts"] = {"processing": 0, "succeeded": counts["succeeded"],
                                         "errored": counts["errored"], "canceled": counts["canceled"],
                                         "expired": counts["expired"]}
                obj.update(processing_status="ended", ended_at=_rfc3339(now),
                           results_url=f"{self.url}/v1/messages/batches/{bid}/results")
