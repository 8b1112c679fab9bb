"""The run store: one SQLite database (stdlib ``sqlite3``, WAL mode) per run folder.

It records everything a run did — configuration, model and weights hash, every image and its
hash, every page and cell, every photo and its outcome, every prediction and every result row —
by importing what each stage wrote. Every import is one transaction of upserts keyed on natural
keys, so importing twice (a re-run after a kill) never duplicates a row, and a kill mid-import
leaves the previous state. JSON/CSV exports are derived from it.

The schema version lives in SQLite's ``PRAGMA user_version``; a store of another version (older
or newer) is refused with one line, never read or altered (as MLflow refuses an unknown schema). All
SQL is parameterised and stays in this module: the other modules read and write through typed
methods. SQLite failures (a corrupt file, a full disk) become one
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
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, NoReturn, Sequence, TextIO

from physadv.attackset import ADV_DIR, CLEAN_DIR, Guess, read_guesses, stream_attack_set
from physadv.errors import InputError, PhysadvError
from physadv.fileio import file_sha256, parse_json
from physadv.images import pixel_sha256, read_rgb
from physadv.printouts.manifest import CELL_KINDS, Manifest
from physadv.results import AnyRow, ResultKind, row_from_json
from physadv.validation import PLAIN_NAME_RULE, Record, is_safe_name

if TYPE_CHECKING:
    from physadv.patch.train import PatchConfig

STORE_FILE, LOCK_FILE = "physadv.sqlite", ".lock"
DAMAGED = "; the store is damaged — restore it from a copy or start a new run"
# 2: top-5 predictions stored in one shape everywhere (images.clean_top5/adv_top5 and predictions.top5):
# a JSON list of {"index", "name", "probability"}, as in attack.json.
# 3: result rows keyed by their kind and attack (two columns, not a "capture:NAME" text); an attack's
# adversariality is a column of its row in attacks (not a meta key "adversariality:NAME").
SCHEMA_VERSION = 3
TABLES = ("meta", "attacks", "images", "pages", "cells", "photos", "predictions", "results")

_TEXT = ("typeof({c}) = 'text'", "text")
_INDEX = ("typeof({c}) = 'integer' AND {c} >= 0", "a whole number ≥ 0")
_FLAG = ("{c} IN (0, 1)", "0 or 1")
_RELATIVE = ("typeof({c}) = 'text' AND substr({c}, 1, 1) != '/' AND instr({c}, char(0)) = 0", "a relative path")
_KIND = ("{c} IN (" + ", ".join(f"'{kind}'" for kind in CELL_KINDS) + ")", " or ".join(CELL_KINDS))
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
                "folder": _RELATIVE, "adversariality": _optional(_number(0, 1))},
    "images": {"attack": _TEXT, "image_id": _TEXT, "file": _PNG, "source": _TEXT, "label": _optional(_INDEX),
               "label_name": _optional(_TEXT), "clean_sha256": _TEXT, "adv_sha256": _TEXT, "clean_top5": _TEXT,
               "adv_top5": _TEXT, "success": _FLAG, "quantisation_undid": _FLAG},
    "pages": {"attack": _TEXT, "page": _INDEX, "sheet_run_id": _TEXT, "pdf": _RELATIVE},
    "cells": {"attack": _TEXT, "page": _INDEX, "cell": _INDEX, "image_id": _TEXT, "kind": _KIND, "sha256": _TEXT},
    "photos": {"attack": _TEXT, "photo": _TEXT, "accepted": _FLAG, "reason": _TEXT},
    "predictions": {"attack": _TEXT, "photo": _TEXT, "page": _INDEX, "cell": _INDEX, "image_id": _TEXT,
                    "kind": _KIND, "top5": _TEXT, "correct_top1": _optional(_FLAG), "correct_top5": _optional(_FLAG),
                    "crop": _RELATIVE},
    "results": {"kind": _TEXT, "attack": _TEXT, "method": _TEXT, "eps": _REAL, "transform": _TEXT,
                "strength": _TEXT, "case": _TEXT, "row": _TEXT},
}
"""What each column of a run store holds: an SQL condition on column ``{c}``, and the same in words."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS attacks (
    name TEXT PRIMARY KEY, method TEXT NOT NULL, eps REAL NOT NULL, alpha REAL NOT NULL, iterations INTEGER NOT NULL,
    eot TEXT NOT NULL, model TEXT NOT NULL, weights TEXT NOT NULL, weights_sha256 TEXT NOT NULL, folder TEXT NOT NULL,
    adversariality REAL);
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
    kind TEXT NOT NULL, attack TEXT NOT NULL, method TEXT NOT NULL, eps REAL NOT NULL, transform TEXT NOT NULL,
    strength TEXT NOT NULL, "case" TEXT NOT NULL, row TEXT NOT NULL,
    PRIMARY KEY (kind, attack, method, eps, transform, strength, "case"));
