"""The run store: one SQLite database (stdlib ``sqlite3``, WAL mode) per run folder.

It records everything a run did — configuration, model and weights hash, every image and its
hash, every page and cell, every photo and its outcome, every prediction and every result row —
by importing what each stage wrote. Every import is one transaction of upserts keyed on natural
keys, so importing twice (a re-run after a kill) never duplicates a row, and a kill mid-import
leaves the previous state. JSON/CSV exports are derived from it.

The schema version lives in SQLite's ``PRAGMA user_version``; a store of another version (older
or newer) is refused with one line, never read or altered (as MLflow refuses an unknown schema). All
SQL is parameterised. SQLite failures (a corrupt file, a full disk) become one
:class:`~physadv.errors.PhysadvError` line; a failed write rolls back, so the store keeps its last state.

A :class:`RunLock` (an exclusive ``flock`` on ``RUN/.lock``) keeps a second command off a run that
is being worked on: it refuses at once with a message naming the holder.
"""

from __future__ import annotations

import csv
import fcntl
import json
import os
import re
import socket
import sqlite3
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, NoReturn, TextIO

from physadv.attackset import ADV_DIR, CLEAN_DIR, stream_attack_set
from physadv.classifiers.zoo import file_sha256
from physadv.errors import InputError, PhysadvError
from physadv.images import pixel_sha256, read_rgb
from physadv.printouts.manifest import Manifest
from physadv.validation import PLAIN_NAME_RULE, is_safe_name

STORE_FILE, LOCK_FILE = "physadv.sqlite", ".lock"
# 2: top-5 predictions stored in one shape everywhere (images.clean_top5/adv_top5 and predictions.top5):
# a JSON list of {"index", "name", "probability"}, as in attack.json.
SCHEMA_VERSION = 2
TABLES = ("meta", "attacks", "images", "pages", "cells", "photos", "predictions", "results")
RESULT_SOURCES = ("capture", "experiment")
"""A result row's source is ``KIND:ATTACK``: the photos of an attack or its artificial transformations."""

_TEXT = ("typeof({c}) = 'text'", "text")
_INDEX = ("typeof({c}) = 'integer' AND {c} >= 0", "a whole number ≥ 0")
_FLAG = ("{c} IN (0, 1)", "0 or 1")
_RELATIVE = ("typeof({c}) = 'text' AND substr({c}, 1, 1) != '/' AND instr({c}, char(0)) = 0", "a relative path")
_KIND = ("{c} IN ('clean', 'adversarial')", "clean or adversarial")
_REAL = ("typeof({c}) = 'real'", "a number")
_PNG = ("typeof({c}) = 'text' AND {c} LIKE '%.png' AND instr({c}, '/') = 0 AND substr({c}, 1, 1) != '.' "
        "AND length({c}) <= 128", "a .png file name")


def _optional(rule: tuple[str, str]) -> tuple[str, str]:
    return f"{{c}} IS NULL OR ({rule[0]})", f"{rule[1]}, or nothing"


def _number(low: float, high: float) -> tuple[str, str]:
    return f"typeof({{c}}) = 'real' AND {{c}} BETWEEN {low} AND {high}", f"a number in [{low}, {high}]"


