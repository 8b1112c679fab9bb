"""Bad input, as an outside tester gives it: every case exits 1 or 2 with one line and no traceback,
nothing is written outside the output folder, and no run's store is touched by a foreign file.

The first half replays the cases found by hand (issue 11); the second half generates malformed
manifests, attack records, configurations and images (hypothesis) and feeds them to the readers.
"""

from __future__ import annotations

import copy
import json
import sqlite3
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from physadv.attackset import read_attack_set
from physadv.cli.main import main
from physadv.errors import InputError, PhysadvWarning
from physadv.images import read_rgb, write_png
from physadv.lab.session import SessionConfig, config_from_mapping
from physadv.lab.store import STORE_FILE, RunLock
from physadv.printouts.manifest import Manifest, ManifestError, marker_ids

DIGITS = ["--model", "digits"]


def files_under(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*") if p.is_file()}


def one_line_error(capsys, code: int, expected_codes=(1, 2)) -> str:
    """The command's error line, after checking it failed cleanly: one line, no traceback."""
    err = capsys.readouterr().err
    assert code in expected_codes, err
    lines = [line for line in err.splitlines() if line.strip() and "warning:" not in line]
    assert len(lines) == 1 and "error:" in lines[0] and "Traceback" not in err, err
    return lines[0]


def store_counts(run: Path) -> dict[str, int]:
    with sqlite3.connect(run / STORE_FILE) as db:
        return {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                for t in ("attacks", "images", "pages", "cells", "photos", "predictions", "results")}


@pytest.fixture(scope="module")
def lab(tmp_path_factory, digits_classifier):
    """An attack run on 4 digits, printed, photographed once and captured: (root, attack run, sheets, photos)."""
    root = tmp_path_factory.mktemp("bad-input")
    run, sheets, photos = root / "adv", root / "sheets", root / "photos"
    assert main(["attack", "digits", *DIGITS, "--method", "fgsm", "--eps", "32", "--limit", "4",
                 "--out", str(run)]) == 0
    assert main(["print", str(run), "--out", str(sheets)]) == 0
    assert main(["photograph", str(sheets / "sheets.pdf"), "--out", str(photos), "--n", "2",
                 "--resolution", "1080p"]) == 0  # 8 cells: two pages of 2 × 3
    assert main(["capture", str(photos), "--manifest", str(sheets / "manifest.json"), "--out",
                 str(root / "cap")]) == 0
    assert store_counts(run)["predictions"] == 8
    return root, run, sheets, photos


def manifest_data(sheets: Path) -> dict:
    return json.loads((sheets / "manifest.json").read_text())


def as_other_run(data: dict, run_id: str) -> dict:
    """The manifest ``data`` as another run would have it: its run id and that run's marker ids."""
    data = copy.deepcopy(data)
    data["run_id"] = run_id
    for page in data["pages"]:
        for marker, marker_id in zip(page["markers"], marker_ids(run_id, page["index"])):
            marker["id"] = marker_id
    return data


def capture_with(lab, tmp_path, mutate, capsys) -> tuple[int, str]:
    """Capture the lab's photos with a mutated copy of its manifest (beside a copy of nothing else)."""
    root, run, sheets, photos = lab
    data = manifest_data(sheets)
    data["attack_dir"] = str(run.resolve())  # the copy still points at the run, as a crafted one would
    data = mutate(data)
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "manifest.json").write_text(json.dumps(data))
    before_root, before_store = files_under(root), store_counts(run)
    out = tmp_path / "out"
    code = main(["capture", str(photos), "--manifest", str(evil / "manifest.json"), "--out", str(out)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    # Nothing written outside --out: the lab's folders are as they were, and so is the run's store.
    after = files_under(root)
    changed = {k for k in set(before_root) | set(after) if before_root.get(k) != after.get(k)
               and not k.startswith("adv/physadv.sqlite") and k != "adv/.lock"}
    assert not changed, changed
    assert store_counts(run) == before_store
    outside = [p for p in tmp_path.rglob("*") if p.is_file() and not (p.is_relative_to(out) or p.is_relative_to(evil))]
    assert not outside, outside
    return code, err


def set_cell(key, value):
    def mutate(data):
        data["pages"][0]["cells"][0][key] = value
        return data
    return mutate


@pytest.mark.parametrize("mutate, what", [
    (set_cell("kind", "/../../../../x"), "kind"),
    (lambda d: [], "expected an object"),
    (set_cell("index", "zero"), "index"),
    (set_cell("box_mm", [1e308, 0, 10, 10]), "box_mm"),
    (set_cell("size_px", [0, 0]), "size_px"),
    (set_cell("size_px", [100000, 100000]), "size_px"),
    (set_cell("label", -1), "label"),
    (set_cell("image_id", 7), "image_id"),
    (lambda d: {**d, "pages": [{**d["pages"][0], "index": "0"}]}, "index"),
    (lambda d: {**d, "pages": [{**d["pages"][0], "markers": [{**m, "corners_mm": [[0, 0]]}
                                                              for m in d["pages"][0]["markers"]]}]}, "corners_mm"),
    (lambda d: {**d, "run_id": "../../x"}, "run_id"),
    (lambda d: {**d, "layout_dpi": float("nan")}, "layout_dpi"),
    (lambda d: {**d, "run_id": "deadbeef"}, "markers"),  # marker ids of another run: capture would misname pages
    (lambda d: {**d, "pages": [{**d["pages"][0], "markers": d["pages"][0]["markers"][::-1]}]}, "markers"),
    (set_cell("file", "a\x00.png"), "control character"),
    (lambda d: {**d, "pages": [{**d["pages"][0], "reference_dots": d["pages"][0]["reference_dots"][:1] * 2}]},
     "dots repeat"),
])
def test_malformed_manifests_are_refused_in_one_line(lab, tmp_path, capsys, mutate, what):
    code, err = capture_with(lab, tmp_path, mutate, capsys)
    assert code == 2 and what in err and len(err.strip().splitlines()) == 1, err


def test_a_manifest_pointing_at_another_run_records_nothing_there(lab, tmp_path, capsys):
    # Another run's manifest: the photos then match no page, and the run's results must stay.
    code, err = capture_with(lab, tmp_path, lambda data: as_other_run(data, "deadbeef"), capsys)
    assert code == 0

    def same_run_other_cells(data):
        data["pages"][0]["cells"][0]["image_id"] = "someone-else"
        return data
    (tmp_path / "b").mkdir()
    code, err = capture_with(lab, tmp_path / "b", same_run_other_cells, capsys)
    assert code == 0 and "nothing recorded" in err


@pytest.mark.parametrize("verb", ["attack", "print", "photograph", "capture", "experiment", "compare", "demo",
                                  "run", "report", "live"])
def test_an_output_folder_that_is_a_file_is_one_line(tmp_path, capsys, verb):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    args = {"attack": ["attack", "digits", "--out", str(blocker)],
            "print": ["print", str(tmp_path), "--out", str(blocker)],
            "photograph": ["photograph", str(tmp_path / "x.pdf"), "--out", str(blocker)],
            "capture": ["capture", str(tmp_path), "--manifest", "m.json", "--out", str(blocker)],
            "experiment": ["experiment", "--out", str(blocker)],
            "compare": ["compare", "--out", str(blocker)],
            "demo": ["demo", "--out", str(blocker)],
            "run": ["run", "new", str(blocker)],
            "report": ["report", str(blocker)],
            "live": ["live", "--headless", "--out", str(blocker)]}[verb]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "is not a folder" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.fixture(scope="module")
def session_run(lab):
    """A `run new` session on 4 digits with real photos pending (attack and print only)."""
    root = lab[0]
    config = root / "lab.toml"
    config.write_text('model = "digits"\nimages = ["digits"]\nlimit = 4\nphotos_per_page = 0\ntransforms = {}\n'
                      '[[attacks]]\nmethod = "fgsm"\neps = 32\n')
    run = root / "session"
    assert main(["run", "new", str(run), "--config", str(config)]) == 0
    return run


@pytest.mark.parametrize("verb", ["status", "evaluate", "run continue"])
@pytest.mark.parametrize("damage", ["corrupt store", "truncated config"])
def test_damaged_runs_are_one_line(session_run, tmp_path, capsys, verb, damage):
    run = tmp_path / "copy"
    run.mkdir()
    for name in ("physadv.sqlite", "config.json"):
        (run / name).write_bytes((session_run / name).read_bytes())
    if damage == "corrupt store":
        (run / STORE_FILE).write_bytes(b"this is not a database" * 100)
    else:
        (run / "config.json").write_text((session_run / "config.json").read_text()[:40])
    if damage == "truncated config" and verb == "evaluate":
        return  # evaluate reads the store only
    code = main([*verb.split(), str(run)])
    one_line_error(capsys, code)


@pytest.mark.parametrize("toml, expected", [
    (b'model = "digits"\nseed = "\xff\xfe"\n', "not valid TOML"),
    (b'[transforms]\nblur = ["a"]\n', "transforms.blur"),
    (b'device = "tpu"\n', "device"),
    (b'batch_size = 0\n', "batch_size"),
    (b'images = 3\n', "images"),
    (b'[[attacks]]\nmethod = "bim"\neps = 1e400\n', "eps"),
    (b'[[attacks]]\nmethod = "bim"\neps = 8\ncolour = 1\n', "colour"),
    (b'model = "digits"\nimages = ["digits"]\nlimit = 2\ntransforms = {}\n'
     b'[[attacks]]\nmethod = "fgsm"\neps = 8\n[[attacks]]\nmethod = "target"\neps = 8\ntarget = "goldfish"\n',
     "goldfish"),
    # A profile EOT names a file: it is read when the configuration is, not after the first attack ran.
    ((b'model = "digits"\nimages = ["digits"]\nlimit = 2\ntransforms = {}\n'
      b'[[attacks]]\nmethod = "fgsm"\neps = 8\n[[attacks]]\nmethod = "bim"\neps = 8\neot = "profile:doesnotexist"\n'),
     "'doesnotexist'"),
    (b'model = "digits"\nimages = ["digits"]\nlimit = 2\nadversariality_distribution = "profile:gone.toml"\n',
     "gone.toml: no such file"),
])
def test_bad_configurations_are_refused_before_anything_is_written(tmp_path, capsys, toml, expected):
    config = tmp_path / "lab.toml"
    config.write_bytes(toml)
    run = tmp_path / "run"
    code = main(["run", "new", str(run), "--config", str(config)])
    assert expected in one_line_error(capsys, code)
    assert not (run / "config.json").exists() and not (run / "attacks").exists()
    if expected == "goldfish":  # the refused configuration blocks nothing: a good one starts in the same folder
        config.write_bytes(toml.replace(b'"goldfish"', b'"3"'))
        assert main(["run", "new", str(run), "--config", str(config)]) == 0


def test_compare_with_a_missing_profile_eot_fails_before_any_work(tmp_path, capsys):
    run = tmp_path / "cmp"
    code = main(["compare", *DIGITS, "--images", "digits", "--limit", "2", "--eot", "profile:doesnotexist",
                 "--out", str(run)])
    assert "'doesnotexist'" in one_line_error(capsys, code)
    assert not run.exists()


def test_a_weights_file_that_is_no_state_dict(tmp_path, capsys):
    import pickle

    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"a": Path("x")}))
    code = main(["classify", "samples", "--model", "resnet50", "--weights", str(path)])
    line = one_line_error(capsys, code)
    assert "state dict" in line and "weights_only" not in line