"""


@dataclass(frozen=True)
class RunInfo:
    """What a run's store says about the run as a whole (``None``: not recorded yet)."""

    model: str | None
    weights: str | None
    weights_sha256: str | None
    created: str | None
    config: dict | None  # a session's configuration (physadv.lab.session.SessionConfig.to_json)


@dataclass(frozen=True)
class RunCounts:
    """How far a run has got: rows of each stage's table; ``photos`` counts (attack, photo) pairs."""

    attacks: int
    images: int
    pages: int
    photos: int
    rejected_photos: int
    predictions: int


@dataclass(frozen=True)
class GalleryCard:
    """One attacked image of the report's gallery sample and its first photographed adversarial crop.

    ``folder``, ``crop``: relative to the run folder; ``*_top5`` read back and checked;
    ``shown`` of ``outcome_total`` cards of its (attack, outcome) group."""

    attack: str
    outcome: str
    shown: int
    outcome_total: int
    image_id: str
    label_name: str | None
    method: str
    eps: float
    folder: str
    file: str
    clean_top5: tuple[Guess, ...]
    adv_top5: tuple[Guess, ...]
    crop: str | None
    photo_top5: tuple[Guess, ...] | None
    photo_correct: bool | None



# An upsert, not a replacement: an attack's adversariality, measured later, stays.
_UPSERT_ATTACK = ("INSERT INTO attacks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL) "
                  "ON CONFLICT (name) DO UPDATE SET method = excluded.method, eps = excluded.eps, "
                  "alpha = excluded.alpha, iterations = excluded.iterations, eot = excluded.eot, "
                  "model = excluded.model, weights = excluded.weights, weights_sha256 = excluded.weights_sha256, "
                  "folder = excluded.folder")
