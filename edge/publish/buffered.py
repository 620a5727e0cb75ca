"""The spool as the publisher uses it: the SQLite spool, plus a bounded in-memory buffer for
when the disk cannot take events (read-only or missing directory, disk full, I/O errors).

While the disk fails, new events wait in memory; beyond ``memory_max_mb`` the oldest are
dropped and counted. The problem is logged once per episode (not per event) and reported by
``stats()`` (``state: memory`` and ``error``), which the daemon puts in its stats topic and
systemd STATUS. Every ``retry_s`` the disk is tried again; once it works, the held events
move onto it and it is used as before.

Ids: the publisher's sender walks the spool by id (``pending(after_id=...)``), so both
stores share one increasing sequence. Memory ids continue after the disk's last id; when the
disk could not even be opened they start at ``UNKNOWN_DISK_BASE``, far above any id a spool
file can have reached, so rows of an old spool file that becomes readable later never share
an id with a held event. When the disk works again it is told to continue after every id
handed out, and held events keep their ids on the disk (in-flight acks stay valid).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from edge.publish.spool import (
    Spool,
    SpoolError,
    SpoolTooLargeError,
    boot_clock,
    default_spool_path,
)
from edge.settings import SpoolSettings

log = logging.getLogger(__name__)

DEFAULT_MEMORY_MAX_MB = 32.0  # ~1000 events with two 160 px crops each
RETRY_S = 10.0
UNKNOWN_DISK_BASE = 1 << 48  # 9e15 > ids of a spool taking 1000 events/s for 200 000 years

STATE_DISK = "disk"
STATE_MEMORY = "memory"

_DISK_ERRORS = (SpoolError, sqlite3.Error, OSError)


@dataclass(slots=True)
class _Held:
    created: float  # wall clock
    boot_s: float  # boot clock: the spool's age limit counts from here
    topic: str
    qos: int
    payload: bytes
    size: int


def _reason(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    if isinstance(e, SpoolError):
        return text
    code = getattr(e, "sqlite_errorname", None)  # e.g. SQLITE_FULL, SQLITE_IOERR_WRITE
    return f"{type(e).__name__}: {text}" + (f" ({code})" if code else "")


class BufferedSpool:
    """Same interface as :class:`Spool` (``put``, ``pending``, ``ack_many``, ``depth`` ...)
    but never fails because of the disk: see the module docstring."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None,
        max_mb: float = 200,
        max_age_hours: float = 168,
        *,
        memory_max_mb: float = DEFAULT_MEMORY_MAX_MB,
        retry_s: float = RETRY_S,
        durable: bool = True,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if memory_max_mb is None or float(memory_max_mb) <= 0:
            raise ValueError(f"spool.memory_max_mb must be > 0, got {memory_max_mb!r}")
        self.path = default_spool_path(path)
        self._spool_args = (max_mb, max_age_hours)
        self._durable = durable
        self._wall = wall_clock
        self.memory_max_bytes = int(float(memory_max_mb) * 1024 * 1024)
        self.retry_s = float(retry_s)
        self._lock = threading.RLock()
        self._disk: Spool | None = None
        self._mem: OrderedDict[int, _Held] = OrderedDict()  # id -> event, oldest first
        self._mem_bytes = 0
        self._dropped = 0
        self._deferred: set[int] = set()  # acknowledged, but the disk could not delete them yet
        self._error: str | None = None
        self._dropping = False  # a drop was logged in this episode
        self._next_try = 0.0
        self._closed = False
        self._high = UNKNOWN_DISK_BASE  # the largest id handed out (lowered once the disk opens)
        self._try_disk()

    @classmethod
    def from_config(
        cls,
        spool: SpoolSettings | Mapping[str, Any] | None,
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> BufferedSpool:
        """From the ``spool`` settings (a mapping of some of its keys is taken too)."""
        sc = SpoolSettings.coerce(spool)
        return cls(
            sc.path,
            sc.max_mb,
            sc.max_age_hours,
            memory_max_mb=sc.memory_max_mb,
            wall_clock=wall_clock,
        )

    # -- disk state ----------------------------------------------------------------------
    def _degrade(self, e: BaseException) -> None:
        reason = _reason(e)
        self._next_try = time.monotonic() + self.retry_s
        if self._error is None:
            log.error(
                "spool: cannot write %s (%s); holding events in memory (up to %g MB, the "
                "oldest dropped beyond) and trying the disk again every %g s",
                self.path,
                reason,
                round(self.memory_max_bytes / (1024 * 1024), 3),
                self.retry_s,
            )
        else:
            log.debug("spool: disk still unusable: %s", reason)
        self._error = reason

    def _try_disk(self) -> bool:
        """Open the disk spool if needed and move held events onto it. True when it works."""
        self._next_try = time.monotonic() + self.retry_s
        try:
            if self._disk is None:
                self._disk = Spool(
                    self.path, *self._spool_args, durable=self._durable, wall_clock=self._wall
                )
                if not self._mem and self._high == UNKNOWN_DISK_BASE:
                    self._high = self._disk.last_id()  # nothing handed out yet: plain disk ids
            disk = self._disk
            if self._deferred:
                disk.ack_many(sorted(self._deferred))
                self._deferred.clear()
            moved = len(self._mem)
            if self._mem:
                disk.restore(
                    [
                        (i, h.created, h.boot_s, h.topic, h.qos, h.payload)
                        for i, h in self._mem.items()
                    ]
                )
                self._mem.clear()
                self._mem_bytes = 0
            disk.advance_ids(self._high)  # held events that were acked had ids too
        except _DISK_ERRORS as e:
            self._degrade(e)
            return False
        if self._error is not None:
            log.warning(
                "spool: %s is writable again; moved %d held event(s) onto it", self.path, moved
            )
        self._error = None
        self._dropping = False
        return True

    def _disk_ok(self) -> bool:
        """Whether to write to the disk now (retrying it when the retry time has come)."""
        if self._error is None:
            return True
        return time.monotonic() >= self._next_try and self._try_disk()

    # -- API -------------------------------------------------------------------------------
    def put(self, topic: str, payload: bytes, qos: int = 1) -> int:
        """Store a message (on disk, or in memory while the disk fails); returns its id."""
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        payload = bytes(payload)
        with self._lock:
            if self._closed:
                raise SpoolError(f"spool {self.path} is closed")
            if self._disk_ok():
                assert self._disk is not None
                try:
                    msg_id = self._disk.put(topic, payload, qos)
                    self._high = max(self._high, msg_id)
                    return msg_id
                except SpoolTooLargeError:
                    raise
                except _DISK_ERRORS as e:
                    self._degrade(e)
            return self._hold(topic, payload, qos)

    def _hold(self, topic: str, payload: bytes, qos: int) -> int:
        size = len(payload) + len(topic.encode("utf-8"))
        if size > self.memory_max_bytes:
            raise SpoolTooLargeError(
                f"message of {size} bytes is larger than the memory buffer "
                f"({self.memory_max_bytes} bytes, spool.memory_max_mb)"
            )
        while self._mem and self._mem_bytes + size > self.memory_max_bytes:
            _, old = self._mem.popitem(last=False)
            self._mem_bytes -= old.size
            self._dropped += 1
            if not self._dropping:
                self._dropping = True
                log.error(
                    "spool: memory buffer full (spool.memory_max_mb); dropping the oldest held "
                    "events (counted in stats as spool_memory_dropped)"
                )
        self._high += 1
        self._mem[self._high] = _Held(self._wall(), boot_clock(), topic, int(qos), payload, size)
        self._mem_bytes += size
        return self._high

    def pending(self, limit: int = 100, after_id: int = 0) -> list[tuple[int, str, bytes, int]]:
        """Oldest first, over disk and memory: up to ``limit`` ``(id, topic, payload, qos)``."""
        with self._lock:
            rows: list[tuple[int, str, bytes, int]] = []
            if self._disk is not None:
                try:
                    got = self._disk.pending(limit + len(self._deferred), after_id)
                    rows = [r for r in got if r[0] not in self._deferred][:limit]
                except _DISK_ERRORS as e:
                    self._degrade(e)
            held = 0
            for msg_id, h in self._mem.items():  # in id order: ids only grow
                if msg_id > after_id:
                    rows.append((msg_id, h.topic, h.payload, h.qos))
                    held += 1
                    if held >= limit:
                        break
        rows.sort(key=lambda r: r[0])
        return rows[:limit]

    def ack_many(self, msg_ids: list[int]) -> int:
        """Remove acknowledged messages; returns how many were there."""
        with self._lock:
            n = 0
            on_disk = []
            for msg_id in msg_ids:
                held = self._mem.pop(int(msg_id), None)
                if held is None:
                    on_disk.append(int(msg_id))
                else:
                    self._mem_bytes -= held.size
                    n += 1
            if on_disk and self._disk is not None:
                try:
                    n += self._disk.ack_many(on_disk)
                except _DISK_ERRORS as e:  # disk full: a DELETE needs space in the WAL too
                    self._degrade(e)
                    self._deferred.update(on_disk)
                    n += len(on_disk)
            return n

    def ack(self, msg_id: int) -> bool:
        return self.ack_many([msg_id]) > 0

    def depth(self) -> int:
        """Messages waiting (disk and memory)."""
        with self._lock:
            disk = self._disk.depth() - len(self._deferred) if self._disk is not None else 0
            return max(0, disk) + len(self._mem)

    def size_bytes(self) -> int:
        with self._lock:
            disk = self._disk.size_bytes() if self._disk is not None else 0
            return disk + self._mem_bytes

    @property
    def evicted_total(self) -> int:
        """Messages given up: evicted from the disk (size/age) plus dropped from memory."""
        with self._lock:
            disk = self._disk.evicted_total if self._disk is not None else 0
            return disk + self._dropped

    @property
    def state(self) -> str:
        return STATE_DISK if self._error is None else STATE_MEMORY

    @property
    def error(self) -> str | None:
        return self._error

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "state": self.state,
                "error": self._error,
                "depth": self.depth(),
                "bytes": self.size_bytes(),
                "evicted": self.evicted_total,
                "memory_depth": len(self._mem),
                "memory_dropped": self._dropped,
            }

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            if self._mem or self._deferred:
                self._try_disk()  # a last chance for what waits in memory
            if self._mem:
                log.error(
                    "spool: %d event(s) held in memory are lost at shutdown: %s",
                    len(self._mem),
                    self._error,
                )
            self._closed = True
            if self._disk is not None:
                self._disk.close()

    def __enter__(self) -> BufferedSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"BufferedSpool({str(self.path)!r}, state={self.state}, memory={len(self._mem)})"
