#!/usr/bin/env python3
# Origin: ../shared/bench/fake_upstream.py (copied unchanged apart from this note).
"""Fake OpenAI-compatible upstream for gateway benchmarks.

A bare asyncio Protocol server (uvloop + httptools when installed) so that it is
never the bottleneck.  It answers:

  POST <anything>/chat/completions   non-streaming JSON, or SSE when body has "stream": true
  GET  <anything>/models             a one-model list
  GET  /health                       "ok"

Latency knobs (server-wide defaults from the command line, overridable per request):
  delay_ms        wait before the response starts (emulates time-to-first-token)
  chunks          number of content chunks in a streamed answer
  chunk_delay_ms  pause between streamed chunks (emulates inter-token latency)

Per-request overrides, in order of precedence (last wins):
  1. a path prefix   /cfg/delay_ms=50,chunks=20,chunk_delay_ms=5/v1/chat/completions
     (handy because a gateway's api_base can carry it: api_base=http://127.0.0.1:19000/cfg/delay_ms=50/v1)
  2. query string    /v1/chat/completions?delay_ms=50
  3. headers         x-fake-delay-ms, x-fake-chunks, x-fake-chunk-delay-ms
  4. the model name  "fake-stream~chunks=20~chunk_delay_ms=5" (survives any gateway that passes
     the model through, e.g. LiteLLM model: openai/fake-stream~chunks=20~chunk_delay_ms=5)

Run:  python fake_upstream.py --port 19000 [--workers 1] [--delay-ms 0] [--chunks 16] [--chunk-delay-ms 0]
"""
import argparse
import asyncio
import json
import os
import signal
import socket
import sys
import time
from urllib.parse import parse_qsl

try:
    import orjson

    def jdumps(o):
        return orjson.dumps(o)

    jloads = orjson.loads
except ImportError:  # pragma: no cover
    def jdumps(o):
        return json.dumps(o, separators=(",", ":")).encode()

    jloads = json.loads

try:
    import httptools
except ImportError:  # pragma: no cover
    sys.exit("fake_upstream needs httptools (pip install httptools)")

KNOBS = ("delay_ms", "chunks", "chunk_delay_ms")
HDR_KNOBS = {b"x-fake-delay-ms": "delay_ms", b"x-fake-chunks": "chunks", b"x-fake-chunk-delay-ms": "chunk_delay_ms"}

ANSWER_WORDS = ("The quick brown fox jumps over the lazy dog while the gateway "
                "benchmark measures how much latency each proxy adds to a request. ").split()


def completion_body(model: str, n_tokens: int) -> bytes:
    text = " ".join(ANSWER_WORDS[i % len(ANSWER_WORDS)] for i in range(n_tokens))
    return jdumps({
        "id": "chatcmpl-fake0000000000000000000000",
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text, "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }],
        "usage": {"prompt_tokens": 25, "completion_tokens": n_tokens, "total_tokens": 25 + n_tokens},
    })


def sse_events(model: str, n_chunks: int) -> list:
    """Return the list of SSE events (bytes) of one streamed answer, [DONE] included."""
    base = {"id": "chatcmpl-fake0000000000000000000000", "object": "chat.completion.chunk",
            "created": 1700000000, "model": model, "system_fingerprint": "fp_fake"}
    ev = []

    def chunk(delta, finish=None, usage=None):
        d = dict(base, choices=[{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}])
        if usage is not None:
            d["usage"] = usage
        return b"data: " + jdumps(d) + b"\n\n"

    ev.append(chunk({"role": "assistant", "content": ""}))
    for i in range(n_chunks):
        ev.append(chunk({"content": ANSWER_WORDS[i % len(ANSWER_WORDS)] + " "}))
    ev.append(chunk({}, finish="stop",
                    usage={"prompt_tokens": 25, "completion_tokens": n_chunks, "total_tokens": 25 + n_chunks}))
    ev.append(b"data: [DONE]\n\n")
    return ev


def chunked(b: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(b), b)


MODELS_BODY = jdumps({"object": "list", "data": [{"id": "fake-model", "object": "model",
                                                  "created": 1700000000, "owned_by": "fake"}]})


