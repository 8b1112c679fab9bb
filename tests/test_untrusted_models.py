"""A model recorded in a file is a name, never code (issue 23, item 1).

A manifest, an ``attack.json`` or a run's configuration and store travel between labs. Their ``model``
field may say ``FILE.py:FACTORY``; physadv must never import that file on the file's word: only the
user's own ``--model`` may name a Python file. Here a factory file whose top level writes a marker is
named by every kind of data file, each verb is fed them, and the marker must never appear.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import cv2
import pytest

from physadv.classifiers import digits
from physadv.cli.main import build_parser, main
from physadv.errors import InputError
from physadv.images import read_rgb
from physadv.lab.store import STORE_FILE

FACTORY = '''
import pathlib
pathlib.Path({marker!r}).write_text("imported")

def good():
    from physadv.classifiers import load_classifier
    return load_classifier("digits")
'''

RUN_CONFIG = ('model = "digits"\nimages = ["digits"]\nlimit = 2\nphotos_per_page = 0\ntransforms = {}\n'
              '[[attacks]]\nmethod = "fgsm"\neps = 32\n')
ATTACK = "fgsm-eps32"


def files_under(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def without_locks(files: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
    """``files`` less the run lock, which any command on a run takes (and leaves, empty of a holder)."""
    return {name: stat for name, stat in files.items() if Path(name).name != ".lock"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A real session on 2 digits (attack and sheets), one virtual photo of its sheets, the factory file,
    and the spec naming it: everything a hostile copy is made from."""
    root = tmp_path_factory.mktemp("untrusted")
    (root / "code").mkdir()
    factory = root / "code" / "sideeffect.py"
    marker = root / "code" / "IMPORTED"
    factory.write_text(FACTORY.format(marker=str(marker)))
    (root / "lab.toml").write_text(RUN_CONFIG)
    session = root / "session"
    assert main(["run", "new", str(session), "--config", str(root / "lab.toml")]) == 0
    photos = root / "photos"
    assert main(["photograph", str(session / "sheets" / ATTACK / "sheets.pdf"), "--out", str(photos), "--n", "1",
                 "--resolution", "720p"]) == 0
    substitute = root / "substitute"
    assert main(["substitute", "digits", "--oracle", "digits", "--limit", "8", "--rounds", "1", "--epochs", "1",
                 "--out", str(substitute)]) == 0
    return {"root": root, "session": session, "photos": photos, "marker": marker, "spec": f"{factory}:good",
            "substitute": substitute}


@pytest.fixture(autouse=True)
def no_marker_yet(world):
    """Each test starts without the marker, whatever an earlier one did."""
    world["marker"].unlink(missing_ok=True)


def name_model(data, spec: str):
    """``data`` (parsed JSON) with every ``model`` field, at any depth, set to ``spec``."""
    if isinstance(data, dict):
        return {k: spec if k == "model" else name_model(v, spec) for k, v in data.items()}
    if isinstance(data, list):
        return [name_model(v, spec) for v in data]
    return data


def rewrite_json(path: Path, spec: str) -> None:
    path.write_text(json.dumps(name_model(json.loads(path.read_text()), spec)))


def hostile_run(world, tmp_path: Path, spec: str) -> Path:
    """A copy of the session whose config.json, store meta, attack.json and manifest all name ``spec``."""
    run = tmp_path / "hostile"
    shutil.copytree(world["session"], run, ignore=shutil.ignore_patterns(".lock"))
    rewrite_json(run / "config.json", spec)
    rewrite_json(run / "attacks" / ATTACK / "attack.json", spec)
    manifest = run / "sheets" / ATTACK / "manifest.json"
    data = name_model(json.loads(manifest.read_text()), spec)
    data["attack_dir"] = str((run / "attacks" / ATTACK).resolve())
    manifest.write_text(json.dumps(data))
    with closing(sqlite3.connect(run / STORE_FILE)) as db, db:
        config = json.loads(db.execute("SELECT value FROM meta WHERE key = 'config'").fetchone()[0])
        db.execute("UPDATE meta SET value = ? WHERE key = 'model'", (json.dumps(spec),))
        db.execute("UPDATE meta SET value = ? WHERE key = 'config'", (json.dumps(name_model(config, spec)),))
        db.execute("UPDATE attacks SET model = ?", (spec,))
    return run


def video_of(photo: Path, path: Path) -> Path:
    frame = cv2.cvtColor(read_rgb(photo), cv2.COLOR_RGB2BGR)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 5, (frame.shape[1], frame.shape[0]))
    writer.write(frame)
    writer.release()
    return path