PATCH_METHOD = "patch"
"""The method of an adversarial patch's row in the attacks table (:meth:`RunStore.record_patch`)."""


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
        kinds = tuple(kind.value for kind in ResultKind)
        for kind, name in self.connection.execute("SELECT DISTINCT kind, attack FROM results"):
            if kind not in kinds:
                self._refuse(f"result kind {kind!r}"[:200] + f" is not {' or '.join(kinds)}")
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

    def _set_meta(self, **values: Any) -> None:
        with self.transaction() as db:
            db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                           [(key, json.dumps(value)) for key, value in values.items()])

    def record_model(self, model: str, weights: str) -> str:
        """Record the classifier and the SHA-256 of its weights file (returned); stamp the run's creation."""
        weights_sha256 = file_sha256(weights) if weights and Path(weights).is_file() else ""
        created = self.run_info().created or datetime.now(timezone.utc).isoformat(timespec="seconds")
        self._set_meta(model=model, weights=weights, weights_sha256=weights_sha256, created=created)
        return weights_sha256

    def record_config(self, config: dict) -> None:
        """Record a session's configuration (JSON types)."""
        self._set_meta(config=config)

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
            db.execute(_UPSERT_ATTACK, (name, settings.method, settings.eps, settings.alpha, settings.iterations,
                                        json.dumps(eot or settings.eot), settings.model, weights, weights_sha256,
                                        self._path(folder)))
            db.executemany("INSERT OR REPLACE INTO images VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows())

    def record_adversariality(self, attack: str, value: float) -> None:
        """Record the recorded ``attack``'s mean adversariality (:func:`physadv.eot.adversariality`)."""
        with self.transaction() as db:
            if not db.execute("UPDATE attacks SET adversariality = ? WHERE name = ?", (value, attack)).rowcount:
                raise ValueError(f"no attack {attack!r} in the store")

    def record_patch(self, name: str, folder: Path, config: PatchConfig, eot: str | None, model: str, weights: str,
                     weights_sha256: str) -> None:
        """Record the adversarial patch of ``folder`` (``physadv patch``) as the run's attack ``name``
        (method ``patch``, ε 0: a patch has no budget; α is its learning rate); its held-out images are
        not attacked images, so no image rows."""
        with self.transaction() as db:
            # An upsert like record_attack's: a re-run of the patch keeps the row's other columns.
            db.execute(_UPSERT_ATTACK, (name, PATCH_METHOD, 0.0, config.learning_rate, config.iterations,
                                        json.dumps({"distribution": eot} if eot else {}), model, weights,
                                        weights_sha256, self._path(folder)))

    def record_sheets(self, attack: str, manifest: Manifest, pdf: Path) -> None:
        with self.transaction() as db:
            for page in manifest.pages:
                db.execute("INSERT OR REPLACE INTO pages VALUES (?, ?, ?, ?)",
                           (attack, page.index, manifest.run_id, self._path(pdf)))
                db.executemany("INSERT OR REPLACE INTO cells VALUES (?, ?, ?, ?, ?, ?)",
                               [(attack, page.index, c.index, c.image_id, c.kind, c.sha256) for c in page.cells])

    def replace_predictions(self, attack: str, capture_dir: Path) -> None:
        """Replace ``attack``'s per-cell predictions and per-photo outcomes by those of ``physadv capture``'s
        folder (predictions.csv, rejected.csv), whatever they are; its result rows go in with
        :meth:`record_results`."""
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

    def record_capture_unless_empty(self, attack: str, capture_dir: Path, rows: Sequence[AnyRow]) -> bool:
        """Import a capture of ``attack`` (:meth:`replace_predictions`) and its result ``rows``, unless it
        captured no cell at all while the run already holds captured cells of that attack: photos that
        match no page (another run's, or none) never wipe a run's results. Returns whether it imported."""
        with open(capture_dir / "predictions.csv", newline="") as stream:
            captured = any(True for _ in csv.DictReader(stream))
        if not captured and self._query("SELECT 1 FROM predictions WHERE attack = ? LIMIT 1", attack):
            return False
        self.replace_predictions(attack, capture_dir)
        self.record_results(ResultKind.CAPTURE, attack, rows)
        return True

    def record_results(self, kind: ResultKind, attack: str, rows: Sequence[AnyRow]) -> None:
        """Replace ``attack``'s result rows of ``kind`` by ``rows`` (:class:`~physadv.results.ResultRow`, or
        :class:`~physadv.results.PatchRow` for a patch: method, ε, strength and case key both)."""
        with self.transaction() as db:
            db.execute("DELETE FROM results WHERE kind = ? AND attack = ?", (kind, attack))
            db.executemany("INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [
                (kind, attack, r.method, r.eps, r.transform, "" if r.strength is None else repr(r.strength), r.case,
                 json.dumps(r.to_json())) for r in rows])

    # --- reading ---------------------------------------------------------------------------------------------

    @contextmanager
    def checked_read(self) -> Iterator[None]:
        """What a reader finds wrong in the store's content (an :class:`InputError` naming the store and the
        value), as one line saying the store is damaged: a store is a file like any other, checked on read."""
        try:
            yield
        except InputError as error:
            raise InputError(f"{error}{DAMAGED}") from None

    def damaged(self, problem: str) -> InputError:
        return InputError(f"{self.path}: {problem}{DAMAGED}")

    def _json(self, text: object, where: str) -> Any:
        if not isinstance(text, str):
            raise InputError(f"{where}: expected JSON text, got {type(text).__name__}")
        try:
            return parse_json(text)
        except json.JSONDecodeError as error:
            raise InputError(f"{where}: not JSON ({error})") from None

    def run_info(self) -> RunInfo:
        """The run's facts (model, weights, configuration), each checked as it is read."""
        with self.checked_read():
            meta = Record({r["key"]: self._json(r["value"], f"{self.path}: meta.{r['key']}")
                           for r in self._query("SELECT key, value FROM meta")}, f"{self.path}: meta")
            texts = {key: meta.text(key, optional=True) for key in ("model", "weights", "weights_sha256", "created")}
            return RunInfo(**texts, config=meta.record("config").data if meta.has("config") else None)

    def rows(self, kind: ResultKind | None = None, attack: str | None = None) -> list[AnyRow]:
        """The result rows, of one ``kind`` and one ``attack`` where given, checked as they are read (a store
        is a file like any other), ordered by kind, attack, method, ε, transformation, strength and case."""
        rows = self._query("SELECT kind, attack, row FROM results WHERE kind = coalesce(?, kind) AND "
                           "attack = coalesce(?, attack) ORDER BY kind, attack, method, eps, transform, strength, "
                           '"case"', kind, attack)
        with self.checked_read():
            return [row_from_json(self._json(r["row"], where), where) for r in rows
                    for where in (f"{self.path}: result row of {r['kind']} {r['attack']}",)]

    def has_results(self, kind: ResultKind, attack: str) -> bool:
        return bool(self._query("SELECT 1 FROM results WHERE kind = ? AND attack = ? LIMIT 1", kind, attack))

    def _guesses(self, text: object, where: str) -> tuple[Guess, ...]:
        """A stored top-5 (``images.clean_top5``/``adv_top5``, ``predictions.top5``), checked; ``where``
        names it, e.g. ``images fgsm-eps16/cat clean_top5``."""
        where = f"{self.path}: {where}"
        with self.checked_read():
            return read_guesses(self._json(text, where), where)

    def attack_at(self, folder: Path) -> str | None:
        """Name of the attack recorded from ``folder``, if any."""
        rows = self._query("SELECT name FROM attacks WHERE folder = ?", self._path(folder))
        return rows[0]["name"] if rows else None

    def attack_names(self) -> list[str]:
        """The recorded attacks, in the order they were first recorded."""
        return [r["name"] for r in self._query("SELECT name FROM attacks ORDER BY rowid")]

    def attack_folder(self, attack: str) -> str | None:
        """The folder ``attack`` was recorded from, relative to the run folder; ``None`` if it is not recorded."""
        rows = self._query("SELECT folder FROM attacks WHERE name = ?", attack)
        return rows[0]["folder"] if rows else None

    def adversariality(self, attack: str) -> float | None:
        """``attack``'s recorded mean adversariality; ``None`` if not measured (or the attack not recorded)."""
        rows = self._query("SELECT adversariality FROM attacks WHERE name = ?", attack)
        if not rows or rows[0]["adversariality"] is None:
            return None
        with self.checked_read():
            return Record({"adversariality": rows[0]["adversariality"]},
                          f"{self.path}: attacks.{attack}").number("adversariality", 0, 1)

    def sheets_pdf(self, attack: str) -> str | None:
        """The PDF ``attack``'s sheets were printed into, relative to the run folder; ``None`` if not printed."""
        rows = self._query("SELECT pdf FROM pages WHERE attack = ? ORDER BY page LIMIT 1", attack)
        return rows[0]["pdf"] if rows else None

    def photos_of(self, attack: str) -> set[str]:
        """The photos of ``attack``'s sheets that its recorded capture looked at (accepted or not)."""
        return {r["photo"] for r in self._query("SELECT DISTINCT photo FROM photos WHERE attack = ?", attack)}

    def counts(self) -> RunCounts:
        [row] = self._query("""
            SELECT (SELECT COUNT(*) FROM attacks), (SELECT COUNT(*) FROM images), (SELECT COUNT(*) FROM pages),
                   (SELECT COUNT(*) FROM (SELECT DISTINCT attack, photo FROM photos)),
                   (SELECT COUNT(*) FROM photos WHERE accepted = 0), (SELECT COUNT(*) FROM predictions)""")
        return RunCounts(*row)

    def photo_clean_accuracy(self) -> dict[str, float | int | None]:
        """Accuracy on photos of the clean images, every (photo, cell) one observation, and on the
        digital clean images of the same observations (``digital_top1``, ``digital_top5``); the keys of
        ``photo_clean`` in capture's results.json. A value those sums read that is not what physadv writes
        (a damaged store) is one line, never a silently wrong count."""
        for bad in self._query(_DAMAGED_CLEAN_SQL):
            raise self.damaged(f"the clean image {bad['attack']}/{bad['image_id']} or its prediction on "
                               f"{bad['photo']}: a top-5, label or verdict is not what physadv writes")
        [row] = self._query(_PHOTO_CLEAN_SQL)
        n = row["n"]
        return {"n": n, **{key: row[key] / n if n else None for key in ("top1", "top5", "digital_top1", "digital_top5")}}

    def gallery_cards(self, per_outcome: int) -> list[GalleryCard]:
        """At most ``per_outcome`` cards per attack and outcome (:data:`_GALLERY_SQL`), in attack order; the
        stored top-5 lists are checked as they are read (a damaged one is one line)."""
        def card(r: sqlite3.Row) -> GalleryCard:
            image = f"{r['attack']}/{r['image_id']}"
            return GalleryCard(
                attack=r["attack"], outcome=r["outcome"], shown=r["n"], outcome_total=r["outcome_total"],
                image_id=r["image_id"], label_name=r["label_name"], method=r["attack_method"], eps=r["attack_eps"],
                folder=r["folder"], file=r["file"], clean_top5=self._guesses(r["clean_top5"], f"images {image} clean_top5"),
                adv_top5=self._guesses(r["adv_top5"], f"images {image} adv_top5"), crop=r["crop"],
                photo_top5=self._guesses(r["photo_top5"], f"predictions {image} top5") if r["photo_top5"] else None,
                photo_correct=None if r["photo_correct"] is None else bool(r["photo_correct"]))

        return [card(r) for r in self._query(_GALLERY_SQL, per_outcome)]

    def first_crops(self) -> list[tuple[str, str]]:
        """(attack, its first photographed crop relative to the run folder) of every captured attack."""
        rows = self._query("SELECT attack, MIN(crop) AS crop FROM predictions GROUP BY attack ORDER BY attack")
        return [(r["attack"], r["crop"]) for r in rows]

    def printed_cells(self, attack: str, sheet_run_id: str) -> set[tuple[int, int, str, str, str]]:
        """(page, cell, image id, kind, pixel hash) of every cell of ``attack``'s print job ``sheet_run_id``."""
        return {(r["page"], r["cell"], r["image_id"], r["kind"], r["sha256"])
                for r in self._query("SELECT cells.* FROM cells JOIN pages USING (attack, page) "
                                     "WHERE attack = ? AND sheet_run_id = ?", attack, sheet_run_id)}

    def _query(self, sql: str, *parameters: Any) -> list[sqlite3.Row]:
        with self._sqlite_errors("read"):
            return list(self.connection.execute(sql, parameters))