@pytest.mark.parametrize("args, expected", [
    (["attack", "digits", *DIGITS, "--method", "target", "--target=-1", "--limit", "2"], "out of range"),
    (["attack", "digits", *DIGITS, "--iterations", "100000", "--limit", "2"], "iterations"),
    (["experiment", *DIGITS, "--images", "digits", "--transforms", "blur", "--strengths", "blur"], "no strengths"),
    (["attack", "digits", *DIGITS, "--limit", "2", "--workers", "100000"], "--workers 100000: at most"),
    (["attack", "digits", *DIGITS, "--limit", "2", "--workers", "-1"], "0 or more"),
    (["capture", "digits", "--manifest", "m.json", "--workers", "100000"], "--workers 100000: at most"),
])
def test_wrong_results_become_errors(tmp_path, capsys, digits_classifier, args, expected):
    out = tmp_path / "out"
    code = main(args + ["--out", str(out)])
    assert expected in one_line_error(capsys, code)
    assert not out.exists()


def test_iterations_that_are_not_a_whole_number(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["attack", "digits", "--iterations", "1e12", "--out", str(tmp_path / "o")])
    assert exit_info.value.code == 2 and "--iterations" in capsys.readouterr().err


def test_minus_zero_eps_is_zero(tmp_path, capsys, digits_classifier):
    assert main(["attack", "digits", *DIGITS, "--method", "fgsm", "--eps", "-0", "--limit", "2",
                 "--out", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    assert "ε=0 " in err and "ε=-0" not in err and "eps=-0" not in err


class OpensButGivesNothing:
    """What some OpenCV builds make of a text file: a source that opens and yields no frame."""

    def isOpened(self) -> bool:
        return True

    def read(self):
        return False, None

    def get(self, _):
        return 0.0

    def release(self) -> None:
        pass


@pytest.mark.parametrize("opens", [False, True])
def test_live_on_a_text_file_is_an_error(tmp_path, capsys, monkeypatch, digits_classifier, opens):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    if opens:
        monkeypatch.setattr("physadv.capture.live.cv2.VideoCapture", lambda source: OpensButGivesNothing())
    code = main(["live", *DIGITS, "--camera", str(text), "--headless", "--out", str(tmp_path / "o")])
    line = one_line_error(capsys, code)
    assert code == 2 and ("gave no frame" in line if opens else "cannot open" in line)


def test_files_nested_too_deeply_are_one_line(lab, tmp_path, capsys):
    _, run, sheets, photos = lab
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)  # Python's parsers recurse: this exceeds their depth
    code = main(["capture", str(photos), "--manifest", str(deep), "--out", str(tmp_path / "c"), *DIGITS])
    assert "nested too deeply" in one_line_error(capsys, code)
    profile = tmp_path / "deep.toml"
    profile.write_text("a = " + "[" * 100_000 + "]" * 100_000)
    code = main(["photograph", str(sheets / "sheets.pdf"), "--profile", str(profile), "--out", str(tmp_path / "p")])
    assert "nested too deeply" in one_line_error(capsys, code)
    code = main(["run", "new", str(tmp_path / "r"), "--config", str(profile)])
    assert "nested too deeply" in one_line_error(capsys, code)
    assert not (tmp_path / "c").exists() and not (tmp_path / "p" / "truth.json").exists()


def test_photograph_refuses_a_manifest_of_another_run(lab, tmp_path, capsys):
    _, _, sheets, _ = lab
    other = tmp_path / "other.json"
    other.write_text(json.dumps(as_other_run(manifest_data(sheets), "0badc0de")))
    code = main(["photograph", str(sheets / "sheets.pdf"), "--manifest", str(other), "--out", str(tmp_path / "p")])
    assert "not the PDF of the manifest's run 0badc0de" in one_line_error(capsys, code)
    assert not (tmp_path / "p" / "truth.json").exists()


def test_a_busy_output_folder_is_refused_before_the_model_loads(lab, tmp_path, capsys, monkeypatch):
    _, run, _, _ = lab

    def never(*args, **kwargs):
        raise AssertionError("the model was loaded although the folder is busy")

    monkeypatch.setattr("physadv.classifiers.load_classifier", never)
    with RunLock(run, "test"):
        code = main(["attack", "digits", *DIGITS, "--limit", "4", "--out", str(run)])
        assert "in use by `physadv test`" in one_line_error(capsys, code)
        # print of an attack folder that is being written is refused before writing a PDF
        code = main(["print", str(run), "--out", str(tmp_path / "sheets")])
        one_line_error(capsys, code)
    assert not (tmp_path / "sheets" / "sheets.pdf").exists()


def test_a_decompression_bomb_is_said_once_in_our_words(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    write_png(path, np.zeros((40, 40, 3), np.uint8))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        read_rgb(path)
    assert [w.category for w in caught] == [PhysadvWarning] and "megapixel" in str(caught[0].message)


def test_disk_full_is_said_plainly_and_the_store_kept(session_run, tmp_path, capsys, monkeypatch):
    run = tmp_path / "copy"
    run.mkdir()
    for name in ("physadv.sqlite", "config.json"):
        (run / name).write_bytes((session_run / name).read_bytes())
    before = store_counts(run)

    def full(self, *args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr("physadv.lab.store.RunStore.record_config", full)
    code = main(["run", "continue", str(run)])
    assert "full" in one_line_error(capsys, code)
    assert store_counts(run) == before


# --- generated malformed files --------------------------------------------------------------------------

JUNK = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                 st.text(max_size=12), st.sampled_from(["../../x", "/etc/passwd", "zero", "", "\x00"]),
                 st.lists(st.integers(-5, 5), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


def paths_of(data, prefix=()):
    """Every (path, value) in a JSON tree."""
    yield prefix, data
    if isinstance(data, dict):
        for key, value in data.items():
            yield from paths_of(value, prefix + (key,))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from paths_of(value, prefix + (index,))


def mutated(data, choice: int, junk, delete: bool):
    data = copy.deepcopy(data)
    paths = [p for p, _ in paths_of(data) if p]
    path = paths[choice % len(paths)]
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    if delete and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = junk
    return data


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


@FUZZ
@given(choice=st.integers(0, 10**6), junk=JUNK, delete=st.booleans())
def test_generated_manifests_are_read_or_refused(lab, choice, junk, delete):
    data = mutated(manifest_data(lab[2]), choice, junk, delete)
    try:
        manifest = Manifest.from_dict(data)
    except ManifestError:
        return
    for _, cell in manifest.cells():  # what was accepted is safe to use as a crop name and a size
        assert cell.kind in ("clean", "adversarial") and 1 <= min(cell.size_px) and max(cell.size_px) <= 4096


@FUZZ
@given(choice=st.integers(0, 10**6), junk=JUNK, delete=st.booleans())
def test_generated_attack_records_are_read_or_refused(lab, tmp_path_factory, choice, junk, delete):
    folder = tmp_path_factory.mktemp("record")
    data = mutated(json.loads((lab[1] / "attack.json").read_text()), choice, junk, delete)
    (folder / "attack.json").write_text(json.dumps(data))
    try:
        record = read_attack_set(folder)
    except InputError:
        return
    for image in record.images:  # accepted file names stay inside the folder
        assert (folder / "adv" / image.file).resolve().parent == (folder / "adv").resolve()


@FUZZ
@given(choice=st.integers(0, 10**6), junk=JUNK, delete=st.booleans())
def test_generated_configurations_are_read_or_refused(choice, junk, delete):
    data = mutated(SessionConfig().to_json(), choice, junk, delete)
    try:
        config_from_mapping(data)
    except InputError:
        pass


@FUZZ
@given(cut=st.integers(0, 2000), flip=st.integers(0, 2000), byte=st.integers(0, 255))
def test_generated_broken_images_are_read_or_refused(tmp_path_factory, cut, flip, byte):
    folder = tmp_path_factory.mktemp("image")
    original = folder / "ok.png"
    write_png(original, (np.arange(32 * 32 * 3) % 251).astype(np.uint8).reshape(32, 32, 3))
    data = bytearray(original.read_bytes())
    if flip < len(data):
        data[flip] = byte
    broken = folder / "broken.png"
    broken.write_bytes(bytes(data[:max(cut, 1)]) if cut < len(data) else bytes(data))
    try:
        image = read_rgb(broken)
    except InputError:
        return
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3


def _resave(path: Path, **changes) -> None:
    """Rewrite the ``.npz`` part at ``path`` with some arrays changed (name → function of the array)."""
    with np.load(path) as data:
        arrays = {name: changes.get(name, lambda array: array)(data[name]) for name in data.files}
    np.savez(path.with_suffix(""), **arrays)  # numpy adds the .npz back


@pytest.mark.parametrize("tamper, expected", [
    (lambda path: path.write_bytes(path.read_bytes()[:100]), "unreadable part"),
    (lambda path: _resave(path, clean_classes=lambda a: a[:, 0]), "'clean_classes'"),
    (lambda path: _resave(path, adv_classes=lambda a: a * 0 + 10 ** 12), "'adv_classes'"),
    (lambda path: _resave(path, adv_classes=lambda a: -a - 1), "'adv_classes'"),
    (lambda path: _resave(path, adv_probabilities=lambda a: a * np.nan), "'adv_probabilities'"),
    (lambda path: _resave(path, undone=lambda a: np.array("yes")), "'undone'"),
])
def test_tampered_experiment_parts_are_one_line(tmp_path, capsys, monkeypatch, tamper, expected):
    out = tmp_path / "exp"
    args = ["experiment", *DIGITS, "--images", "digits", "--limit", "8", "--batch-size", "4", "--methods", "fgsm",
            "--eps", "16", "--transforms", "blur", "--strengths", "blur=1", "--out", str(out)]

    def interrupted(*_):
        raise KeyboardInterrupt  # after every batch's part is written, before they become rows

    with monkeypatch.context() as patch:
        patch.setattr("physadv.experiment._attack_rows", interrupted)
        assert main(args) == 130
    capsys.readouterr()
    parts = sorted(out.rglob("*.npz"))
    assert len(parts) == 2
    tamper(parts[0])
    code, err = main(args), capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]  # (beside the progress bar's lines)
    assert code == 2 and len(errors) == 1 and "Traceback" not in err, err
    assert expected in errors[0] and parts[0].name in errors[0] and "delete it" in errors[0]
    assert json.loads((out / "results.json").read_text())["rows"] == []  # nothing made of the damaged part


def test_a_csv_list_saved_with_a_byte_order_mark_is_read(tmp_path, capsys, digits_classifier):
    write_png(tmp_path / "imgs" / "a.png", np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "list.csv").write_text("\ufeffpath,label\nimgs/a.png,3\n", encoding="utf-8")  # as Excel saves it
    assert main(["classify", str(tmp_path / "list.csv"), *DIGITS, "--json"]) == 0
    [record] = json.loads(capsys.readouterr().out)["images"]
    assert (record["id"], record["label"]) == ("imgs_a", 3)


def test_an_image_named_with_a_control_character_is_refused_before_any_work(tmp_path, capsys, digits_classifier):
    write_png(tmp_path / "imgs" / "3\tb.png", np.zeros((8, 8, 3), np.uint8))
    code = main(["attack", str(tmp_path / "imgs"), *DIGITS, "--label", "3", "--out", str(tmp_path / "out")])
    assert "control character" in one_line_error(capsys, code)
    assert not (tmp_path / "out").exists()


def test_a_rank_variable_without_torchrun_does_not_silence_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "1")  # left by another launcher; WORLD_SIZE unset: one process
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    code = main(["attack", str(tmp_path / "missing"), *DIGITS, "--out", str(tmp_path / "out")])
    assert code == 2 and "no such file" in one_line_error(capsys, code)


# --- issue 23: tracebacks, hangs and data loss that became one line ------------------------------------

BAD_FACTORIES = '''
import torch
from torch import nn


class Mean(nn.Module):
    def __init__(self, then=None, nan=False, ignore_input=False):
        super().__init__()
        self.weight = nn.Parameter(torch.full((4, 3), float("nan") if nan else 0.5))
        self.then, self.ignore_input = then, ignore_input

    def forward(self, x):
        if self.ignore_input:
            return self.weight.sum(1).expand(len(x), 4)
        logits = x.mean(dim=(2, 3)) @ self.weight.T
        return self.then(logits) if self.then else logits


def bundle(**options):
    return {"model": Mean(**options), "input_size": 8, "labels": list("abcd")}


def scores(): return bundle(then=lambda logits: logits.sum(1))
def extra_axis(): return bundle(then=lambda logits: logits[..., None])
def one_row(): return bundle(then=lambda logits: logits[:1])
def whole_numbers(): return bundle(then=lambda logits: logits.long())
def not_a_tensor(): return bundle(then=lambda logits: logits.tolist())
def fails(): return bundle(then=lambda logits: logits.view(3, -1))
def nan_weights(): return bundle(nan=True)
def ignores_input(): return bundle(ignore_input=True)
'''


@pytest.fixture(scope="module")
def bad_factories(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("factories") / "bad.py"
    path.write_text(BAD_FACTORIES)
    return path


@pytest.mark.parametrize("verb", ["classify", "attack", "experiment"])
@pytest.mark.parametrize("factory, expected", [
    ("scores", "logits of shape (2,), expected"), ("extra_axis", "of shape (2, 4, 1)"),
    ("one_row", "of shape (1, 4), expected floating-point logits of shape (2, 4)"),
    ("whole_numbers", "torch.int64 logits"), ("nan_weights", "NaN or infinite logits"),
    ("not_a_tensor", "the model returned list, not a tensor"), ("fails", "the model fails on a blank 8×8 image"),
])
def test_a_model_whose_logits_are_wrong_is_one_line_before_any_work(bad_factories, tmp_path, capsys, verb, factory,
                                                                      expected):
    out = tmp_path / "out"
    code = main([verb, "digits", "--limit", "2", "--model", f"{bad_factories}:{factory}",
                 *(["--out", str(out)] if verb != "classify" else [])])
    assert expected in one_line_error(capsys, code)
    assert code == 2 and not out.exists()


@pytest.mark.parametrize("verb", ["attack", "experiment"])
def test_a_model_whose_output_ignores_the_input_cannot_be_attacked(bad_factories, tmp_path, capsys, verb):
    out = tmp_path / "out"
    code = main([verb, "digits", "--limit", "2", "--model", f"{bad_factories}:ignores_input", "--out", str(out)])
    assert "does not depend on its input image" in one_line_error(capsys, code)
    assert code == 2 and not out.exists()
    # it still classifies: a model may be useless, the attack alone needs its gradient
    assert main(["classify", "digits", "--limit", "2", "--model", f"{bad_factories}:ignores_input"]) == 0


def test_nan_weights_are_refused_when_the_model_loads(tmp_path, capsys, digits_classifier):
    import torch

    weights = tmp_path / "nan.pt"
    torch.save({k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
                for k, v in digits_classifier.model.state_dict().items()}, weights)
    out = tmp_path / "out"
    code = main(["attack", "digits", *DIGITS, "--weights", str(weights), "--limit", "2", "--out", str(out)])
    assert "NaN or infinite logits" in one_line_error(capsys, code)
    assert not out.exists()


def test_a_number_of_thousands_of_digits_is_a_malformed_file(lab, tmp_path, capsys):
    root, run, sheets, photos = lab
    text = (sheets / "manifest.json").read_text()
    manifest = tmp_path / "manifest.json"
    manifest.write_text(text.replace('"layout_dpi": ', '"layout_dpi": ' + "9" * 5000 + ", \"x\": ", 1))
    for argv in (["capture", str(photos), "--manifest", str(manifest), "--out", str(tmp_path / "cap")],
                 ["photograph", str(sheets / "sheets.pdf"), "--manifest", str(manifest),
                  "--out", str(tmp_path / "ph")]):
        assert "a whole number too long to read" in one_line_error(capsys, main(argv))
    toml = tmp_path / "lab.toml"
    toml.write_text(f"seed = {'9' * 5000}\n")
    assert "a whole number too long to read" in one_line_error(capsys, main(["run", "new", str(tmp_path / "r"),
                                                                             "--config", str(toml)]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lab.toml", "manifest.json"]


STORE_DAMAGE = {
    "a result row that is not JSON": "UPDATE results SET row = 'garbage'",
    "a result row that is a list": "UPDATE results SET row = '[1, 2]'",
    "a result row without its columns": "UPDATE results SET row = '{}'",
    "a rate that is text": "UPDATE results SET row = json_set(row, '$.destruction_top1', 'abc')",
    "a rate that is NaN": "UPDATE results SET row = replace(row, '\"top1_clean\": 1.0', '\"top1_clean\": NaN')",
    "a method that is a number": "UPDATE results SET row = json_set(row, '$.method', 5)",
    "a count that is text": "UPDATE results SET row = json_set(row, '$.n_images', 'x')",
    "a photo's top-5 that is not JSON": "UPDATE predictions SET top5 = 'garbage'",
    "a photo's top-5 that is empty": "UPDATE predictions SET top5 = '[]'",
    "a photo's top-5 that is an object": "UPDATE predictions SET top5 = '{}'",
    "a top-5 of wrong types":
        "UPDATE predictions SET top5 = '[{\"index\": \"x\", \"name\": 5, \"probability\": \"p\"}]'",
    "a clean top-5 that is not JSON": "UPDATE images SET clean_top5 = 'garbage'",
    "a clean top-5 that is empty": "UPDATE images SET clean_top5 = '[]'",
    "a verdict that is text": "UPDATE predictions SET correct_top1 = 'x'",
    "a configuration that is not JSON": "INSERT OR REPLACE INTO meta VALUES ('config', 'garbage')",
    "a configuration that is a list": "INSERT OR REPLACE INTO meta VALUES ('config', '[1]')",
    "a configuration whose images are numbers": "INSERT OR REPLACE INTO meta VALUES ('config', '{\"images\": [1]}')",
    "a model that is a number": "UPDATE meta SET value = '5' WHERE key = 'model'",
}


@pytest.fixture(scope="module")
def store_with_results(lab, tmp_path_factory) -> Path:
    """The lab's run with a result row, photographed predictions and images: each damage touches one."""
    run = lab[1]
    with sqlite3.connect(run / STORE_FILE) as db:
        assert all(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] for table in ("results", "predictions"))
    return run


@pytest.mark.parametrize("verb", [["evaluate"], ["evaluate", "--all", "--json"], ["report"]])
@pytest.mark.parametrize("damage", list(STORE_DAMAGE))
def test_a_damaged_value_in_a_store_is_one_line(store_with_results, tmp_path, capsys, verb, damage):
    import shutil
    from contextlib import closing

    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(store_with_results / STORE_FILE, run / STORE_FILE)
    with closing(sqlite3.connect(run / STORE_FILE)) as db, db:
        db.execute(STORE_DAMAGE[damage])
    code = main([verb[0], str(run), *verb[1:]])
    if verb[0] == "evaluate" and any(part in STORE_DAMAGE[damage] for part in ("meta", "predictions SET top5")):
        assert code == 0, capsys.readouterr().err  # evaluate reads neither the meta table nor the photos' top-5
        return
    line = one_line_error(capsys, code)
    assert "the store is damaged" in line and str(run / STORE_FILE) in line, line
    assert not (run / "report").exists()


@pytest.mark.parametrize("value", ["'x'", "2.5", "-1"])
def test_a_damaged_adversariality_in_a_store_is_one_line(store_with_results, tmp_path, value):
    import shutil
    from contextlib import closing

    from physadv.errors import InputError
    from physadv.lab.store import RunStore

    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(store_with_results / STORE_FILE, run / STORE_FILE)
    with closing(sqlite3.connect(run / STORE_FILE)) as db, db:
        db.execute(f"UPDATE attacks SET adversariality = {value}")
    with pytest.raises(InputError, match="the store is damaged"), RunStore(run, create=False) as store:
        store.adversariality(store.attack_names()[0])  # refused on opening the store already


def verbs_with(option: str) -> list[str]:
    from physadv.cli.main import build_parser

    subparsers = next(a for a in build_parser()._actions if a.dest == "verb").choices
    return sorted(verb for verb, sub in subparsers.items() if any(option in a.option_strings for a in sub._actions))


def test_every_verb_with_a_seed_takes_the_same_seeds(tmp_path, capsys):
    verbs = verbs_with("--seed")
    assert {"attack", "photograph", "compare", "compare-models", "demo", "run", "experiment",
            "train-defence"} <= set(verbs)
    positional = {"photograph": ["sheets.pdf"], "run": ["new", str(tmp_path / "run")], "compare-models": ["digits"]}
    for verb in verbs:
        for seed in ("-1", str(2**63), "1.5", "9" * 5000):
            with pytest.raises(SystemExit) as exit_info:
                main([verb, *positional.get(verb, []), "--seed", seed, "--out", str(tmp_path / "out")])
            err = capsys.readouterr().err
            assert exit_info.value.code == 2 and "--seed: must be a whole number in 0..2**63 - 1" in err, (verb, err)
    assert not any(tmp_path.iterdir())


def test_a_seed_read_back_follows_the_same_rule(lab, tmp_path):
    from physadv.validation import MAX_SEED

    record = json.loads((lab[1] / "attack.json").read_text())
    for seed, ok in ((0, True), (MAX_SEED, True), (-1, False), (MAX_SEED + 1, False), (2**64, False)):
        folder = tmp_path / f"seed{seed}"
        folder.mkdir()
        (folder / "attack.json").write_text(json.dumps({**record, "settings": {**record["settings"], "seed": seed}}))
        if ok:
            assert read_attack_set(folder).settings.seed == seed
        else:
            with pytest.raises(InputError, match="seed"):
                read_attack_set(folder)
            with pytest.raises(InputError, match="seed"):
                config_from_mapping({"seed": seed})
            with pytest.raises(InputError, match="seed must be a whole number in 0..2"):
                SessionConfig(seed=seed)


@pytest.mark.parametrize("run_id", ["r" * 5000, "../../x", "a b/c", "", ".hidden", "x\x00y"])
def test_print_takes_the_run_ids_that_capture_reads(lab, tmp_path, capsys, run_id):
    from physadv.printouts.sheets import SheetImage, write_sheets

    out = tmp_path / "sheets"
    with pytest.raises(SystemExit) as exit_info:
        main(["print", str(lab[1]), "--out", str(out), "--run-id", run_id])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "is not a plain name" in err and len(err.splitlines()) == 1
    image = next((lab[1] / "adv").glob("*.png"))
    with pytest.raises(InputError, match="is not a plain name"):
        write_sheets([SheetImage(path=image, image_id="x", file=str(image))], out, run_id or " ")
    assert not out.exists()


TORCHRUN = {"RANK": "0", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}


@pytest.mark.parametrize("environment, expected", [
    ({"WORLD_SIZE": "2"}, "RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT are not set"),
    ({"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"}, "MASTER_ADDR, MASTER_PORT are not set"),
    ({**TORCHRUN, "WORLD_SIZE": "2", "MASTER_ADDR": ""}, "MASTER_ADDR is not set"),
    ({**TORCHRUN, "WORLD_SIZE": "2", "RANK": "2"}, "RANK=2 is outside 0..1"),
    ({**TORCHRUN, "WORLD_SIZE": "2", "RANK": "7", "LOCAL_RANK": "3"}, "RANK=7 is outside 0..1"),
    ({**TORCHRUN, "WORLD_SIZE": "0"}, "WORLD_SIZE=0 is outside"),
    ({**TORCHRUN, "WORLD_SIZE": "2", "MASTER_PORT": "99999"}, "MASTER_PORT=99999 is outside"),
])
def test_an_incomplete_torchrun_environment_is_one_line_and_never_waits(tmp_path, capsys, monkeypatch,
                                                                         digits_classifier, environment, expected):
    for name in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    out = tmp_path / "out"
    for argv in (["classify", "digits", *DIGITS, "--limit", "2"],
                 ["attack", "digits", *DIGITS, "--limit", "2", "--out", str(out)]):
        code = main(argv)
        assert expected in one_line_error(capsys, code) and code == 2
    assert not out.exists()


@pytest.mark.parametrize("argv, expected", [
    (["photograph", "SHEETS", "--n", "99999999999999"], "at most 10,000 per page"),
    (["compare", *DIGITS, "--images", "digits", "--limit", "2", "--photos-per-page", "1000000"],
     "photos_per_page must be in 0..10,000"),
    (["compare-models", "digits", "digits@WEIGHTS", "--images", "digits", "--limit", "2", "--photos-per-page",
      "1000000"], "photos_per_page must be in 0..10,000"),
])
def test_counts_that_would_write_for_days_are_refused_at_once(lab, tmp_path, capsys, digits_classifier, argv,
                                                              expected):
    weights = tmp_path / "w.pt"
    weights.write_bytes((Path(digits_classifier.weights)).read_bytes())
    argv = [{"SHEETS": str(lab[2] / "sheets.pdf"), "digits@WEIGHTS": f"digits@{weights}"}.get(a, a) for a in argv]
    code = main([*argv, "--out", str(tmp_path / "out")])
    assert expected in one_line_error(capsys, code)
    assert not (tmp_path / "out").exists()


def test_train_defence_checks_its_output_before_training(tmp_path, capsys, monkeypatch, digits_classifier):
    import physadv.defences as defences

    def never(*args, **kwargs):
        raise AssertionError("trained before checking --out")

    monkeypatch.setattr(defences, "train_defence", never)
    precious = tmp_path / "notes.pt"
    precious.write_text("a file of the user's, not a checkpoint")
    plain_state_dict = tmp_path / "other.pt"
    import torch

    torch.save(digits_classifier.model.state_dict(), plain_state_dict)
    folder = tmp_path / "folder"
    folder.mkdir()
    for out, expected in ((precious, "is not a physadv defence checkpoint"),
                          (plain_state_dict, "is not a physadv defence checkpoint"),
                          (folder, "is a folder"), (precious / "x.pt", "cannot write there")):
        before = files_under(tmp_path)
        code = main(["train-defence", *DIGITS, "--defence", "fgsm-rs", "--out", str(out)])
        assert expected in one_line_error(capsys, code)
        assert code == 2 and files_under(tmp_path) == before
    assert precious.read_text() == "a file of the user's, not a checkpoint"


def test_a_checkpoint_of_ours_is_replaced_and_nothing_else(tmp_path, digits_classifier):
    from physadv.defences import DefenceConfig, check_checkpoint_path, save_checkpoint

    ours = save_checkpoint(digits_classifier, tmp_path / "new" / "d.pt", DefenceConfig("fgsm-rs"), "digits")
    assert check_checkpoint_path(ours) == ours
    assert save_checkpoint(digits_classifier, ours, DefenceConfig("pgd"), "digits") == ours
    other = tmp_path / "other.pt"
    other.write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip archive: not a checkpoint
    with pytest.raises(InputError, match="not a physadv defence checkpoint"):
        save_checkpoint(digits_classifier, other, DefenceConfig("pgd"), "digits")
    assert other.read_bytes() == b"PK\x05\x06" + bytes(18)


def test_weights_that_diverge_in_training_say_so(linear_classifier):
    """Logits that stop being finite while training are the divergence the training loop reports, in its words."""
    import torch
    from torch import nn

    from physadv.defences import DefenceConfig, train_defence

    class Explodes(nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, x):  # fine when loaded (eval), infinite once training starts
            return self.model(x) * (float("inf") if self.training else 1.0)

    linear_classifier.model = Explodes(linear_classifier.model).eval()
    linear_classifier.check_outputs()
    images, labels = torch.rand(8, 3, 8, 8), torch.arange(8) % 5
    with pytest.raises(InputError, match="the loss became nan in epoch 1; lower --lr"):
        train_defence(linear_classifier, images, labels, DefenceConfig("distill", epochs=1, batch_size=4),
                      progress=False)
