"""The lab workflow end to end on the digits model: demo, store, report, kill-and-resume, locking."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from physadv.cli.main import main
from physadv.lab.session import SessionConfig, config_from_mapping, load_config
from physadv.lab.store import STORE_FILE, RunLock

DEMO = ["demo", "--model", "digits"]
EXPECTED_ATTACKS = 4  # the digits demo: fgsm, bim, ll and EOT-BIM at ε = 32


def store_dump(run: Path) -> dict[str, list]:
    with sqlite3.connect(run / STORE_FILE) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        tables = ["attacks", "images", "pages", "cells", "photos", "predictions", "results"]
        return {t: sorted(map(tuple, db.execute(f"SELECT * FROM {t}"))) for t in tables}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, digits_classifier) -> Path:
    run = tmp_path_factory.mktemp("lab") / "demo"
    assert main(DEMO + ["--out", str(run)]) == 0
    return run


def test_demo_runs_every_stage_into_one_store(demo_run, capsys):
    dump = store_dump(demo_run)
    assert len(dump["attacks"]) == EXPECTED_ATTACKS
    assert len(dump["images"]) == EXPECTED_ATTACKS * 12
    assert dump["pages"] and dump["cells"] and dump["photos"]
    assert len(dump["predictions"]) == len(dump["cells"])  # one photo per page, every cell found
    methods = {row[2] for row in dump["results"]}  # kind, attack, method, …
    assert {"fgsm", "bim", "ll", "bim+eot"} <= methods
    assert main(["status", str(demo_run)]) == 0
    assert "nothing — the run is complete" in capsys.readouterr().out
    assert (demo_run / "report" / "report.html").is_file() and (demo_run / "report" / "report.pdf").is_file()


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_report_tables_match_the_store(demo_run, capsys):
    assert main(["evaluate", str(demo_run), "--json"]) == 0
    evaluation = json.loads(capsys.readouterr().out)
    parser = _Text()
    parser.feed((demo_run / "report" / "report.html").read_text())
    text = " ".join(parser.text)
    for row in evaluation["rows"]:
        if row["destruction_top1_n"]:
            numerator = round(row["destruction_top1"] * row["destruction_top1_n"])
            assert f"({numerator}/{row['destruction_top1_n']})" in text
    clean = evaluation["photo_clean"]
    assert clean["n"] == sum(1 for r in store_dump(demo_run)["predictions"] if r[5] == "clean")
    # The store's SQL aggregate against the same count made in Python, observation by observation.
    with sqlite3.connect(demo_run / STORE_FILE) as db:
        rows = db.execute("SELECT p.correct_top1, p.correct_top5, i.label, i.clean_top5 FROM predictions p "
                          "JOIN images i ON i.attack = p.attack AND i.image_id = p.image_id "
                          "WHERE p.kind = 'clean' AND p.correct_top1 IS NOT NULL").fetchall()
    digital = [[guess["index"] for guess in json.loads(top5)] for *_, top5 in rows]
    assert clean == pytest.approx({
        "n": len(rows), "top1": sum(r[0] for r in rows) / len(rows), "top5": sum(r[1] for r in rows) / len(rows),
        "digital_top1": sum(d[0] == r[2] for d, r in zip(digital, rows)) / len(rows),
        "digital_top5": sum(r[2] in d for d, r in zip(digital, rows)) / len(rows)})
    # The demo photographs through the lab profile, and its report says how severe that channel is.
    assert "virtual camera, profile lab" in text and "Channel severity" in text
    severity = evaluation["channel_severity"]
    assert severity["n"] == clean["n"] and f"{severity['change_top1_points']:+.1f}" in text


def test_killed_demo_resumes_to_the_same_store(tmp_path, demo_run):
    run = tmp_path / "killed"
    command = [sys.executable, "-m", "physadv"] + DEMO + ["--out", str(run)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    # Kill it in the middle: after the first attack's sheets are printed, before the run ends.
    while not (run / "sheets" / "fgsm-eps32" / "manifest.json").exists() and time.time() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (run / "report").exists(), "the run finished before it could be killed"
    assert main(DEMO + ["--out", str(run)]) == 0
    resumed, uninterrupted = store_dump(run), store_dump(demo_run)
    # Attacks are deterministic: identical rows. Each print job draws a fresh run id (its marker ids),
    # so photos differ in detail: compare which rows exist, i.e. nothing lost and nothing twice.
    assert resumed["attacks"] == uninterrupted["attacks"] and resumed["images"] == uninterrupted["images"]
    assert resumed["cells"] == uninterrupted["cells"]
    keys = {"pages": 2, "photos": 3, "predictions": 6, "results": 7}
    for table, width in keys.items():
        assert [r[:width] for r in resumed[table]] == [r[:width] for r in uninterrupted[table]], table


def test_a_second_command_on_a_busy_run_is_refused(demo_run, capsys):
    with RunLock(demo_run, "test"):
        assert main(DEMO + ["--out", str(demo_run)]) == 1
    err = capsys.readouterr().err
    assert "in use by `physadv test`" in err and f"pid {os.getpid()}" in err


def test_status_of_a_folder_that_is_no_run(tmp_path, capsys):
    assert main(["status", str(tmp_path)]) == 2
    assert "not a physadv run" in capsys.readouterr().err


def test_configuration_files(tmp_path):
    config = load_config(Path(__file__).parent.parent / "examples" / "lab.toml")
    assert config.photos_per_page == 0 and [a.name for a in config.attacks][-1] == "bim+eot-eps16"
    bad = tmp_path / "bad.toml"
    bad.write_text("modle = 'digits'\n")
    with pytest.raises(ValueError, match="unknown configuration key"):
        load_config(bad)
    bad.write_text("model = \n")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(ValueError, match="resolution"):
        config_from_mapping({"resolution": "4k"})
    assert config_from_mapping(SessionConfig().to_json()) == SessionConfig()


def test_attack_makes_its_folder_a_run_that_print_and_capture_extend(tmp_path, digits_classifier, capsys):
    adv, sheets, photos, captured = (tmp_path / name for name in ("adv", "sheets", "photos", "captured"))
    assert main(["attack", "digits", "--model", "digits", "--limit", "3", "--eps", "32", "--out", str(adv)]) == 0
    assert main(["status", str(adv)]) == 0
    assert "next: print bim-eps32" in capsys.readouterr().out
    assert main(["print", str(adv), "--out", str(sheets)]) == 0
    assert main(["photograph", str(sheets / "sheets.pdf"), "--out", str(photos), "--n", "1",
                 "--resolution", "1080p"]) == 0
    assert main(["capture", str(photos), "--manifest", str(sheets / "manifest.json"), "--out", str(captured)]) == 0
    capsys.readouterr()
    assert main(["status", str(adv), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["images_attacked"] == 3 and status["pages_printed"] == 1 and status["cells_classified"] == 6
    assert status["next"] == [f"physadv report {adv}"]
    assert main(["evaluate", str(adv), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert {(r["method"], r["transform"], r["case"]) for r in rows} == {("bim", "photo", "average"),
                                                                         ("bim", "photo", "prefiltered")}


def test_unlabelled_images_go_through_capture_into_the_store(tmp_path, digits_classifier, capsys):
    """LL needs no labels; the photo rows then have no correctness, and nothing may crash on that."""
    from physadv.datasets import load_image_set
    from physadv.images import write_png

    for number, image in enumerate(load_image_set("digits", digits_classifier.labels, limit=3)):
        write_png(tmp_path / "in" / f"scan_{chr(97 + number)}.png", image.image)
    adv, sheets, photos = tmp_path / "adv", tmp_path / "sheets", tmp_path / "photos"
    assert main(["attack", str(tmp_path / "in"), "--model", "digits", "--method", "ll", "--eps", "32",
                 "--out", str(adv)]) == 0
    assert main(["print", str(adv), "--out", str(sheets)]) == 0
    assert main(["photograph", str(sheets / "sheets.pdf"), "--out", str(photos), "--n", "1",
                 "--resolution", "1080p"]) == 0
    assert main(["capture", str(photos), "--manifest", str(sheets / "manifest.json"),
                 "--out", str(tmp_path / "cap")]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(adv), "--json"]) == 0
    evaluation = json.loads(capsys.readouterr().out)
    assert evaluation["photo_clean"]["n"] == 0 and store_dump(adv)["predictions"]
    assert main(["report", str(adv)]) == 0


def synthetic_run(run: Path, images: int) -> Path:
    """A run of two attacks on ``images`` images, each photographed once; every third photo fools the
    model. All rows share three small PNGs: the report may read only the pictures it shows."""
    import numpy as np

    from physadv.images import write_png
    from physadv.lab.store import RunStore

    rng = np.random.default_rng(0)
    for kind in ("clean", "adv"):
        write_png(run / "attack" / kind / "x.png", rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    write_png(run / "capture" / "crops" / "photo" / "x.png", rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    top5 = json.dumps([{"index": k, "name": str(k), "probability": 0.2} for k in range(5)])
    with RunStore(run) as store, store.transaction() as db:
        for attack in ("fgsm-eps8", "bim-eps8"):
            db.execute("INSERT INTO attacks VALUES (?, ?, 8, 1, 10, '', 'digits', '', '', 'attack', NULL)",
                       (attack, attack[:4]))
            db.executemany("INSERT INTO images VALUES (?, ?, 'x.png', '', 1, 'one', '', ?, ?, ?, 1, 0)",
                           [(attack, f"img{i:05d}", f"{i * 7919 % 10007:08d}", top5, top5) for i in range(images)])
            db.executemany("INSERT INTO predictions VALUES (?, 'p.jpg', 0, ?, ?, 'adversarial', ?, ?, ?, ?)",
                           [(attack, i, f"img{i:05d}", top5, int(i % 3 != 0), 1, "capture/crops/photo/x.png")
                            for i in range(images)])
    return run


def test_report_size_does_not_grow_with_the_number_of_images(tmp_path):
    from physadv.lab.reporting import build_report

    sizes = {}
    for images in (30, 5000):
        files = build_report(synthetic_run(tmp_path / str(images), images))
        html = files.html.read_text(encoding="utf-8")
        sizes[images] = len(html.encode())
        assert html.count('class="card"') == 2 * 2 * 3  # 2 attacks × 2 outcomes × 3 cards
        assert f"fgsm-eps8, fooled in the photo: 3 of {len(range(0, images, 3))}" in html
        assert 'href="../capture/crops/"' in html
    assert abs(sizes[5000] - sizes[30]) < 200 and sizes[5000] < 2_000_000
