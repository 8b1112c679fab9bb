"""The report's figures as PNG bytes, drawn with matplotlib's Agg canvas (no pyplot, so no display
and no global figure state)."""

from __future__ import annotations

import io
import math
from typing import Callable, Iterable, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from physadv.results import PHOTO, Case, ResultRow

DPI = 150
PANEL = (2.6, 2.1)  # inches per small panel
PANELS_PER_LINE = 3
LINESTYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P")


def _value(row: ResultRow, field: str) -> float:
    value = getattr(row, field)
    return math.nan if value is None else float(value)


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    # No "Software" stamp: the same rows give the same bytes, whatever the matplotlib version.
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _first_seen(values: Iterable) -> list:
    return list(dict.fromkeys(values))


def _colours(names: Sequence[str]) -> dict[str, str]:
    return {name: f"C{i % 10}" for i, name in enumerate(names)}


def _series(rows: list[ResultRow], group: Callable[[ResultRow], object], x: str,
            y: str) -> dict[object, tuple[list, list]]:
    """Group → (xs, ys) of fields ``x`` and ``y``, sorted by x, skipping rows without an x."""
    series: dict[object, list[tuple[float, float]]] = {}
    for row in rows:
        if getattr(row, x) is not None:
            series.setdefault(group(row), []).append((_value(row, x), _value(row, y)))
    return {key: tuple(map(list, zip(*sorted(points)))) for key, points in series.items()}


def _style(axes, xlabel: str, ylabel: str, title: str) -> None:
    axes.set_title(title, fontsize=9)
    axes.set_xlabel(xlabel, fontsize=8)
    axes.set_ylabel(ylabel, fontsize=8)
    axes.set_ylim(-0.03, 1.03)
    axes.tick_params(labelsize=7)
    axes.grid(alpha=0.3)


def destruction_vs_strength(rows: list[ResultRow], units: dict[str, str], case: Case) -> bytes | None:
    """Top-1 destruction rate of ``case`` against strength: one panel per transformation, one line per
    (method, ε). ``None`` without rows of that case."""
    rows = [r for r in rows if r.case == case]
    if not rows:
        return None
    transforms = _first_seen(r.transform for r in rows)
    colours = _colours(_first_seen(r.method for r in rows))
    epsilons = sorted({r.eps for r in rows})
    columns = min(len(transforms), PANELS_PER_LINE)
    lines = -(-len(transforms) // columns)
    figure = Figure(figsize=(PANEL[0] * columns, PANEL[1] * lines + 0.6), layout="constrained")
    grid = figure.subplots(lines, columns, squeeze=False, sharey=True)
    for index, (axes, transform) in enumerate(zip(grid.flat, transforms)):
        selected = [r for r in rows if r.transform == transform]
        for (method, eps), (xs, ys) in _series(selected, lambda r: r.attack, "strength", "destruction_top1").items():
            style = epsilons.index(eps)
            axes.plot(xs, ys, color=colours[method], linestyle=LINESTYLES[style % len(LINESTYLES)],
                      marker=MARKERS[style % len(MARKERS)], markersize=3, linewidth=1.2, label=f"{method} ε={eps:g}")
        _style(axes, units.get(transform, "strength"), "" if index % columns else "destruction rate (top-1)",
               transform)
    for axes in list(grid.flat)[len(transforms):]:
        axes.set_visible(False)
    # A panel may lack some (method, ε) lines, so the legend collects those of all panels.
    legend: dict[str, object] = {}
    for axes in grid.flat:
        for handle, label in zip(*axes.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    figure.suptitle(f"{case} case", fontsize=10)
    # The legend fills column by column, so with one row per ε each column holds one method.
    figure.legend(list(legend.values()), list(legend), loc="outside lower center",
                  ncols=-(-len(legend) // len(epsilons)), fontsize=7, frameon=False)
    return _png(figure)


def accuracy_vs_eps(rows: list[ResultRow]) -> bytes | None:
    """Top-1 and top-5 accuracy of the adversarial images against ε per method (average case), with
    the clean accuracy and, for rows of the photo channel, the accuracy on the photos. ``None``
    without average-case rows."""
    rows = [r for r in rows if r.case == Case.AVERAGE]
    if not rows:
        return None
    methods = _first_seen(r.method for r in rows)
    colours = _colours(methods)
    digital = {r.attack: r for r in rows if r.transform != PHOTO}
    photo = [r for r in rows if r.transform == PHOTO]
    figure = Figure(figsize=(PANEL[0] * 2 + 0.4, PANEL[1] + 0.7), layout="constrained")
    for axes, k in zip(figure.subplots(1, 2, squeeze=False)[0], (1, 5)):
        clean = [_value(r, f"top{k}_clean") for r in digital.values()]
        clean = [c for c in clean if not math.isnan(c)]
        if clean:
            axes.axhline(sum(clean) / len(clean), color="0.4", linestyle=":", linewidth=1, label="clean")
        for method, (xs, ys) in _series(list(digital.values()), lambda r: r.method, "eps", f"top{k}_adv").items():
            axes.plot(xs, ys, color=colours[method], marker="o", markersize=3, linewidth=1.2,
                      label=f"{method} (digital)")
        for method, (xs, ys) in _series(photo, lambda r: r.method, "eps", f"top{k}_transformed").items():
            axes.plot(xs, ys, color=colours[method], marker="s", markersize=4, linewidth=1.2, linestyle="--",
                      label=f"{method} (photo)")
        _style(axes, "ε (0–255 units)", f"top-{k} accuracy", f"top-{k} accuracy of adversarial images")
    figure.legend(*figure.axes[-1].get_legend_handles_labels(), loc="outside lower center", ncols=4,
                  fontsize=7, frameon=False)
    return _png(figure)


def adversariality_vs_eps(rows: list[ResultRow], eot_methods: set[str]) -> bytes | None:
    """Adversariality against ε per method, ``eot_methods`` solid and plain ones dashed (average-case rows
    with an ``adversariality``). ``None`` when no row has one."""
    rows = [r for r in rows if r.case == Case.AVERAGE and r.adversariality is not None]
    if not rows:
        return None
    colours = _colours(_first_seen(r.method for r in rows))
    per_attack = {r.attack: r for r in rows}
    figure = Figure(figsize=(PANEL[0] + 1.6, PANEL[1] + 0.3), layout="constrained")
    axes = figure.subplots()
    for method, (xs, ys) in _series(list(per_attack.values()), lambda r: r.method, "eps", "adversariality").items():
        axes.plot(xs, ys, color=colours[method], marker="o", markersize=3, linewidth=1.4,
                  linestyle="-" if method in eot_methods else "--",
                  label=f"{method} ({'EOT' if method in eot_methods else 'plain'})")
    _style(axes, "ε (0–255 units)", "adversariality", "adversariality under held-out transformations")
    axes.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    return _png(figure)
