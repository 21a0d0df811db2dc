"""Figures as pure functions of records (PNG, Agg backend: no screen needed).

Every figure is written atomically (`output_files.atomic_target`): a crash leaves the old
file or the new one, never a torn PNG.
"""

from __future__ import annotations

import math
import textwrap
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from gradleak.output_files import atomic_target


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    return pyplot


def _save(figure: Any, path: Path, *, dpi: int) -> Path:
    """Write ``figure`` to ``path`` as PNG, atomically, and close it."""
    try:
        with atomic_target(path) as partial:
            figure.savefig(partial, dpi=dpi, format="png")
    finally:
        _pyplot().close(figure)
    return Path(path)


#: Marker and line style per curve, so that curves lying on top of each other stay visible.
_STYLES = (("o", "-"), ("s", "--"), ("^", ":"), ("D", "-."), ("v", "-"), ("x", "--"))


def noise_scale(record: dict[str, Any]) -> float:
    """The noise scale of a label record's defense (0 without one)."""
    return float(record["defense_params"].get("noise_scale", 0.0))


def _counts(values: Sequence[int]) -> str:
    """Trial counts as "N = 5" or, when they differ, "N = 2-5"."""
    low, high = min(values), max(values)
    return f"N = {low}" if low == high else f"N = {low}-{high}"


def accuracy_vs_noise(records: list[dict[str, Any]], path: Path) -> Path:
    """Recovery accuracy (converged and correct) against the relative noise scale, one line
    per (defense, method, client label family).

    The x axis is symlog, linear below the smallest positive scale, so zero noise sits at an
    honest 0 (not at an invented small scale). Coincident curves stay visible: each has its
    own line style and a hollow marker of its own shape and size (coincident markers nest
    inside each other), and is slightly transparent; the accuracies are drawn as measured, never
    shifted. Trials per point (N) are in the title and legend.
    """
    pyplot = _pyplot()
    groups: dict[tuple[str, str, str], dict[float, list[bool]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for record in records:
        key = (
            record["defense"] or "none",
            f"{record['method']} ({record['scale']} scale)",
            record["label_family"],
        )
        groups[key][noise_scale(record)].append(record["converged"] and record["correct"])
    positive = [noise_scale(r) for r in records if noise_scale(r) > 0]
    figure, axis = pyplot.subplots(figsize=(6.0, 3.8))
    every_count = []
    for index, ((defense, method, family), by_scale) in enumerate(sorted(groups.items())):
        scales = sorted(by_scale)
        counts = [len(by_scale[scale]) for scale in scales]
        every_count += counts
        marker, style = _STYLES[index % len(_STYLES)]
        axis.plot(
            scales,
            [np.mean(by_scale[scale]) for scale in scales],
            marker=marker,
            linestyle=style,
            markersize=9 - 1.5 * (index % 4),
            markerfacecolor="none",
            alpha=0.8,
            label=f"{defense}, {method}, {family} ({_counts(counts)} per point)",
        )
    if positive:
        axis.set_xscale("symlog", linthresh=min(positive), linscale=0.5)
    axis.set_xlabel("noise scale (relative to each gradient tensor's RMS; 0 = no noise)")
    axis.set_ylabel("label accuracy (converged and correct)")
    axis.set_ylim(-0.05, 1.05)
    axis.set_title(
        f"label recovery against gradient noise (trials per point: {_counts(every_count)})",
        fontsize=9,
    )
    axis.legend(fontsize=6)
    figure.tight_layout()
    return _save(figure, path, dpi=120)


#: The mu ticks of the landscape's symlog axis: every second decade, so labels never touch.
_MU_TICKS = (-1e4, -1e2, -1.0, 0.0, 1.0, 1e2, 1e4)


def _landscape_legend(axis: Any, trials: Sequence[dict[str, Any]], colors: Sequence[Any]) -> None:
    """One entry per trial's colour and one per marker kind (true mu, found mu, local minima)."""
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color=color, linewidth=1.0, label=f"trial {record['trial']}")
        for record, color in zip(trials, colors, strict=True)
    ]
    handles += [
        Line2D([], [], color="k", linestyle="--", linewidth=0.8, label="true mu"),
        Line2D(
            [], [], color="k", marker="o", markerfacecolor="none", linestyle="", label="found mu"
        ),
        Line2D([], [], color="r", marker="v", linestyle="", markersize=4, label="local minimum"),
    ]
    axis.legend(handles=handles, fontsize=6, loc="best", ncol=2)


