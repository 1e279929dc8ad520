"""Watch plumbing of the emulator: stored events and open watch requests."""
from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from tests.kube.emulator_core import ResourceType
from tests.kube.emulator_select import (
    FieldRequirement, Requirement, fields_match, labels_match)

JSON = dict[str, Any]


@dataclasses.dataclass
class Event:
    rv: int
    type: str                      # ADDED / MODIFIED / DELETED
    rkey: tuple[str, str]          # (group, plural)
    obj: JSON
    old: JSON | None               # the previous state for MODIFIED


class Watcher:
    """One open watch request; events arrive in its queue in resourceVersion order."""

    CLOSE = object()

    def __init__(self, rtype: ResourceType, version: str, namespace: str | None,
                 labels: list[Requirement], fields: list[FieldRequirement]) -> None:
        self.rtype, self.version, self.namespace = rtype, version, namespace
        self.labels, self.fields = labels, fields
        self.queue: asyncio.Queue[Any] = asyncio.Queue()

    def matches(self, obj: JSON) -> bool:
        meta = obj["metadata"]
        if self.namespace is not None and meta.get("namespace") != self.namespace:
            return False
        return labels_match(self.labels, meta.get("labels") or {}) and \
            fields_match(self.fields, obj)

    def translate(self, event: Event) -> str | None:
        """The event type this watcher sees (objects entering/leaving its selector)."""
        now = self.matches(event.obj)
        if event.type != "MODIFIED":
            return event.type if now else None
        before = self.matches(event.old) if event.old is not None else now
        if before and now:
            return "MODIFIED"
        return "DELETED" if before else ("ADDED" if now else None)

    def offer(self, event: Event) -> None:
        if (etype := self.translate(event)) is not None:
            self.queue.put_nowait((etype, event.obj))

    def close(self) -> None:
        self.queue.put_nowait(self.CLOSE)
