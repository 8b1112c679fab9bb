"""The live loop: webcam, stream URL or video file → annotated frames (window or files).

Per frame: the classifier's top-5 on the whole frame (centre square); when a sheet of the run is
in view, every cell is cropped and checked against its source image as capture does
(:func:`physadv.capture.verify.check_page`: identity code, content match, displacement, glare,
blur), then outlined with its prediction and true label — green when the prediction is right, red
when wrong, so a red adversarial cell is one whose attack still fools the model. A cell that fails
the check is outlined in grey with its reason and no prediction: the display never classifies a
crop of the wrong picture. Sheets are searched at the frame's own resolution (≤ 1280 px wide needs
no downscaling) and without the QR check, to keep the loop fast.

With a target class (``physadv live --target CLASS``, a printed adversarial patch in a real scene), every
frame also shows that class's probability on the whole frame and whether it is the top-1 (a hit), and
the hit rate over the frames so far.

Keys in the window: ``f``/space freeze, ``s`` save the frame, ``q``/Esc quit. Headless, frames go
to ``OUT/live.mp4`` and a per-frame summary to ``OUT/live.json``.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from physadv.capture.crops import cell_corners_mm
from physadv.capture.detect import find_pages
from physadv.capture.pipeline import classify_crops
from physadv.capture.verify import check_page
from physadv.classifiers import Classifier
from physadv.errors import InputError
from physadv.fileio import atomic_write_json
from physadv.images import square_resize, to_tensor
from physadv.metrics import Predictions
from physadv.printouts.manifest import Manifest

GREEN, RED, GREY, WHITE, BLACK = (0, 200, 0), (0, 0, 230), (150, 150, 150), (255, 255, 255), (0, 0, 0)


@dataclass
class FrameReport:
    """What one frame showed: pages found, cells with prediction and truth (or the reason a cell
    was refused: then no prediction), timings (seconds)."""

    index: int
    top5: list[tuple[str, float]]
    pages: list[int] = field(default_factory=list)
    cells: list[dict] = field(default_factory=list)
    detect_s: float = 0.0
    target_probability: float | None = None  # with a target class: its probability on the whole frame
    target_hit: bool | None = None  # and whether it is the frame's top-1


def open_source(source: str) -> cv2.VideoCapture:
    """A camera index (``"0"``), a stream URL or a video file.

    Raises:
        InputError: the source cannot be opened.
    """
    # OpenCV logs its backends' failures as warnings of its own; the InputError below says it in one line.
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        capture = cv2.VideoCapture(int(source)) if source.isdigit() else cv2.VideoCapture(source)
    finally:
        cv2.utils.logging.setLogLevel(level)
    if not capture.isOpened():
        raise InputError(f"cannot open camera or video {source!r} (a camera index, URL or video file)")
    return capture


def annotate(frame_bgr: np.ndarray, index: int, classifier: Classifier, manifest: Manifest | None,
             fps: float, sources: dict[tuple[int, int], np.ndarray] | None = None,
             target: int | None = None, hits: tuple[int, int] = (0, 0)) -> tuple[np.ndarray, FrameReport]:
    """Draw the frame's top-5, every detected cell's prediction and the FPS on a copy of ``frame_bgr``.

    Args:
        frame_bgr: ``(H, W, 3)`` uint8 BGR (OpenCV's capture order).
        sources: with ``manifest``, per (page, cell) its ``(h, w, 3)`` uint8 RGB source image
            (:func:`physadv.capture.pipeline.cell_sources`), which every crop must match.
        target: a class whose probability and hit (top-1) on the whole frame are reported and drawn.
        hits: (hits, frames) before this one, for the running hit rate drawn with ``target``.
    """
    rgb = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
    names = classifier.labels.names
    probabilities = classifier.probabilities(to_tensor(square_resize(rgb, classifier.image_size), classifier.device))
    whole = Predictions.from_probabilities(probabilities)
    report = FrameReport(index, [(names[c], float(p)) for c, p in zip(whole.classes[0], whole.probabilities[0])])
    if target is not None:
        report.target_probability = float(probabilities[0, target])
        report.target_hit = int(whole.classes[0, 0]) == target
    canvas = frame_bgr.copy()
    if manifest is not None:
        if sources is None:
            raise ValueError("annotate: a manifest needs its cells' source images")
        start = time.perf_counter()
        detection = find_pages(rgb, manifest, max_side=max(rgb.shape), check_qr=False)
        pages = {page.index: page for page in manifest.pages}
        crops, placed = [], []
        for found in detection.pages:
            page = pages[found.page]
            page_sources = {cell.index: sources[page.index, cell.index] for cell in page.cells}
            for cell, (crop, check) in zip(page.cells, check_page(rgb, found, page, page_sources)):
                placed.append((found, cell, check.reason))
                if check.reason is None:
                    crops.append(crop)
            report.pages.append(found.page)
        report.detect_s = time.perf_counter() - start
        predictions = iter(classify_crops(classifier, crops).classes[:, 0]) if crops else iter(())
        for found, cell, reason in placed:
            outline = found.project(cell_corners_mm(cell)).round().astype(np.int32)
            truth = "?" if cell.label is None else cell.label_name or str(cell.label)
            entry = {"page": found.page, "cell": cell.index, "kind": cell.kind, "label": cell.label}
            if reason is not None:
                cv2.polylines(canvas, [outline], True, GREY, 2)
                _text(canvas, f"refused: {reason}", tuple(outline[0]), 0.4)
                report.cells.append({**entry, "predicted": None, "fooled": None, "refused": reason})
                continue
            predicted = int(next(predictions))
            right = cell.label is not None and predicted == cell.label
            cv2.polylines(canvas, [outline], True, GREEN if right else RED, 2)
            tag = f"{names[predicted]} ({truth}){' ADV' if cell.kind == 'adversarial' else ''}"
            _text(canvas, tag, tuple(outline[0]), 0.4)
            report.cells.append({**entry, "predicted": predicted, "fooled": cell.kind == "adversarial" and not right,
                                 "refused": None})
    for line, (name, probability) in enumerate(report.top5):
        _text(canvas, f"{probability:5.1%} {name}", (10, 24 + 22 * line), 0.6)
    if target is not None:
        hit, frames = hits[0] + report.target_hit, hits[1] + 1
        _text(canvas, f"target {names[target]}: {report.target_probability:5.1%}{' HIT' if report.target_hit else ''}"
                      f"  (hit in {hit}/{frames} frames)", (10, 24 + 22 * len(report.top5) + 8), 0.6)
    _text(canvas, f"{fps:5.1f} FPS", (canvas.shape[1] - 120, 24), 0.6)
    return canvas, report


def _text(canvas: np.ndarray, text: str, origin: tuple[int, int], scale: float) -> None:
    """Text with a dark outline, readable on any background."""
    cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, BLACK, 3, cv2.LINE_AA)
    cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, WHITE, 1, cv2.LINE_AA)


class Window(Protocol):
    """Where the live loop shows its frames (:func:`open_window`; tests pass their own)."""

    def show(self, frame_bgr: np.ndarray) -> str | None:
        """Show ``(H, W, 3)`` uint8 BGR; return the key pressed since the last call, if any:
        ``"q"`` also for Esc and for a window the user closed."""

    def close(self) -> None:
        """Close the window (again is harmless)."""


class OpenCVWindow:
    """OpenCV's own window, where this OpenCV build has a GUI (``opencv-python``)."""

    def __init__(self, title: str) -> None:
        cv2.namedWindow(title, cv2.WINDOW_AUTOSIZE)  # cv2.error on a build without a GUI
        self.title = title

    def show(self, frame_bgr: np.ndarray) -> str | None:
        cv2.imshow(self.title, frame_bgr)
        code = cv2.waitKey(1)
        if code in (ord("q"), 27) or cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
            return "q"
        return chr(code & 0xFF) if code >= 0 else None

    def close(self) -> None:
        cv2.destroyAllWindows()


class TkWindow:
    """A Tk window drawing frames through Pillow's ``ImageTk``: the window of the default install,
    whose OpenCV (``opencv-python-headless``, the build that runs on servers without libGL) has no GUI."""

    def __init__(self, title: str) -> None:
        import tkinter

        from PIL import ImageTk

        self._image_tk = ImageTk
        self.root = tkinter.Tk()  # TclError without a display
        self.root.title(title)
        self.label = tkinter.Label(self.root)
        self.label.pack()
        self.keys: list[str] = []
        self.root.bind("<Key>", lambda event: self.keys.append("q" if event.keysym == "Escape" else event.char))
        self.root.protocol("WM_DELETE_WINDOW", lambda: self.keys.append("q"))
        self.closed = False

    def show(self, frame_bgr: np.ndarray) -> str | None:
        from PIL import Image

        if self.closed:
            return "q"
        picture = self._image_tk.PhotoImage(Image.fromarray(np.ascontiguousarray(frame_bgr[..., ::-1])))
        self.label.configure(image=picture)
        self.label.image = picture  # Tk keeps no reference of its own
        self.root.update()
        return self.keys.pop(0) if self.keys else None

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.root.destroy()


def open_window(title: str = "physadv live") -> Window:
    """OpenCV's window where OpenCV has a GUI, else a Tk window.

    Raises:
        InputError: no window can be opened here (no display, or neither a GUI OpenCV nor tkinter):
            the message says to use ``--headless --out DIR``.
    """
    fallback = "; use --headless --out DIR to write the annotated video instead"
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        # Checked first: a GUI OpenCV (GTK) ends the whole process when it cannot open a display.
        raise InputError("no display to open a window on (DISPLAY is not set)" + fallback)
    try:
        return OpenCVWindow(title)
    except cv2.error:
        pass
    try:
        return TkWindow(title)
    except ImportError:
        raise InputError("this OpenCV has no window support and Python has no tkinter" + fallback) from None
    except Exception as error:  # tkinter.TclError, which exists only once tkinter imports
        raise InputError(f"cannot open a window: {error}" + fallback) from None


def run_live(source: str, classifier: Classifier, manifest: Manifest | None, *, headless: bool = False,
             out: str | Path | None = None, max_frames: int | None = None,
             sources: dict[tuple[int, int], np.ndarray] | None = None,
             window: Window | None = None, target: int | None = None) -> list[FrameReport]:
    """Run the loop until the source ends, ``max_frames`` frames, or ``q``/Esc.

    With a ``manifest``, ``sources`` holds its cells' source images (see :func:`annotate`). With a
    ``target`` class, each frame reports its probability and whether it is the top-1 (:func:`target_summary`).

    Headless (``out`` required) writes ``out/live.mp4`` (annotated, at the source's frame rate) and
    ``out/live.json`` (one :class:`FrameReport` per frame, and the mean FPS). Otherwise frames are
    shown in ``window`` (default :func:`open_window`, closed at the end); saved frames go to ``out``
    (or the working folder) as ``frame_<n>.png``.
    """
    if headless and out is None:
        raise InputError("--headless needs --out DIR for the annotated video")
    out_dir = Path(out) if out is not None else Path.cwd()
    capture, writer = None, None
    reports: list[FrameReport] = []
    try:
        capture = open_source(source)
        if not headless and window is None:
            window = open_window()
        rate = capture.get(cv2.CAP_PROP_FPS) or 25.0
        fps, frozen, last = 0.0, None, time.perf_counter()
        while max_frames is None or len(reports) < max_frames:
            if frozen is None:
                ok, frame = capture.read()
                if not ok:
                    break
                hits = (sum(bool(r.target_hit) for r in reports), len(reports))
                annotated, report = annotate(frame, len(reports), classifier, manifest, fps, sources, target, hits)
                reports.append(report)
                now = time.perf_counter()
                fps, last = 0.9 * fps + 0.1 / max(now - last, 1e-6) if fps else 1 / max(now - last, 1e-6), now
            shown = annotated if frozen is None else frozen
            if headless:
                if writer is None:
                    out_dir.mkdir(parents=True, exist_ok=True)
                    writer = cv2.VideoWriter(str(out_dir / "live.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), rate,
                                             (shown.shape[1], shown.shape[0]))
                writer.write(shown)
                continue
            key = window.show(shown)
            if key == "q":
                break
            if key in ("f", " "):
                frozen = None if frozen is not None else annotated
            if key == "s":
                out_dir.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(out_dir / f"frame_{len(reports):05d}.png"), shown)
    finally:
        if capture is not None:
            capture.release()
        if writer is not None:
            writer.release()
        if window is not None:
            window.close()
    if not reports:
        raise InputError(f"{source!r} gave no frame: it is not a camera, stream or video OpenCV can read")
    if headless:
        atomic_write_json(out_dir / "live.json", {
            "frames": len(reports), "source_fps": rate,
            "mean_detect_ms": 1000 * float(np.mean([r.detect_s for r in reports])) if reports else None,
            **({"target": target_summary(reports, classifier.labels.names[target])} if target is not None else {}),
            "reports": [vars(r) for r in reports]})
    return reports


def target_summary(reports: list[FrameReport], name: str) -> dict:
    """The target class over the frames: how many had it as top-1, and its mean probability."""
    frames = [r for r in reports if r.target_probability is not None]
    hits = sum(bool(r.target_hit) for r in frames)
    return {"name": name, "frames": len(frames), "hits": hits, "hit_rate": hits / len(frames) if frames else None,
            "mean_probability": float(np.mean([r.target_probability for r in frames])) if frames else None}