def landscape_figure(
    records: list[dict[str, Any]], path: Path, *, per_case: int | None = None
) -> Path:
    """Residual vs mu, one row per case with all its trials overlaid (``per_case``: at most
    that many per case; None: all): the full curve on a symlog mu axis, and a zoom on each
    trial's true mu with mu relative to it, so the trials share one axis.

    True mu is a dashed line in the trial's colour, found mu a hollow circle drawn on top (so
    it shows even where it equals the true mu), local minima red triangles.
    """
    pyplot = _pyplot()
    cases: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        if per_case is None or len(cases[record["case"]]) < per_case:
            cases[record["case"]].append(record)
    figure, axes = pyplot.subplots(len(cases), 2, figsize=(10, 3.0 * len(cases)), squeeze=False)
    palette = pyplot.rcParams["axes.prop_cycle"].by_key()["color"]
    for (full, zoom), (case, trials) in zip(axes, cases.items(), strict=True):
        colors = [palette[index % len(palette)] for index in range(len(trials))]
        for record, color in zip(trials, colors, strict=True):
            scales, residuals = np.asarray(record["scales"]), np.asarray(record["residuals"])
            true, found = record["true_scale"], record["found_scale"]
            full.plot(scales, residuals, linewidth=0.8, color=color)
            full.axvline(true, linestyle="--", color=color, linewidth=0.8)
            full.plot(found, np.interp(found, scales, residuals), "o", **_hollow(color))
            for minimum in record["local_minima"]:
                full.plot(minimum["scale"], minimum["residual"], "rv", markersize=4, zorder=4)
            relative = 100 * (np.asarray(record["zoom_scales"]) / true - 1)
            zoom_residuals = np.asarray(record["zoom_residuals"])
            zoom.plot(relative, zoom_residuals, linewidth=0.8, color=color)
            offset = 100 * (found / true - 1)
            if relative.min() <= offset <= relative.max():
                zoom.plot(
                    offset, np.interp(offset, relative, zoom_residuals), "o", **_hollow(color)
                )
        full.set_xscale("symlog", linthresh=1.0)
        full.set_xticks(_MU_TICKS)
        full.xaxis.set_minor_locator(pyplot.NullLocator())
        full.set_yscale("log")
        shown = ", ".join(str(record["trial"]) for record in trials)
        full.set_title(f"{case}: trials {shown} (N = {len(trials)})", fontsize=8)
        full.set_xlabel("mu (symlog: linear within ±1)")
        full.set_ylabel("family residual")
        _landscape_legend(full, trials, colors)
        zoom.axvline(0.0, linestyle="--", color="k", linewidth=0.8)
        zoom.set_yscale("log")
        zoom.set_title("zoom: true mu ± 5% (found mu marked where it lies inside)", fontsize=8)
        zoom.set_xlabel("mu / true mu - 1 (%)")
        zoom.set_ylabel("family residual")
    figure.tight_layout()
    return _save(figure, path, dpi=110)


def _hollow(color: Any) -> dict[str, Any]:
    """Style of the found-mu marker: a large hollow circle above the curves and lines."""
    return {
        "markersize": 9,
        "markerfacecolor": "none",
        "markeredgecolor": color,
        "markeredgewidth": 1.5,
        "zorder": 5,
    }