# One aggregate over every photographed clean cell: no per-image row reaches Python. Top-5 lists are
# stored as JSON lists of {index, name, probability} (store schema 2).
_PHOTO_CLEAN_SQL = """
SELECT COUNT(*) AS n, SUM(p.correct_top1) AS top1, SUM(p.correct_top5) AS top5,
       SUM(json_extract(i.clean_top5, '$[0].index') = i.label) AS digital_top1,
       SUM(EXISTS (SELECT 1 FROM json_each(i.clean_top5) AS guess
                   WHERE json_extract(guess.value, '$.index') = i.label)) AS digital_top5
FROM predictions p JOIN images i ON i.attack = p.attack AND i.image_id = p.image_id
WHERE p.kind = 'clean' AND p.correct_top1 IS NOT NULL
"""

# The columns _PHOTO_CLEAN_SQL reads, checked in SQL too: a damaged value would otherwise count silently.
_DAMAGED_CLEAN_SQL = """
SELECT p.attack, p.image_id, p.photo FROM predictions p JOIN images i ON i.attack = p.attack AND i.image_id = p.image_id
WHERE p.kind = 'clean' AND p.correct_top1 IS NOT NULL AND (
    typeof(p.correct_top1) != 'integer' OR typeof(p.correct_top5) NOT IN ('integer', 'null')
    OR typeof(i.label) NOT IN ('integer', 'null')
    OR CASE WHEN json_valid(i.clean_top5) AND json_type(i.clean_top5) = 'array' AND json_array_length(i.clean_top5) > 0
            THEN EXISTS (SELECT 1 FROM json_each(i.clean_top5) AS guess
                         WHERE IFNULL(json_type(guess.value, '$.index'), '') != 'integer')
            ELSE 1 END)
LIMIT 1
"""

