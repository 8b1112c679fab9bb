"""Report and summaries of a run, derived from its store."""

from __future__ import annotations

import json
from pathlib import Path

from physadv.lab.session import headline, status_counts
from physadv.lab.store import RunLock, RunStore
from physadv.metrics import channel_severity, severity_lines
from physadv.report import GalleryItem, ReportData, ReportFiles, write_report


def _top1(top5_json: str) -> str:
    first = json.loads(top5_json)[0]
    return f"{first['name']} {first['probability']:.2f}"


def photo_clean_accuracy(store: RunStore) -> dict[str, float | int | None]:
    """Accuracy on photos of the clean images, every (photo, cell) one observation, and on the
    digital clean images of the same observations (``digital_top1``, ``digital_top5``)."""
    rows = store.query("SELECT p.correct_top1, p.correct_top5, i.label, i.clean_top5 FROM predictions p "
                       "JOIN images i ON i.attack = p.attack AND i.image_id = p.image_id "
                       "WHERE p.kind = 'clean' AND p.correct_top1 IS NOT NULL")
    n = len(rows)
    digital = [[_class_index(g) for g in json.loads(row["clean_top5"])] for row in rows]
    return {"n": n, "top1": sum(r["correct_top1"] for r in rows) / n if n else None,
            "top5": sum(r["correct_top5"] for r in rows) / n if n else None,
            "digital_top1": sum(d[0] == r["label"] for d, r in zip(digital, rows)) / n if n else None,
            "digital_top5": sum(r["label"] in d for d, r in zip(digital, rows)) / n if n else None}


def _class_index(guess) -> int:
    return int(guess["index"] if isinstance(guess, dict) else guess[0])


def severity(store: RunStore) -> dict:
    """:func:`physadv.metrics.channel_severity` of the run's clean photos."""
    clean = photo_clean_accuracy(store)
    return channel_severity(clean["digital_top1"], clean["digital_top5"], clean["top1"], clean["top5"], clean["n"])


def gallery(store: RunStore, run_dir: Path) -> list[GalleryItem]:
    """One card per attacked image: clean, adversarial and its first photographed crop."""
    items = []
    for row in store.query("SELECT i.*, a.folder, a.method AS attack_method, a.eps AS attack_eps "
                           "FROM images i JOIN attacks a ON a.name = i.attack ORDER BY a.rowid, i.image_id"):
        photo = store.query("SELECT * FROM predictions WHERE attack = ? AND image_id = ? AND kind = 'adversarial' "
                            "ORDER BY photo, page, cell LIMIT 1", row["attack"], row["image_id"])
        crop = run_dir / photo[0]["crop"] if photo else None
        folder = run_dir / row["folder"]
        items.append(GalleryItem(
            image_id=row["image_id"], label_name=row["label_name"], method=row["attack_method"],
            eps=row["attack_eps"], clean_png=folder / "clean" / row["file"], adversarial_png=folder / "adv" / row["file"],
            crop_png=crop, clean_top1=_top1(row["clean_top5"]), adversarial_top1=_top1(row["adv_top5"]),
            photo_top1=_top1(photo[0]["top5"]) if photo else None,
            fooled_in_photo=(not photo[0]["correct_top1"]) if photo and photo[0]["correct_top1"] is not None
            else None))
    return items


def build_report(run_dir: str | Path) -> ReportFiles:
    """Write ``RUN/report/report.html`` and ``report.pdf`` from the run's store."""
    run_dir = Path(run_dir)
    with RunStore(run_dir, create=False) as store, RunLock(run_dir, "report"):
        meta = store.meta()
        config = meta.get("config", {})
        counts = status_counts(store)
        data = ReportData(
            title=f"physadv run {run_dir.name}", model=meta.get("model", "?"), created=meta.get("created", ""),
            rows=store.rows(), gallery=gallery(store, run_dir), status=counts,
            notes=[f"weights: {meta.get('weights', '?')} (sha256 {meta.get('weights_sha256', '?')[:16]}…)",
                   f"images: {', '.join(config.get('images', []))}; seed {config.get('seed')}; "
                   f"photos: {config.get('photos_per_page')} per page "
                   + (f"(virtual camera, profile {config.get('camera_profile', 'handheld')}"
                      f"{', ' + config['resolution'] if config.get('resolution') else ''})"
                      if config.get('photos_per_page') else "(real photographs)")],
            photo_clean=photo_clean_accuracy(store), severity=severity(store))
    return write_report(data, run_dir / "report")


def summary(run_dir: str | Path) -> str:
    with RunStore(run_dir, create=False) as store:
        rows = store.rows("capture:")
        lines = [headline(rows)]
        if rows:
            lines += ["", *severity_lines(severity(store))]
        return "\n".join(lines)
