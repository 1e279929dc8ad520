"""uvicorn's httptools protocol against aigw's LimitedHttpToolsProtocol: CPU per request on a kept-alive
connection, alternating (`python bench/protocol_overhead.py`; the numbers in http_limits.py)."""
import asyncio, time, uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState
from aigw_gateway.http_limits import LimitedHttpToolsProtocol

async def app(scope, receive, send):
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})

class T(asyncio.Transport):
    def __init__(self): super().__init__(); self.closing=False
    def get_extra_info(self, name, default=None): return {"sockname": ("127.0.0.1", 8080), "peername": ("127.0.0.1", 5555)}.get(name, default)
    def write(self, data): pass
    def is_closing(self): return self.closing
    def close(self): self.closing=True
    def pause_reading(self): pass
    def resume_reading(self): pass

REQ = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAuthorization: Bearer sk-xxxxxxxxxxxxxxxx\r\n"
       b"Content-Type: application/json\r\nAccept: */*\r\nUser-Agent: OpenAI/Python 1.50\r\nX-Stainless-Lang: python\r\n"
       b"Content-Length: 120\r\n\r\n" + b"x" * 120)

async def main():
    config = uvicorn.Config(app, lifespan="off", log_level="warning"); config.load()
    loop = asyncio.get_running_loop()
    for cls in (HttpToolsProtocol, LimitedHttpToolsProtocol) * 4:
        state = ServerState()
        n = 20000
        p = cls(config=config, server_state=state, app_state={}, _loop=loop)
        p.connection_made(T())
        t0 = time.process_time()
        for _ in range(n):
            p.data_received(REQ)
            for t in list(state.tasks): await t
        dt = time.process_time() - t0
        print(f"{cls.__name__:28s} {dt / n * 1e6:.2f} us per request (kept-alive connection)")
import uvloop; uvloop.run(main())