def digits_weights() -> Path:
    return digits.cache_dir() / digits.WEIGHTS_NAME


def as_compared_model(run: Path) -> Path:
    """A compare-models folder whose base model's session is ``run``."""
    out = run.parent / "compared"
    (out / "models").mkdir(parents=True)
    shutil.copytree(run, out / "models" / "0-digits")
    return out


def hostile_toml(tmp_path: Path, spec: str) -> Path:
    path = tmp_path / "hostile.toml"
    path.write_text(RUN_CONFIG.replace('model = "digits"', f"model = {json.dumps(spec)}"))
    return path


def hostile_substitute(world, tmp_path: Path, spec: str) -> Path:
    """A copy of the world's substitute folder whose record names ``spec`` as its oracle."""
    folder = tmp_path / "hostile-substitute"
    shutil.copytree(world["substitute"], folder, ignore=shutil.ignore_patterns(".lock"))
    record = json.loads((folder / "substitute.json").read_text())
    record["oracle"] = {**record["oracle"], "spec": spec, "name": spec}
    (folder / "substitute.json").write_text(json.dumps(record))
    return folder


def hostile_results(tmp_path: Path, spec: str) -> Path:
    path = tmp_path / "baseline" / "results.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"config": {"model": spec}, "rows": []}))
    return path


# verb → the commands that feed it data files naming the factory (``w``: world, ``run``: a hostile run copy).
CASES = {
    "attack": lambda w, run, t: [["attack", "digits", "--model", "digits", "--limit", "1", "--out",
                                  str(run / "attacks" / ATTACK)]],
    "calibrate": lambda w, run, t: [["calibrate", str(w["photos"]), "--manifest",
                                     str(run / "sheets" / ATTACK / "manifest.json"), "--out", str(t / "p.toml")]],
    "capture": lambda w, run, t: [
        ["capture", str(w["photos"]), "--manifest", str(run / "sheets" / ATTACK / "manifest.json"), "--out",
         str(t / "cap")],
        ["capture", str(w["photos"]), "--manifest", str(run / "sheets" / ATTACK / "manifest.json"), "--out",
         str(t / "cap-digits"), "--model", "digits"]],
    "compare": lambda w, run, t: [["compare", "--model", "digits", "--images", "digits", "--limit", "2",
                                   "--out", str(run)]],
    "compare-models": lambda w, run, t: [["compare-models", "digits", f"digits@{digits_weights()}", "--images",
                                          "digits", "--limit", "2", "--out", str(as_compared_model(run))]],
    "demo": lambda w, run, t: [["demo", "--config", str(hostile_toml(t, w["spec"])), "--out", str(t / "demo")],
                               ["demo", "--model", "digits", "--out", str(run)]],
    "evaluate": lambda w, run, t: [["evaluate", str(run)], ["evaluate", str(run), "--json", "--all"]],
    "experiment": lambda w, run, t: [["experiment", "--model", "digits", "--images", "digits", "--limit", "1",
                                      "--baseline", str(hostile_results(t, w["spec"])), "--transforms", "imagenet-c",
                                      "--out", str(t / "exp")]],
    "live": lambda w, run, t: [["live", "--camera", str(video_of(next(w["photos"].glob("*.jpg")), t / "clip.mp4")),
                                "--manifest", str(run / "sheets" / ATTACK / "manifest.json"), "--model", "digits",
                                "--headless", "--out", str(t / "live"), "--max-frames", "1"]],
    "photograph": lambda w, run, t: [["photograph", str(run / "sheets" / ATTACK / "sheets.pdf"), "--out",
                                      str(t / "shots"), "--n", "1", "--resolution", "720p"]],
    "print": lambda w, run, t: [["print", str(run / "attacks" / ATTACK), "--out", str(t / "sheets")],
                                ["capture", str(w["photos"]), "--manifest", str(t / "sheets" / "manifest.json"),
                                 "--out", str(t / "cap-printed")]],
    "report": lambda w, run, t: [["report", str(run)]],
    "run": lambda w, run, t: [["run", "continue", str(run)], ["run", "continue", str(run), "--model", "digits"],
                              ["run", "new", str(t / "new"), "--config", str(hostile_toml(t, w["spec"]))]],
    "status": lambda w, run, t: [["status", str(run)]],
    "substitute": lambda w, run, t: [
        ["substitute", "digits", "--oracle", "digits", "--limit", "8", "--rounds", "1", "--epochs", "1", "--out",
         str(hostile_substitute(w, t, w["spec"]))],
        ["attack", "digits", "--model", "digits", "--limit", "1", "--source-model",
         f"substitute:{hostile_substitute(w, t / 'second', w['spec'])}", "--out", str(t / "transfer")]],
}

