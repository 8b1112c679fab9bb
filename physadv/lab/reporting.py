"""Report and summaries of a run, derived from its store."""

from __future__ import annotations

import os
from pathlib import Path

from physadv.catalog import MAX_PHOTOS_PER_PAGE
from physadv.lab.session import headline, status_counts
from physadv.lab.store import RunLock, RunStore
from physadv.metrics import channel_severity, severity_lines
from physadv.report import GalleryItem, ReportData, ReportFiles, write_report
from physadv.validation import MAX_SEED, Record


def _top1(store: RunStore, top5_json: str, where: str) -> str:
    first = store.guesses(top5_json, where)[0]
    return f"{first.name} {first.probability:.2f}"


# One aggregate over every photographed clean cell: no per-image row reaches Python. Top-5 lists are
# stored as JSON lists of {index, name, probability} (store schema 2).
_PHOTO_CLEAN_SQL = """
SELECT COUNT(*) AS n, SUM(p.correct_top1) AS top1, SUM(p.correct_top5) AS top5,
       SUM(json_extract(i.clean_top5, '$[0].index') = i.label) AS digital_top1,
       SUM(EXISTS (SELECT 1 FROM json_each(i.clean_top5) AS guess
                   WHERE json_extract(guess.value, '$.index') = i.label)) AS digital_top5
FROM predictions p JOIN images i ON i.attack = p.attack AND i.image_id = p.image_id
WHERE p.kind = 'clean' AND p.correct_top1 IS NOT NULL
"""


# The columns _PHOTO_CLEAN_SQL reads, checked in SQL too: a damaged value would otherwise count silently.
_DAMAGED_CLEAN_SQL = """
SELECT p.attack, p.image_id, p.photo FROM predictions p JOIN images i ON i.attack = p.attack AND i.image_id = p.image_id
WHERE p.kind = 'clean' AND p.correct_top1 IS NOT NULL AND (
    typeof(p.correct_top1) != 'integer' OR typeof(p.correct_top5) NOT IN ('integer', 'null')
    OR typeof(i.label) NOT IN ('integer', 'null')
    OR CASE WHEN json_valid(i.clean_top5) AND json_type(i.clean_top5) = 'array' AND json_array_length(i.clean_top5) > 0
            THEN EXISTS (SELECT 1 FROM json_each(i.clean_top5) AS guess
                         WHERE IFNULL(json_type(guess.value, '$.index'), '') != 'integer')
            ELSE 1 END)
LIMIT 1
"""


def photo_clean_accuracy(store: RunStore) -> dict[str, float | int | None]:
    """Accuracy on photos of the clean images, every (photo, cell) one observation, and on the
    digital clean images of the same observations (``digital_top1``, ``digital_top5``)."""
    for bad in store.query(_DAMAGED_CLEAN_SQL):
        raise store.damaged(f"the clean image {bad['attack']}/{bad['image_id']} or its prediction on "
                            f"{bad['photo']}: a top-5, label or verdict is not what physadv writes")
    [row] = store.query(_PHOTO_CLEAN_SQL)
    n = row["n"]
    return {"n": n, **{key: row[key] / n if n else None for key in ("top1", "top5", "digital_top1", "digital_top5")}}


def severity(store: RunStore) -> dict:
    """:func:`physadv.metrics.channel_severity` of the run's clean photos."""
    clean = photo_clean_accuracy(store)
    return channel_severity(clean["digital_top1"], clean["digital_top5"], clean["top1"], clean["top5"], clean["n"])


GALLERY_PER_OUTCOME = 3
"""Cards per (attack, outcome) in the report: its size does not grow with the number of images."""

# One card per attacked image with its first photographed adversarial crop; the outcome is that crop's
# top-1 verdict. Within each (attack, outcome), cards are ranked by the hash of their adversarial
# pixels: a deterministic sample spread over the whole set, not its first file names.
_GALLERY_SQL = """
WITH first_photo AS (
    SELECT attack, image_id, crop, top5, correct_top1,
           ROW_NUMBER() OVER (PARTITION BY attack, image_id ORDER BY photo, page, cell) AS k
    FROM predictions WHERE kind = 'adversarial'),
cards AS (
    SELECT i.*, a.folder, a.method AS attack_method, a.eps AS attack_eps, a.rowid AS attack_order,
           f.crop, f.top5 AS photo_top5, f.correct_top1 AS photo_correct,
           CASE WHEN f.crop IS NULL THEN 'not photographed' WHEN f.correct_top1 IS NULL THEN 'no label'
                WHEN f.correct_top1 = 0 THEN 'fooled in the photo' ELSE 'destroyed by the photo' END AS outcome
    FROM images i JOIN attacks a ON a.name = i.attack
    LEFT JOIN first_photo f ON f.attack = i.attack AND f.image_id = i.image_id AND f.k = 1),
ranked AS (
    SELECT *, ROW_NUMBER() OVER (PARTITION BY attack, outcome ORDER BY adv_sha256, image_id) AS n,
           COUNT(*) OVER (PARTITION BY attack, outcome) AS outcome_total
    FROM cards)
SELECT * FROM ranked WHERE n <= ? ORDER BY attack_order, outcome, n
"""


