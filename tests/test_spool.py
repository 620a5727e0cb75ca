"""SQLite store-and-forward spool."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from procs import JumpClock

from edge.publish import spool as spool_mod
from edge.publish.buffered import UNKNOWN_DISK_BASE, BufferedSpool
from edge.publish.spool import Spool, SpoolTooLargeError, SpoolUnavailableError, default_spool_path

ROOT = Path(__file__).resolve().parents[1]


def test_put_pending_ack_in_order(tmp_path: Path) -> None:
    with Spool(tmp_path / "s.sqlite", max_mb=1, max_age_hours=1) as sp:
        ids = [sp.put("t/a", f"m{i}".encode(), 1) for i in range(5)]
        assert ids == sorted(ids) and len(set(ids)) == 5
        assert sp.depth() == 5
        rows = sp.pending(3)
        assert [r[0] for r in rows] == ids[:3]
        assert rows[0][1:] == ("t/a", b"m0", 1)
        assert [r[0] for r in sp.pending(10, after_id=ids[2])] == ids[3:]
        assert sp.ack(ids[1]) is True
        assert sp.ack(ids[1]) is False  # already gone
        assert [r[0] for r in sp.pending(10)] == [ids[0], *ids[2:]]
        assert sp.depth() == 4
        assert sp.ack_many([ids[0], ids[1], ids[2]]) == 2  # ids[1] was gone already
        assert sp.ack_many(ids) == 2
        assert sp.depth() == 0 and sp.size_bytes() == 0
        # ids never go back, even when the table was empty
        assert sp.put("t/a", b"x", 0) > ids[-1]


def test_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    sp = Spool(path, 1, 1)
    a = sp.put("t", b"one", 1)
    sp.put("t", b"two", 1)
    sp.ack(a)
    sp.close()
    with pytest.raises(spool_mod.SpoolError):
        sp.put("t", b"x", 1)
    sp2 = Spool(path, 1, 1)
    assert [(r[2]) for r in sp2.pending(10)] == [b"two"]
    sp2.close()


def test_survives_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    script = (
        "import sys, time\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from edge.publish.spool import Spool\n"
        f"sp = Spool({str(path)!r}, 5, 1)\n"
        "for i in range(25):\n"
        "    sp.put('t/x', b'payload-%d' % i, 1)\n"
        "print('READY', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "READY"
    finally:
        proc.kill()  # SIGKILL: no close(), no checkpoint
        proc.wait(10)
    with Spool(path, 5, 1) as sp:
        rows = sp.pending(100)
        assert [r[2] for r in rows] == [b"payload-%d" % i for i in range(25)]


def test_size_cap_evicts_oldest_and_counts(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    cap_mb = 10_000 / (1024 * 1024)  # 10 000 bytes
    sp = Spool(path, max_mb=cap_mb, max_age_hours=1)
    ids = [sp.put("t", bytes(999), 1) for _ in range(30)]  # 1000 bytes each with the topic
    assert sp.size_bytes() <= 10_000
    assert sp.depth() == 10
    assert sp.evicted_total == 20
    assert [r[0] for r in sp.pending(100)] == ids[-10:]  # the newest survive
    sp.close()
    with Spool(path, max_mb=cap_mb, max_age_hours=1) as sp2:  # counter is persisted
        assert sp2.evicted_total == 20
        assert sp2.depth() == 10
        with pytest.raises(SpoolTooLargeError):
            sp2.put("t", bytes(20_000), 1)
        assert sp2.depth() == 10


def test_age_cap_evicts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spool_mod, "_AGE_CHECK_EVERY_S", 0.0)
    max_age_h = 0.3 / 3600  # 0.3 s
    with Spool(tmp_path / "s.sqlite", max_mb=1, max_age_hours=max_age_h) as sp:
        sp.put("t", b"old", 1)
        sp.put("t", b"old2", 1)
        time.sleep(0.45)
        sp.put("t", b"new", 1)
        assert [r[2] for r in sp.pending(10)] == [b"new"]
        assert sp.evicted_total == 2


def test_unwritable_location_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    with pytest.raises(SpoolUnavailableError) as ei:
        Spool(blocker / "sub" / "spool.sqlite", 1, 1)
    assert "spool.path" in str(ei.value) and str(blocker) in str(ei.value)
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(SpoolUnavailableError):
        Spool(garbage, 1, 1)


def test_default_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STATE_DIRECTORY", f"{tmp_path}/state:/var/lib/other")
    assert default_spool_path("~/spool.db") == Path.home() / "spool.db"  # spool.path wins
    state = tmp_path / "state" / "spool.sqlite"  # systemd's first StateDirectory
    assert default_spool_path() == state
    with Spool(None, 1, 1) as sp, BufferedSpool(None) as bs:  # both take this default
        assert sp.path == state and bs.path == state
    monkeypatch.setenv("STATE_DIRECTORY", ":/var/lib/other")
    assert default_spool_path() == tmp_path / "var" / "spool.sqlite"  # empty first entry
    monkeypatch.delenv("STATE_DIRECTORY")
    assert default_spool_path(None) == tmp_path / "var" / "spool.sqlite"  # absolute


def test_thread_safe(tmp_path: Path) -> None:
    sp = Spool(tmp_path / "s.sqlite", 10, 1, durable=False)
    acked: list[int] = []

    def producer() -> None:
        for i in range(100):
            sp.put("t", b"%d" % i, 1)

    def consumer() -> None:
        for _ in range(200):
            for row in sp.pending(5):
                if sp.ack(row[0]):
                    acked.append(row[0])

    threads = [threading.Thread(target=producer) for _ in range(3)]
    threads += [threading.Thread(target=consumer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(acked) == len(set(acked))  # nothing acked twice
    assert sp.depth() + len(acked) == 300
    assert sp.depth() == len(sp.pending(1000))
    sp.close()


# -- clock jumps -------------------------------------------------------------------------------
def test_clock_jumps_neither_reorder_nor_evict(tmp_path: Path) -> None:
    clock = JumpClock()
    path = tmp_path / "s.sqlite"
    with Spool(path, max_mb=1, max_age_hours=24, wall_clock=clock) as sp:
        ids = [sp.put("t", b"a", 1)]
        clock.offset = -5 * 3600  # stepped back 5 h: this row looks older than the first
        ids.append(sp.put("t", b"b", 1))
        clock.offset = +200 * 3600  # forward 200 h, far past max_age: still only seconds old
        ids.append(sp.put("t", b"c", 1))
        sp._evict_aged()  # the age check, now instead of after _AGE_CHECK_EVERY_S
        assert [r[2] for r in sp.pending(10)] == [b"a", b"b", b"c"]  # delivery order = id order
        assert sp.evicted_total == 0 and ids == sorted(ids)
    # After a reboot the boot clock says nothing about these rows: their wall stamps decide.
    clock.offset = +30 * 3600
    with Spool(path, max_mb=1, max_age_hours=24, wall_clock=clock, boot_id="next-boot") as sp:
        assert [r[2] for r in sp.pending(10)] == [b"c"] and sp.evicted_total == 2


# -- BufferedSpool: the disk fails, events wait in memory -------------------------------------
def _blocked_path(tmp_path: Path) -> tuple[Path, Path]:
    """A spool path nobody can create, root included: its parent directory is a regular file
    (mkdir fails with EEXIST/ENOTDIR whatever the permissions; chmod 0o555 would not stop root)."""
    blocker = tmp_path / "state"
    blocker.write_text("a file where the spool directory should be")
    return blocker, blocker / "spool.sqlite"


def test_buffered_spool_holds_in_memory_and_moves_to_disk(tmp_path: Path, caplog) -> None:
    blocker, path = _blocked_path(tmp_path)
    caplog.set_level("INFO", logger="edge.publish.buffered")
    sp = BufferedSpool(path, 1, 1, memory_max_mb=3500 / (1024 * 1024), retry_s=0.1)
    ids = [sp.put("t", bytes(999), 1) for _ in range(5)]  # 1000 bytes each: 3 fit
    st = sp.stats()
    assert st["state"] == "memory" and str(blocker) in st["error"]
    assert st["memory_depth"] == 3 and st["memory_dropped"] == 2 and sp.evicted_total == 2
    assert ids == sorted(ids) and ids[0] > UNKNOWN_DISK_BASE  # cannot clash with an old file's ids
    assert [r[0] for r in sp.pending(10)] == ids[2:]
    assert [r[0] for r in sp.pending(10, after_id=ids[3])] == ids[4:]
    assert sp.ack_many([ids[2]]) == 1 and sp.depth() == 2
    # logged once per episode, not per event
    assert sum("holding events in memory" in r.getMessage() for r in caplog.records) == 1
    assert sum("memory buffer full" in r.getMessage() for r in caplog.records) == 1

    blocker.unlink()  # the directory can be created again
    time.sleep(0.15)
    new = sp.put("t", b"new", 1)
    assert sp.stats()["state"] == "disk" and sp.stats()["memory_depth"] == 0
    assert new > ids[-1]  # the disk continues after every id handed out
    rows = sp.pending(10)
    assert [r[0] for r in rows] == [ids[3], ids[4], new]  # held events kept their ids
    assert any("writable again" in r.getMessage() for r in caplog.records)
    sp.close()
    with Spool(path, 1, 1) as disk:  # really on disk
        assert [r[0] for r in disk.pending(10)] == [ids[3], ids[4], new]


def test_buffered_spool_is_a_plain_spool_when_the_disk_works(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with Spool(path, 1, 1) as old:
        old.put("t", b"left over", 1)
    with BufferedSpool(path, 1, 1) as sp:
        a = sp.put("t", b"x", 1)
        assert sp.stats()["state"] == "disk" and sp.stats()["error"] is None
        assert [r[2] for r in sp.pending(10)] == [b"left over", b"x"] and a < UNKNOWN_DISK_BASE
        assert sp.ack(a) and sp.depth() == 1


def test_spool_file_from_before_boot_ages_still_opens(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE spool (id INTEGER PRIMARY KEY AUTOINCREMENT, created REAL NOT NULL,"
        " topic TEXT NOT NULL, qos INTEGER NOT NULL, payload BLOB NOT NULL, size INTEGER NOT NULL);"
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
        "INSERT INTO meta VALUES ('evicted_total', 0);"
    )
    db.execute(
        "INSERT INTO spool(created, topic, qos, payload, size) VALUES (?, 't', 1, x'01', 2)",
        (time.time(),),
    )
    db.commit()
    db.close()
    with Spool(path, 1, 1) as sp:
        sp.put("t", b"new", 1)
        assert [r[2] for r in sp.pending(10)] == [b"\x01", b"new"]
