"""The run store: schema version on open, parameterised SQL, one top-5 shape, SQLite failures as one line."""

from __future__ import annotations

import csv
import json
import sqlite3
from dataclasses import replace

import pytest

from physadv.attackset import Guess
from physadv.cli.main import main
from physadv.errors import InputError, PhysadvError
from physadv.lab.session import CONFIG_FILE, SessionConfig
from physadv.lab.store import SCHEMA_VERSION, STORE_FILE, RunStore
from physadv.results import Case, ResultKind, ResultRow
from printouts_fixtures import make_attack_dir


def test_store_refuses_other_schema_versions(tmp_path):
    with RunStore(tmp_path / "new") as store:
        assert store.connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    newer = tmp_path / "newer"
    with RunStore(newer) as store:
        store.connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(InputError, match="newer physadv"):
        RunStore(newer, create=False)
    previous = tmp_path / "previous"  # schema 2: results keyed by "capture:NAME", adversariality in meta
    with RunStore(previous) as store:
        store.connection.execute("PRAGMA user_version = 2")
    with pytest.raises(InputError, match="version 2, written by an older physadv; this one reads version 3 only"):
        RunStore(previous, create=False)
    older = tmp_path / "older"  # schema 1 kept its version in the meta table only
    older.mkdir()
    with sqlite3.connect(older / STORE_FILE) as db:
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    with pytest.raises(InputError, match="version 1, written by an older physadv"):
        RunStore(older, create=False)
    with sqlite3.connect(older / STORE_FILE) as db:  # refused, not altered
        assert db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0] == 2


def test_typed_reads_take_names_as_parameters(tmp_path):
    with RunStore(tmp_path) as store:
        with store.transaction() as db:
            db.execute("INSERT INTO pages VALUES ('bim-eps16', 0, 'r', 'sheets.pdf')")
        assert store.sheets_pdf("bim-eps16") == "sheets.pdf"
        assert store.sheets_pdf("x' OR '1'='1") is None
        assert store.counts().pages == 1
        assert not store.has_results(ResultKind.CAPTURE, "x' OR '1'='1")
        assert not hasattr(store, "query")  # no SQL from outside the store


PHOTO_ROW = ResultRow(method="bim", eps=16.0, transform="photo", strength=None, case=Case.AVERAGE, n_images=1,
                      top1_clean=1.0, top1_adv=0.0, top1_transformed=1.0, top5_clean=1.0, top5_adv=1.0,
                      top5_transformed=1.0, destruction_top1=1.0, destruction_top5=None, destruction_top1_n=1,
                      destruction_top5_n=0)


def test_rows_attacks_and_adversariality_are_typed_and_keyed_by_kind_and_attack(tmp_path):
    attack_dir = make_attack_dir(tmp_path / "adv", ["chelsea"], size=32)
    row = PHOTO_ROW
    with RunStore(tmp_path / "run") as store:
        store.record_attack("bim-eps16", attack_dir, "")
        assert store.attack_names() == ["bim-eps16"] and store.adversariality("bim-eps16") is None
        store.record_adversariality("bim-eps16", 0.25)
        store.record_attack("bim-eps16", attack_dir, "")  # recorded again: the measurement stays
        assert store.adversariality("bim-eps16") == 0.25
        with pytest.raises(ValueError, match="no attack"):
            store.record_adversariality("fgsm-eps8", 0.5)
        store.record_results(ResultKind.CAPTURE, "bim-eps16", [row])
        store.record_results(ResultKind.EXPERIMENT, "bim-eps16", [replace(row, transform="jpeg", strength=50.0)])
        assert store.rows(ResultKind.CAPTURE) == [row] == store.rows(ResultKind.CAPTURE, "bim-eps16")
        assert store.rows(attack="fgsm-eps8") == [] and len(store.rows()) == 2
        assert store.has_results(ResultKind.EXPERIMENT, "bim-eps16")
        store.record_results(ResultKind.CAPTURE, "bim-eps16", [])  # replaced, the other kind kept
        assert store.rows() == [replace(row, transform="jpeg", strength=50.0)]
        store.record_config({"seed": 3})
        store.record_model("digits", "")
        info = store.run_info()
        assert info.config == {"seed": 3} and info.model == "digits" and info.created


