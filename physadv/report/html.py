"""The report as one self-contained HTML page: inline CSS, pictures as base64 ``data:`` PNGs (JPEGs for
shrunk thumbnails), no script and no external reference, so it can be mailed, archived and printed as it is."""

from __future__ import annotations

import base64
from html import escape

from physadv.report.content import Block, Gallery, Links, Plot, Report, Table, Text

STYLE = """
body { font-family: "DejaVu Sans", "Helvetica Neue", Arial, sans-serif; color: #222; margin: 2em auto;
       max-width: 1100px; padding: 0 1em; line-height: 1.4; }
h1 { margin-bottom: 0.1em; }
.subtitle { color: #666; margin-top: 0; }
h2 { border-bottom: 2px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
/* Long unbroken names (file names, paths, image ids) wrap instead of widening the page. */
h1, h3, p, li, caption, td, figcaption { overflow-wrap: anywhere; }
.table { overflow-x: auto; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.85em; }
caption { caption-side: top; text-align: left; font-weight: bold; padding-bottom: 0.4em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; }
th { background: #eef1f5; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.na { color: #999; }
.missing { background: #fff6dd; border-left: 4px solid #e0a800; padding: 0.4em 0.8em; }
figure { margin: 0.5em 0 1.5em; }
figure img { max-width: 100%; height: auto; }
figcaption { color: #555; font-size: 0.9em; }
.gallery { display: flex; flex-wrap: wrap; gap: 1em; }
.card { border: 1px solid #ccc; border-radius: 4px; padding: 0.6em; break-inside: avoid; min-width: 0;
        max-width: 100%; box-sizing: border-box; }
.card h3 { font-size: 0.95em; margin: 0 0 0.2em; }
.verdict { font-size: 0.85em; margin: 0 0 0.4em; }
.fooled { color: #b00020; } .destroyed { color: #1b7f3b; } .nophoto { color: #777; }
.pictures { display: flex; gap: 0.5em; }
.pictures figure { margin: 0; width: 160px; }
.pictures img { width: 160px; height: auto; image-rendering: pixelated; }
.pictures .absent { width: 160px; height: 160px; display: flex; align-items: center; justify-content: center;
                    background: #f3f3f3; color: #888; font-size: 0.8em; }
.pictures figcaption { font-size: 0.75em; overflow-wrap: anywhere; }
@media print {
  body { margin: 0; max-width: none; }
  h2 { break-after: avoid; }
  table, figure, .card { break-inside: avoid; }
}
"""

VERDICT_CLASS = {True: "fooled", False: "destroyed", None: "nophoto"}


def _data_uri(image: bytes) -> str:
    kind = "jpeg" if image.startswith(b"\xff\xd8") else "png"
    return f"data:image/{kind};base64," + base64.b64encode(image).decode("ascii")


def _table(table: Table) -> str:
    def cell(index: int, text: str) -> str:
        if index < table.key_columns:
            return f"<td>{escape(text)}</td>"
        kind = "num na" if text.startswith("n/a") or text == "—" else "num"
        return f'<td class="{kind}">{escape(text)}</td>'

    header = "".join(f'<th scope="col">{escape(name)}</th>' for name in table.header)
    body = "\n".join("<tr>" + "".join(cell(i, text) for i, text in enumerate(row)) + "</tr>" for row in table.body)
    return (f'<div class="table"><table>\n<caption>{escape(table.caption)}</caption>\n<thead><tr>{header}</tr></thead>\n'
            f"<tbody>\n{body}\n</tbody>\n</table></div>")


def _gallery(gallery: Gallery) -> str:
    cards = []
    for card in gallery.cards:
        pictures = "".join(
            f'<figure><img src="{_data_uri(p.image)}" alt="{escape(p.caption)}">'
            f"<figcaption>{escape(p.caption)}</figcaption></figure>" if p.image is not None else
            f'<figure><div class="absent">no picture</div><figcaption>{escape(p.caption)}</figcaption></figure>'
            for p in card.pictures)
        verdict_class = VERDICT_CLASS[card.fooled]
        cards.append(f'<div class="card"><h3>{escape(card.title)}</h3>'
                     f'<p class="verdict {verdict_class}">{escape(card.verdict)}</p>'
                     f'<div class="pictures">{pictures}</div></div>')
    return '<div class="gallery">\n' + "\n".join(cards) + "\n</div>"


def _block(block: Block) -> str:
    if isinstance(block, Text):
        return f'<p class="missing">{escape(block.text)}</p>' if block.missing else f"<p>{escape(block.text)}</p>"
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Links):
        items = "".join(f'<li><a href="{escape(href)}">{escape(text)}</a></li>' for text, href in block.items)
        return f"<p>{escape(block.caption)}</p><ul>{items}</ul>"
    if isinstance(block, Plot):
        return (f'<figure><img src="{_data_uri(block.png)}" alt="{escape(block.caption)}">'
                f"<figcaption>{escape(block.caption)}</figcaption></figure>")
    return _gallery(block)


def render_html(report: Report) -> str:
    sections = "\n".join(f"<section>\n<h2>{escape(s.title)}</h2>\n" + "\n".join(map(_block, s.blocks))
                         + "\n</section>" for s in report.sections)
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{escape(report.title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            f"<h1>{escape(report.title)}</h1>\n<p class=\"subtitle\">{escape(report.subtitle)}</p>\n"
            f"{sections}\n</body>\n</html>\n")
