"""The run report: its tables show the input rows' numbers with their counts, its HTML is
self-contained, its PDF opens and carries the same numbers, and missing data is said, not hidden."""

from __future__ import annotations

import base64
import io
import math
import re
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pypdfium2 as pdfium
import pytest
from PIL import Image

from physadv.images import write_png
from physadv.report import GalleryItem, ReportData, write_report
from physadv.metrics import format_fraction as rate_text
from physadv.report.content import thumbnail
from physadv.results import ResultRow

N = 20


def shown(k: int, n: int) -> str:
    return f"{k / n:.2f} ({k}/{n})" if n else "n/a (n=0)"


def make_row(method: str, eps: float, transform: str, strength: float | None, case: str, n: int,
             clean: tuple[int, int], adv: tuple[int, int], transformed: tuple[int, int],
             destruction: tuple[tuple[int, int], tuple[int, int]], **extra) -> dict:
    """A results.json row from counts: ``clean``, ``adv``, ``transformed`` = (top-1, top-5) correct of
    ``n``; ``destruction`` = ((k, n) top-1, (k, n) top-5)."""
    def fraction(k: int, of: int) -> float | None:
        return k / of if of else None

    row = {"method": method, "eps": eps, "transform": transform, "strength": strength, "case": case,
           "n_images": n, "destruction_top1_n": destruction[0][1], "destruction_top5_n": destruction[1][1],
           "destruction_top1": fraction(*destruction[0]), "destruction_top5": fraction(*destruction[1]),
           "_counts": {"clean": clean, "adv": adv, "transformed": transformed, "destruction": destruction}}
    for name, (top1, top5) in (("clean", clean), ("adv", adv), ("transformed", transformed)):
        row[f"top1_{name}"], row[f"top5_{name}"] = fraction(top1, n), fraction(top5, n)
    return row | extra


def typed(row: dict) -> ResultRow:
    """The :class:`ResultRow` of a :func:`make_row` row (its counts aside)."""
    return ResultRow(**{key: value for key, value in row.items() if key != "_counts"})


def photo_rows() -> list[dict]:
    return [make_row("bim", 8.0, "photo", None, "average", 24, (20, 24), (0, 0), (8, 18), ((8, 20), (18, 24))),
            make_row("bim", 8.0, "photo", None, "prefiltered", 8, (8, 8), (0, 0), (7, 8), ((7, 8), (8, 8)))]


def artificial_rows() -> list[dict]:
    rows = []
    for method, adversariality in (("fgsm", 0.3), ("bim+eot", 0.9)):
        for eps in (8.0, 16.0):
            fooled = 6 if eps == 8 else 15  # clean right, adversarial wrong (top-1)
            for transform, strengths in (("blur", (1.0, 2.0)), ("jpeg", (75.0, 10.0))):
                for step, strength in enumerate(strengths):
                    restored = step * 3 + (method == "fgsm")
                    rows.append(make_row(method, eps, transform, strength, "average", N, (18, 20), (18 - fooled, 19),
                                         (18 - fooled + restored, 20), ((restored, fooled), (1, 1)),
                                         adversariality=adversariality * eps / 16, quantisation_undid=1,
                                         eot="photo" if method.endswith("+eot") else ""))
                    # ε = 8: nothing passes the prefilter, so every prefiltered rate is undefined.
                    n = 0 if eps == 8 else 5
                    rows.append(make_row(method, eps, transform, strength, "prefiltered", n, (n, n), (0, n),
                                         (min(restored, n), n), ((min(restored, n), n), (0, 0)),
                                         adversariality=adversariality * eps / 16, quantisation_undid=1,
                                         eot="photo" if method.endswith("+eot") else ""))
    return rows


