"""valkey-glide running the limiter's two scripts, for bench/redis_path.py's table (`--glide PYTHON`).

    PYTHON bench/redis_glide.py HOST PORT REQUESTS ROUNDS CONCURRENCY   # prints: cpu_us_per_req req_per_s

Runs in a Python that has `valkey-glide` (it need not have aigw: the scripts are read from
redis_store.py's source). The same arguments as RedisStore sends; the best of ROUNDS rounds.
"""

from __future__ import annotations

import ast
import asyncio
import sys
import time
from pathlib import Path

from glide import GlideClient, GlideClientConfiguration, NodeAddress, Script

SOURCE = Path(__file__).resolve().parents[1] / "gateway/aigw_gateway/limits/redis_store.py"


def scripts() -> dict[str, str]:
    out = {}
    for node in ast.parse(SOURCE.read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            out[node.targets[0].id] = node.value.value  # type: ignore[attr-defined]
    return out


async def main(host: str, port: int, n: int, rounds: int, concurrency: int) -> None:
    lua = scripts()
    admit, settle = Script(lua["ADMIT_LUA"]), Script(lua["SETTLE_LUA"])
    client = await GlideClient.create(GlideClientConfiguration([NodeAddress(host, port)], request_timeout=500))
    prefix = "aigw:{glide/bench}:"
    keys = [f"{prefix}w:1", f"{prefix}spend:x", f"{prefix}inflight"]

    async def one() -> None:
        now = time.time()
        await client.invoke_script(admit, keys, ["1000000000", "1000000000000", "500", "1000000000000000", "1", "180",
                                                 "0", "", repr(now), "0", "0"])  # fmt: skip
        await asyncio.sleep(0)
        await client.invoke_script(settle, keys, ["-50", "1", "180", "2250000", "600000", ""])

    async def round_(count: int) -> tuple[float, float]:
        per = count // concurrency

        async def worker() -> None:
            for _ in range(per):
                await one()

        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return (time.process_time() - cpu) / (per * concurrency) * 1e6, per * concurrency / (time.perf_counter() - wall)

    await round_(2000)
    best = min([await round_(n) for _ in range(rounds)])
    print(f"{best[0]:.1f} {best[1]:.0f}")
    await client.close()


if __name__ == "__main__":
    host, port, n, rounds, conc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    try:
        import uvloop

        uvloop.run(main(host, port, n, rounds, conc))
    except ImportError:
        asyncio.run(main(host, port, n, rounds, conc))