def gallery(store: RunStore, run_dir: Path, per_outcome: int = GALLERY_PER_OUTCOME
            ) -> tuple[list[GalleryItem], list[str]]:
    """A sample of cards — clean, adversarial and its first photographed crop — of at most
    ``per_outcome`` images per attack and outcome, and one line per group saying how many it shows."""
    items, counts = [], {}
    for row in store.query(_GALLERY_SQL, per_outcome):
        folder = run_dir / row["folder"]
        counts[(row["attack"], row["outcome"])] = (row["n"], row["outcome_total"])
        items.append(GalleryItem(
            image_id=row["image_id"], label_name=row["label_name"], method=row["attack_method"],
            eps=row["attack_eps"], clean_png=folder / "clean" / row["file"], adversarial_png=folder / "adv" / row["file"],
            crop_png=run_dir / row["crop"] if row["crop"] else None,
            clean_top1=_top1(store, row["clean_top5"], f"images {row['attack']}/{row['image_id']} clean_top5"),
            adversarial_top1=_top1(store, row["adv_top5"], f"images {row['attack']}/{row['image_id']} adv_top5"),
            photo_top1=_top1(store, row["photo_top5"], f"predictions {row['attack']}/{row['image_id']} top5")
            if row["photo_top5"] else None,
            fooled_in_photo=None if row["photo_correct"] is None else not row["photo_correct"]))
    return items, [f"{attack}, {outcome}: {shown} of {total}" for (attack, outcome), (shown, total) in counts.items()]


def crop_folders(store: RunStore, run_dir: Path, report_dir: Path) -> list[tuple[str, str]]:
    """(attack, link relative to ``report_dir``) of each attack's folder of photographed crops."""
    rows = store.query("SELECT attack, MIN(crop) AS crop FROM predictions GROUP BY attack ORDER BY attack")
    # A crop lies at <capture>/crops/<photo>/<cell>.png.
    return [(row["attack"], Path(os.path.relpath(run_dir / row["crop"], report_dir)).parent.parent.as_posix() + "/")
            for row in rows]


def _settings_note(store: RunStore, config: dict) -> str:
    """The report's line on the images and the camera, from the run's stored configuration (each value
    checked: a run made by ``physadv attack`` has none)."""
    record = Record(config, f"{store.path}: meta.config")
    with store.checked_read():
        images = [Record({"image": image}, f"{record.where}.images").text("image")
                  for image in (record.items("images", 0, 10_000) if record.has("images") else [])]
        seed = record.integer("seed", 0, MAX_SEED, optional=True)
        photos = record.integer("photos_per_page", 0, MAX_PHOTOS_PER_PAGE, optional=True)
        profile = record.text("camera_profile", optional=True) or "handheld"
        resolution = record.text("resolution", optional=True, max_length=16)
    camera = (f"(virtual camera, profile {profile}{', ' + resolution if resolution else ''})" if photos
              else "(real photographs)")
    return f"images: {', '.join(images)}; seed {seed}; photos: {photos} per page {camera}"


def build_report(run_dir: str | Path) -> ReportFiles:
    """Write ``RUN/report/report.html`` and ``report.pdf`` from the run's store."""
    run_dir = Path(run_dir)
    with RunStore(run_dir, create=False) as store, RunLock(run_dir, "report"):
        meta = store.meta()
        config = meta.get("config", {})
        counts = status_counts(store)
        cards, sampled = gallery(store, run_dir)
        data = ReportData(
            title=f"physadv run {run_dir.name}", model=meta.get("model", "?"), created=meta.get("created", ""),
            rows=store.rows(), gallery=cards, status=counts, gallery_sample=tuple(sampled),
            crop_folders=tuple(crop_folders(store, run_dir, run_dir / "report")),
            notes=[f"weights: {meta.get('weights', '?')} (sha256 {meta.get('weights_sha256', '?')[:16]}…)",
                   _settings_note(store, config)],
            photo_clean=photo_clean_accuracy(store), severity=severity(store))
    return write_report(data, run_dir / "report")


def summary(run_dir: str | Path) -> str:
    with RunStore(run_dir, create=False) as store:
        rows = store.rows("capture:")
        lines = [headline(rows)]
        if rows:
            lines += ["", *severity_lines(severity(store))]
        return "\n".join(lines)
