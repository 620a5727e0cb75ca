"""Store-and-forward spool: one SQLite file (WAL) holding messages not yet acknowledged.

An event is written here *before* it is handed to the MQTT client and deleted only when
the broker acknowledged it (PUBACK for QoS 1), so events survive broker outages, daemon
restarts, SIGKILL and (with ``durable=True``, the default) power loss.

The spool is bounded by payload size (``max_mb``) and age (``max_age_hours``); the oldest
messages are evicted first and every eviction is counted in a persisted counter.
Size accounting counts topic + payload bytes (SQLite's own overhead is not included).
Rows stamped while the wall clock was obviously wrong (before 2021, e.g. a Raspberry Pi
booting without RTC before NTP sync) are never age-evicted, only size-evicted.

Clocks: a message's age is measured on the boot clock (``CLOCK_BOOTTIME``: monotonic, counts
suspend) when it was spooled during the current boot, so stepping the wall clock (NTP after
a fake-hwclock boot, an operator) neither ages events out nor keeps them; only rows from an
earlier boot fall back to the wall-clock ``created`` stamp. How often the age check runs is
monotonic too, and the delivery order is the row id, never a timestamp.

All methods are thread-safe (one connection, one lock).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

log = logging.getLogger(__name__)

_PLAUSIBLE_EPOCH = 1609459200.0  # 2021-01-01T00:00:00Z
_AGE_CHECK_EVERY_S = 30.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL    NOT NULL,
    boot_id TEXT,
    boot_s  REAL,
    topic   TEXT    NOT NULL,
    qos     INTEGER NOT NULL,
    payload BLOB    NOT NULL,
    size    INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""


def _read_boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:  # not Linux: ages of this process's rows only
        return f"process-{os.getpid()}-{time.time_ns()}"


BOOT_ID = _read_boot_id()


def boot_clock() -> float:
    """Seconds on a clock that never steps and keeps counting while suspended (same boot)."""
    if hasattr(time, "CLOCK_BOOTTIME"):
        return time.clock_gettime(time.CLOCK_BOOTTIME)
    return time.monotonic()


class SpoolError(RuntimeError):
    """Base class of spool errors."""


class SpoolUnavailableError(SpoolError):
    """The spool file cannot be created/opened for writing (directory not writable, ...)."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(
            f"spool {self.path!s} is not usable: {reason} "
            "(set spool.path to a writable location, e.g. under $STATE_DIRECTORY)"
        )


class SpoolTooLargeError(SpoolError, ValueError):
    """A single message is bigger than the whole spool may be."""


def _rollback(db: sqlite3.Connection) -> None:
    """ROLLBACK that never hides the error being handled: after SQLITE_FULL/IOERR SQLite may
    already have rolled back, and a second ROLLBACK would raise 'no transaction is active'."""
    try:
        db.execute("ROLLBACK")
    except sqlite3.Error as e:
        log.debug("spool rollback: %s", e)


def default_spool_path(configured: str | os.PathLike[str] | None = None) -> Path:
    """``configured`` (``spool.path``) if set, else ``$STATE_DIRECTORY/spool.sqlite`` (the
    first directory when systemd lists several), else ``./var/spool.sqlite`` (absolute, from
    the working directory)."""
    if configured:
        return Path(configured).expanduser()
    state = os.environ.get("STATE_DIRECTORY")
    if state:
        first = state.split(":")[0]
        if first:
            return Path(first) / "spool.sqlite"
    return Path.cwd() / "var" / "spool.sqlite"