READ_NO_MODEL_FIELD = {
    "chart": "writes a calibration chart; reads no file",
    "classify": "classifies images with --model; reads no file with a model field",
    "models": "lists the built-in models; reads no file",
    "patch": "trains --model; the model its patch.json records is compared as a name on resume and print "
             "(tests/test_patch.py: a tampered patch.json naming evil.py:make is refused, never imported)",
    "train-defence": "trains --model on images; reads no file with a model field",
}


def verbs() -> set[str]:
    parser = build_parser()
    return set(next(a for a in parser._actions if a.dest == "verb").choices)


def test_every_verb_is_covered():
    assert set(CASES) | set(READ_NO_MODEL_FIELD) == verbs()
    assert not set(CASES) & set(READ_NO_MODEL_FIELD)


@pytest.mark.slow
@pytest.mark.parametrize("relative", [False, True], ids=["absolute", "relative"])
@pytest.mark.parametrize("verb", sorted(CASES))
def test_no_verb_imports_a_python_file_named_by_a_data_file(world, tmp_path, capsys, monkeypatch, verb, relative):
    spec = world["spec"]
    if relative:  # the issue's `../../x/fac.py:good`, relative to where the command runs
        (tmp_path / "a" / "b").mkdir(parents=True)
        monkeypatch.chdir(tmp_path / "a" / "b")
        spec = os.path.relpath(spec, tmp_path / "a" / "b")
    run = hostile_run(world, tmp_path, spec)
    for argv in CASES[verb](world, run, tmp_path):
        code = main(argv)
        err = capsys.readouterr().err
        assert "Traceback" not in err, (argv, err)
        assert not world["marker"].exists(), f"{' '.join(argv)} imported the factory named by a data file"
        if "names a Python file" in err:
            assert code == 2, (argv, err)


@pytest.mark.slow
def test_a_recorded_factory_is_refused_in_one_line_and_nothing_is_written(world, tmp_path, capsys):
    run = hostile_run(world, tmp_path, world["spec"])
    for argv, where in [
        (["capture", str(world["photos"]), "--manifest", str(run / "sheets" / ATTACK / "manifest.json"),
          "--out", str(tmp_path / "cap")], "manifest.json"),
        (["run", "continue", str(run)], "config.json"),
        (["run", "new", str(tmp_path / "new"), "--config", str(hostile_toml(tmp_path, world["spec"]))],
         "configuration"),
    ]:
        before = files_under(tmp_path)
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and where in err, err
        assert "names a Python file" in err and f"--model {world['spec']}" in err, err
        assert without_locks(files_under(tmp_path)) == without_locks(before)
    assert not world["marker"].exists()


@pytest.mark.slow
def test_the_users_own_model_may_name_the_file(world, tmp_path, capsys):
    """The positive control: the marker does appear when the user names the file, so the tests above can fail."""
    run = hostile_run(world, tmp_path, world["spec"])
    code = main(["capture", str(world["photos"]), "--manifest", str(run / "sheets" / ATTACK / "manifest.json"),
                 "--out", str(tmp_path / "cap"), "--model", world["spec"]])
    assert code == 0, capsys.readouterr().err
    assert world["marker"].exists()
    world["marker"].unlink()
    # `run continue` with the same spec on the command line confirms the run's own model
    assert main(["run", "continue", str(run), "--model", world["spec"]]) == 0, capsys.readouterr().err
    assert world["marker"].exists()


def test_check_recorded_model_refuses_code_specs_the_user_did_not_name():
    from physadv.classifiers import check_recorded_model

    for name in ("digits", "efficientnet_lite0", "timm:resnet18", "torchvision:resnet50", "my_model:factory"):
        assert check_recorded_model(name, "x.json") == name
    assert check_recorded_model("m.py:f", "x.json", user_model="m.py:f") == "m.py:f"
    for name, user in [("m.py:f", None), ("m.py:f", "digits"), ("../../x/m.py:f", "m.py:f"), ("/abs/m.py:f", "")]:
        with pytest.raises(InputError, match="x.json: its model .* names a Python file"):
            check_recorded_model(name, "x.json", user_model=user)
