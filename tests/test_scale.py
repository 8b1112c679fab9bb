"""Streamed image sets and torchrun sharding: two processes write what one writes, a killed rank resumes."""

import io
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from physadv import attackset, jsonstream
from physadv.attackset import read_attack_set
from physadv.cli.main import main
from physadv.datasets import sources_digest
from physadv.images import write_png
from physadv.jsonstream import scan_json_with_list, write_json_with_list

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


# ImageNet-C's random corruptions draw a seed per image: the shards must draw the seeds one process would.
CORRUPTIONS = [*EXPERIMENT[:-4], "--transforms", "imagenet-c:gaussian_noise,imagenet-c:fog",
               "--strengths", "imagenet-c=1,5", "--batch-size", "4"]


@pytest.mark.parametrize("args", [EXPERIMENT, CORRUPTIONS], ids=["kurakin", "imagenet-c"])
def test_two_processes_run_the_experiment_as_one_does(tmp_path, args):
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    _finish(_torchrun([*args, "--out", str(tmp_path / "two")]))
    assert (tmp_path / "two" / "results.json").read_bytes() == (tmp_path / "one" / "results.json").read_bytes()
    assert (tmp_path / "two" / "results.csv").read_bytes() == (tmp_path / "one" / "results.csv").read_bytes()
    assert not (tmp_path / "two" / ".parts").exists()


