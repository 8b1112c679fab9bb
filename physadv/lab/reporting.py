"""Report and summaries of a run, derived from its store."""

from __future__ import annotations

import os
from pathlib import Path

from physadv.attackset import Guess
from physadv.catalog import MAX_PHOTOS_PER_PAGE
from physadv.lab.session import headline, status_counts
from physadv.lab.store import RunLock, RunStore
from physadv.metrics import channel_severity, severity_lines
from physadv.report import GalleryItem, ReportData, ReportFiles, write_report
from physadv.results import ResultKind
from physadv.validation import MAX_SEED, Record


def _top1(guesses: tuple[Guess, ...]) -> str:
    first = guesses[0]
    return f"{first.name} {first.probability:.2f}"


def severity(store: RunStore) -> dict:
    """:func:`physadv.metrics.channel_severity` of the run's clean photos."""
    clean = store.photo_clean_accuracy()
    return channel_severity(clean["digital_top1"], clean["digital_top5"], clean["top1"], clean["top5"], clean["n"])


GALLERY_PER_OUTCOME = 3
"""Cards per (attack, outcome) in the report: its size does not grow with the number of images."""


def gallery(store: RunStore, run_dir: Path, per_outcome: int = GALLERY_PER_OUTCOME
            ) -> tuple[list[GalleryItem], list[str]]:
    """A sample of cards — clean, adversarial and its first photographed crop — of at most
    ``per_outcome`` images per attack and outcome (:meth:`RunStore.gallery_cards`), and one line per
    group saying how many it shows."""
    items, counts = [], {}
    for card in store.gallery_cards(per_outcome):
        folder = run_dir / card.folder
        counts[(card.attack, card.outcome)] = (card.shown, card.outcome_total)
        items.append(GalleryItem(
            image_id=card.image_id, label_name=card.label_name, method=card.method, eps=card.eps,
            clean_png=folder / "clean" / card.file, adversarial_png=folder / "adv" / card.file,
            crop_png=run_dir / card.crop if card.crop else None, clean_top1=_top1(card.clean_top5),
            adversarial_top1=_top1(card.adv_top5), photo_top1=_top1(card.photo_top5) if card.photo_top5 else None,
            fooled_in_photo=None if card.photo_correct is None else not card.photo_correct))
    return items, [f"{attack}, {outcome}: {shown} of {total}" for (attack, outcome), (shown, total) in counts.items()]


def crop_folders(store: RunStore, run_dir: Path, report_dir: Path) -> list[tuple[str, str]]:
    """(attack, link relative to ``report_dir``) of each attack's folder of photographed crops."""
    # A crop lies at <capture>/crops/<photo>/<cell>.png.
    return [(attack, Path(os.path.relpath(run_dir / crop, report_dir)).parent.parent.as_posix() + "/")
            for attack, crop in store.first_crops()]


def _settings_note(store: RunStore, config: dict) -> str:
    """The report's line on the images and the camera, from the run's stored configuration (each value
    checked: a run made by ``physadv attack`` has none)."""
    record = Record(config, f"{store.path}: meta.config")  # a dict: RunStore.run_info checked that
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
        info = store.run_info()
        config = info.config or {}
        counts = status_counts(store)
        cards, sampled = gallery(store, run_dir)
        data = ReportData(
            title=f"physadv run {run_dir.name}", model=info.model or "?", created=info.created or "",
            rows=store.rows(), gallery=cards, status=counts, gallery_sample=tuple(sampled),
            crop_folders=tuple(crop_folders(store, run_dir, run_dir / "report")),
            notes=[f"weights: {info.weights or '?'} (sha256 {(info.weights_sha256 or '?')[:16]}…)"]
            + ([_settings_note(store, config)] if config else []),
            photo_clean=store.photo_clean_accuracy(), severity=severity(store))
    return write_report(data, run_dir / "report")


def summary(run_dir: str | Path) -> str:
    with RunStore(run_dir, create=False) as store:
        rows = store.rows(ResultKind.CAPTURE)
        lines = [headline(rows)]
        if rows:
            lines += ["", *severity_lines(severity(store))]
        return "\n".join(lines)