# One card per attacked image with its first photographed adversarial crop; the outcome is that crop's
# top-1 verdict. Within each (attack, outcome), cards are ranked by the hash of their adversarial
# pixels: a deterministic sample spread over the whole set, not its first file names.
_GALLERY_SQL = """
WITH first_photo AS (
    SELECT attack, image_id, crop, top5, correct_top1,
           ROW_NUMBER() OVER (PARTITION BY attack, image_id ORDER BY photo, page, cell) AS k
    FROM predictions WHERE kind = 'adversarial'),
cards AS (
    SELECT i.*, a.folder, a.method AS attack_method, a.eps AS attack_eps, a.rowid AS attack_order,
           f.crop, f.top5 AS photo_top5, f.correct_top1 AS photo_correct,
           CASE WHEN f.crop IS NULL THEN 'not photographed' WHEN f.correct_top1 IS NULL THEN 'no label'
                WHEN f.correct_top1 = 0 THEN 'fooled in the photo' ELSE 'destroyed by the photo' END AS outcome
    FROM images i JOIN attacks a ON a.name = i.attack
    LEFT JOIN first_photo f ON f.attack = i.attack AND f.image_id = i.image_id AND f.k = 1),
ranked AS (
    SELECT *, ROW_NUMBER() OVER (PARTITION BY attack, outcome ORDER BY adv_sha256, image_id) AS n,
           COUNT(*) OVER (PARTITION BY attack, outcome) AS outcome_total
    FROM cards)
SELECT * FROM ranked WHERE n <= ? ORDER BY attack_order, outcome, n
"""


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
    printed = store.printed_cells(attack, manifest.run_id)
    cells = {(page.index, cell.index, cell.image_id, cell.kind, cell.sha256) for page, cell in manifest.cells()}
    return bool(cells) and cells == printed