COLUMN_RULES: dict[str, dict[str, tuple[str, str]]] = {
    "meta": {"key": _TEXT, "value": _TEXT},
    "attacks": {"name": _TEXT, "method": _TEXT, "eps": _number(0, 255), "alpha": _number(0, 255),
                "iterations": _INDEX, "eot": _TEXT, "model": _TEXT, "weights": _TEXT, "weights_sha256": _TEXT,
                "folder": _RELATIVE},
    "images": {"attack": _TEXT, "image_id": _TEXT, "file": _PNG, "source": _TEXT, "label": _optional(_INDEX),
               "label_name": _optional(_TEXT), "clean_sha256": _TEXT, "adv_sha256": _TEXT, "clean_top5": _TEXT,
               "adv_top5": _TEXT, "success": _FLAG, "quantisation_undid": _FLAG},
    "pages": {"attack": _TEXT, "page": _INDEX, "sheet_run_id": _TEXT, "pdf": _RELATIVE},
    "cells": {"attack": _TEXT, "page": _INDEX, "cell": _INDEX, "image_id": _TEXT, "kind": _KIND, "sha256": _TEXT},
    "photos": {"attack": _TEXT, "photo": _TEXT, "accepted": _FLAG, "reason": _TEXT},
    "predictions": {"attack": _TEXT, "photo": _TEXT, "page": _INDEX, "cell": _INDEX, "image_id": _TEXT,
                    "kind": _KIND, "top5": _TEXT, "correct_top1": _optional(_FLAG), "correct_top5": _optional(_FLAG),
                    "crop": _RELATIVE},
    "results": {"source": _TEXT, "method": _TEXT, "eps": _REAL, "transform": _TEXT,
                "strength": _TEXT, "case": _TEXT, "row": _TEXT},
}
"""What each column of a run store holds: an SQL condition on column ``{c}``, and the same in words."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS attacks (
    name TEXT PRIMARY KEY, method TEXT NOT NULL, eps REAL NOT NULL, alpha REAL NOT NULL, iterations INTEGER NOT NULL,
    eot TEXT NOT NULL, model TEXT NOT NULL, weights TEXT NOT NULL, weights_sha256 TEXT NOT NULL, folder TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS images (
    attack TEXT NOT NULL REFERENCES attacks(name), image_id TEXT NOT NULL, file TEXT NOT NULL, source TEXT NOT NULL,
    label INTEGER, label_name TEXT, clean_sha256 TEXT NOT NULL, adv_sha256 TEXT NOT NULL, clean_top5 TEXT NOT NULL,
    adv_top5 TEXT NOT NULL, success INTEGER NOT NULL, quantisation_undid INTEGER NOT NULL,
    PRIMARY KEY (attack, image_id));
CREATE TABLE IF NOT EXISTS pages (
    attack TEXT NOT NULL, page INTEGER NOT NULL, sheet_run_id TEXT NOT NULL, pdf TEXT NOT NULL,
    PRIMARY KEY (attack, page));
CREATE TABLE IF NOT EXISTS cells (
    attack TEXT NOT NULL, page INTEGER NOT NULL, cell INTEGER NOT NULL, image_id TEXT NOT NULL, kind TEXT NOT NULL,
    sha256 TEXT NOT NULL, PRIMARY KEY (attack, page, cell));
CREATE TABLE IF NOT EXISTS photos (
    attack TEXT NOT NULL, photo TEXT NOT NULL, accepted INTEGER NOT NULL, reason TEXT NOT NULL,
    PRIMARY KEY (attack, photo, reason));
CREATE TABLE IF NOT EXISTS predictions (
    attack TEXT NOT NULL, photo TEXT NOT NULL, page INTEGER NOT NULL, cell INTEGER NOT NULL, image_id TEXT NOT NULL,
    kind TEXT NOT NULL, top5 TEXT NOT NULL, correct_top1 INTEGER, correct_top5 INTEGER,
    crop TEXT NOT NULL, PRIMARY KEY (attack, photo, page, cell));
CREATE TABLE IF NOT EXISTS results (
    source TEXT NOT NULL, method TEXT NOT NULL, eps REAL NOT NULL, transform TEXT NOT NULL, strength TEXT NOT NULL,
    "case" TEXT NOT NULL, row TEXT NOT NULL, PRIMARY KEY (source, method, eps, transform, strength, "case"));
"""


def find_run(path: str | Path) -> Path | None:
    """The run folder holding ``path`` (``path`` itself or a parent with a store), if any."""
    path = Path(path).resolve()
    for folder in (path, *path.parents):
        if (folder / STORE_FILE).is_file():
            return folder
    return None


class RunBusyError(PhysadvError):
    """Another physadv command holds the run."""