def encode_png(image: Any) -> str:
    """An image in [0, 1] as an 8-bit PNG in base64 text, to keep it inside a JSON record.

    Shapes: (C, H, W) tensor with C = 1 or 3.
    """
    import base64
    import io

    from PIL import Image

    pixels = (image.detach().double().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _decode_png(text: str) -> np.ndarray:
    import base64
    import io

    from PIL import Image

    with Image.open(io.BytesIO(base64.b64decode(text))) as image:
        return np.asarray(image)


def scores_text(psnr: float, ssim: float) -> str:
    """A reconstruction's scores under its image: "PSNR 21.3 dB / SSIM 0.812" (inf: exact)."""
    shown = "inf (exact)" if math.isinf(psnr) else f"{psnr:.1f} dB"
    return f"PSNR {shown} / SSIM {ssim:.3f}"


def _distinct(records: Sequence[dict[str, Any]], key: str) -> str:
    return ", ".join(dict.fromkeys(str(r[key]) for r in records if r.get(key))) or "-"


def _row_label(record: dict[str, Any]) -> str:
    """Model, data, label family and trial of a grid row (the setting's name for records that
    predate the ``model`` field)."""
    if not record.get("model"):
        return f"{textwrap.fill(record['case'], 22)}\ntrial {record['trial']}"
    return (
        f"{record['model']}\n{record['dataset']}\n{record['label_family']}, trial {record['trial']}"
    )


def image_grid(records: list[dict[str, Any]], path: Path) -> Path | None:
    """Truth and each variant's reconstruction for every record that carries images
    (``truth_png``/``image_png``): one row per (setting, trial), labelled with its model, data
    and label family; each panel titled with its variant and budget, PSNR / SSIM under it;
    the figure titled with the models, data, families and budgets it shows."""
    rows: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        if record.get("image_png"):
            rows[(record["case"], record["trial"])].append(record)
    if not rows:
        return None
    pyplot = _pyplot()
    width = 1 + max(len(group) for group in rows.values())
    figure, axes = pyplot.subplots(
        len(rows), width, figsize=(2.0 * width + 0.6, 0.8 + 2.4 * len(rows)), squeeze=False
    )
    cases = list(dict.fromkeys(case for case, _ in rows))
    ordered = sorted(rows.items(), key=lambda item: (cases.index(item[0][0]), item[0][1]))
    for axis_row, (_, group) in zip(axes, ordered, strict=True):
        panels = [("truth", "", group[0]["truth_png"])]
        panels += [
            (
                f"{r['variant']}\n{r.get('budget', '')}".strip(),
                scores_text(r["psnr"], r["ssim"]),
                r["image_png"],
            )
            for r in group
        ]
        for axis in axis_row[len(panels) :]:
            axis.axis("off")
        for axis, (title, scores, text) in zip(axis_row, panels, strict=False):
            axis.imshow(_decode_png(text), cmap="gray", vmin=0, vmax=255)
            axis.set_title(title, fontsize=6)
            axis.set_xlabel(scores, fontsize=6)
            axis.set_xticks([])
            axis.set_yticks([])
        axis_row[0].set_ylabel(_row_label(group[0]), fontsize=7)
    shown = [record for group in rows.values() for record in group]
    figure.suptitle(
        f"reconstructions: model {_distinct(shown, 'model')}; data {_distinct(shown, 'dataset')}; "
        f"label family {_distinct(shown, 'label_family')}\n"
        f"budget {textwrap.shorten(_distinct(shown, 'budget'), 150)}",
        fontsize=8,
    )
    figure.tight_layout()
    return _save(figure, path, dpi=120)


def save_grid(
    panels: Sequence[tuple[str, Tensor]], path: Path, *, title: str = "", row_label: str = ""
) -> Path:
    """Write a PNG grid of images in [0, 1]: one titled column per panel (truth first, then
    variants); a batch panel fills one row per sample (its columns matched by assignment).
    ``row_label`` (e.g. the model) names every row, before its sample number in a batch.

    Shapes: each panel (C, H, W), or (B, C, H, W) for a batch (the same B for all), C = 1 or 3.
    """
    pyplot = _pyplot()
    columns = [image if image.dim() == 4 else image.unsqueeze(0) for _, image in panels]
    rows = columns[0].shape[0]
    figure, axes = pyplot.subplots(
        rows, len(panels), figsize=(2.0 * len(panels), 0.3 + 2.1 * rows), squeeze=False
    )
    for column, ((name, _), images) in enumerate(zip(panels, columns, strict=True)):
        for row in range(rows):
            axis = axes[row, column]
            pixels = images[row].detach().double().clamp(0, 1).permute(1, 2, 0).numpy()
            axis.imshow(
                pixels[..., 0] if pixels.shape[-1] == 1 else pixels, cmap="gray", vmin=0, vmax=1
            )
            if row == 0:
                axis.set_title(name, fontsize=8)
            axis.set_xticks([])
            axis.set_yticks([])
            if column == 0:
                sample = f"sample {row}" if rows > 1 else ""
                axis.set_ylabel("\n".join(filter(None, (row_label, sample))), fontsize=8)
    if title:
        figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    return _save(figure, path, dpi=120)