def test_a_tampered_result_row_is_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    with RunStore(run) as store, store.transaction() as db:  # an attack the store records, one row tampered
        db.execute("INSERT INTO attacks VALUES ('bim', 'bim', 16, 1, 10, '', 'digits', '', '', 'bim', NULL)")
        db.execute("INSERT INTO results VALUES ('capture', 'bim', 'bim', 16, 'photo', '', 'average', ?)",
                   (json.dumps(PHOTO_ROW.to_json() | {"top1_adv": 7}),))
    assert main(["evaluate", str(run)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "result row of capture bim.top1_adv: 7 is outside [0, 1]" in err


def test_top5_has_one_shape_in_images_and_predictions(tmp_path):
    attack_dir = make_attack_dir(tmp_path / "adv", ["chelsea"], size=32)
    capture = tmp_path / "capture"
    capture.mkdir()
    row = {"photo": "p.jpg", "page": 0, "cell": 0, "image_id": "chelsea", "kind": "clean",
           **{f"class{k}": k for k in range(1, 6)}, **{f"name{k}": f"c{k}" for k in range(1, 6)},
           **{f"prob{k}": 0.1 for k in range(1, 6)}, "correct_top1": 1, "correct_top5": 1, "crop": "crops/a.png"}
    for name, rows in (("predictions.csv", [row]), ("rejected.csv", [])):
        with open(capture / name, "w", newline="") as stream:
            writer = csv.DictWriter(stream, fieldnames=list(row) if rows else ["photo", "reason"])
            writer.writeheader()
            writer.writerows(rows)
    with RunStore(tmp_path / "run") as store:
        store.record_attack("bim-eps16", attack_dir, "")
        store.replace_predictions("bim-eps16", capture)
        image = store.connection.execute("SELECT clean_top5 FROM images").fetchone()[0]
        prediction = store.connection.execute("SELECT top5 FROM predictions").fetchone()[0]
    keys = set(Guess.__dataclass_fields__)
    assert {tuple(sorted(g)) for g in json.loads(image)} == {tuple(sorted(keys))}
    assert json.loads(prediction)[0] == {"index": 1, "name": "c1", "probability": 0.1}


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_damaged_store_is_one_line_for_every_reading_verb(tmp_path, capsys, damage):
    run = tmp_path / "run"
    with RunStore(run) as store:
        store.record_config(SessionConfig().to_json())
        with store.transaction() as db:
            db.executemany("INSERT INTO results VALUES ('capture', ?, 'bim', 16, 'photo', '', 'average', ?)",
                           [(str(n), json.dumps({"pad": "x" * 3000})) for n in range(20)])
    (run / CONFIG_FILE).write_text(json.dumps(SessionConfig().to_json()))
    path = run / STORE_FILE
    data = path.read_bytes()
    path.write_bytes(b"\x00garbage\xff" * 500 if damage == "garbage" else data[:len(data) // 2])
    for argv in (["status", str(run)], ["evaluate", str(run)], ["report", str(run)], ["run", "continue", str(run)]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "not a readable physadv store" in err, (argv, err)


class _FullDisk:
    """A connection whose writes fail as SQLite's do when the disk is full."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def execute(self, sql: str, *args):
        if sql.startswith("INSERT"):
            raise sqlite3.OperationalError("disk I/O error")
        return self._connection.execute(sql, *args)

    def executemany(self, sql: str, *args):
        return self.execute(sql, *args)

    def __getattr__(self, name: str):
        return getattr(self._connection, name)


def test_full_disk_says_so_and_keeps_the_store(tmp_path):
    with RunStore(tmp_path) as store:
        store.record_config({"seed": 1})
        real, store.connection = store.connection, _FullDisk(store.connection)
        with pytest.raises(PhysadvError, match="disk I/O error.*disk full.*keeps its previous state"):
            store.record_config({"seed": 2})
        store.connection = real
        assert not real.in_transaction and store.run_info().config == {"seed": 1}