class RunLock:
    """Exclusive hold on a run folder for the life of one command (released by the OS if it dies).

    The lock file names its holder, ``physadv VERB (pid N on HOST)``. A process the holder forked (an
    image-reading worker) shares its lock and may outlive a holder killed with SIGKILL by some seconds;
    a lock whose holder is no longer alive on this host is therefore replaced by a new lock file
    rather than refused (the old one is released when the last such process exits).
    """

    def __init__(self, run_dir: Path, command: str) -> None:
        # A folder this lock creates and nothing else fills (the command failed on its input) is
        # removed again on release: a refused command leaves nothing behind.
        self._created = None if run_dir.is_dir() else run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        # Taking the lock is serialised by a lock on the folder itself, held for microseconds, so that
        # of two commands finding a stale lock only one replaces it.
        folder = os.open(run_dir, os.O_RDONLY)
        try:
            fcntl.flock(folder, fcntl.LOCK_EX)
            self._handle = _take_lock(run_dir)
        finally:
            os.close(folder)
        self._handle.seek(0)
        self._handle.truncate()
        self._handle.write(f"`physadv {command}` (pid {os.getpid()} on {socket.gethostname()})")
        self._handle.flush()

    def release(self) -> None:
        fcntl.flock(self._handle, fcntl.LOCK_UN)
        self._handle.close()
        if self._created is not None and [p.name for p in self._created.iterdir()] == [LOCK_FILE]:
            (self._created / LOCK_FILE).unlink()
            self._created.rmdir()

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _take_lock(run_dir: Path) -> TextIO:
    """``RUN/.lock`` opened and locked, or a fresh one in its place when its holder is gone (see
    :class:`RunLock`); :class:`RunBusyError` naming the holder when it is alive or elsewhere."""
    handle = open(run_dir / LOCK_FILE, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return handle
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip()
        handle.close()
    if not _holder_is_gone(holder):
        raise RunBusyError(f"{run_dir} is in use by {holder or 'another process'}; wait for it to finish (two "
                           "commands never work on one run at once)")
    fresh = run_dir / f"{LOCK_FILE}.{os.getpid()}.tmp"
    handle = open(fresh, "w+")
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file: nobody else holds it
    os.replace(fresh, run_dir / LOCK_FILE)
    return handle


_HOLDER = re.compile(r"\(pid (\d+) on (.+)\)")


def _holder_is_gone(holder: str) -> bool:
    """Whether the lock file's ``holder`` names a process of this host that no longer runs."""
    match = _HOLDER.search(holder)
    if match is None or match.group(2) != socket.gethostname():
        return False  # written by an older physadv, or by a process on another machine: it may be alive
    try:
        os.kill(int(match.group(1)), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError, ValueError):  # another user's process, or no pid at all
        return False
    return False


class RunStore:
    """The SQLite store of one run folder."""

    def __init__(self, run_dir: str | Path, create: bool = True) -> None:
        self.run_dir = Path(run_dir)
        if not create and not (self.run_dir / STORE_FILE).is_file():
            raise InputError(f"{run_dir}: not a physadv run (no {STORE_FILE}; `physadv demo` or `physadv run new` "
                             "make one)")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.run_dir / STORE_FILE
        with self._sqlite_errors("open"):
            self.connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self.connection.row_factory = sqlite3.Row
            self.connection.execute("PRAGMA journal_mode=WAL")
            self.connection.execute("PRAGMA foreign_keys=ON")
            self._check_schema()
            self._check_records()

    def _check_schema(self) -> None:
        """Create the tables in an empty store; refuse a store of another schema version."""
        version = self.connection.execute("PRAGMA user_version").fetchone()[0]
        empty = not self.connection.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        if version == 0 and empty:
            with self.transaction() as db:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")
                db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            return
        if not version:  # before schema 2 the version was only a row of the meta table
            row = self.connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() \
                if self.connection.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone() else None
            version = int(row[0]) if row and str(row[0]).isdigit() else "unknown"
        self.connection.close()
        age = "a newer" if isinstance(version, int) and version > SCHEMA_VERSION else "an older"
        found = version
        raise InputError(f"{self.path}: store schema version {found}, written by {age} physadv; this one reads "
                         f"version {SCHEMA_VERSION} only (use the physadv that made the run, or start a new run)")

    def _check_records(self) -> None:
        """Every field of every row is of its column's kind (:data:`COLUMN_RULES`), and every attack a table
        or result source names is a plain name (:data:`~physadv.validation.SAFE_NAME`) of the ``attacks``
        table: a store is a file like any other, whose names become folder names, links and row keys (an
        edited name would point outside the run and count its rows twice) and whose numbers become results.
        One scan per table; the texts of JSON columns are read where they are used."""
        for table, rules in COLUMN_RULES.items():
            # NULL (a comparison with NULL) counts as false: coalesce.
            conditions = {column: "coalesce((" + sql.format(c=f'"{column}"') + "), 0)"
                          for column, (sql, _) in rules.items()}
            cases = " ".join(f"WHEN NOT {condition} THEN ?" for condition in conditions.values())
            bad = self.connection.execute(
                f"SELECT rowid, CASE {cases} END FROM {table} WHERE NOT ({' AND '.join(conditions.values())}) LIMIT 1",
                list(rules)).fetchone()
            if bad is not None:
                self._refuse(f"{table}.{bad[1]} of row {bad[0]} is not {rules[bad[1]][1]}")
        recorded = set()
        for (name,) in self.connection.execute("SELECT name FROM attacks"):
            if not is_safe_name(name):
                self._refuse(f"attack name {name!r}"[:200] + f" is not a plain name ({PLAIN_NAME_RULE})")
            recorded.add(name)
        named = [(table, name) for table in ("images", "pages", "cells", "photos", "predictions")
                 for (name,) in self.connection.execute(f"SELECT DISTINCT attack FROM {table}")]
        for source, in self.connection.execute("SELECT DISTINCT source FROM results"):
            kind, _, name = source.partition(":") if isinstance(source, str) else ("", "", source)
            if kind not in RESULT_SOURCES:
                self._refuse(f"result source {source!r}"[:200] + f" is not {' or '.join(RESULT_SOURCES)}:ATTACK")
            named.append(("results", name))
        for table, name in named:
            if name not in recorded:
                self._refuse(f"{table} names attack {name!r}"[:200] + ", which its attacks table does not record")

    def _refuse(self, problem: str) -> NoReturn:
        self.connection.close()
        raise InputError(f"{self.path}: {problem}; the store is damaged or was edited — restore it from a copy or "
                         "start a new run")

    @contextmanager
    def _sqlite_errors(self, action: str) -> Iterator[None]:
        """SQLite's failures as one line: a corrupt store, a full disk, a read-only folder."""
        try:
            yield
        except sqlite3.OperationalError as error:
            text = str(error)
            hint = (" — is the disk full? The store keeps its previous state; free some space and re-run"
                    if "disk" in text or "full" in text else "")
            raise PhysadvError(f"{self.path}: could not {action} the run store ({text}){hint}") from None
        except sqlite3.DatabaseError as error:  # "file is not a database", "database disk image is malformed"
            raise InputError(f"{self.path}: not a readable physadv store ({error}); it is damaged — restore it "
                             "from a copy or start a new run") from None

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._sqlite_errors("write"):
            self.connection.execute("BEGIN IMMEDIATE")
            try:
                yield self.connection
                self.connection.execute("COMMIT")
            except BaseException:
                if self.connection.in_transaction:
                    self.connection.execute("ROLLBACK")
                raise

    def _path(self, path: Path) -> str:
        """``path`` relative to the run folder (it may lie outside it when stages wrote elsewhere)."""
        return os.path.relpath(Path(path).resolve(), self.run_dir.resolve())

    # --- writing: one idempotent import per stage output -------------------------------------------------

    def set_meta(self, **values: Any) -> None:
        with self.transaction() as db:
            db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                           [(key, json.dumps(value)) for key, value in values.items()])

    def record_model(self, model: str, weights: str) -> str:
        """Record the classifier and the SHA-256 of its weights file (returned); stamp the run's creation."""
        weights_sha256 = file_sha256(weights) if weights and Path(weights).is_file() else ""
        created = self.meta().get("created") or datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.set_meta(model=model, weights=weights, weights_sha256=weights_sha256, created=created)
        return weights_sha256

    def record_attack(self, name: str, folder: Path, weights_sha256: str, eot: dict | None = None) -> None:
        """Record the attack in ``folder``, streaming its images from ``folder/attack.json`` into one
        transaction (memory does not grow with their number). Pixel hashes come from the record; only
        records written before it carried them make us read the PNGs."""
        if not is_safe_name(name):  # the rule the store's reader applies (_check_records)
            raise InputError(f"attack name {name!r} is not a plain name ({PLAIN_NAME_RULE})")
        settings, weights, images = stream_attack_set(folder)

        def rows() -> Iterator[tuple]:
            for image in images:
                yield (name, image.id, image.file, image.source, image.label, image.label_name,
                       image.clean_sha256 or pixel_sha256(read_rgb(Path(folder) / CLEAN_DIR / image.file)),
                       image.adv_sha256 or pixel_sha256(read_rgb(Path(folder) / ADV_DIR / image.file)),
                       json.dumps([g.__dict__ for g in image.clean_top5]),
                       json.dumps([g.__dict__ for g in image.adv_top5]), int(image.success),
                       int(image.quantisation_undid))

        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO attacks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (name, settings.method, settings.eps, settings.alpha, settings.iterations,
                        json.dumps(eot or settings.eot), settings.model, weights, weights_sha256, self._path(folder)))
            db.executemany("INSERT OR REPLACE INTO images VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows())

    def record_sheets(self, attack: str, manifest: Manifest, pdf: Path) -> None:
        with self.transaction() as db:
            for page in manifest.pages:
                db.execute("INSERT OR REPLACE INTO pages VALUES (?, ?, ?, ?)",
                           (attack, page.index, manifest.run_id, self._path(pdf)))
                db.executemany("INSERT OR REPLACE INTO cells VALUES (?, ?, ?, ?, ?, ?)",
                               [(attack, page.index, c.index, c.image_id, c.kind, c.sha256) for c in page.cells])

    def record_capture(self, attack: str, capture_dir: Path) -> None:
        """Import ``physadv capture``'s per-cell predictions and per-photo outcomes (predictions.csv,
        rejected.csv); its result rows go in with :meth:`record_results`."""
        with open(capture_dir / "predictions.csv", newline="") as stream:
            predictions = list(csv.DictReader(stream))
        with open(capture_dir / "rejected.csv", newline="") as stream:
            rejected = list(csv.DictReader(stream))
        def flag(text: str) -> int | None:  # empty when the cell's true class is unknown
            return int(text) if text else None

        with self.transaction() as db:
            # The capture outputs are the whole truth for this attack: rows of photos removed since go too.
            db.execute("DELETE FROM predictions WHERE attack = ?", (attack,))
            db.execute("DELETE FROM photos WHERE attack = ?", (attack,))
            db.executemany("INSERT OR REPLACE INTO predictions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [
                (attack, p["photo"], int(p["page"]), int(p["cell"]), p["image_id"], p["kind"],
                 json.dumps([{"index": int(p[f"class{k}"]), "name": p[f"name{k}"], "probability": float(p[f"prob{k}"])}
                             for k in range(1, 6)]),
                 flag(p["correct_top1"]), flag(p["correct_top5"]), self._path(capture_dir / p["crop"]))
                for p in predictions])
            db.executemany("INSERT OR REPLACE INTO photos VALUES (?, ?, 1, '')",
                           sorted({(attack, p["photo"]) for p in predictions}))
            # rejected.csv also lists single cells of accepted photos: a photo with any cell is accepted.
            accepted = {p["photo"] for p in predictions}
            db.executemany("INSERT OR REPLACE INTO photos VALUES (?, ?, 0, ?)",
                           [(attack, r["photo"], r["reason"]) for r in rejected if r["photo"] not in accepted])

    def record_captured(self, attack: str, capture_dir: Path, rows: list[dict]) -> bool:
        """Import a capture of ``attack`` (:meth:`record_capture`) and its result ``rows``, unless it
        captured no cell at all while the run already holds captured cells of that attack: photos that
        match no page (another run's, or none) never wipe a run's results. Returns whether it imported."""
        with open(capture_dir / "predictions.csv", newline="") as stream:
            captured = any(True for _ in csv.DictReader(stream))
        if not captured and self.query("SELECT 1 FROM predictions WHERE attack = ? LIMIT 1", attack):
            return False
        self.record_capture(attack, capture_dir)
        self.record_results(f"capture:{attack}", rows)
        return True

    def record_results(self, source: str, rows: list[dict]) -> None:
        """Replace the result rows of ``source`` by ``rows``."""
        with self.transaction() as db:
            db.execute("DELETE FROM results WHERE source = ?", (source,))
            db.executemany("INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?, ?)", [
                (source, r["method"], r["eps"], r["transform"], "" if r["strength"] is None else repr(r["strength"]),
                 r["case"], json.dumps(r)) for r in rows])

    # --- reading ---------------------------------------------------------------------------------------------

    def meta(self) -> dict[str, Any]:
        return {r["key"]: json.loads(r["value"]) for r in self.query("SELECT * FROM meta")}

    def rows(self, source_prefix: str = "") -> list[dict]:
        query = "SELECT row FROM results WHERE source LIKE ? ORDER BY source, method, eps, transform, strength, \"case\""
        return [json.loads(r["row"]) for r in self.query(query, source_prefix + "%")]

    def attack_at(self, folder: Path) -> str | None:
        """Name of the attack recorded from ``folder``, if any."""
        rows = self.query("SELECT name FROM attacks WHERE folder = ?", self._path(folder))
        return rows[0]["name"] if rows else None

    def attacks(self) -> list[sqlite3.Row]:
        return self.query("SELECT * FROM attacks ORDER BY rowid")

    def count(self, table: str, **equal: Any) -> int:
        """Rows of ``table`` whose columns equal the given values, e.g. ``count("pages", attack=name)``."""
        if table not in TABLES:
            raise ValueError(f"no table {table!r} in the store")
        columns = {row["name"] for row in self.query(f"PRAGMA table_info({table})")}
        unknown = set(equal) - columns
        if unknown:
            raise ValueError(f"table {table} has no column(s) {', '.join(sorted(unknown))}")
        where = " AND ".join(f'"{column}" = ?' for column in equal) or "1"
        return self.query(f"SELECT COUNT(*) FROM {table} WHERE {where}", *equal.values())[0][0]

    def query(self, sql: str, *parameters: Any) -> list[sqlite3.Row]:
        with self._sqlite_errors("read"):
            return list(self.connection.execute(sql, parameters))


