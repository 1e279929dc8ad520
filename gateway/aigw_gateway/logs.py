"""Process logging setup (the parent and every worker process call it once)."""

from __future__ import annotations

import logging
import sys


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # httpx logs every request at INFO: hot-path I/O, and request URLs are not its to log.
    logging.getLogger("httpx").setLevel(logging.WARNING)