class Cache:
    """Precomputed bodies keyed by (model, n)."""

    def __init__(self, completion_tokens):
        self.completion_tokens = completion_tokens
        self.full = {}
        self.stream = {}

    def full_response(self, model, keep_alive):
        key = (model, keep_alive)
        r = self.full.get(key)
        if r is None:
            body = completion_body(model, self.completion_tokens)
            r = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                 b"x-request-id: fake\r\n%s\r\n" % (len(body), b"" if keep_alive else b"connection: close\r\n")) + body
            if len(self.full) < 1000:
                self.full[key] = r
        return r

    def stream_parts(self, model, n):
        key = (model, n)
        r = self.stream.get(key)
        if r is None:
            r = [chunked(e) for e in sse_events(model, n)] + [b"0\r\n\r\n"]
            if len(self.stream) < 1000:
                self.stream[key] = r
        return r


STREAM_HEAD = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
               b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\nx-request-id: fake\r\n")


class HttpProto(asyncio.Protocol):
    __slots__ = ("loop", "cfg", "cache", "transport", "parser", "url", "headers", "body", "closed", "busy", "queue")

    def __init__(self, loop, cfg, cache):
        self.loop = loop
        self.cfg = cfg
        self.cache = cache
        self.transport = None
        self.parser = httptools.HttpRequestParser(self)
        self.closed = False
        self.busy = False      # a delayed/streamed response is in flight
        self.queue = []        # pipelined requests waiting for it

    # --- asyncio callbacks
    def connection_made(self, transport):
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

    def connection_lost(self, exc):
        self.closed = True

    def data_received(self, data):
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._simple(400, b"upgrade not supported", close=True)
        except httptools.HttpParserError:
            self._simple(400, b"bad request", close=True)

    # --- httptools callbacks
    def on_message_begin(self):
        self.url = b""
        self.headers = []
        self.body = []

    def on_url(self, url):
        self.url += url

    def on_header(self, name, value):
        self.headers.append((name.lower(), value))

    def on_body(self, body):
        self.body.append(body)

    def on_message_complete(self):
        req = (self.parser.get_method(), self.url, self.headers, b"".join(self.body),
               self.parser.should_keep_alive())
        if self.busy:
            self.queue.append(req)
        else:
            self.handle(*req)

    # --- request handling
    def _simple(self, status, body, close=False, ctype=b"text/plain"):
        if self.closed:
            return
        reason = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 405: b"Method Not Allowed"}.get(status, b"X")
        self.transport.write(b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n%s\r\n%s" % (
            status, reason, ctype, len(body), b"connection: close\r\n" if close else b"", body))
        if close:
            self.transport.close()

    def _done(self, keep_alive):
        if not keep_alive:
            self.transport.close()
            return
        self.busy = False
        while self.queue and not self.busy and not self.closed:
            self.handle(*self.queue.pop(0))

    def handle(self, method, url, headers, body, keep_alive):
        path, _, query = url.partition(b"?")
        knobs = dict(self.cfg)
        if path.startswith(b"/cfg/"):
            _, _, spec, rest = path.split(b"/", 3)
            path = b"/" + rest
            for kv in spec.split(b","):
                k, _, v = kv.partition(b"=")
                if k.decode() in KNOBS:
                    knobs[k.decode()] = float(v)
        if query:
            for k, v in parse_qsl(query.decode()):
                if k in KNOBS:
                    knobs[k] = float(v)
        for k, v in headers:
            if k in HDR_KNOBS:
                knobs[HDR_KNOBS[k]] = float(v)

        if path.endswith(b"/chat/completions") or path.endswith(b"/completions"):
            if method != b"POST":
                return self._simple(405, b"use POST", close=not keep_alive)
            model, stream = "fake-model", False
            if body:
                try:
                    req = jloads(body)
                    model = str(req.get("model") or model)
                    stream = bool(req.get("stream"))
                except Exception:
                    return self._simple(400, b'{"error":{"message":"invalid json"}}', close=not keep_alive,
                                        ctype=b"application/json")
            if "~" in model:
                for kv in model.split("~")[1:]:
                    k, _, v = kv.partition("=")
                    if k in KNOBS:
                        try:
                            knobs[k] = float(v)
                        except ValueError:
                            pass
            delay = knobs["delay_ms"] / 1000.0
            if not stream:
                resp = self.cache.full_response(model, keep_alive)
                if delay > 0:
                    self.busy = True
                    self.loop.call_later(delay, self._write_later, resp, keep_alive)
                else:
                    self.transport.write(resp)
                    if not keep_alive:
                        self.transport.close()
                return
            parts = self.cache.stream_parts(model, int(knobs["chunks"]))
            head = STREAM_HEAD + (b"\r\n" if keep_alive else b"connection: close\r\n\r\n")
            cdelay = knobs["chunk_delay_ms"] / 1000.0
            if delay <= 0 and cdelay <= 0:
                self.transport.write(head + b"".join(parts))
                if not keep_alive:
                    self.transport.close()
                return
            self.busy = True
            self.loop.create_task(self._stream(head, parts, delay, cdelay, keep_alive))
            return
        if path.endswith(b"/models"):
            return self._simple(200, MODELS_BODY, close=not keep_alive, ctype=b"application/json")
        if path in (b"/health", b"/healthz", b"/"):
            return self._simple(200, b"ok", close=not keep_alive)
        return self._simple(404, b'{"error":{"message":"not found"}}', close=not keep_alive,
                            ctype=b"application/json")

    def _write_later(self, resp, keep_alive):
        if self.closed:
            return
        self.transport.write(resp)
        self._done(keep_alive)

    async def _stream(self, head, parts, delay, cdelay, keep_alive):
        if delay > 0:
            await asyncio.sleep(delay)
        if self.closed:
            return
        # headers + role chunk go out together: the first byte = first token time
        self.transport.write(head + parts[0])
        for p in parts[1:-2]:
            if cdelay > 0:
                await asyncio.sleep(cdelay)
            if self.closed:
                return
            self.transport.write(p)
        if self.closed:
            return
        self.transport.write(parts[-2] + parts[-1])  # [DONE] + terminating chunk
        self._done(keep_alive)


