"""What the report says, independent of its format: sections of text, tables, plots and gallery cards.

Every rate is shown with its counts, ``0.40 (8/20)``; a rate without a denominator is ``n/a (n=0)``.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, Union

from PIL import Image

from physadv.catalog import CLEAN_METHOD, CORRUPTION_UNIT, SEVERITIES, TRANSFORM_DEFAULTS, is_corruption
from physadv.goals import label_goal
from physadv.metrics import format_fraction, patch_order, severity_lines
from physadv.report.plots import accuracy_vs_eps, adversariality_vs_eps, destruction_vs_strength
from physadv.results import PHOTO, AnyRow, Case, PatchRow, ResultRow

CASES = tuple(Case)
# Gallery pictures are normalised to this size range: tiny inputs (8×8 digits) are enlarged without
# smoothing so their pixels stay visible, larger ones are shrunk to the 160 px the page shows them at,
# to keep the HTML small.
THUMBNAIL_MIN, THUMBNAIL_MAX = 128, 160
THUMBNAIL_JPEG_QUALITY = 90


@dataclass(frozen=True)
class GalleryItem:
    image_id: str
    label_name: str | None
    method: str
    eps: float
    clean_png: Path
    adversarial_png: Path
    crop_png: Path | None  # the photographed adversarial image, cropped
    clean_top1: str  # "class name 0.93"
    adversarial_top1: str
    photo_top1: str | None
    fooled_in_photo: bool | None


@dataclass(frozen=True)
class ReportData:
    title: str
    model: str
    created: str
    rows: Sequence[AnyRow]  # of physadv experiment and physadv capture; PatchRow: of physadv patch
    gallery: list[GalleryItem]
    status: dict[str, int]  # e.g. {"images": 6, "pages printed": 2, "photos": 8}
    notes: list[str] = ()
    photo_clean: dict | None = None  # capture's results.json "photo_clean": n, top1, top5 of the clean photos
    severity: dict | None = None  # physadv.metrics.channel_severity of the clean photos
    gallery_sample: tuple[str, ...] = ()  # when the gallery is a sample: "attack, outcome: k of n" per group
    crop_folders: tuple[tuple[str, str], ...] = ()  # (attack, link to its folder of every photographed crop)


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    pdf: Path


@dataclass(frozen=True)
class Text:
    text: str
    missing: bool = False  # says what the report lacks (rendered as a notice)


@dataclass(frozen=True)
class Table:
    caption: str
    header: tuple[str, ...]
    body: tuple[tuple[str, ...], ...]
    key_columns: int  # the leading columns name the row; the others hold numbers


@dataclass(frozen=True)
class Plot:
    png: bytes
    caption: str


@dataclass(frozen=True)
class Picture:
    caption: str
    image: bytes | None  # PNG or JPEG; None: no picture (the caption says why)


@dataclass(frozen=True)
class Card:
    title: str
    verdict: str
    fooled: bool | None  # in the photo; None: not photographed
    pictures: tuple[Picture, ...]


@dataclass(frozen=True)
class Gallery:
    cards: tuple[Card, ...]


@dataclass(frozen=True)
class Links:
    caption: str
    items: tuple[tuple[str, str], ...]  # (text, relative link)


Block = Union[Text, Table, Plot, Gallery, Links]


@dataclass(frozen=True)
class Section:
    title: str
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class Report:
    title: str
    subtitle: str
    sections: tuple[Section, ...]


def _defined(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _number(value: float | None) -> str:
    return f"{value:g}" if _defined(value) else "—"


def _transform_unit(transform: str) -> str:
    if transform in TRANSFORM_DEFAULTS:
        return TRANSFORM_DEFAULTS[transform].unit
    return CORRUPTION_UNIT if is_corruption(transform) else "strength"


def _sorted(rows: list[ResultRow]) -> list[ResultRow]:
    """By method and transformation in order of first appearance, then ε, strength and case."""
    methods = list(dict.fromkeys(r.method for r in rows))
    transforms = list(dict.fromkeys(r.transform for r in rows))

    def key(row: ResultRow) -> tuple:
        return (methods.index(row.method), row.eps, transforms.index(row.transform),
                row.strength if _defined(row.strength) else -math.inf, CASES.index(row.case))

    return sorted(rows, key=key)


def _accuracies(row: ResultRow, *of: str) -> tuple[str, ...]:
    """Top-1 and top-5 accuracy of each of ``of`` (``clean``, ``adv``, ``transformed``)."""
    return tuple(format_fraction(getattr(row, f"top{k}_{name}"), row.n_images) for name in of for k in (1, 5))


def _destruction(row: ResultRow | None, k: int) -> str:
    return "—" if row is None else format_fraction(getattr(row, f"destruction_top{k}"),
                                                   getattr(row, f"destruction_top{k}_n"))


def _by_attack(rows: list[ResultRow]) -> dict[tuple[str, float, Case], ResultRow]:
    """The first row of each (method, ε, case): accuracies of the clean and adversarial images do not
    depend on the transformation."""
    attacks: dict[tuple[str, float, Case], ResultRow] = {}
    for row in rows:
        attacks.setdefault((row.method, row.eps, row.case), row)
    return attacks


def _run_section(data: ReportData) -> Section:
    blocks: list[Block] = []
    if data.status:
        blocks.append(Table("Run status", ("item", "count"),
                            tuple((name, str(count)) for name, count in data.status.items()), 1))
    else:
        blocks.append(Text("No status counts given.", missing=True))
    blocks += [Text(note) for note in data.notes]
    return Section("Run", tuple(blocks))


def _severity_table(severity: dict) -> Block:
    def accuracy(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    def change(value: float | None) -> str:
        return "n/a" if value is None else f"{value:+.1f}"

    return Table(
        "Channel severity: accuracy on the photos of the clean images against the digital clean images "
        "(same observations)",
        ("", "n", "digital", "photos", "change (points)", "Kurakin et al. 2017, Table 1 (points)"),
        tuple((k, str(severity["n"]), accuracy(severity[f"digital_{key}"]), accuracy(severity[f"photo_{key}"]),
               change(severity[f"change_{key}_points"]), change(severity[f"kurakin_change_{key}_points"]))
              for k, key in (("top-1", "top1"), ("top-5", "top5"))), 1)


def _photo_section(rows: list[ResultRow], photo_clean: dict | None, severity: dict | None = None) -> Section:
    if not rows:
        return Section("Print → photo channel", (Text(
            "No print → photo measurements: no rows with transform 'photo' (print the sheets, photograph "
            "them and run physadv capture).", missing=True),))
    attacks = _by_attack(rows)
    accuracy = Table(
        "Accuracy on the photos of the adversarial images (clean and adv. = the digital images; "
        "cf. Kurakin et al. 2017, Tables 1 and 2)",
        ("method", "ε", "case", "images", "clean top-1", "clean top-5", "adv. top-1", "adv. top-5",
         "photo top-1", "photo top-5"),
        tuple((method, f"{eps:g}", case, str(row.n_images), *_accuracies(row, "clean", "adv", "transformed"))
              for (method, eps, case), row in attacks.items()), 3)
    destruction = Table(
        "Destruction rate of the print → photo channel (cf. Kurakin et al. 2017, Table 3)",
        ("method", "ε", "average top-1", "average top-5", "prefiltered top-1", "prefiltered top-5"),
        tuple((method, f"{eps:g}", *(_destruction(attacks.get((method, eps, case)), k)
                                     for case in CASES for k in (1, 5)))
              for method, eps in dict.fromkeys((m, e) for m, e, _ in attacks)), 2)
    blocks: list[Block] = []
    if severity and severity.get("n"):
        blocks.append(_severity_table(severity))
        if severity.get("severe"):
            blocks.append(Text(severity_lines(severity)[-1]))
    blocks += [destruction, accuracy]
    if photo_clean:
        n = photo_clean.get("n")
        blocks.append(Text(f"Photos of the clean images: top-1 {format_fraction(photo_clean.get('top1'), n)}, "
                           f"top-5 {format_fraction(photo_clean.get('top5'), n)}."))
    return Section("Print → photo channel", tuple(blocks))


def _attack_section(rows: list[ResultRow], photo_rows: list[ResultRow]) -> Section:
    blocks: list[Block] = []
    png = accuracy_vs_eps(rows + photo_rows)
    if png is None:
        return Section("Accuracy against ε", (Text("No result rows: nothing was measured.", missing=True),))
    blocks.append(Plot(png, "Accuracy of the adversarial images against ε per method (average case); "
                            "dashed: on the photos."))
    if not rows:
        blocks.append(Text("No digital attack rows (physadv experiment); the plot shows the photo rows only.",
                           missing=True))
        return Section("Accuracy against ε", tuple(blocks))
    undid = any(row.quantisation_undid is not None for row in rows)
    blocks.append(Table(
        "Accuracy of the clean and the adversarial images per attack"
        + ("; rounding undid = images whose attack 8-bit rounding undid" if undid else ""),
        ("method", "ε", "case", "images", "clean top-1", "clean top-5", "adv. top-1", "adv. top-5")
        + (("rounding undid",) if undid else ()),
        tuple((method, f"{eps:g}", case, str(row.n_images), *_accuracies(row, "clean", "adv"))
              + ((_number(row.quantisation_undid) if case == Case.AVERAGE else "",) if undid else ())
              for (method, eps, case), row in _by_attack(rows).items()), 3))
    return Section("Accuracy against ε", tuple(blocks))


def _transform_sections(rows: list[ResultRow]) -> tuple[Section, Section | None]:
    """The plot of the destruction rate against strength, and the appendix with every row."""
    title = "Artificial transformations"
    if not rows:
        return Section(title, (Text("No artificial-transformation rows (run physadv experiment).",
                                    missing=True),)), None
    units = {transform: _transform_unit(transform) for transform in dict.fromkeys(r.transform for r in rows)}
    attacked = [r for r in rows if r.method != CLEAN_METHOD]  # the clean images have nothing to destroy
    figures = tuple(Plot(destruction_vs_strength(attacked, units, case),
                         f"{case.capitalize()} case: top-1 destruction rate against transformation strength, "
                         "one line per method and ε. Missing points: no image was attacked successfully, "
                         "so the rate is undefined. All numbers are in the appendix.")
                    for case in CASES if any(r.case == case for r in attacked))
    tables = []
    for transform in units:
        tables.append(Table(
            f"{transform} ({units[transform]}): accuracy on the transformed adversarial "
            "images and destruction rate",
            ("method", "ε", "strength", "case", "images", "T(adv) top-1", "T(adv) top-5",
             "destruction top-1", "destruction top-5"),
            tuple((r.method, f"{r.eps:g}", _number(r.strength), r.case,
                   str(r.n_images), *_accuracies(r, "transformed"), _destruction(r, 1), _destruction(r, 5))
                  for r in rows if r.transform == transform), 4))
    return Section(title, figures), Section("Appendix: every transformation row", tuple(tables))


def _corruption_section(rows: list[ResultRow]) -> Section | None:
    """ImageNet-C at a glance: accuracy on the corrupted clean images and the destruction rate of each
    attack, per corruption and severity. ``None`` without corruption rows."""
    rows = [r for r in rows if is_corruption(r.transform) and r.case == Case.AVERAGE]
    if not rows:
        return None
    corruptions = list(dict.fromkeys(r.transform for r in rows))
    cells = {(r.method, r.eps, r.transform, r.strength): r for r in rows}
    header = tuple(f"severity {s}" for s in SEVERITIES)
    blocks: list[Block] = []
    if any(r.method == CLEAN_METHOD for r in rows):
        def accuracy(transform: str, severity: int) -> str:
            row = cells.get((CLEAN_METHOD, 0.0, transform, float(severity)))
            return "—" if row is None else format_fraction(row.top1_transformed, row.n_images)
        blocks.append(Table("Corruption accuracy: top-1 on the corrupted clean images (Hendrycks & Dietterich "
                            "2019; mCE against a baseline is in results.json)", ("corruption",) + header,
                            tuple((t.split(":", 1)[1], *(accuracy(t, s) for s in SEVERITIES)) for t in corruptions), 1))
    attacks = list(dict.fromkeys(r.attack for r in rows if r.method != CLEAN_METHOD))
    if attacks:
        blocks.append(Table("Top-1 destruction rate of each attack under each corruption (average case)",
                            ("method", "ε", "corruption") + header,
                            tuple((method, f"{eps:g}", t.split(":", 1)[1],
                                   *(_destruction(cells.get((method, eps, t, float(s))), 1) for s in SEVERITIES))
                                  for method, eps in attacks for t in corruptions), 3))
    return Section("Common corruptions (ImageNet-C)", tuple(blocks))


def _success(label: str, row: ResultRow) -> str:
    goal = label_goal(label, row.eot)
    return goal.success if goal else ""


def _adversariality_section(rows: list[ResultRow]) -> Section:
    title = "Adversariality: EOT against plain attacks"
    eot_methods = {r.method for r in rows if r.eot}
    png = adversariality_vs_eps(rows, eot_methods)
    if png is None:
        return Section(title, (Text("No adversariality values: no EOT rows, and no plain rows evaluated "
                                    "under EOT.", missing=True),))
    attacks = {(m, e): r for (m, e, case), r in _by_attack(rows).items()
               if case == Case.AVERAGE and _defined(r.adversariality)}
    explanation = Text("Adversariality (Athalye et al. 2018): the mean over the images of the fraction of "
                       "held-out transformations under which the adversarial image is still a success for its "
                       "attack. For ll and target that means the goal class itself, which is stricter than a "
                       "destruction rate (only whether the true class came back): an ll image that drifts to "
                       "another wrong class has adversariality 0 and is not destroyed either.")
    table = Table(
        "Adversariality per attack",
        ("method", "ε", "kind", "success means", "images", "adversariality"),
        tuple((method, f"{eps:g}", "EOT" if method in eot_methods else "plain",
               _success(method, row), str(row.n_images), f"{row.adversariality:.2f}")
              for (method, eps), row in attacks.items()), 4)
    notes: tuple[Block, ...] = ()
    if not any(m in eot_methods for m, _ in attacks):
        notes = (Text("No EOT rows: only plain attacks have an adversariality.", missing=True),)
    elif all(m in eot_methods for m, _ in attacks):
        notes = (Text("No plain rows evaluated under EOT: nothing to compare the EOT attacks with.",
                      missing=True),)
    return Section(title, (Plot(png, "Adversariality against ε; solid: EOT, dashed: plain."), explanation, table)
                   + notes)


def thumbnail(path: Path | None) -> bytes | None:
    """The image at ``path`` resized into the thumbnail range: PNG bytes, or JPEG when it was shrunk (its
    pixels are resampled anyway; the full-size files are linked); ``None`` if it cannot be read."""
    if path is None:
        return None
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
    except (OSError, ValueError):
        return None
    side = max(image.size)
    buffer = io.BytesIO()
    if side < THUMBNAIL_MIN:
        factor = -(-THUMBNAIL_MIN // side)
        image = image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)
    elif side > THUMBNAIL_MAX:
        image.thumbnail((THUMBNAIL_MAX, THUMBNAIL_MAX), Image.Resampling.LANCZOS)
        image.save(buffer, "JPEG", quality=THUMBNAIL_JPEG_QUALITY, subsampling=0)
        return buffer.getvalue()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _picture(kind: str, path: Path | None, prediction: str | None) -> Picture:
    if path is None:
        return Picture(f"{kind}: not photographed", None)
    image = thumbnail(path)
    if image is None:
        return Picture(f"{kind}: image missing ({path.name})", None)
    return Picture(f"{kind}: {prediction or 'no prediction'}", image)


def _card(item: GalleryItem) -> Card:
    verdict = {True: "photo still fools the model", False: "attack destroyed by the photo",
               None: "no photo"}[item.fooled_in_photo]
    return Card(f"{item.image_id} — true class: {item.label_name or 'unknown'} — {item.method} ε={item.eps:g}",
                verdict, item.fooled_in_photo,
                (_picture("clean", item.clean_png, item.clean_top1),
                 _picture("adversarial", item.adversarial_png, item.adversarial_top1),
                 _picture("photo", item.crop_png, item.photo_top1)))


def _gallery_blocks(data: ReportData) -> tuple[Block, ...]:
    if not data.gallery:
        return (Text("No gallery images given.", missing=True),)
    blocks: list[Block] = []
    if data.gallery_sample:
        blocks.append(Text("A sample: the report shows a few images of each attack and outcome, so its size does "
                           "not grow with the run (" + "; ".join(data.gallery_sample) + ")."))
    if data.crop_folders:
        blocks.append(Links("Every photographed crop, per attack (folders next to this report):",
                            tuple((f"{attack}: {link}", link) for attack, link in data.crop_folders)))
    return (*blocks, Gallery(tuple(_card(item) for item in data.gallery)))


def _patch_section(rows: list[PatchRow]) -> Section:
    """A patch run's rows: targeted success and top-1, digital and through the photos, the patch against
    control patches of the same size and placement, by area, with n."""
    success = (f"top-1 = {rows[0].target_name}" if rows[0].target is not None else "top-1 ≠ true class")
    table = Table(
        f"Adversarial patch: success ({success}) and top-1 accuracy of the patched scenes, digital and through the "
        "photos (the same observations), against control patches of the same size and placement (occlusion "
        "alone is not success); 'held out' rows are the patch run's own digital measurement",
        ("scenes", "area", "measured on", "n", "success digital", "success photo", "top-1 digital", "top-1 photo"),
        tuple((r.method, f"{r.area:g}", "photos" if r.transform == PHOTO else "held out", str(r.n),
               format_fraction(r.target_success_digital, r.n),
               format_fraction(r.target_success_photo, r.n) if r.transform == PHOTO else "—",
               format_fraction(r.top1_digital, r.top1_n),
               format_fraction(r.top1_photo, r.top1_n) if r.transform == PHOTO else "—")
              for r in sorted(rows, key=patch_order)), 3)
    return Section("Adversarial patch", (table,))


def build_report(data: ReportData) -> Report:
    patch_rows = [r for r in data.rows if isinstance(r, PatchRow)]
    rows = _sorted([r for r in data.rows if isinstance(r, ResultRow)])
    photo_rows = [r for r in rows if r.transform == PHOTO]
    digital_rows = [r for r in rows if r.transform != PHOTO]
    transforms, appendix = _transform_sections(digital_rows)
    gallery = Section("Gallery: clean, adversarial, photographed", _gallery_blocks(data))
    corruptions = _corruption_section(digital_rows)
    sections = (_run_section(data), _photo_section(photo_rows, data.photo_clean, data.severity),
                _attack_section(digital_rows, photo_rows), transforms, *((corruptions,) if corruptions else ()),
                _adversariality_section(rows), gallery)
    if patch_rows:
        sections = (sections[0], _patch_section(patch_rows), *sections[1:])
    return Report(data.title, f"model {data.model} · created {data.created}",
                  sections + ((appendix,) if appendix else ()))
