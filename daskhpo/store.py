"""Trial stores: append-only logs of finished results, read by ``cv_results_``, monitors and resume.

:class:`MemoryStore` keeps results in a list. :class:`SQLiteStore` keeps them in a SQLite file (standard
library ``sqlite3``, WAL mode) that holds many named searches: one row per search (its settings, a
fingerprint of what it ran on, its status) and one row per finished trial, all as JSON text, never
pickle, so opening a store runs no code. Several processes may append to one file at once.

Both also keep a *unit cache* (:class:`UnitCache`): the outcome of every (candidate, fold) fit under
a key made from its content (data, folds, estimator, candidate, scoring, versions), shared by every
search in the store whatever its name, so that a search never computes again what an earlier one did
(see :mod:`daskhpo.reuse`). The store only compares keys: it never runs code to decide.

Both implement the whole :class:`Store` protocol and both pickle (a fitted search keeps its store):
a :class:`MemoryStore` with its results, a :class:`SQLiteStore` as its path and name, reopening the
file on first use after unpickling.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
import threading
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from .exceptions import DaskHPOError, InvalidSearchError, InvalidSearchTypeError
from .resultlog import ResultLog
from .reuse import stale
from .strategies.base import Job, Result, Status

__all__ = [
    "Store",
    "MemoryStore",
    "SQLiteStore",
    "StoreVersionError",
    "StoreNotFoundError",
    "UnitCache",
    "MemoryUnits",
    "open_store",
    "result_to_json",
    "result_from_json",
]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1


class StoreVersionError(DaskHPOError):
    """The store file was written with a schema this version of daskhpo does not read."""


class StoreNotFoundError(DaskHPOError, FileNotFoundError):
    """A store file that was opened before (a store unpickled in another process) is gone."""


class StoreWriteError(DaskHPOError, OSError):
    """The store file cannot be written (read-only, immutable, full disk); the text names the path."""


class SearchClaimedError(DaskHPOError, RuntimeError):
    """Another process is running the search of that name in that store (it holds the name's lease)."""


class StoreFileWarning(UserWarning):
    """The store file was deleted or replaced while a search wrote to it; daskhpo put the trials back."""


@runtime_checkable
class Store(Protocol):
    """An append-only log of one named search's finished trials, with the search's own row.

    ``persistent`` says whether the log outlives the process (so a search can resume from it).
    ``records()`` are :func:`result_to_json` of each result, in append order. ``info()`` has the keys
    ``name``, ``spec``, ``fingerprint``, ``status``, ``created``, ``updated`` and ``n_trials``;
    ``searches()`` lists ``name``, ``status``, ``updated`` and ``n_trials`` of every search the store
    holds.
    """

    name: str
    persistent: bool

    def append(self, result: Result) -> None: ...

    def results(self) -> Sequence[Result]: ...

    def records(self) -> list[dict[str, Any]]: ...

    def __len__(self) -> int: ...

    def start(self, spec: Mapping[str, Any], fingerprint: str | None) -> None: ...

    def set_status(self, status: str) -> None: ...

    def info(self) -> dict[str, Any]: ...

    def searches(self) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...


@runtime_checkable
class Claiming(Protocol):
    """A store that one process at a time may run a search in (``SQLiteStore``; a store without
    these methods is used as it is)."""

    def claim(self) -> None:
        """Take the search's name for this process (refused while another one runs it)."""

    def release(self) -> None:
        """Give the name back (the search ended)."""


@runtime_checkable
class UnitCache(Protocol):
    """Outcomes of single (candidate, fold) fits, by content key, shared by a store's searches.

    A row is a dict with ``key``, ``context`` (a token of everything but the candidate and the fold),
    ``status`` (``"ok"`` or ``"failed"``), ``deterministic`` (bool), ``versions`` (package versions the
    key was made with), ``search`` (the name that computed it) and ``data`` (JSON-safe: params, fold,
    scores, times, error text).
    """

    def units_get(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        """The stored rows among ``keys`` (a hit is counted for each)."""
        ...

    def units_put(self, rows: list[dict[str, Any]]) -> None:
        """Store rows (a row with a key already there replaces it)."""
        ...

    def units_for_context(self, context: str) -> list[dict[str, Any]]:
        """Every row of one context, oldest first (what a warm start reads)."""
        ...

    def units_summary(self) -> list[dict[str, Any]]:
        """Rows counted by versions and status: versions, status, units, hits, bytes, newest."""
        ...

    def units_prune(
        self, *, keep_versions: Mapping[str, str] | None = None, older_than: float | None = None
    ) -> int:
        """Delete rows made with other package versions than ``keep_versions`` (for every package
        both name) or not used since the time ``older_than``; both None: every row. Returns how many."""
        ...


class MemoryUnits:
    """The unit cache of a :class:`MemoryStore`: a dict, shared by every search given that store."""

    def __init__(self) -> None:
        self._rows: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        with self._lock:
            return {"_rows": dict(self._rows)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._rows = state["_rows"]
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._rows)

    def units_get(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        now = time.time()
        with self._lock:
            found = {k: self._rows[k] for k in keys if k in self._rows}
            for row in found.values():
                row["hits"] = row.get("hits", 0) + 1
                row["used"] = now
        return {k: dict(v) for k, v in found.items()}

    def units_put(self, rows: list[dict[str, Any]]) -> None:
        now = time.time()
        with self._lock:
            for row in rows:
                self._rows[row["key"]] = {**row, "created": now, "used": now, "hits": 0}

    def units_for_context(self, context: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._rows.values() if r["context"] == context]

    def units_summary(self) -> list[dict[str, Any]]:
        groups: dict[tuple[str, str], dict[str, Any]] = {}
        with self._lock:
            for r in self._rows.values():
                versions = json.dumps(r["versions"], sort_keys=True)
                g = groups.setdefault(
                    (versions, r["status"]),
                    {
                        "versions": r["versions"],
                        "status": r["status"],
                        "units": 0,
                        "hits": 0,
                        "bytes": 0,
                        "newest": 0.0,
                    },
                )
                g["units"] += 1
                g["hits"] += r.get("hits", 0)
                g["bytes"] += len(json.dumps(r["data"]))
                g["newest"] = max(g["newest"], r.get("created", 0.0))
        return list(groups.values())

    def units_prune(
        self, *, keep_versions: Mapping[str, str] | None = None, older_than: float | None = None
    ) -> int:
        with self._lock:
            doomed = [
                k
                for k, r in self._rows.items()
                if (keep_versions is None and older_than is None)
                or (keep_versions is not None and stale(r["versions"], keep_versions))
                or (older_than is not None and r.get("used", 0.0) < older_than)
            ]
            for k in doomed:
                del self._rows[k]
        return len(doomed)


class MemoryStore:
    """One search's results kept in a Python list, safe to read from another thread while a search
    appends. Not persistent: nothing outlives the process (a pickled store keeps its results).

    Parameters
    ----------
    name : str
        The search's name.
    keep_units : bool
        Keep a unit cache at all. ``storage=None`` makes stores without one, so that a search's
        memory holds only its results; a store made by the user and passed as ``storage=`` to
        several searches keeps one, and they reuse one another's fits.
    """

    persistent = False

    def __init__(self, name: str = "default", *, keep_units: bool = True) -> None:
        self.name = name
        self.keeps_units = keep_units
        self.units = MemoryUnits()
        self._results = ResultLog()
        self._lock = threading.Lock()
        now = time.time()
        self._row: dict[str, Any] = {
            "spec": {},
            "fingerprint": None,
            "status": "new",
            "created": now,
            "updated": now,
        }

    def __getstate__(self) -> dict[str, Any]:
        with self._lock:
            state = self.__dict__.copy()
            state["_results"] = ResultLog(self._results.view())
            state["_row"] = dict(self._row)
        del state["_lock"]  # a lock does not pickle
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if isinstance(state.get("_results"), list):  # pickled before results were kept in columns
            state["_results"] = ResultLog(state["_results"])
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _touch(self) -> None:
        self._row["updated"] = time.time()

    # -- the search row ---------------------------------------------------------------------------
    def start(self, spec: Mapping[str, Any], fingerprint: str | None) -> None:
        """Record what the search runs; ``spec`` is merged into what is there, as JSON-safe values."""
        with self._lock:
            self._row["spec"] = {**self._row["spec"], **_plain(dict(spec))}
            if fingerprint is not None:
                self._row["fingerprint"] = fingerprint
            self._row["status"] = "running"
            self._touch()

    def set_status(self, status: str) -> None:
        with self._lock:
            self._row["status"] = status
            self._touch()

    def info(self) -> dict[str, Any]:
        """The search's row: name, spec, fingerprint, status, created, updated, number of trials."""
        with self._lock:
            row = dict(self._row)
            row["spec"] = json.loads(json.dumps(row["spec"]))  # a copy the caller may change
            return {"name": self.name, **row, "n_trials": len(self._results)}

    def searches(self) -> list[dict[str, Any]]:
        """This store's one search: name, status, last update, number of trials."""
        info = self.info()
        return [{k: info[k] for k in ("name", "status", "updated", "n_trials")}]

    # -- trials -----------------------------------------------------------------------------------
    def append(self, result: Result) -> None:
        with self._lock:
            self._results.append(result)
            self._touch()

    def results(self) -> Sequence[Result]:
        """The results appended so far, in order (a view: each is made as it is read)."""
        with self._lock:
            return self._results.view()

    def records(self) -> list[dict[str, Any]]:
        """The results as JSON dicts (:func:`result_to_json`), in the order they were appended."""
        return [result_to_json(r) for r in self.results()]

    def __len__(self) -> int:
        return len(self._results)

    def __iter__(self) -> Iterator[Result]:
        return iter(self.results())

    def close(self) -> None:
        """Nothing to release (the results stay readable)."""

    def reset(self) -> None:
        """Forget this search's trials and status (its unit cache stays): a rerun under its name."""
        with self._lock:
            self._results = ResultLog()
            self._row.update(spec={}, fingerprint=None, status="new")
            self._touch()

    # -- the unit cache (shared with the stores made from this one) ---------------------------------
    def units_get(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        return self.units.units_get(keys) if self.keeps_units else {}

    def units_put(self, rows: list[dict[str, Any]]) -> None:
        if self.keeps_units:
            self.units.units_put(rows)

    def units_for_context(self, context: str) -> list[dict[str, Any]]:
        return self.units.units_for_context(context)

    def units_summary(self) -> list[dict[str, Any]]:
        return self.units.units_summary()

    def units_prune(
        self, *, keep_versions: Mapping[str, str] | None = None, older_than: float | None = None
    ) -> int:
        return self.units.units_prune(keep_versions=keep_versions, older_than=older_than)


def _plain(value: Any) -> Any:
    """A JSON-safe stand-in for a parameter value (numbers, strings, lists, dicts; repr otherwise)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return {"__repr__": repr(value)}


plain_value = _plain  # the JSON form a stored trial keeps of its parameters


def result_to_json(result: Result) -> dict[str, Any]:
    """Everything a result says, as JSON-safe values. Params that are not plain values keep their repr."""
    job = result.job
    return {
        "trial_id": job.trial_id,
        "params": _plain(dict(job.params)),
        "budget": job.budget,
        "rung": job.rung,
        "bracket": job.bracket,
        "status": result.status.value,
        "score": result.score,
        "test_scores": {k: list(v) for k, v in result.test_scores.items()},
        "train_scores": None
        if result.train_scores is None
        else {k: list(v) for k, v in result.train_scores.items()},
        "fit_times": list(result.fit_times),
        "score_times": list(result.score_times),
        "errors": list(result.errors),
        "extra": _plain(dict(result.extra)),
    }


def result_from_json(data: Mapping[str, Any], params: Mapping[str, Any] | None = None) -> Result:
    """Rebuild a result; ``params`` (the original objects) replace the stored JSON stand-ins if given."""
    job = Job(
        trial_id=int(data["trial_id"]),
        params=dict(params) if params is not None else dict(data["params"]),
        budget=data.get("budget"),
        rung=int(data.get("rung", 0)),
        bracket=int(data.get("bracket", 0)),
    )
    train = data.get("train_scores")
    score = data.get("score")
    return Result(
        job=job,
        status=Status(data["status"]),
        score=math.nan if score is None else float(score),
        test_scores={k: tuple(v) for k, v in data["test_scores"].items()},
        train_scores=None if train is None else {k: tuple(v) for k, v in train.items()},
        fit_times=tuple(data["fit_times"]),
        score_times=tuple(data["score_times"]),
        errors=tuple(data.get("errors", ())),
        extra=dict(data.get("extra") or {}),
    )


class SQLiteStore:
    """A named search's trials in a SQLite file shared by many searches and processes.

    A pickled store holds only its path, name and timeout; the unpickled one opens the file on first
    use (as with ``create=False``) and raises :class:`StoreNotFoundError` if the file is gone.

    Parameters
    ----------
    path : str or Path
        The database file; created with its folder if missing.
    name : str
        The search's name inside the file.
    timeout : float
        Seconds to wait for another writer's lock.
    create : bool
        Add the search to the file if it is not there (False: only read what is there).
    """

    persistent = True
    keeps_units = True
    # How long a claim on a search's name lasts without being renewed; a running search renews it
    # with every write and from a heartbeat thread. DASKHPO_LEASE_SECONDS overrides it.
    lease_seconds = 60.0
    _lease = lease_seconds
    _lost: str | None = None  # why this process's claim was taken over, once it was

    def __init__(
        self, path: str | Path, name: str = "default", *, timeout: float = 30.0, create: bool = True
    ) -> None:
        self.path = Path(path)
        self.name = name
        self.timeout = timeout
        self._lock = threading.Lock()
        self._owner: str | None = None
        self._heartbeat: threading.Event | None = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._identity: tuple[int, int] | None = None
        self._conn: sqlite3.Connection | None = self._connect(create)

    def __getstate__(self) -> dict[str, Any]:
        return {"path": str(self.path), "name": self.name, "timeout": self.timeout}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path = Path(state["path"])
        self.name = state["name"]
        self.timeout = state["timeout"]
        self._lock = threading.Lock()
        self._identity = None
        self._owner = None  # a claim belongs to the process that made it, never to a copy
        self._heartbeat = None
        self._conn = None  # opened on first use

    def _connect(self, create: bool) -> sqlite3.Connection:
        """Open the file, check its schema version and make its tables (and the search's row)."""
        try:
            conn = sqlite3.connect(
                str(self.path), timeout=self.timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise self._write_error(exc) from exc
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                self._setup(conn, create)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            conn.close()
            raise self._write_error(exc) from exc
        except BaseException:
            conn.close()
            raise
        self._identity = self._file_identity()
        return conn

    def _file_identity(self) -> tuple[int, int] | None:
        return _identity(self.path)

    def _write_error(self, exc: BaseException) -> StoreWriteError:
        return StoreWriteError(
            f"cannot write the store file {self.path} (search {self.name!r}): {exc}. Check that the "
            "file, its -wal and -shm files and its folder are writable and the disk has room; the "
            "trials written before this are in the file, and fit(..., resume=True) computes only "
            "the rest once it can be written again."
        )

    def _guard(self, write: bool) -> None:
        """Refuse to touch a store whose files cannot be written.

        SQLite maps the ``-shm`` index of a WAL database into memory: writing through that mapping
        when the file has become read-only or immutable kills the process with SIGBUS (in a notebook,
        the kernel dies). Checked before every use, so that it is a clear error instead.
        """
        # Reading maps only the index; an archived read-only file can still be read.
        for suffix in ("", "-wal", "-shm") if write else ("-shm",):
            f = self.path.with_name(self.path.name + suffix)
            if f.exists() and not os.access(f, os.W_OK):
                raise StoreWriteError(
                    f"cannot write the store file {f} (search {self.name!r}): it is read-only or "
                    "immutable. daskhpo stops before SQLite uses it; make it writable again "
                    "(chmod, chattr -i), then fit(..., resume=True) computes only what is missing."
                )

    def _check_file(self, conn: sqlite3.Connection) -> sqlite3.Connection:
        """The connection to write through, after making sure the file at ``path`` is the one open.

        A store file deleted (or replaced) while a search writes to it would take every trial with
        it: the connection goes on writing into the unlinked file. Its content is still readable
        through the open connection, so it is copied back, whole, before the next write: to ``path``
        when the file is gone, or next to it when another file now stands there.
        """
        now = self._file_identity()
        if now is not None and now == self._identity:
            return conn
        if now is None:
            target = self.path
        else:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            target = self.path.with_name(f"{self.path.name}.recovered-{stamp}-{os.getpid()}")
        target.parent.mkdir(parents=True, exist_ok=True)  # the folder may have gone too
        staging = target.with_name(f"{target.name}.daskhpo-restore")
        # The -wal and -shm files at the path are still this connection's. SQLite does not remove
        # them when it closes a database whose file was unlinked, and left there they would be read
        # as part of whatever file stands at the path next: removed here, if still the same files.
        side = [self.path.with_name(self.path.name + suffix) for suffix in ("-wal", "-shm")]
        ours = {f: _identity(f) for f in side}
        dest = sqlite3.connect(str(staging), isolation_level=None)
        try:
            conn.backup(dest)
        finally:
            dest.close()
        conn.close()
        for f, ident in ours.items():
            if ident is not None and _identity(f) == ident:
                f.unlink(missing_ok=True)
        os.replace(staging, target)
        what = "was deleted" if now is None else "was replaced by another file"
        where = (
            f"written back to {target}"
            if now is None
            else f"written to {target} (the file now at {self.path} is left alone)"
        )
        old_path = self.path
        self.path = target
        self._conn = self._connect(create=False)
        warnings.warn(
            f"daskhpo: the store file {old_path} {what} while search {self.name!r} was writing "
            f"to it; everything it held is {where} and the search goes on there.",
            StoreFileWarning,
            stacklevel=5,
        )
        return self._conn

    def _setup(self, conn: sqlite3.Connection, create: bool) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is None:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
        elif int(row[0]) != SCHEMA_VERSION:
            raise StoreVersionError(
                f"{self.path} holds daskhpo store schema version {row[0]}, but this daskhpo "
                f"reads version {SCHEMA_VERSION}: open it with the daskhpo version that wrote it, "
                "or pass another storage= file."
            )
        conn.execute(
            "CREATE TABLE IF NOT EXISTS searches (name TEXT PRIMARY KEY, spec TEXT NOT NULL, "
            "fingerprint TEXT, status TEXT NOT NULL, created REAL NOT NULL, updated REAL NOT NULL)"
        )
        conn.execute(
            "CREATE TABLE IF NOT EXISTS trials (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
            "search TEXT NOT NULL, trial_id INTEGER NOT NULL, status TEXT NOT NULL, score REAL, "
            "data TEXT NOT NULL, created REAL NOT NULL)"
        )
        conn.execute("CREATE INDEX IF NOT EXISTS trials_by_search ON trials (search, seq)")
        # Which process runs a search now: a lease it renews while it runs (see SQLiteStore.claim).
        conn.execute(
            "CREATE TABLE IF NOT EXISTS leases (name TEXT PRIMARY KEY, owner TEXT NOT NULL, "
            "host TEXT NOT NULL, pid INTEGER NOT NULL, expires REAL NOT NULL)"
        )
        # The unit cache: one row per (candidate, fold) fit, by content key, for every search here.
        conn.execute(
            "CREATE TABLE IF NOT EXISTS units (key TEXT PRIMARY KEY, context TEXT NOT NULL, "
            "status TEXT NOT NULL, deterministic INTEGER NOT NULL, versions TEXT NOT NULL, "
            "search TEXT, data TEXT NOT NULL, created REAL NOT NULL, used REAL NOT NULL, "
            "hits INTEGER NOT NULL DEFAULT 0)"
        )
        conn.execute("CREATE INDEX IF NOT EXISTS units_by_context ON units (context)")
        if create:
            now = time.time()
            conn.execute(
                "INSERT OR IGNORE INTO searches (name, spec, fingerprint, status, created, updated) "
                "VALUES (?, '{}', NULL, 'new', ?, ?)",
                (self.name, now, now),
            )

    def _connection(self, write: bool = False) -> sqlite3.Connection:
        """The open connection (the caller holds ``_lock``); an unpickled store opens it here."""
        self._guard(write)
        if self._conn is None:
            if not self.path.exists():
                raise StoreNotFoundError(
                    f"the store file {self.path} (search {self.name!r}) is gone: this store was "
                    "pickled while the file existed. Copy the file back to that path, or open the "
                    "store where the file is now with SQLiteStore(path, name)."
                )
            self._conn = self._connect(create=False)
        return self._conn

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._connection()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._check_file(self._connection(write=True))
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise self._write_error(exc) from exc
            try:
                yield conn
            except sqlite3.OperationalError as exc:
                _rollback(conn)
                raise self._write_error(exc) from exc
            except BaseException:
                _rollback(conn)
                raise
            try:
                conn.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                _rollback(conn)
                raise self._write_error(exc) from exc

    # -- the search row ---------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """The search's row: spec, fingerprint, status, created, updated, number of trials."""
        with self._read() as conn:
            row = conn.execute(
                "SELECT spec, fingerprint, status, created, updated FROM searches WHERE name=?",
                (self.name,),
            ).fetchone()
            count = conn.execute(
                "SELECT COUNT(*) FROM trials WHERE search=?", (self.name,)
            ).fetchone()[0]
            lease = conn.execute(
                "SELECT host, pid, expires FROM leases WHERE name=?", (self.name,)
            ).fetchone()
        spec, fingerprint, status, created, updated = row
        out = {
            "name": self.name,
            "spec": json.loads(spec),
            "fingerprint": fingerprint,
            "status": status,
            "created": created,
            "updated": updated,
            "n_trials": count,
        }
        if lease is not None and lease[2] > time.time() and not _dead_here(lease[0], lease[1]):
            out["running_in"] = {"host": lease[0], "pid": lease[1]}
        return out

    def start(self, spec: Mapping[str, Any], fingerprint: str | None) -> None:
        """Record what the search runs (settings as JSON, a fingerprint of data and settings).

        ``spec`` is merged into what is stored, so a document saved earlier (the YAML spec of a
        detached run, say) stays.
        """
        with self._write() as conn:
            row = conn.execute("SELECT spec FROM searches WHERE name=?", (self.name,)).fetchone()
            merged = {**(json.loads(row[0]) if row else {}), **_plain(dict(spec))}
            conn.execute(
                "UPDATE searches SET spec=?, fingerprint=COALESCE(?, fingerprint), status='running', "
                "updated=? WHERE name=?",
                (json.dumps(merged), fingerprint, time.time(), self.name),
            )

    def set_status(self, status: str) -> None:
        with self._write() as conn:
            conn.execute(
                "UPDATE searches SET status=?, updated=? WHERE name=?",
                (status, time.time(), self.name),
            )
            self._renew(conn)

    # -- who runs the search ----------------------------------------------------------------------
    def claim(self) -> None:
        """Take the search's name in this file for this process, for as long as the search runs.

        Refused with :class:`SearchClaimedError` while another process holds it (two notebook tabs,
        a retried job): both would compute every trial. The claim is a lease that every write and a
        heartbeat thread renew; a crashed owner's lease runs out after ``lease_seconds``, and then a
        ``resume=True`` fit takes the search over.
        """
        import uuid

        if self._heartbeat is not None:  # claimed before by this object: start afresh
            self._heartbeat.set()
            self._heartbeat = None
        seconds = max(1.0, float(os.environ.get("DASKHPO_LEASE_SECONDS", self.lease_seconds)))
        host, pid = _this_process()
        owner = f"{host}:{pid}:{uuid.uuid4().hex[:8]}"
        now = time.time()
        with self._write() as conn:
            row = conn.execute(
                "SELECT owner, host, pid, expires FROM leases WHERE name=?", (self.name,)
            ).fetchone()
            if (
                row is not None
                and row[0] != self._owner
                and row[3] > now
                and not _dead_here(row[1], row[2])
            ):
                until = time.strftime("%H:%M:%S", time.localtime(row[3]))
                raise SearchClaimedError(
                    f"search {self.name!r} in {self.path} is running in process {row[2]} on "
                    f"{row[1]} (its claim is renewed while it runs; unless renewed it ends at "
                    f"{until}): running it here too would compute every trial twice. Wait for it to "
                    "end and call fit(..., resume=True) to continue from its trials, or pass "
                    "another name=."
                )
            conn.execute(
                "INSERT OR REPLACE INTO leases (name, owner, host, pid, expires) VALUES "
                "(?, ?, ?, ?, ?)",
                (self.name, owner, host, pid, now + seconds),
            )
        self._owner, self._lease = owner, seconds
        stop = threading.Event()
        self._heartbeat = stop
        threading.Thread(
            target=self._beat, args=(stop, seconds / 4), daemon=True, name="daskhpo-lease"
        ).start()

    def _beat(self, stop: threading.Event, every: float) -> None:
        while not stop.wait(every):
            try:
                with self._write() as conn:
                    self._renew(conn)
            except SearchClaimedError:
                return  # the search's next write raises it
            except Exception as exc:  # the next write of the search says what is wrong
                logger.debug("daskhpo: renewing the claim on %s failed: %s", self.name, exc)

    def _renew(self, conn: sqlite3.Connection) -> None:
        """Extend this process's claim; if another process took the search over meanwhile (this one
        was stopped longer than the lease), stop instead of computing its trials twice."""
        if self._lost is not None:
            raise SearchClaimedError(self._lost)
        if self._owner is None:
            return
        done = conn.execute(
            "UPDATE leases SET expires=? WHERE name=? AND owner=?",
            (time.time() + self._lease, self.name, self._owner),
        ).rowcount
        if done == 0:
            row = conn.execute("SELECT host, pid FROM leases WHERE name=?", (self.name,)).fetchone()
            if row is None:  # nobody holds it: take it again
                conn.execute(
                    "INSERT INTO leases (name, owner, host, pid, expires) VALUES (?, ?, ?, ?, ?)",
                    (self.name, self._owner, *_this_process(), time.time() + self._lease),
                )
                return
            self._lost = (
                f"search {self.name!r} in {self.path} was taken over by process {row[1]} on "
                f"{row[0]} while this process did not renew its claim (stopped or paused longer "
                f"than {self._lease:g} s); this process stops so that no trial runs twice."
            )
            raise SearchClaimedError(self._lost)

    def release(self) -> None:
        """Give the name back (the search ended, however it ended)."""
        if self._heartbeat is not None:
            self._heartbeat.set()
            self._heartbeat = None
        if self._owner is None:
            return
        owner, self._owner = self._owner, None
        try:
            with self._write() as conn:
                conn.execute("DELETE FROM leases WHERE name=? AND owner=?", (self.name, owner))
        except (StoreWriteError, sqlite3.Error) as exc:  # the lease then runs out on its own
            logger.warning("daskhpo: could not release the claim on %r: %s", self.name, exc)

    # -- trials -----------------------------------------------------------------------------------
    def append(self, result: Result) -> None:
        data = json.dumps(result_to_json(result))
        with self._write() as conn:
            conn.execute(
                "INSERT INTO trials (search, trial_id, status, score, data, created) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    self.name,
                    result.job.trial_id,
                    result.status.value,
                    None if math.isnan(result.score) else result.score,
                    data,
                    time.time(),
                ),
            )
            conn.execute("UPDATE searches SET updated=? WHERE name=?", (time.time(), self.name))
            self._renew(conn)

    def records(self) -> list[dict[str, Any]]:
        """The stored trials as JSON dicts, in the order they were appended."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT data FROM trials WHERE search=? ORDER BY seq", (self.name,)
            ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def results(self) -> list[Result]:
        return [result_from_json(d) for d in self.records()]

    def __len__(self) -> int:
        with self._read() as conn:
            row = conn.execute(
                "SELECT COUNT(*) FROM trials WHERE search=?", (self.name,)
            ).fetchone()
        return int(row[0])

    def searches(self) -> list[dict[str, Any]]:
        """Every search in the file: name, status, trials, last update."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT s.name, s.status, s.updated, COUNT(t.seq) FROM searches s "
                "LEFT JOIN trials t ON t.search = s.name GROUP BY s.name ORDER BY s.created"
            ).fetchall()
        return [{"name": n, "status": s, "updated": u, "n_trials": c} for n, s, u, c in rows]

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()

    def reset(self) -> None:
        """Delete this search's trials and clear its row (the unit cache stays): a rerun under the
        same name, whose units come back from the cache."""
        with self._write() as conn:
            conn.execute("DELETE FROM trials WHERE search=?", (self.name,))
            conn.execute(
                "UPDATE searches SET spec='{}', fingerprint=NULL, status='new', updated=? "
                "WHERE name=?",
                (time.time(), self.name),
            )
            self._renew(conn)

    # -- the unit cache -----------------------------------------------------------------------------
    _UNIT_COLUMNS = (
        "key, context, status, deterministic, versions, search, data, created, used, hits"
    )

    @staticmethod
    def _unit_row(row: tuple[Any, ...]) -> dict[str, Any]:
        key, context, status, det, versions, search, data, created, used, hits = row
        return {
            "key": key,
            "context": context,
            "status": status,
            "deterministic": bool(det),
            "versions": json.loads(versions),
            "search": search,
            "data": json.loads(data),
            "created": created,
            "used": used,
            "hits": hits,
        }

    def units_get(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        if not keys:
            return {}
        found: dict[str, dict[str, Any]] = {}
        with self._read() as conn:
            for start in range(0, len(keys), 500):
                part = keys[start : start + 500]
                marks = ",".join("?" * len(part))
                for row in conn.execute(
                    f"SELECT {self._UNIT_COLUMNS} FROM units WHERE key IN ({marks})", part
                ):
                    found[row[0]] = self._unit_row(row)
        if found:
            now = time.time()
            try:
                with self._write() as conn:
                    conn.executemany(
                        "UPDATE units SET hits=hits+1, used=? WHERE key=?",
                        [(now, k) for k in found],
                    )
            except StoreWriteError:  # counting hits is not worth failing a search over
                pass
        return found

    def units_put(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        now = time.time()
        with self._write() as conn:
            conn.executemany(
                f"INSERT OR REPLACE INTO units ({self._UNIT_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
                [
                    (
                        r["key"],
                        r["context"],
                        r["status"],
                        int(bool(r["deterministic"])),
                        json.dumps(r["versions"], sort_keys=True),
                        r.get("search"),
                        json.dumps(r["data"]),
                        now,
                        now,
                    )
                    for r in rows
                ],
            )
            self._renew(conn)

    def units_for_context(self, context: str) -> list[dict[str, Any]]:
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {self._UNIT_COLUMNS} FROM units WHERE context=? ORDER BY created, key",
                (context,),
            ).fetchall()
        return [self._unit_row(r) for r in rows]

    def units_summary(self) -> list[dict[str, Any]]:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT versions, status, COUNT(*), SUM(hits), SUM(LENGTH(data)), MAX(created) "
                "FROM units GROUP BY versions, status ORDER BY MAX(created)"
            ).fetchall()
        return [
            {
                "versions": json.loads(v),
                "status": st,
                "units": n,
                "hits": int(h or 0),
                "bytes": int(b or 0),
                "newest": float(c or 0.0),
            }
            for v, st, n, h, b, c in rows
        ]

    def units_prune(
        self, *, keep_versions: Mapping[str, str] | None = None, older_than: float | None = None
    ) -> int:
        with self._write() as conn:
            if keep_versions is None and older_than is None:
                return int(conn.execute("DELETE FROM units").rowcount)
            doomed: list[str] = []
            if keep_versions is not None:
                for key, versions in conn.execute("SELECT key, versions FROM units"):
                    if stale(json.loads(versions), keep_versions):
                        doomed.append(key)
            if older_than is not None:
                doomed += [
                    k
                    for (k,) in conn.execute("SELECT key FROM units WHERE used < ?", (older_than,))
                ]
            doomed = sorted(set(doomed))
            conn.executemany("DELETE FROM units WHERE key=?", [(k,) for k in doomed])
            return len(doomed)


def _identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the file at ``path``, or None if there is none."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino)


def _this_process() -> tuple[str, int]:
    """(host name, process id) of this process, as a claim records its owner."""
    import socket

    return socket.gethostname(), os.getpid()


def _dead_here(host: str, pid: int) -> bool:
    """Whether a claim's owner was a process on this machine that no longer exists (a killed
    driver): its claim is then over at once, without waiting for it to run out."""
    here, me = _this_process()
    if host != here or pid == me:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def _rollback(conn: sqlite3.Connection) -> None:
    with suppress(sqlite3.Error):  # no transaction left to roll back (SQLite ended it on the error)
        conn.execute("ROLLBACK")


def open_store(storage: Any, name: str) -> Store:
    """The store a ``storage=`` argument names: None or ``"memory"``, or ``"sqlite:///path.db"``.

    A store object (anything implementing :class:`Store`) is returned as it is.
    """
    if storage is None or storage == "memory":
        return MemoryStore(name, keep_units=False)
    if isinstance(storage, Store):
        return storage
    if isinstance(storage, str) and storage.startswith("sqlite:///"):
        path = storage[len("sqlite:///") :]
        if not path:
            raise InvalidSearchError(
                f"storage={storage!r} names no file: use 'sqlite:///path/to/file.db'."
            )
        return SQLiteStore(path, name)
    if isinstance(storage, str):
        raise InvalidSearchError(
            f"storage={storage!r}: use None (in memory) or 'sqlite:///path/to/file.db' "
            "(a relative path after the three slashes, or four slashes for an absolute one)."
        )
    raise InvalidSearchTypeError(
        f"storage={storage!r}: expected None, 'memory' or a 'sqlite:///path.db' string."
    )