def make_socket(host, port, reuse_port):
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind((host, port))
    s.listen(4096)
    s.setblocking(False)
    return s


def serve(sock, cfg, completion_tokens):
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    cache = Cache(completion_tokens)
    srv = loop.run_until_complete(loop.create_server(lambda: HttpProto(loop, cfg, cache), sock=sock, backlog=4096))
    stop = loop.create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    loop.run_until_complete(stop)
    srv.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=19000)
    ap.add_argument("--workers", type=int, default=1, help="processes sharing the port (SO_REUSEPORT)")
    ap.add_argument("--delay-ms", type=float, default=0.0)
    ap.add_argument("--chunks", type=int, default=16)
    ap.add_argument("--chunk-delay-ms", type=float, default=0.0)
    ap.add_argument("--completion-tokens", type=int, default=40, help="tokens in the non-streaming answer")
    a = ap.parse_args()
    cfg = {"delay_ms": a.delay_ms, "chunks": a.chunks, "chunk_delay_ms": a.chunk_delay_ms}
    print(f"fake_upstream listening on http://{a.host}:{a.port} workers={a.workers} cfg={cfg} pid={os.getpid()}",
          flush=True)
    if a.workers <= 1:
        serve(make_socket(a.host, a.port, False), cfg, a.completion_tokens)
        return
    children = []
    for _ in range(a.workers):
        pid = os.fork()
        if pid == 0:
            serve(make_socket(a.host, a.port, True), cfg, a.completion_tokens)
            os._exit(0)
        children.append(pid)

    def fwd(sig, _f):
        for c in children:
            try:
                os.kill(c, sig)
            except ProcessLookupError:
                pass
    signal.signal(signal.SIGTERM, fwd)
    signal.signal(signal.SIGINT, fwd)
    for c in children:
        try:
            os.waitpid(c, 0)
        except ChildProcessError:
            pass


if __name__ == "__main__":
    main()
