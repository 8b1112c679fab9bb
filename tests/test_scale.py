"""Streamed image sets and torchrun sharding: two processes write what one writes, a killed rank resumes."""

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from physadv.cli.main import main
from physadv.images import write_png

DIGITS = ["--model", "digits", "--workers", "0"]
ATTACK = ["attack", "digits", *DIGITS, "--eps", "32", "--batch-size", "4"]
EXPERIMENT = ["experiment", "--images", "digits", *DIGITS, "--limit", "20", "--methods", "fgsm,bim", "--eps", "16",
              "--iterations", "3", "--transforms", "noise,jpeg", "--batch-size", "4"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _torchrun(args: list[str], processes: int = 2) -> subprocess.Popen:
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(processes),
               "--master-addr", "127.0.0.1", "--master-port", str(_free_port()), "-m", "physadv", *args]
    return subprocess.Popen(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _finish(process: subprocess.Popen) -> None:
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output


def _store_rows(folder: Path) -> dict[str, list[tuple]]:
    with sqlite3.connect(folder / "physadv.sqlite") as db:
        return {table: sorted(db.execute(f"SELECT * FROM {table}")) for table in ("attacks", "images")}


def _assert_same_outputs(one: Path, two: Path) -> None:
    """Every file byte-identical (the lock's holder and the SQLite file's layout aside); the store's rows equal."""
    def files(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
                if p.is_file() and p.name not in (".lock", "physadv.sqlite", "physadv.sqlite-wal", "physadv.sqlite-shm")}

    expected, actual = files(one), files(two)
    assert sorted(actual) == sorted(expected)
    assert [name for name in expected if expected[name] != actual[name]] == []
    if (one / "physadv.sqlite").is_file():
        assert _store_rows(two) == _store_rows(one)


def test_two_processes_attack_as_one_does(tmp_path):
    """FGSM here; BIM in the test of a killed rank, whose two-process outputs must match one process's too."""
    args = [*ATTACK, "--method", "fgsm", "--limit", "18"]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    _finish(_torchrun([*args, "--out", str(tmp_path / "two")]))
    _assert_same_outputs(tmp_path / "one", tmp_path / "two")
    assert len(json.loads((tmp_path / "two" / "attack.json").read_text())["images"]) == 18


def test_two_processes_run_the_experiment_as_one_does(tmp_path):
    assert main([*EXPERIMENT, "--out", str(tmp_path / "one")]) == 0
    _finish(_torchrun([*EXPERIMENT, "--out", str(tmp_path / "two")]))
    assert (tmp_path / "two" / "results.json").read_bytes() == (tmp_path / "one" / "results.json").read_bytes()
    assert (tmp_path / "two" / "results.csv").read_bytes() == (tmp_path / "one" / "results.csv").read_bytes()
    assert not (tmp_path / "two" / ".parts").exists()


def _rank_process(parent: int, rank: int) -> int | None:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environment = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and f"RANK={rank}".encode() in environment:
            return int(entry.name)
    return None


def test_a_killed_rank_is_resumed_by_running_the_command_again(tmp_path):
    args = [*ATTACK, "--method", "bim", "--iterations", "10", "--limit", "120"]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    out = tmp_path / "two"
    process = _torchrun([*args, "--out", str(out)])
    deadline = time.monotonic() + 240
    while len(list((out / ".parts").glob("*.json"))) < 2 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    rank1 = _rank_process(process.pid, 1)
    assert rank1 is not None, "rank 1 finished before it could be killed"
    os.kill(rank1, signal.SIGKILL)
    process.communicate(timeout=120)
    assert process.returncode != 0
    assert len(json.loads((out / "attack.json").read_text())["images"]) < 120  # not merged: parts only
    kept = {p.name: p.read_bytes() for p in (out / ".parts").glob("*.json")}
    assert kept
    _finish(_torchrun([*args, "--out", str(out)]))
    _assert_same_outputs(tmp_path / "one", out)


@pytest.fixture
def listed_digits(tmp_path):
    """Two digit images, a CSV list naming them with labels, and its folder."""
    images = tmp_path / "imgs"
    for name, ink in (("a.png", 0), ("b.png", 255)):
        write_png(images / name, np.full((64, 64, 3), ink, np.uint8))
    return tmp_path


def test_a_csv_list_gives_paths_relative_to_it_and_its_labels(listed_digits, capsys):
    (listed_digits / "list.csv").write_text("path,label\nimgs/a.png,3\nimgs/b.png,7\n")
    assert main(["classify", str(listed_digits / "list.csv"), *DIGITS, "--json"]) == 0
    records = json.loads(capsys.readouterr().out)["images"]
    assert [(r["id"], r["label"]) for r in records] == [("imgs_a", 3), ("imgs_b", 7)]


@pytest.mark.parametrize("row, message", [("imgs/missing.png,3", "line 3: imgs/missing.png: no such file"),
                                          ("imgs/b.png,platypus", "line 3: unknown class 'platypus'"),
                                          ("imgs,3", "line 3: imgs: no such file")])
def test_a_bad_csv_list_is_refused_before_any_work(listed_digits, capsys, row, message):
    (listed_digits / "list.csv").write_text(f"path,label\nimgs/a.png,3\n{row}\n")
    out = listed_digits / "out"
    assert main([*ATTACK[:1], str(listed_digits / "list.csv"), *ATTACK[2:], "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert message in error and len(error.strip().splitlines()) == 1
    assert not out.exists()
