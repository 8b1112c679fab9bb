"""physadv live, headless: a short video of synthetic sheet photos in, annotated video and per-frame report out."""

from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest

from physadv.cli.main import main
from physadv.images import write_png
from physadv.printouts.manifest import Manifest, write_manifest
from test_capture import cell_images, make_manifest, page_homography, photograph, render_page


def test_live_headless_over_generated_video(tmp_path, digits_classifier):
    images = cell_images(12)
    manifest = make_manifest("run-live", labels=[0, 1, 2, 3, 4, 5])
    manifest = Manifest(**{**manifest.__dict__, "attack_dir": "attack"})
    for cell in manifest.pages[0].cells:
        write_png(tmp_path / "attack" / cell.file, images[cell.index])
    write_manifest(manifest, tmp_path / "manifest.json")
    page = render_page(manifest, manifest.pages[0], images)
    # The same sheet with every picture in another cell: its identity is ours, its crops are not.
    shuffled = render_page(manifest, manifest.pages[0], images[6:] + images[:6])
    rng = np.random.default_rng(0)
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (1280, 720))
    shown = [page] * 8 + [shuffled] * 2 + [None] * 2
    for printed in shown:
        pages = [(printed, page_homography((1280, 720), rng.uniform(0.6, 0.9), rng.uniform(-40, 40), 0.04, rng))]
        frame = photograph(pages if printed is not None else [], (1280, 720), rng, quality=95)
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()

    out = tmp_path / "live"
    assert main(["live", "--camera", str(video), "--manifest", str(tmp_path / "manifest.json"), "--model", "digits",
                 "--device", "cpu", "--headless", "--out", str(out)]) == 0
    record = json.loads((out / "live.json").read_text())
    assert record["frames"] == len(shown)
    reports = record["reports"]
    seen = [bool(report["pages"]) for report in reports]
    assert sum(seen[:8]) >= 7 and all(seen[8:10]) and not any(seen[10:])
    for report in reports:
        assert len(report["top5"]) == 5
        assert len(report["cells"]) == 12 * len(report["pages"])
    for report in reports[:8]:
        assert all(cell["refused"] is None for cell in report["cells"])
        assert all(cell["fooled"] == (cell["kind"] == "adversarial" and cell["predicted"] != cell["label"])
                   for cell in report["cells"])
    for report in reports[8:10]:  # wrong pictures: refused, never classified
        assert all(cell["refused"] == "content mismatch" and cell["predicted"] is None for cell in report["cells"])
    annotated = cv2.VideoCapture(str(out / "live.mp4"))
    assert int(annotated.get(cv2.CAP_PROP_FRAME_COUNT)) == len(shown)
    annotated.release()
    assert main(["live", "--camera", str(tmp_path / "none.mp4"), "--model", "digits", "--headless",
                 "--out", str(out)]) == 2
    # Without its attack folder no crop could be checked: one clear line, not an unchecked display.
    write_manifest(make_manifest("run-live"), tmp_path / "bare.json")
    assert main(["live", "--camera", str(video), "--manifest", str(tmp_path / "bare.json"), "--model", "digits",
                 "--headless", "--out", str(out)]) == 2


class ScriptedWindow:
    """A window whose user presses the given keys, one per frame shown (None: no key)."""

    def __init__(self, keys):
        self.keys, self.shown, self.closed = list(keys), [], 0

    def show(self, frame_bgr):
        self.shown.append(frame_bgr.copy())
        return self.keys.pop(0) if self.keys else None

    def close(self):
        self.closed += 1


def _clip(path, frames=6):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (160, 120))
    for index in range(frames):
        writer.write(np.full((120, 160, 3), 40 * index, np.uint8))
    writer.release()
    return path


def test_window_keys_freeze_save_and_quit(tmp_path, digits_classifier):
    from physadv.capture.live import run_live

    window = ScriptedWindow([None, "f", None, "s", "f", "q", None])
    reports = run_live(str(_clip(tmp_path / "clip.mp4")), digits_classifier, None, out=tmp_path / "saved",
                       window=window)
    # Frames 0, 1 read; "f" at frame 1 freezes it for the next two shows ("s" saves it), "f" thaws, frame 2
    # is read and shown, "q" there ends the loop before frame 3 is read.
    assert len(reports) == 3 and len(window.shown) == 6 and window.closed == 1
    assert all(np.array_equal(window.shown[1], frozen) for frozen in window.shown[2:5])
    assert not np.array_equal(window.shown[1], window.shown[5])
    saved = sorted((tmp_path / "saved").glob("frame_*.png"))
    assert [path.name for path in saved] == ["frame_00002.png"]
    assert np.array_equal(cv2.imread(str(saved[0])), window.shown[3])


def test_no_display_is_one_line_before_the_model_loads(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    monkeypatch.setattr("physadv.cli.cmd_live.classifier_from_args",
                        lambda args: (_ for _ in ()).throw(AssertionError("the model was loaded")))
    assert main(["live", "--camera", str(_clip(tmp_path / "clip.mp4")), "--model", "digits"]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "no display" in error and "--headless --out DIR" in error


def test_a_source_that_cannot_open_closes_the_window(tmp_path, digits_classifier):
    from physadv.capture.live import run_live
    from physadv.errors import InputError

    window = ScriptedWindow([])
    with pytest.raises(InputError, match="cannot open camera or video"):
        run_live(str(tmp_path / "missing.mp4"), digits_classifier, None, window=window)
    assert window.closed == 1


@pytest.mark.skipif(not os.environ.get("DISPLAY"), reason="needs a display (e.g. xvfb-run)")
def test_tk_window_shows_frames_and_takes_keys():
    from physadv.capture.live import TkWindow

    window = TkWindow("physadv test")
    try:
        frame = np.zeros((90, 120, 3), np.uint8)
        frame[..., 2] = 255  # BGR red
        assert window.show(frame) is None
        window.root.focus_force()  # key events go to the focused window; Xvfb has no window manager to give it
        window.root.update()
        window.root.event_generate("<Key>", keysym="f", when="tail")
        window.root.event_generate("<Escape>", when="tail")
        keys = [window.show(frame) for _ in range(3)]
        assert window.label.image.width() == 120 and window.label.image.height() == 90
    finally:
        window.close()
    assert keys[:2] == ["f", "q"]
    assert window.show(frame) == "q"  # closed windows ask to quit