def gallery(folder: Path) -> list[GalleryItem]:
    rng = np.random.default_rng(0)
    paths = {}
    for name, size in (("clean", 32), ("adv", 32), ("crop", 400)):
        paths[name] = folder / f"{name}.png"
        write_png(paths[name], rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    return [GalleryItem("cat", "tiger cat", "bim", 8.0, paths["clean"], paths["adv"], paths["crop"],
                        "tiger cat 0.91", "Egyptian cat 0.99", "Egyptian cat 0.64", True),
            GalleryItem("cup", None, "fgsm", 16.0, paths["clean"], folder / "gone.png", None,
                        "espresso 0.93", "caldron 0.97", None, None)]


class Page(HTMLParser):
    """Tables (caption, header, body rows), image sources and every URL-bearing attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[dict] = []
        self.images: list[str] = []
        self.references: list[str] = []
        self.tags: set[str] = set()
        self.text: list[str] = []
        self._cell: list[str] | None = None
        self._caption = False

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        attributes = dict(attrs)
        self.references += [value for name, value in attrs if name in ("src", "href", "srcset", "action") and value]
        if tag == "img":
            self.images.append(attributes.get("src", ""))
        elif tag == "table":
            self.tables.append({"caption": "", "rows": []})
        elif tag == "tr":
            self.tables[-1]["rows"].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "caption":
            self._caption = True

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1]["rows"][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "caption":
            self._caption = False

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)
        elif self._caption:
            self.tables[-1]["caption"] += data

    def table(self, caption_start: str) -> list[dict[str, str]]:
        """The body rows of the one table whose caption starts so, as header → cell."""
        found = [t for t in self.tables if t["caption"].startswith(caption_start)]
        assert len(found) == 1, f"{len(found)} tables captioned {caption_start!r}"
        header, *body = found[0]["rows"]
        assert all(len(row) == len(header) for row in body)
        return [dict(zip(header, row)) for row in body]


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def pdf_text(path: Path) -> tuple[int, str]:
    """Page count and text, whitespace collapsed: table cells and captions wrap at any space."""
    document = pdfium.PdfDocument(path)
    try:
        text = " ".join(document[i].get_textpage().get_text_range() for i in range(len(document)))
        return len(document), " ".join(text.split())
    finally:
        document.close()


def only(rows: list[dict[str, str]], **key: str) -> dict[str, str]:
    found = [r for r in rows if all(r[name] == value for name, value in key.items())]
    assert len(found) == 1, f"{len(found)} table rows match {key}"
    return found[0]


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    rows = photo_rows() + artificial_rows()
    data = ReportData("physadv run abc123", "digits", "2025-01-02 03:04", [typed(r) for r in rows],
                      gallery(folder / "pictures"), {"images": 6, "photos": 8, "rejected": 1},
                      ["machine: test"], photo_clean={"n": 24, "top1": 8 / 24, "top5": 21 / 24})
    files = write_report(data, folder / "nested" / "out")
    return rows, files


def test_rate_text_shows_counts_and_never_nan():
    assert rate_text(0.4, 20) == "0.40 (8/20)"
    assert rate_text(7 / 8, 8) == "0.88 (7/8)"
    assert rate_text(15 / 22, 22) == "0.68 (15/22)"  # 15 / 22 * 22 is 14.999…: the count is rounded
    assert rate_text(None, 0) == "n/a (n=0)"
    assert rate_text(math.nan, 5) == "n/a (n=5)"
    assert rate_text(0.0, 0) == "n/a (n=0)"


def test_photo_tables_match_rows(full):
    rows, files = full
    page = parse(files.html)
    destruction = only(page.table("Destruction rate of the print"), method="bim", **{"ε": "8"})
    assert destruction == {"method": "bim", "ε": "8", "average top-1": "0.40 (8/20)",
                           "average top-5": "0.75 (18/24)", "prefiltered top-1": "0.88 (7/8)",
                           "prefiltered top-5": "1.00 (8/8)"}
    accuracy = page.table("Accuracy on the photos")
    assert len(accuracy) == 2
    for row in rows[:2]:
        counts, n = row["_counts"], row["n_images"]
        shown_row = only(accuracy, method=row["method"], case=row["case"])
        assert shown_row["images"] == str(n)
        for name, column in (("clean", "clean"), ("adv", "adv."), ("transformed", "photo")):
            assert shown_row[f"{column} top-1"] == shown(counts[name][0], n)
            assert shown_row[f"{column} top-5"] == shown(counts[name][1], n)
    assert "Photos of the clean images: top-1 0.33 (8/24), top-5 0.88 (21/24)." in "".join(page.text)


def test_transformation_tables_hold_every_row(full):
    rows, files = full
    page = parse(files.html)
    attacks = page.table("Accuracy of the clean and the adversarial images")
    shown_rows = 0
    for row in rows[2:]:
        counts, n = row["_counts"], row["n_images"]
        table = page.table(f"{row['transform']} (")
        shown_row = only(table, method=row["method"], **{"ε": f"{row['eps']:g}", "strength": f"{row['strength']:g}",
                                                          "case": row["case"]})
        assert shown_row["images"] == str(n)
        assert shown_row["T(adv) top-1"] == shown(counts["transformed"][0], n)
        assert shown_row["T(adv) top-5"] == shown(counts["transformed"][1], n)
        assert shown_row["destruction top-1"] == shown(*counts["destruction"][0])
        assert shown_row["destruction top-5"] == shown(*counts["destruction"][1])
        attack = only(attacks, method=row["method"], **{"ε": f"{row['eps']:g}", "case": row["case"]})
        assert attack["clean top-1"] == shown(counts["clean"][0], n)
        assert attack["adv. top-5"] == shown(counts["adv"][1], n)
        shown_rows += 1
    assert shown_rows == sum(len(page.table(f"{t} (")) for t in ("blur", "jpeg")) == 32
    assert only(attacks, method="fgsm", **{"ε": "8", "case": "prefiltered"})["clean top-1"] == "n/a (n=0)"


def test_adversariality_table_compares_eot_with_plain(full):
    _, files = full
    table = parse(files.html).table("Adversariality")
    assert [(r["method"], r["ε"], r["kind"], r["adversariality"]) for r in table] == [
        ("fgsm", "8", "plain", "0.15"), ("fgsm", "16", "plain", "0.30"),
        ("bim+eot", "8", "EOT", "0.45"), ("bim+eot", "16", "EOT", "0.90")]
    assert {r["success means"] for r in table} == {"top-1 ≠ true class"}


def test_html_is_self_contained_with_decodable_pictures(full):
    _, files = full
    page = parse(files.html)
    assert not page.tags & {"script", "link", "iframe", "object", "embed"}
    assert page.references and all(re.match(r"data:image/(png|jpeg);base64,", ref) for ref in page.references)
    assert not re.search(r"https?://|url\(", files.html.read_text(encoding="utf-8"))
    # 4 plots (accuracy, destruction ×2 cases, adversariality) + gallery: 3 + 1 (a missing file, no crop).
    assert len(page.images) == 8
    sizes = []
    for src in page.images:
        with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as picture:
            picture.load()
            sizes.append(picture.size)
    assert (128, 128) in sizes  # the 32 px gallery pictures, enlarged
    assert (160, 160) in sizes  # the 400 px crop, shrunk
    text = "".join(page.text)
    assert "image missing (gone.png)" in text and "photo: not photographed" in text
    assert "photo still fools the model" in text and "true class: unknown" in text


def test_pdf_opens_and_carries_the_headline_numbers(full):
    _, files = full
    pages, text = pdf_text(files.pdf)
    assert pages >= 1
    for expected in ("physadv run abc123", "0.40 (8/20)", "0.88 (7/8)", "0.75 (18/24)", "bim+eot",
                     "Egyptian cat 0.99", "n/a (n=0)"):
        assert expected in text
    assert not re.search(r"\bnan\b", text, re.IGNORECASE)
    assert files.pdf.read_bytes().startswith(b"%PDF")


def test_no_temporary_files_left(full):
    _, files = full
    assert sorted(p.name for p in files.html.parent.iterdir()) == ["report.html", "report.pdf"]


def test_empty_inputs_give_a_report_that_says_what_is_missing(tmp_path):
    files = write_report(ReportData("empty run", "digits", "today", [], [], {}), tmp_path)
    page = parse(files.html)
    text = " ".join(page.text)
    for missing in ("No print → photo measurements", "No artificial-transformation rows", "No result rows",
                    "No adversariality values", "No gallery images given", "No status counts given"):
        assert missing in text
    assert page.images == [] and page.tables == []
    pages, pdf = pdf_text(files.pdf)
    assert pages >= 1 and "No gallery images given" in pdf and "No print → photo measurements" in pdf


def test_undefined_and_nan_rates_show_na_with_their_n(tmp_path):
    nan = float("nan")
    rows = [make_row("bim", 8.0, "photo", None, "average", 10, (9, 10), (0, 0), (0, 0), ((0, 0), (0, 0))),
            make_row("bim", 8.0, "photo", None, "prefiltered", 0, (0, 0), (0, 0), (0, 0), ((0, 0), (0, 0)))]
    rows[0] |= {"top1_transformed": nan, "destruction_top5": nan, "destruction_top5_n": 3}
    files = write_report(ReportData("undefined rates", "digits", "today", [typed(r) for r in rows], [],
                                    {"photos": 1}), tmp_path)
    page = parse(files.html)
    html_text = "".join(page.text)
    _, pdf = pdf_text(files.pdf)
    for text in (html_text, pdf):
        assert not re.search(r"\bnan\b", text, re.IGNORECASE)
    destruction = only(page.table("Destruction rate of the print"), method="bim")
    assert destruction["average top-1"] == "n/a (n=0)" and destruction["average top-5"] == "n/a (n=3)"
    assert only(page.table("Accuracy on the photos"), case="average")["photo top-1"] == "n/a (n=10)"
    # Only photo rows: the EOT and transformation sections say they have nothing.
    assert "No artificial-transformation rows" in html_text and "No adversariality values" in html_text


def test_thumbnail_enlarges_tiny_images_without_smoothing(tmp_path):
    pixels = np.zeros((8, 8, 3), dtype=np.uint8)
    pixels[::2, ::2] = 255
    write_png(tmp_path / "tiny.png", pixels)
    with Image.open(io.BytesIO(thumbnail(tmp_path / "tiny.png"))) as picture:
        enlarged = np.asarray(picture)
    assert enlarged.shape == (128, 128, 3)
    assert np.array_equal(enlarged[::16, ::16], pixels)
    assert set(np.unique(enlarged)) == {0, 255}
    assert thumbnail(tmp_path / "absent.png") is None


def test_a_name_too_long_for_a_page_is_cut_in_the_pdf(tmp_path):
    """A gallery card whose class name (from a damaged or hostile store) would be taller than a page: the
    PDF is still written (reportlab cannot split a table cell over pages) and says how much it cut."""
    long_name = "tiger cat " * 5_000
    cards = [replace(card, label_name=long_name) for card in gallery(tmp_path)]
    files = write_report(ReportData("long names", "digits", "today", [], cards, {}), tmp_path / "report")
    _, pdf = pdf_text(files.pdf)
    assert "more characters" in pdf