@pytest.mark.slow
def test_two_processes_classify_as_one_does(tmp_path):
    args = ["classify", "digits", *DIGITS, "--limit", "21", "--batch-size", "4", "--json"]
    one = subprocess.run([sys.executable, "-m", "physadv", *args], capture_output=True, text=True, check=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"}).stdout
    two = _torchrun(args)
    output, _ = two.communicate(timeout=300)
    assert two.returncode == 0, output
    assert json.loads(output[output.index("{"):]) == json.loads(one)  # torchrun may add lines before it
    assert len(json.loads(one)["images"]) == 21


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
    kept = [out / folder / image["file"] for part in (out / ".parts").glob("*.json")
            for image in json.loads(part.read_text()) for folder in ("clean", "adv")]
    assert kept
    before = _stamps(kept)
    _finish(_torchrun([*args, "--out", str(out)]))
    _assert_same_outputs(tmp_path / "one", out)
    assert _stamps(kept) == before  # the batches finished before the kill were not attacked again


def _stamps(paths: list[Path]) -> dict[Path, tuple[int, int]]:
    """Inode and modification time of each file: a file written again (atomically: a new inode) differs."""
    return {path: (path.stat().st_ino, path.stat().st_mtime_ns) for path in paths}


def _failed_torchrun(args: list[str]) -> str:
    """The output of a 2-process command that fails: torchrun exits non-zero and its one traceback is
    its own report (ChildFailedError), not a rank's; no rank died on a connection another one closed."""
    process = _torchrun(args)
    output, _ = process.communicate(timeout=300)
    assert process.returncode != 0, output
    assert output.count("Traceback") == 1 and "ChildFailedError" in output, output
    assert "Connection closed" not in output and "[rank" not in output, output
    return output


@pytest.mark.parametrize("args, other, message", [
    ([*ATTACK, "--method", "fgsm", "--limit", "8"], ["--eps", "8"], "already holds an attack with other settings"),
    ([*EXPERIMENT, "--limit", "8"], ["--transforms", "noise"], "holds results of another configuration"),
])
def test_a_folder_rank_0_refuses_is_one_line_from_one_rank(tmp_path, args, other, message):
    """Rank 0 alone reads the folder; it tells the other rank, which does not print the error again."""
    assert main([*args, "--out", str(tmp_path)]) == 0
    output = _failed_torchrun([*args, *other, "--out", str(tmp_path)])
    assert output.count(f"physadv {args[0]}: error: ") == output.count(message) == 1, output


def test_a_busy_run_is_refused_once(tmp_path):
    import fcntl

    (tmp_path / ".lock").write_text("`physadv attack` (pid 1)")
    with open(tmp_path / ".lock") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        output = _failed_torchrun([*ATTACK, "--limit", "8", "--out", str(tmp_path)])
    assert output.count("physadv attack: error: ") == output.count("is in use by `physadv attack` (pid 1)") == 1


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


def test_a_bad_csv_list_is_refused_once_under_torchrun(listed_digits):
    """Every rank reads the list and meets the missing file; one line says so."""
    (listed_digits / "list.csv").write_text("path,label\nimgs/a.png,3\nimgs/missing.png,3\n")
    out = listed_digits / "out"
    output = _failed_torchrun([*ATTACK[:1], str(listed_digits / "list.csv"), *ATTACK[2:], "--out", str(out)])
    assert output.count("physadv attack: error: ") == output.count("line 3: imgs/missing.png: no such file") == 1
    assert not out.exists()


@pytest.mark.parametrize("verb", ["attack", "classify"])
def test_an_unreadable_image_in_rank_1s_share_is_told_by_rank_1(listed_digits, verb):
    """Only rank 1 reads batch 1: it prints the error (rank 0 may add that a process stopped)."""
    (listed_digits / "imgs" / "bad.png").write_bytes(b"garbage")
    (listed_digits / "list.csv").write_text("path,label\nimgs/a.png,3\nimgs/bad.png,3\nimgs/b.png,7\n")
    args = [verb, str(listed_digits / "list.csv"), *DIGITS, "--batch-size", "1"]
    output = _failed_torchrun([*args, "--out", str(listed_digits / "out")] if verb == "attack" else args)
    assert output.count("bad.png: not a readable image") == 1, output


# --- memory that does not grow with the number of images -------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=12)


@settings(max_examples=150, deadline=None)
@given(head=st.dictionaries(st.text(max_size=5), json_values, max_size=3), items=st.lists(json_values, max_size=4),
       chunk=st.sampled_from([1, 3, 4096]))
def test_the_streamed_json_is_json_dumps_byte_for_byte_and_reads_back(tmp_path_factory, head, items, chunk):
    data = {**head, "images": None, "schema": "x"}
    stream = io.StringIO()
    assert write_json_with_list(stream, data, "images", iter(items)) == len(items)
    assert stream.getvalue() == json.dumps({**data, "images": items}, indent=1, allow_nan=False) + "\n"
    path = tmp_path_factory.mktemp("json") / "record.json"
    path.write_text(stream.getvalue())
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(jsonstream, "CHUNK_CHARS", chunk)  # values cut at every place by the chunks' ends
        events = list(scan_json_with_list(path, "images"))
    assert [value for kind, value in events if kind == "item"] == items
    assert events[-1] == ("rest", {**data, "images": []})


def test_attack_json_is_what_json_dumps_of_the_whole_record_writes(tmp_path):
    out = tmp_path / "adv"
    assert main([*ATTACK, "--method", "fgsm", "--limit", "10", "--out", str(out)]) == 0
    written = (out / "attack.json").read_bytes()
    record = read_attack_set(out)
    # The writer of earlier versions, verbatim: the whole record through json.dumps.
    data = asdict(record)
    stamp = {key: data["settings"][key] for key in ("model", "method", "eps", "iterations", "source_model")}
    data["images"] = [{**image, **stamp} for image in data["images"]]
    assert written == (json.dumps(data, indent=1, allow_nan=False) + "\n").encode()
    assert len(record.images) == 10 and record.images[0].clean_sha256


def test_a_folder_of_the_previous_format_reads_and_resumes(tmp_path):
    """attack.json as earlier versions wrote it (json.dumps of the whole record, here without
    indentation too); a re-run with more images and another batch size merges into it."""
    args = [*ATTACK, "--method", "fgsm"]
    out = tmp_path / "adv"
    assert main([*args, "--limit", "6", "--out", str(out)]) == 0
    first = read_attack_set(out)
    (out / "attack.json").write_text(json.dumps(json.loads((out / "attack.json").read_text())))
    assert read_attack_set(out) == first
    assert main([*args, "--batch-size", "5", "--limit", "13", "--out", str(out)]) == 0
    merged = read_attack_set(out)
    assert [image.id for image in merged.images] == [f"digit{n:04d}_{d}" for n, d in
                                                     enumerate(_digit_labels()[:13])]
    assert merged.images[:5] == first.images[:5]  # batch 0 (size 5) was finished: kept, not attacked again
    assert not (out / ".parts").exists()


def _digit_labels() -> list[int]:
    from physadv.classifiers.digits import digits_split

    return [int(label) for label in digits_split("test").labels]


def test_the_merge_reads_each_part_only_when_its_images_are_written(tmp_path, monkeypatch):
    """Holding every record before writing (what the merge did until issue 13) reads all parts first."""
    events = []
    read_part, dumps = attackset._read_part, jsonstream._dumps

    def reading(path):
        events.append(("read", path.name))
        return read_part(path)

    def writing(value):
        if isinstance(value, dict) and "adv_top5" in value:
            events.append(("write", value["id"]))
        return dumps(value)

    monkeypatch.setattr(attackset, "_read_part", reading)
    monkeypatch.setattr(jsonstream, "_dumps", writing)
    assert main([*ATTACK, "--method", "fgsm", "--limit", "10", "--out", str(tmp_path / "adv")]) == 0
    ids = [image.id for image in read_attack_set(tmp_path / "adv").images]
    expected = [event for number in range(3) for event in
                [("read", f"b4-{number:07d}.json"), *(("write", i) for i in ids[4 * number:4 * number + 4])]]
    assert events == expected


def test_an_experiment_folder_listing_every_image_resumes(tmp_path):
    """results.json of earlier versions listed every image's source in its config: it is read as their digest."""
    out = tmp_path / "exp"
    args = [*EXPERIMENT, "--limit", "8", "--out", str(out)]
    assert main(args) == 0
    data = json.loads((out / "results.json").read_text())
    assert data["config"]["images"].startswith("sha256:")
    data["config"]["images"] = [f"sklearn:digits/test/{n}" for n in range(8)]
    (out / "results.json").write_text(json.dumps(data))
    assert main(args) == 0
    assert json.loads((out / "results.json").read_text()) == {**data, "config": {**data["config"],
                                                                               "images": sources_digest(
                                                                                   data["config"]["images"])}}
    data["config"]["images"] = data["config"]["images"][:7]
    (out / "results.json").write_text(json.dumps(data))
    assert main(args) == 2  # another image set: refused


# --- the one batch loop ------------------------------------------------------------------------------------

def test_run_batches_works_what_is_pending_and_merges_in_batch_order(capsys):
    from physadv.batches import PendingBatch, run_batches
    from physadv.datasets import digit_images
    from physadv.errors import OWN_ERROR
    from physadv.labels import label_space

    images = digit_images(label_space([str(d) for d in range(10)]))[:10]  # batches of 4: 4, 4, 2 images
    seen = []

    def work(batch: PendingBatch, pixels) -> tuple[int, tuple, str]:
        seen.append(batch.number)
        return batch.number, tuple(pixels.shape), batch.todo

    merged = run_batches(lambda: [PendingBatch(2, 2, "c"), PendingBatch(0, 4, "a")], work, list, images=images,
                         image_size=8, batch_size=4, total=10, desc="testing")
    assert seen == [2, 0]  # the order pending gave
    assert merged == [(0, (4, 8, 8, 3), "a"), (2, (2, 8, 8, 3), "c")]  # merged in batch order
    progress = capsys.readouterr().err
    assert "testing:  40%" in progress and "10/10" in progress  # 4 of 10 images done before: not pending

    def failing(batch: PendingBatch, pixels) -> None:
        raise ValueError("batch 1 failed")

    with pytest.raises(ValueError, match="batch 1 failed") as raised:
        run_batches(lambda: [PendingBatch(1, 4)], failing, list, images=images, image_size=8, batch_size=4,
                    progress=False)
    assert getattr(raised.value, OWN_ERROR)  # this rank's own error: it reports it (physadv.errors.reported_here)