class Spool:
    """Persistent FIFO of ``(topic, payload, qos)`` messages awaiting a broker acknowledgement."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None,
        max_mb: float = 200,
        max_age_hours: float = 168,
        *,
        durable: bool = True,
        wall_clock: Callable[[], float] = time.time,
        boot_id: str | None = None,
    ) -> None:
        if max_mb is None or float(max_mb) <= 0:
            raise ValueError(f"spool.max_mb must be > 0, got {max_mb!r}")
        if max_age_hours is None or float(max_age_hours) <= 0:
            raise ValueError(f"spool.max_age_hours must be > 0, got {max_age_hours!r}")
        self.path = default_spool_path(path)
        self.max_bytes = int(float(max_mb) * 1024 * 1024)
        self.max_age_s = float(max_age_hours) * 3600.0
        self._wall = wall_clock
        self._boot_id = boot_id or BOOT_ID  # tests pass another one to play a reboot
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None
        self._last_age_check = time.monotonic()
        self._db = self._open(durable)
        with self._lock:
            row = self._db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM spool").fetchone()
            self._depth = int(row[0])
            self._bytes = int(row[1])
            self._evicted = int(
                self._db.execute("SELECT value FROM meta WHERE key='evicted_total'").fetchone()[0]
            )
        self._evict_aged()

    # -- setup ---------------------------------------------------------------------------
    def _open(self, durable: bool) -> sqlite3.Connection:
        path = self.path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SpoolUnavailableError(path, f"cannot create directory {path.parent}: {e}") from e
        if not path.parent.is_dir():
            raise SpoolUnavailableError(path, f"{path.parent} is not a directory")
        if not os.access(path.parent, os.W_OK | os.X_OK):
            raise SpoolUnavailableError(path, f"directory {path.parent} is not writable")
        if path.exists() and not os.access(path, os.R_OK | os.W_OK):
            raise SpoolUnavailableError(path, "file is not readable and writable")
        db = None
        try:
            db = sqlite3.connect(
                str(path), timeout=10.0, isolation_level=None, check_same_thread=False
            )
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise SpoolUnavailableError(path, f"cannot switch to WAL journal (got {mode})")
            db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            db.executescript(_SCHEMA)
            columns = {r[1] for r in db.execute("PRAGMA table_info(spool)")}
            for col, kind in (("boot_id", "TEXT"), ("boot_s", "REAL")):
                if col not in columns:  # a spool file from before boot-clock ages
                    db.execute(f"ALTER TABLE spool ADD COLUMN {col} {kind}")
            # a real write: fails early on read-only files/directories
            db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('evicted_total', 0)")
            db.execute("PRAGMA user_version=2")
        except sqlite3.Error as e:
            if db is not None:
                db.close()
            raise SpoolUnavailableError(path, f"sqlite: {e}") from e
        return db

    def _reread_evicted(self, db: sqlite3.Connection) -> None:
        """After a failed transaction the in-memory eviction counter may be ahead; re-read it."""
        try:
            row = db.execute("SELECT value FROM meta WHERE key='evicted_total'").fetchone()
            self._evicted = int(row[0])
        except sqlite3.Error as e:
            log.debug("spool: cannot re-read the eviction counter: %s", e)

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise SpoolError(f"spool {self.path} is closed")
        return self._db

    # -- eviction (callers hold the lock or are in __init__) -----------------------------
    def _record_evictions(self, db: sqlite3.Connection, n: int, why: str) -> None:
        if n <= 0:
            return
        db.execute("UPDATE meta SET value = value + ? WHERE key='evicted_total'", (n,))
        self._evicted += n
        log.warning(
            "spool: evicted %d oldest message(s) (%s); %d evicted in total",
            n,
            why,
            self._evicted,
        )

    def _age_check_due(self) -> bool:
        return time.monotonic() - self._last_age_check >= _AGE_CHECK_EVERY_S

    def _evict_aged(self) -> None:
        with self._lock:
            db = self._conn()
            self._last_age_check = time.monotonic()
            # this boot's rows by the boot clock; older boots' rows by the wall clock
            where = (
                "(boot_id = ? AND boot_s < ?) OR "
                "((boot_id IS NULL OR boot_id != ?) AND created < ? AND created >= ?)"
            )
            args = (
                self._boot_id,
                boot_clock() - self.max_age_s,
                self._boot_id,
                self._wall() - self.max_age_s,
                _PLAUSIBLE_EPOCH,
            )
            db.execute("BEGIN IMMEDIATE")
            try:
                n, size = db.execute(
                    f"SELECT COUNT(*), COALESCE(SUM(size), 0) FROM spool WHERE {where}", args
                ).fetchone()
                if n:
                    db.execute(f"DELETE FROM spool WHERE {where}", args)
                    self._record_evictions(db, int(n), f"older than {self.max_age_s / 3600:g} h")
                db.execute("COMMIT")
            except BaseException:
                _rollback(db)
                raise
            if n:
                self._depth -= int(n)
                self._bytes -= int(size)

    def _evict_for(self, db: sqlite3.Connection, incoming: int) -> tuple[int, int]:
        """Delete oldest rows until ``incoming`` more bytes fit. Returns (rows, bytes) removed."""
        removed = freed = 0
        while self._bytes - freed + incoming > self.max_bytes:
            rows = db.execute("SELECT id, size FROM spool ORDER BY id LIMIT 64").fetchall()
            if not rows:
                break
            last_id = None
            for rid, size in rows:
                if self._bytes - freed + incoming <= self.max_bytes:
                    break
                freed += int(size)
                removed += 1
                last_id = rid
            if last_id is None:
                break
            db.execute("DELETE FROM spool WHERE id <= ?", (last_id,))
        return removed, freed

    # -- API -------------------------------------------------------------------------------
    def put(self, topic: str, payload: bytes, qos: int = 1) -> int:
        """Store a message durably; returns its id (ids only ever increase)."""
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        payload = bytes(payload)
        size = len(payload) + len(topic.encode("utf-8"))
        if size > self.max_bytes:
            raise SpoolTooLargeError(
                f"message of {size} bytes is larger than the whole spool "
                f"({self.max_bytes} bytes, spool.max_mb)"
            )
        now = self._wall()
        with self._lock:
            if self._age_check_due():
                self._evict_aged()
            db = self._conn()
            db.execute("BEGIN IMMEDIATE")
            try:
                removed, freed = self._evict_for(db, size)
                self._record_evictions(db, removed, f"size cap {self.max_bytes} bytes")
                cur = db.execute(
                    "INSERT INTO spool(created, boot_id, boot_s, topic, qos, payload, size) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (now, self._boot_id, boot_clock(), topic, int(qos), payload, size),
                )
                db.execute("COMMIT")
            except BaseException:
                _rollback(db)
                self._reread_evicted(db)
                raise
            self._depth += 1 - removed
            self._bytes += size - freed
            return int(cur.lastrowid)

    def restore(self, rows: Sequence[tuple[int, float, float, str, int, bytes]]) -> int:
        """Insert ``(id, created, boot_s, topic, qos, payload)`` rows (``boot_s``: this boot's
        :func:`boot_clock` when the message was made) keeping their ids, all larger than
        :meth:`last_id`, in one transaction; the size cap applies as for :meth:`put`.
        Used to move events that waited in memory onto the disk. Returns rows stored."""
        items = [
            (int(i), float(c), self._boot_id, float(b), t, int(q), bytes(p))
            for i, c, b, t, q, p in rows
        ]
        items.sort(key=lambda r: r[0])
        with self._lock:
            db = self._conn()
            if items and items[0][0] <= self.last_id():
                raise SpoolError("restore: ids must be larger than every id the spool handed out")
            sizes = [len(p) + len(t.encode("utf-8")) for *_, t, _, p in items]
            dropped = 0
            while items and sum(sizes) > self.max_bytes:  # oldest of the restored go first
                items.pop(0)
                sizes.pop(0)
                dropped += 1
            db.execute("BEGIN IMMEDIATE")
            try:
                removed, freed = self._evict_for(db, sum(sizes))
                self._record_evictions(db, removed + dropped, f"size cap {self.max_bytes} bytes")
                db.executemany(
                    "INSERT INTO spool(id, created, boot_id, boot_s, topic, qos, payload, size) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [(*row, size) for row, size in zip(items, sizes, strict=True)],
                )
                db.execute("COMMIT")
            except BaseException:
                _rollback(db)
                self._reread_evicted(db)
                raise
            self._depth += len(items) - removed
            self._bytes += sum(sizes) - freed
            return len(items)

    def last_id(self) -> int:
        """The largest id ever handed out (AUTOINCREMENT: ids of deleted rows are not reused)."""
        with self._lock:
            row = (
                self._conn()
                .execute("SELECT seq FROM sqlite_sequence WHERE name='spool'")
                .fetchone()
            )
            return int(row[0]) if row else 0

    def advance_ids(self, last: int) -> None:
        """Make every future id larger than ``last`` (ids handed out elsewhere meanwhile)."""
        with self._lock:
            db = self._conn()
            if last <= self.last_id():
                return
            db.execute("BEGIN IMMEDIATE")
            try:
                # sqlite_sequence is an ordinary table; it has a row once the first row was
                # ever inserted
                cur = db.execute("UPDATE sqlite_sequence SET seq = ? WHERE name='spool'", (last,))
                if cur.rowcount == 0:
                    db.execute(
                        "INSERT INTO sqlite_sequence(name, seq) VALUES ('spool', ?)", (last,)
                    )
                db.execute("COMMIT")
            except BaseException:
                _rollback(db)
                raise

    def pending(self, limit: int = 100, after_id: int = 0) -> list[tuple[int, str, bytes, int]]:
        """Oldest first: up to ``limit`` rows ``(id, topic, payload, qos)`` with id > after_id."""
        with self._lock:
            if self._age_check_due():
                self._evict_aged()
            rows = (
                self._conn()
                .execute(
                    "SELECT id, topic, payload, qos FROM spool WHERE id > ? ORDER BY id LIMIT ?",
                    (int(after_id), int(limit)),
                )
                .fetchall()
            )
        return [(int(r[0]), str(r[1]), bytes(r[2]), int(r[3])) for r in rows]

    def ack(self, msg_id: int) -> bool:
        """Remove an acknowledged message; False when it was already gone (evicted/acked)."""
        with self._lock:
            db = self._conn()
            row = db.execute("SELECT size FROM spool WHERE id = ?", (int(msg_id),)).fetchone()
            if row is None:
                return False
            db.execute("DELETE FROM spool WHERE id = ?", (int(msg_id),))
            self._depth -= 1
            self._bytes -= int(row[0])
            return True

    def ack_many(self, msg_ids: list[int]) -> int:
        """Remove several acknowledged messages in one transaction; returns how many were there."""
        if not msg_ids:
            return 0
        with self._lock:
            db = self._conn()
            removed = freed = 0
            db.execute("BEGIN IMMEDIATE")
            try:
                for mid in msg_ids:
                    row = db.execute("SELECT size FROM spool WHERE id = ?", (int(mid),)).fetchone()
                    if row is None:
                        continue
                    db.execute("DELETE FROM spool WHERE id = ?", (int(mid),))
                    removed += 1
                    freed += int(row[0])
                db.execute("COMMIT")
            except BaseException:
                _rollback(db)
                raise
            self._depth -= removed
            self._bytes -= freed
            return removed

    def depth(self) -> int:
        """Number of messages waiting."""
        with self._lock:
            return self._depth

    def size_bytes(self) -> int:
        """Bytes (topic + payload) waiting."""
        with self._lock:
            return self._bytes

    @property
    def evicted_total(self) -> int:
        """Messages evicted (size or age) since the spool file was created."""
        with self._lock:
            return self._evicted

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"depth": self._depth, "bytes": self._bytes, "evicted": self._evicted}

    @property
    def closed(self) -> bool:
        return self._db is None

    def close(self) -> None:
        with self._lock:
            if self._db is None:
                return
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as e:  # busy: another reader; harmless
                log.debug("spool checkpoint skipped: %s", e)
            self._db.close()
            self._db = None

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Spool({str(self.path)!r}, depth={self._depth}, bytes={self._bytes})"
