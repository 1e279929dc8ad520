"""redis-py's exception classes, without redis-py's clients.

Every Redis client the gateway uses raises redis-py's exception classes (the lean limiter
client too: lean_redis.py), so every `except` here names them. But `import redis.exceptions`
runs the `redis` package first, which imports its whole client (≈ 70 modules, 7 MB of RSS per
worker): a gateway whose config only uses Redis limits (the lean client) would pay for a client
it never calls.

`redis/exceptions.py` itself imports only `enum`. So it is loaded here from its file as the
module `redis.exceptions` (registered in `sys.modules`), without running the package: when
redis-py is imported later (a route with a cache, the responses store, the ledger), it finds
that module and uses these very classes, so an `except` written here catches what either client
raises. One gap remains: Python binds a submodule as an attribute of its package only when it
loads it, so `redis.exceptions` would be missing from the `redis` package; a one-shot finder
binds it when the package loads (`_BindOnLoad`). tests/gateway/test_redis_errors.py checks both.

`redis_py()` is the one way the gateway imports redis-py's asyncio client: on demand.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any


class _BindingLoader(importlib.abc.Loader):
    """Runs the `redis` package with `redis.exceptions` already bound (the module loaded here)."""

    def __init__(self, inner: Any, exceptions: ModuleType) -> None:
        self.inner, self.exceptions = inner, exceptions

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        module.exceptions = self.exceptions  # type: ignore[attr-defined]
        self.inner.exec_module(module)

    def __getattr__(self, name: str) -> Any:  # resources, source, ...: the file loader's
        return getattr(self.inner, name)


class _BindOnLoad(importlib.abc.MetaPathFinder):
    """Finds `redis` with the finders after it and wraps the loader; nothing else, once."""

    def __init__(self, exceptions: ModuleType) -> None:
        self.exceptions = exceptions
        self.done = False

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if name != "redis" or self.done:
            return None
        self.done = True  # the package loads once; later look-ups pass straight through
        for finder in [f for f in sys.meta_path if f is not self]:
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find is not None else None
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _BindingLoader(spec.loader, self.exceptions)
                return spec
        return None


def _load() -> ModuleType:
    loaded = sys.modules.get("redis.exceptions")
    if loaded is not None:  # redis-py (or this module) was here first
        return loaded
    if "redis" in sys.modules:  # the package is loaded: its exceptions module costs nothing more
        return importlib.import_module("redis.exceptions")
    package = importlib.util.find_spec("redis")  # locates it; does not run it
    if package is None or not package.submodule_search_locations:
        raise ImportError("redis-py is not installed (the gateway extra installs it)")
    spec = importlib.util.spec_from_file_location(
        "redis.exceptions", Path(next(iter(package.submodule_search_locations))) / "exceptions.py")
    if spec is None or spec.loader is None:  # pragma: no cover - a redis-py without that file
        return importlib.import_module("redis.exceptions")
    module = importlib.util.module_from_spec(spec)
    sys.modules["redis.exceptions"] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules["redis.exceptions"]
        raise
    sys.meta_path.insert(0, _BindOnLoad(module))
    return module


_exceptions = _load()

RedisError = _exceptions.RedisError
ConnectionError = _exceptions.ConnectionError  # noqa: A001 - redis-py's name
TimeoutError = _exceptions.TimeoutError  # noqa: A001 - redis-py's name
ResponseError = _exceptions.ResponseError
NoScriptError = _exceptions.NoScriptError
ReadOnlyError = _exceptions.ReadOnlyError
ClusterDownError = _exceptions.ClusterDownError


def redis_py() -> ModuleType:
    """`redis.asyncio`, imported on first use (a cache, the responses store, the ledger, a URL
    the lean client does not take)."""
    import redis.asyncio

    return redis.asyncio
