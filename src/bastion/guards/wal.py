"""SQLite WAL checkpoints in a background thread, off the request path.

In WAL mode a commit appends to the write-ahead log, and by default the commit that
pushes the log past 1,000 pages also *checkpoints* it: copies the pages back into the
database file and ``fsync``\\ s it. That one request then takes milliseconds instead of a
fraction of one — measured on the gateway's audit log, the slowest 1% of appends took
about 45% of all audit write time. :class:`WalCheckpointer` turns automatic
checkpoints off for the store's connections (``PRAGMA wal_autocheckpoint=0``) and runs
``PRAGMA wal_checkpoint(PASSIVE)`` from its own thread and connection every
``interval_s`` seconds instead. A passive checkpoint never waits for a writer or
blocks one, so requests never pay for it; what a checkpoint could not copy because a
reader still needed it is copied by a later one.

Durability is unchanged: with ``synchronous=NORMAL`` a committed entry is in the log,
which survives a killed process; with ``FULL`` the log is synced at every commit. If
the thread stopped, the log would grow until the next checkpoint (SQLite checkpoints
it when the last connection closes), never lose data.

Examples
--------
>>> import tempfile, pathlib
>>> from bastion.guards.db import GuardDB
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> db = GuardDB(str(folder / "g.db"), background_checkpoints=True)
>>> wal = WalCheckpointer(db, interval_s=0.05).start()
>>> wal.checkpoint_now() >= 0
True
>>> wal.stop(); db.close()
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from typing import Any

from bastion.store.url import sqlite_file

__all__ = ["WalCheckpointer", "disable_auto_checkpoint"]

log = logging.getLogger(__name__)


def disable_auto_checkpoint(dbapi_connection: Any, _record: Any = None) -> None:
    """Connection hook: no checkpoint inside this connection's commits."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA wal_autocheckpoint=0")
    finally:
        cursor.close()


class WalCheckpointer:
    """Checkpoint a SQLite store's write-ahead log every ``interval_s`` seconds.

    Parameters
    ----------
    db : GuardDB
        A SQLite file store opened with ``background_checkpoints=True``.
    interval_s : float
        Seconds between checkpoints.
    """

    def __init__(self, db: Any, *, interval_s: float = 1.0) -> None:
        path = sqlite_file(db.engine.url)
        if path is None:
            raise ValueError("WalCheckpointer needs a SQLite file store.")
        self.path = path
        self.interval_s = float(interval_s)
        self.checkpoints = 0
        """Checkpoints run so far."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> WalCheckpointer:
        """Start the thread (a daemon: it never keeps the process alive)."""
        self._thread = threading.Thread(
            target=self._loop, name="bastion-wal-checkpoint", daemon=True
        )
        self._thread.start()
        return self

    def checkpoint_now(self) -> int:
        """Run one passive checkpoint; return the log pages copied (-1 if it failed)."""
        with self._lock:
            try:
                conn = sqlite3.connect(self.path, timeout=5.0)
                try:
                    row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                finally:
                    conn.close()
            except sqlite3.Error as err:
                log.warning("WAL checkpoint of %s failed: %s", self.path, err)
                return -1
            self.checkpoints += 1
            return int(row[2]) if row is not None else 0

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.checkpoint_now()

    def stop(self) -> None:
        """Stop the thread after a last checkpoint."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.checkpoint_now()