def record_in_run(attack_dir: Path, record: Callable[[RunStore, str], None],
                  manifest: Manifest | None = None) -> str | None:
    """If ``attack_dir`` was recorded in a run's store (``physadv attack`` makes its folder a run),
    record this stage's outputs there too.

    With ``manifest`` (a capture of its sheets), the outputs go in only if that run printed exactly
    these sheets: the same run id and every cell with the same image, kind and pixel hash. A
    manifest is untrusted input; one that merely points at a run's folder must not write into it.

    Returns:
        Why nothing was recorded (``None`` when it was, or when ``attack_dir`` belongs to no run).
    """
    run_dir = find_run(attack_dir)
    if run_dir is None:
        return None
    with RunLock(run_dir, "record"), RunStore(run_dir) as store:
        attack = store.attack_at(attack_dir)
        if attack is None:
            return None
        if manifest is not None and not _printed_by(store, attack, manifest):
            return (f"the manifest's sheets are not the ones run {run_dir} printed for {attack}: "
                    "nothing recorded in that run's store")
        record(store, attack)
    return None


def _printed_by(store: RunStore, attack: str, manifest: Manifest) -> bool:
    printed = {(r["page"], r["cell"], r["image_id"], r["kind"], r["sha256"])
               for r in store.query("SELECT cells.* FROM cells JOIN pages USING (attack, page) "
                                    "WHERE attack = ? AND sheet_run_id = ?", attack, manifest.run_id)}
    cells = {(page.index, cell.index, cell.image_id, cell.kind, cell.sha256) for page, cell in manifest.cells()}
    return bool(cells) and cells == printed
