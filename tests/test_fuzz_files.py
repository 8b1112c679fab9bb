"""Issue 23, item 6: hostile files, given to every verb that reads them, in every field.

The files physadv reads are untrusted: manifests, attack records (``attack.json``), capture state
records, run stores, camera profiles, label files and the part files of interrupted attacks and
experiments. Each test here takes one kind of file from a tiny lab (two digits attacked, printed,
photographed once, captured), gives one of its fields a value of one class of hostility —

- truncated (half a text or list, a key dropped, or the file cut short), of the wrong type, huge,
  NaN or infinite, negative, a path that leaves its folder or is absolute, a ``FILE.py:FACTORY`` code
  spec where a name belongs —

and runs a verb that reads it, as a user does (``physadv.cli.main.main``). The property: the verb
either succeeds or exits with one clear line (no traceback; stderr's one line starts with
``physadv VERB:``), and it writes nothing outside its output folder (and the run store it records
into, where it has one). The values are drawn anew on every run, a few per file type, so that the
module takes well under a minute on 2 cores while, run after run, every field meets every class.
``FUZZ_EXAMPLES=N`` draws N per test for a longer search; ``FUZZ_LOG=FILE`` logs every example's outcome.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import os
import shutil
import sqlite3
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from cli_fixtures import DIGITS, copy_of, error_line, run_cli
from physadv.catalog import OFFLINE_ENV
from physadv.lab.store import LOCK_FILE, STORE_FILE

KINDS = ("truncated", "wrong type", "huge", "nan/inf", "negative", "path", "code spec")
"""The classes of hostile value every field is given."""

DELETE = object()
"""A truncated record: the field is cut off."""


def fuzz(examples: int, shrink: bool = True) -> settings:
    """``examples`` drawn per test (``$FUZZ_EXAMPLES`` overrides it, for a longer search); a known failure
    (xfail) is not shrunk, which would cost many more runs of the verb."""
    phases = [phase for phase in Phase if shrink or phase not in (Phase.shrink, Phase.explain)]
    return settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", examples)), deadline=None, database=None,
                    phases=phases, suppress_health_check=list(HealthCheck))


def hostile(original: Any, kind: str, pick: int, root: Path) -> Any:
    """A value of class ``kind`` in place of ``original`` (``pick`` chooses among the class's values)."""
    def choose(options: list) -> Any:
        return options[pick % len(options)]

    number = isinstance(original, (int, float)) and not isinstance(original, bool)
    if kind == "truncated":
        if isinstance(original, (str, list)):
            return original[:len(original) // 2]
        if isinstance(original, dict) and original:
            dropped = pick % len(original)
            return {key: value for index, (key, value) in enumerate(original.items()) if index != dropped}
        return DELETE
    if kind == "wrong type":
        return choose([v for v in (None, True, "text", 7, 7.5, [], {}, [1, "2"], {"a": 1})
                       if type(v) is not type(original)])
    if kind == "huge":
        if isinstance(original, str):
            return "x" * 100_000
        if isinstance(original, list):
            return (original or [0]) * max(2, 2000 // max(1, len(original)))
        if isinstance(original, dict):
            return {**original, **{f"key{i}": i for i in range(1000)}}
        return choose([10**30, 2**64, 1e308, 10**4000])
    if kind == "nan/inf":
        return choose([math.nan, math.inf, -math.inf])
    if kind == "negative":
        return -abs(original) - 1 if number else choose([-1, -1e9, -2**63, -2**64])
    if kind == "path":
        return choose(["../../../../x", str(root / "elsewhere" / "x"), "..", "a/../../../b", "/", ".", ""])
    if kind == "code spec":
        return choose([f"{root / 'absent' / 'evil.py'}:build", "evil.py:build", "../evil.py:f"])
    raise AssertionError(kind)


def json_paths(data: Any, prefix: tuple = ()) -> list[tuple]:
    """Every field of a JSON tree: the path of each value below the root, containers included."""
    paths = [prefix] if prefix else []
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        paths += json_paths(value, prefix + (key,))
    return paths


def mutated(data: Any, path: tuple, value: Any) -> Any:
    data = copy.deepcopy(data)
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    if value is DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return data


@st.composite
def hostile_edits(draw) -> tuple[int, str, int, float | None]:
    """Which field (an index into the file's fields), which class of value, which of its values, and
    where to cut the file short (``None``: not cut)."""
    return (draw(st.integers(0, 10**6)), draw(st.sampled_from(KINDS)), draw(st.integers(0, 100)),
            draw(st.one_of(st.none(), st.floats(0, 1))) if draw(st.integers(0, 9)) == 0 else None)


def hostile_field(data: Any, edit: tuple, root: Path) -> tuple[Any, str]:
    """``data`` with the field ``edit`` picks given a value of its class, and what was done."""
    choice, kind, pick, _ = edit
    paths = json_paths(data)
    path = paths[choice % len(paths)]
    original = data
    for key in path:
        original = original[key]
    return mutated(data, path, hostile(original, kind, pick, root)), f"{'.'.join(map(str, path))}: {kind}"


def cut_short(text: str, edit: tuple, what: str) -> tuple[str, str]:
    """``text`` cut where ``edit`` says (if it says so): a file truncated by a full disk or a killed copy."""
    cut = edit[3]
    return (text, what) if cut is None else (text[:int(cut * len(text))], what + " (file cut short)")


def hostile_json(data: Any, edit: tuple, root: Path) -> tuple[str, str]:
    """``data`` with one field made hostile by ``edit``, as JSON text (maybe cut short), and what was done."""
    new, what = hostile_field(data, edit, root)
    return cut_short(json.dumps(new), edit, what)


# --- the property ---------------------------------------------------------------------------------------

@dataclass
class Run:
    """One verb run: its arguments, where it may write (its output folder, the run store it records into)."""

    verb: str
    argv: list[str]
    writes: tuple[Path, ...] = field(default_factory=tuple)


def files(root: Path, allowed: tuple[Path, ...]) -> dict[str, tuple[int, int]]:
    return {str(path.relative_to(root)): (path.stat().st_size, path.stat().st_mtime_ns)
            for path in root.rglob("*") if path.is_file() and not any(path.is_relative_to(a) for a in allowed)}


def run_store_files(run: Path) -> tuple[Path, ...]:
    """What recording into (or reading) the run store of ``run`` may change."""
    return tuple(run / name for name in (STORE_FILE, f"{STORE_FILE}-wal", f"{STORE_FILE}-shm", LOCK_FILE))


def check(run: Run, tree: Path, capsys, what: str) -> int:
    """Run ``run`` and check the property (see the module docstring); its exit code."""
    before = files(tree, run.writes)
    code, err = run_cli(run.argv, capsys)
    context = f"physadv {' '.join(run.argv)}"[:300] + f"\nwith {what}"
    if code != 0:
        assert code in (1, 2), f"{context}\nexit {code}\n{err}"
        try:
            error_line(run.verb, err)
        except AssertionError:
            raise AssertionError(f"{context}\nnot one clear line:\n{err[-3000:]}") from None
    else:
        assert "Traceback" not in err, f"{context}\n{err}"
    if os.environ.get("FUZZ_LOG"):
        with open(os.environ["FUZZ_LOG"], "a") as log:
            last = [l for l in err.splitlines() if l.strip()][-1:] or [""]
            log.write(f"{code} {run.verb} | {what[:80]} | {last[0][:150]}\n")
    after = files(tree, run.writes)
    changed = sorted(name for name in set(before) | set(after) if before.get(name) != after.get(name))
    assert not changed, f"{context}\nwrote outside its output: {changed}"
    return code


class Scratch:
    """A fresh, deep folder per example (paths that climb out of it stay in the examined tree)."""

    def __init__(self, base: Path) -> None:
        self.base, self.count = base, itertools.count()

    def new(self) -> tuple[Path, Path]:
        tree = self.base / f"e{next(self.count)}"
        root = tree / "a" / "b" / "c" / "d" / "lab"
        root.mkdir(parents=True)
        return tree, root


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Scratch:
    return Scratch(tmp_path_factory.mktemp("fuzz"))


@pytest.fixture(scope="module", autouse=True)
def offline():
    """No example may reach the network (a ``timm:`` name in a file would download otherwise)."""
    before = os.environ.get(OFFLINE_ENV)
    os.environ[OFFLINE_ENV] = "1"
    yield
    if before is None:
        del os.environ[OFFLINE_ENV]
    else:
        os.environ[OFFLINE_ENV] = before


# --- manifests --------------------------------------------------------------------------------------------

def capture_run(lab: dict[str, Path], out: Path, manifest: Path | None = None) -> Run:
    return Run("capture", ["capture", str(lab["photos"]), "--manifest", str(manifest or lab["sheets"] / "manifest.json"),
                           "--out", str(out)], (out, *run_store_files(lab["adv"])))


def photograph_run(lab: dict[str, Path], out: Path, *options: str) -> Run:
    return Run("photograph", ["photograph", str(lab["sheets"] / "sheets.pdf"), "--n", "1", "--resolution", "720p",
                              *options, "--out", str(out)], (out,))


@pytest.fixture(scope="module")
def chart(tmp_path_factory) -> Path:
    """The calibration chart's folder (its manifest carries the chart's patches in ``extra.chart``)."""
    folder = tmp_path_factory.mktemp("chart")
    assert run_cli(["chart", "--out", str(folder)])[0] == 0
    return folder


@fuzz(20)
@given(edit=hostile_edits(), verb=st.sampled_from(["capture", "photograph", "live", "calibrate"]))
def test_hostile_manifests(tiny_lab, chart, scratch, capsys, edit, verb):
    tree, root = scratch.new()
    lab = copy_of(tiny_lab, root)
    path = lab["sheets"] / "manifest.json"
    if verb == "calibrate":
        shutil.copy(chart / "manifest.json", path)
    text, what = hostile_json(json.loads(path.read_text()), edit, root)
    path.write_text(text)
    out = root / "out"
    run = {"capture": capture_run(lab, out),
           "photograph": photograph_run(lab, out, "--manifest", str(path)),
           "live": Run("live", ["live", "--camera", str(next(lab["photos"].glob("*.jpg"))), "--manifest", str(path),
                                "--headless", *DIGITS, "--max-frames", "1", "--out", str(out)], (out,)),
           "calibrate": Run("calibrate", ["calibrate", str(lab["photos"]), "--manifest", str(path),
                                          "--out", str(out / "mine.toml")], (out,))}[verb]
    check(run, tree, capsys, f"manifest {what}")


# --- attack records ---------------------------------------------------------------------------------------

@fuzz(16)
@given(edit=hostile_edits(), verb=st.sampled_from(["print", "attack", "capture"]))
def test_hostile_attack_records(tiny_lab, scratch, capsys, edit, verb):
    tree, root = scratch.new()
    lab = copy_of(tiny_lab, root)
    path = lab["adv"] / "attack.json"
    text, what = hostile_json(json.loads(path.read_text()), edit, root)
    path.write_text(text)
    out = root / "out"
    run = {"print": Run("print", ["print", str(lab["adv"]), "--out", str(out)], (out, *run_store_files(lab["adv"]))),
           "attack": Run("attack", ["attack", "digits", *DIGITS, "--method", "fgsm", "--eps", "32", "--limit", "2",
                                    "--out", str(lab["adv"])], (lab["adv"],)),
           "capture": capture_run(lab, out)}[verb]
    check(run, tree, capsys, f"attack.json {what}")


# --- capture state records --------------------------------------------------------------------------------

@fuzz(10)
@given(edit=hostile_edits())
def test_hostile_capture_states(tiny_lab, scratch, capsys, edit):
    tree, root = scratch.new()
    lab = copy_of(tiny_lab, root)
    [path] = sorted((lab["capture"] / ".state").glob("*.json"))
    text, what = hostile_json(json.loads(path.read_text()), edit, root)
    path.write_text(text)
    assert check(capture_run(lab, lab["capture"]), tree, capsys, f"capture state {what}") == 0
    # Whatever the record said, the results are those of the photo.
    assert (lab["capture"] / "predictions.csv").read_text() == (tiny_lab["capture"] / "predictions.csv").read_text()


# --- run stores ---------------------------------------------------------------------------------------------

STORE_COLUMNS = {
    "attacks": ("name", "folder", "method", "eps", "alpha", "iterations", "eot", "model", "weights", "adversariality"),
    "images": ("attack", "file", "image_id", "label", "label_name", "clean_sha256", "success"),
    "pages": ("attack", "pdf", "page", "sheet_run_id"), "cells": ("attack", "image_id", "page", "cell", "kind"),
    "photos": ("attack", "photo", "accepted", "reason"),
    "predictions": ("attack", "crop", "page", "cell", "kind", "correct_top1"),
    "results": ("kind", "attack", "method", "eps", "transform", "strength", "case")}
"""The plain columns of a run store (names, paths, numbers); the JSON texts are issue 23 item 2's (below)."""

STORE_JSON_COLUMNS = {"meta": ("value",), "images": ("clean_top5", "adv_top5"), "predictions": ("top5",),
                      "results": ("row",)}


def hostile_store(store: Path, columns: dict[str, tuple[str, ...]], edit: tuple, root: Path) -> str:
    """One value of the store's ``columns`` made hostile (SQLite keeps any type in any column)."""
    choice, kind, pick, _ = edit
    options = [(table, column) for table, names in columns.items() for column in names]
    table, column = options[choice % len(options)]
    with sqlite3.connect(store) as db:
        db.execute("PRAGMA foreign_keys=OFF")
        rows = db.execute(f'SELECT rowid, "{column}" FROM {table}').fetchall()
        if not rows:
            return f"{table}.{column}: no rows"
        rowid, original = rows[pick % len(rows)]
        if column in {c for names in STORE_JSON_COLUMNS.values() for c in names} and kind != "truncated":
            value = hostile(json.loads(original), kind, pick, root)
            value = "null" if value is DELETE else json.dumps(value)
        else:
            value = hostile(original, kind, pick, root)
            value = None if value is DELETE else json.dumps(value) if isinstance(value, (list, dict)) else value
        if isinstance(value, int) and not -2**63 <= value < 2**63:
            value = str(value)  # SQLite's integers are 64-bit: the file would hold the digits as text
        try:
            db.execute(f'UPDATE {table} SET "{column}" = ? WHERE rowid = ?', (value, rowid))
        except sqlite3.IntegrityError:  # NOT NULL or a key that would repeat: the nearest value the file can hold
            db.execute(f'UPDATE OR IGNORE {table} SET "{column}" = ? WHERE rowid = ?', (str(value), rowid))
    return f"{table}.{column} of row {rowid}: {kind}"


def store_runs(run: Path) -> dict[str, Run]:
    return {"status": Run("status", ["status", str(run), "--json"], run_store_files(run)),
            "evaluate": Run("evaluate", ["evaluate", str(run), "--json", "--all"], run_store_files(run)),
            "report": Run("report", ["report", str(run)], (run / "report", *run_store_files(run)))}


@fuzz(20)
@given(edit=hostile_edits(), verb=st.sampled_from(["status", "evaluate", "evaluate", "status", "report"]))
def test_hostile_run_stores(tiny_lab, scratch, capsys, edit, verb):
    tree, root = scratch.new()
    lab = copy_of(tiny_lab, root)
    what = hostile_store(lab["adv"] / STORE_FILE, STORE_COLUMNS, edit, root)
    check(store_runs(lab["adv"])[verb], tree, capsys, f"store {what}")


@fuzz(12, shrink=False)
@given(edit=hostile_edits(), verb=st.sampled_from(["status", "evaluate", "evaluate", "status", "report"]))
def test_hostile_json_in_run_stores(tiny_lab, scratch, capsys, edit, verb):
    tree, root = scratch.new()
    lab = copy_of(tiny_lab, root)
    what = hostile_store(lab["adv"] / STORE_FILE, STORE_JSON_COLUMNS, edit, root)
    check(store_runs(lab["adv"])[verb], tree, capsys, f"store {what}")


# --- camera profiles ----------------------------------------------------------------------------------------

def toml_text(data: dict) -> str:
    """TOML of ``data``: its plain keys first, then a table per dict (``[scene.tilt_deg]``)."""
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, float) and not math.isfinite(v):
            return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + "}"
        return '"null"'  # TOML has no null: the nearest wrong type

    def section(table: dict, name: tuple) -> list[str]:
        lines = [f"[{'.'.join(json.dumps(part) for part in name)}]"] if name else []
        lines += [f"{json.dumps(k)} = {value(v)}" for k, v in table.items() if not isinstance(v, dict)]
        for key, sub in table.items():
            if isinstance(sub, dict):
                lines += section(sub, name + (key,))
        return lines

    return "\n".join(section(data, ())) + "\n"


NO_IMAGES = ["--images", "absent-images"]
"""Images that are not there: a verb that reads a profile before its images fails cheaply after it."""


@fuzz(16)
@given(edit=hostile_edits(), verb=st.sampled_from(["photograph", "attack", "run", "demo", "compare"]))
def test_hostile_camera_profiles(tiny_lab, scratch, capsys, edit, verb):
    tree, root = scratch.new()
    lab = copy_of(tiny_lab, root)
    data = tomllib.loads(resources.files("physadv.printouts").joinpath("profiles/lab.toml").read_text())
    new, what = hostile_field(data, edit, root)
    text, what = cut_short(toml_text(new), edit, what)
    profile = root / "mine.toml"
    profile.write_text(text)
    config = root / "lab.toml"
    config.write_text('model = "digits"\nimages = ["absent-images"]\ntransforms = {}\n')
    out = root / "out"
    run = {"photograph": photograph_run(lab, out, "--profile", str(profile)),
           "attack": Run("attack", ["attack", "digits", *DIGITS, "--method", "fgsm", "--eps", "32", "--limit", "1",
                                    "--eot", f"profile:{profile}", "--eot-samples", "2", "--out", str(out)], (out,)),
           "run": Run("run", ["run", "new", str(out), "--config", str(config), "--profile", str(profile)], (out,)),
           "demo": Run("demo", ["demo", "--config", str(config), "--profile", str(profile), "--out", str(out)], (out,)),
           "compare": Run("compare", ["compare", *DIGITS, *NO_IMAGES, "--profile", str(profile), "--eot",
                                      f"profile:{profile}", "--out", str(out)], (out,))}[verb]
    check(run, tree, capsys, f"profile {what}")


# --- label files --------------------------------------------------------------------------------------------

def hostile_line(line: str, kind: str, pick: int, root: Path) -> str | None:
    value = hostile(line, kind, pick, root)
    if value is DELETE or value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value)


@fuzz(16)
@given(edit=hostile_edits(), verb=st.sampled_from(["classify", "attack", "experiment", "train-defence"]),
       garbage=st.sampled_from(["", "\x00", "\ufeff", "\r", "\udcff", "\u202e"]))
def test_hostile_label_files(tiny_lab, scratch, capsys, edit, verb, garbage):
    tree, root = scratch.new()
    choice, kind, pick, cut = edit
    lines = [str(d) for d in range(10)]
    new = hostile_line(lines[choice % 10], kind, pick, root)
    lines = lines[:choice % 10] + ([] if new is None else [new + garbage]) + lines[choice % 10 + 1:]
    text = "\n".join(lines) + "\n"
    labels = root / "labels.txt"
    data = text.encode("utf-8", "surrogateescape")
    labels.write_bytes(data[:int(cut * len(data))] if cut is not None else data)
    out = root / "out"
    run = {"classify": Run("classify", ["classify", "digits", *DIGITS, "--limit", "2", "--labels", str(labels)]),
           "attack": Run("attack", ["attack", "digits", *DIGITS, "--method", "fgsm", "--limit", "1", "--labels",
                                    str(labels), "--out", str(out)], (out,)),
           "experiment": Run("experiment", ["experiment", *DIGITS, *NO_IMAGES, "--labels", str(labels),
                                            "--out", str(out)], (out,)),
           "train-defence": Run("train-defence", ["train-defence", *DIGITS, "--defence", "pgd", "--data",
                                                  "absent-images", "--labels", str(labels), "--out",
                                                  str(out / "d.pt")], (out,))}[verb]
    check(run, tree, capsys, f"label file line {choice % 10}: {kind} + {garbage!r}")


# --- part files of interrupted attacks and experiments ------------------------------------------------------

ATTACK_ARGV = ["attack", "digits", *DIGITS, "--method", "fgsm", "--eps", "32", "--limit", "4", "--batch-size", "2"]
EXPERIMENT_ARGV = ["experiment", *DIGITS, "--images", "digits", "--limit", "4", "--batch-size", "2", "--methods",
                   "fgsm", "--eps", "16", "--transforms", "blur", "--strengths", "blur=1"]


def interrupted(argv: list[str], out: Path, stop: str) -> Path:
    """``out`` of a run of ``argv`` stopped (^C) where ``stop`` was called: its part files are left."""
    def interrupt(*_):
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(stop, interrupt)
        assert run_cli([*argv, "--out", str(out)])[0] == 130
    return out


@pytest.fixture(scope="module")
def interrupted_runs(tmp_path_factory, digits_classifier) -> dict[str, Path]:
    """An attack and an experiment interrupted once their part files were written (two batches each)."""
    root = tmp_path_factory.mktemp("interrupted")
    return {"attack": interrupted(ATTACK_ARGV, root / "adv", "physadv.attackset._merge"),
            "experiment": interrupted(EXPERIMENT_ARGV, root / "exp", "physadv.experiment._attack_rows")}


@fuzz(12)
@given(edit=hostile_edits())
def test_hostile_attack_parts(interrupted_runs, scratch, capsys, edit):
    tree, root = scratch.new()
    out = root / "adv"
    shutil.copytree(interrupted_runs["attack"], out)
    part = sorted((out / ".parts").glob("*.json"))[edit[2] % 2]
    text, what = hostile_json(json.loads(part.read_text()), edit, root)
    part.write_text(text)
    check(Run("attack", [*ATTACK_ARGV, "--out", str(out)], (out,)), tree, capsys, f"attack part {what}")


def hostile_array(array: np.ndarray, kind: str, pick: int, root: Path) -> np.ndarray:
    if kind == "truncated":
        return array[: len(array) // 2] if pick % 2 else array.reshape(-1)
    if kind == "wrong type":
        return [array.astype(np.float64) + 0.5, array.astype(str), np.zeros((2, 2, 2)), np.array(True)][pick % 4]
    if kind == "huge":
        return [np.full_like(array, 10**12 if array.dtype.kind in "iu" else 1e300), np.zeros((len(array), 10**4))][pick % 2]
    if kind == "nan/inf":
        return np.full(array.shape, [math.nan, math.inf, -math.inf][pick % 3])
    if kind == "negative":
        return -np.abs(array.astype(np.float64 if array.dtype == bool else array.dtype)) - 1
    return np.full(array.shape, hostile("x", kind, pick, root))  # a path or a code spec: text arrays


@fuzz(12)
@given(edit=hostile_edits())
def test_hostile_experiment_parts(interrupted_runs, scratch, capsys, edit):
    tree, root = scratch.new()
    out = root / "exp"
    shutil.copytree(interrupted_runs["experiment"], out)
    choice, kind, pick, cut = edit
    part = sorted(out.rglob("*.npz"))[pick % 2]
    with np.load(part) as data:
        arrays = {name: data[name] for name in data.files}
    name = sorted(arrays)[choice % len(arrays)]
    if kind == "truncated" and cut is not None:
        part.write_bytes(part.read_bytes()[:int(cut * part.stat().st_size)])
        what = "file cut short"
    else:
        arrays[name] = hostile_array(arrays[name], kind, pick, root)
        np.savez(part.with_suffix(""), **arrays)
        what = f"{name}: {kind}"
    check(Run("experiment", [*EXPERIMENT_ARGV, "--out", str(out)], (out,)), tree, capsys, f"experiment part {what}")


# --- the options of every verb ------------------------------------------------------------------------------

HOSTILE_TEXT = {"truncated": ["", " "], "wrong type": ["abc", "[1]", "{}", "true"],
                "huge": ["1e400", "9" * 40, "x" * 5000], "nan/inf": ["nan", "inf", "-inf"],
                "negative": ["-1", "-1e9", "-0"], "path": ["../../../../x", "/", ".."],
                "code spec": ["evil.py:build", "/absent/evil.py:f"]}
"""The classes of hostile value as a user may type them."""

VERBS = {
    # Each verb with options that take a value, on a base that fails cheaply once they are read (images or
    # files that are not there), so that no accepted value starts real work.
    "models": (["models", "--json"], []),
    "chart": (["chart", "--out", "OUT"], ["--paper"]),
    "classify": (["classify", "absent-images", *DIGITS], ["--limit", "--batch-size", "--label", "--workers",
                                                          "--device", "--weights", "--labels", "--model"]),
    "attack": (["attack", "absent-images", *DIGITS, "--out", "OUT"],
               ["--eps", "--alpha", "--iterations", "--target", "--batch-size", "--eot", "--eot-samples", "--eot-chunk",
                "--source-model", "--source-weights", "--label", "--limit", "--seed", "--method", "--model"]),
    "experiment": (["experiment", *DIGITS, "--images", "absent-images", "--out", "OUT"],
                   ["--methods", "--eps", "--transforms", "--strengths", "--baseline", "--adversariality-samples",
                    "--eot", "--target", "--seed", "--limit"]),
    "compare": (["compare", *DIGITS, "--images", "absent-images", "--out", "OUT"],
                ["--eps", "--eot", "--profile", "--eot-samples", "--adversariality-samples", "--photos-per-page",
                 "--resolution", "--seed", "--method", "--device"]),
    "compare-models": (["compare-models", "digits", "--images", "absent-images", "--out", "OUT"],
                       ["--methods", "--eps", "--transforms", "--photos-per-page", "--resolution", "--seed",
                        "--adversariality-samples", "--batch-size", "--limit"]),
    "train-defence": (["train-defence", *DIGITS, "--defence", "pgd", "--data", "absent-images", "--out", "OUT/d.pt"],
                      ["--eps", "--epochs", "--batch-size", "--lr", "--steps", "--temperature", "--gradreg-weight",
                       "--eot", "--seed", "--limit"]),
    "print": (["print", "absent-folder", "--out", "OUT"],
              ["--grid", "--cell-mm", "--margin-mm", "--marker-mm", "--qr-mm", "--run-id", "--paper"]),
    "photograph": (["photograph", "absent.pdf", "--out", "OUT"], ["--n", "--profile", "--resolution", "--seed",
                                                                  "--manifest"]),
    "capture": (["capture", "absent-photos", "--manifest", "absent.json", *DIGITS, "--out", "OUT"],
                ["--workers", "--weights", "--device", "--model"]),
    "calibrate": (["calibrate", "absent-photos", "--manifest", "absent.json", "--out", "OUT/p.toml"],
                  ["--name", "--base"]),
    "live": (["live", "--camera", "absent.mp4", "--headless", *DIGITS, "--out", "OUT"],
             ["--manifest", "--max-frames", "--labels", "--weights"]),
    "demo": (["demo", "--config", "absent.toml", "--out", "OUT"], ["--model", "--seed", "--profile", "--device"]),
    "run": (["run", "new", "OUT", "--config", "absent.toml"], ["--model", "--seed", "--profile", "--device"]),
    "status": (["status", "absent-run"], []),
    "evaluate": (["evaluate", "absent-run"], []),
    "report": (["report", "OUT"], []),
}


@fuzz(40)
@given(verb=st.sampled_from(sorted(VERBS)), choice=st.integers(0, 100), kind=st.sampled_from(KINDS),
       pick=st.integers(0, 10))
def test_hostile_options_of_every_verb(scratch, capsys, verb, choice, kind, pick):
    tree, root = scratch.new()
    base, options = VERBS[verb]
    out = root / "out"
    argv = [str(out) if part == "OUT" else part.replace("OUT/", f"{out}/") for part in base]
    what = "the base arguments"
    if options:
        option, value = options[choice % len(options)], HOSTILE_TEXT[kind][pick % len(HOSTILE_TEXT[kind])]
        argv += [f"{option}={value}"]
        what = f"{option}={value[:40]!r}"
    cwd = Path.cwd()
    os.chdir(root)  # relative values (../../../../x) resolve inside the examined tree
    try:
        check(Run(verb, argv, (out,)), tree, capsys, what)
    finally:
        os.chdir(cwd)


# --- what the fuzz found, kept as plain tests ---------------------------------------------------------------

@pytest.mark.parametrize("verb", ["capture", "photograph"])
def test_a_whole_number_too_large_for_a_float_is_one_line(tiny_lab, tmp_path, capsys, verb):
    """A 4000-digit number parses as JSON and TOML, and no float holds it: the checks said so in a traceback."""
    lab = copy_of(tiny_lab, tmp_path)
    if verb == "capture":
        path = lab["sheets"] / "manifest.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "layout_dpi": 10**4000}))
        run = capture_run(lab, tmp_path / "out")
    else:
        text = resources.files("physadv.printouts").joinpath("profiles/lab.toml").read_text()
        profile = tmp_path / "mine.toml"
        profile.write_text(text.replace("range = [-5.0, 5.0]", "range = [-5.0, 1" + "0" * 4000 + "]", 1))
        run = photograph_run(lab, tmp_path / "out", "--profile", str(profile))
    code, err = run_cli(run.argv, capsys)
    assert code == 2 and "-bit whole number" in error_line(verb, err)


@pytest.mark.parametrize("column, value, words", [
    ("attacks.eps", "None", "a number in [0, 255]"),
    ("predictions.correct_top1", 7, "0 or 1, or nothing"),
    ("attacks.folder", "/etc", "a relative path"),
    ("images.file", "../x.png", "a .png file name"),
])
def test_a_run_store_field_of_the_wrong_kind_is_refused(tiny_lab, tmp_path, capsys, column, value, words):
    """A text where the store holds ε made the report's formatting fail with a traceback."""
    lab = copy_of(tiny_lab, tmp_path)
    table, name = column.split(".")
    with sqlite3.connect(lab["adv"] / STORE_FILE) as db:
        db.execute(f'UPDATE {table} SET "{name}" = ? WHERE rowid = (SELECT min(rowid) FROM {table})', (value,))
    code, err = run_cli(["report", str(lab["adv"])], capsys)
    line = error_line("report", err)
    assert code == 2 and column in line and words in line
    assert not (lab["adv"] / "report").exists()
