"""The live loop: webcam, stream URL or video file → annotated frames (window or files).

Per frame: the classifier's top-5 on the whole frame (centre square); when a sheet of the run is
in view, every cell is cropped and checked against its source image as capture does
(:func:`physadv.capture.verify.check_page`: identity code, content match, displacement, glare,
blur), then outlined with its prediction and true label — green when the prediction is right, red
when wrong, so a red adversarial cell is one whose attack still fools the model. A cell that fails
the check is outlined in grey with its reason and no prediction: the display never classifies a
crop of the wrong picture. Sheets are searched at the frame's own resolution (≤ 1280 px wide needs
no downscaling) and without the QR check, to keep the loop fast.

Keys in the window: ``f``/space freeze, ``s`` save the frame, ``q``/Esc quit. Headless, frames go
to ``OUT/live.mp4`` and a per-frame summary to ``OUT/live.json``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from physadv.capture.crops import cell_corners_mm
from physadv.capture.detect import find_pages
from physadv.capture.pipeline import classify_crops
from physadv.capture.verify import check_page
from physadv.classifiers import Classifier
from physadv.errors import InputError
from physadv.fileio import atomic_write_json
from physadv.images import square_resize
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


def open_source(source: str) -> cv2.VideoCapture:
    """A camera index (``"0"``), a stream URL or a video file.

    Raises:
        InputError: the source cannot be opened.
    """
    capture = cv2.VideoCapture(int(source)) if source.isdigit() else cv2.VideoCapture(source)
    if not capture.isOpened():
        raise InputError(f"cannot open camera or video {source!r} (a camera index, URL or video file)")
    return capture


def annotate(frame_bgr: np.ndarray, index: int, classifier: Classifier, manifest: Manifest | None,
             fps: float, sources: dict[tuple[int, int], np.ndarray] | None = None) -> tuple[np.ndarray, FrameReport]:
    """Draw the frame's top-5, every detected cell's prediction and the FPS on a copy of ``frame_bgr``.

    Args:
        frame_bgr: ``(H, W, 3)`` uint8 BGR (OpenCV's capture order).
        sources: with ``manifest``, per (page, cell) its ``(h, w, 3)`` uint8 RGB source image
            (:func:`physadv.capture.pipeline.cell_sources`), which every crop must match.
    """
    rgb = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
    names = classifier.labels.names
    whole = classify_crops(classifier, [square_resize(rgb, classifier.image_size)])
    report = FrameReport(index, [(names[c], float(p)) for c, p in zip(whole.classes[0], whole.probabilities[0])])
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
    _text(canvas, f"{fps:5.1f} FPS", (canvas.shape[1] - 120, 24), 0.6)
    return canvas, report


def _text(canvas: np.ndarray, text: str, origin: tuple[int, int], scale: float) -> None:
    """Text with a dark outline, readable on any background."""
    cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, BLACK, 3, cv2.LINE_AA)
    cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, WHITE, 1, cv2.LINE_AA)


def run_live(source: str, classifier: Classifier, manifest: Manifest | None, *, headless: bool = False,
             out: str | Path | None = None, max_frames: int | None = None,
             sources: dict[tuple[int, int], np.ndarray] | None = None) -> list[FrameReport]:
    """Run the loop until the source ends, ``max_frames`` frames, or ``q``/Esc.

    With a ``manifest``, ``sources`` holds its cells' source images (see :func:`annotate`).

    Headless (``out`` required) writes ``out/live.mp4`` (annotated, at the source's frame rate) and
    ``out/live.json`` (one :class:`FrameReport` per frame, and the mean FPS); saved frames go to
    ``out`` (or the working folder) as ``frame_<n>.png``.
    """
    if headless and out is None:
        raise InputError("--headless needs --out DIR for the annotated video")
    out_dir = Path(out) if out is not None else Path.cwd()
    capture = open_source(source)
    rate = capture.get(cv2.CAP_PROP_FPS) or 25.0
    writer = None
    reports: list[FrameReport] = []
    fps, frozen, last = 0.0, None, time.perf_counter()
    try:
        while max_frames is None or len(reports) < max_frames:
            if frozen is None:
                ok, frame = capture.read()
                if not ok:
                    break
                annotated, report = annotate(frame, len(reports), classifier, manifest, fps, sources)
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
            cv2.imshow("physadv live", shown)
            key = cv2.waitKey(1) & 0xFF
            if key in (ord("q"), 27):
                break
            if key in (ord("f"), ord(" ")):
                frozen = None if frozen is not None else annotated
            if key == ord("s"):
                out_dir.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(out_dir / f"frame_{len(reports):05d}.png"), shown)
    finally:
        capture.release()
        if writer is not None:
            writer.release()
        if not headless:
            cv2.destroyAllWindows()
    if not reports:
        raise InputError(f"{source!r} gave no frame: it is not a camera, stream or video OpenCV can read")
    if headless:
        atomic_write_json(out_dir / "live.json", {
            "frames": len(reports), "source_fps": rate,
            "mean_detect_ms": 1000 * float(np.mean([r.detect_s for r in reports])) if reports else None,
            "reports": [vars(r) for r in reports]})
    return reports
