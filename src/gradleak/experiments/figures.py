"""Figures as pure functions of records (PNG, Agg backend: no screen needed).

Every figure is written atomically (`output_files.atomic_target`): a crash leaves the old
file or the new one, never a torn PNG.
"""

from __future__ import annotations

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


def accuracy_vs_noise(records: list[dict[str, Any]], path: Path) -> Path:
    """Recovery accuracy (converged and correct) against the relative noise scale, one line
    per (defense, method, client label family).

    The x axis is symlog, linear below the smallest positive scale, so zero noise sits at an
    honest 0 (not at an invented small scale); every curve has its own marker and line style
    so that coincident curves stay visible; the legend gives each curve's trials per point.
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
    for index, ((defense, method, family), by_scale) in enumerate(sorted(groups.items())):
        scales = sorted(by_scale)
        counts = sorted({len(by_scale[scale]) for scale in scales})
        marker, style = _STYLES[index % len(_STYLES)]
        axis.plot(
            scales,
            [np.mean(by_scale[scale]) for scale in scales],
            marker=marker,
            linestyle=style,
            markersize=7 - 1.2 * (index % 3),
            markerfacecolor="none",
            label=f"{defense}, {method}, {family} (N={'/'.join(map(str, counts))} per point)",
        )
    if positive:
        axis.set_xscale("symlog", linthresh=min(positive), linscale=0.5)
    axis.set_xlabel("noise scale (relative to each gradient tensor's RMS; 0 = no noise)")
    axis.set_ylabel("label accuracy")
    axis.set_ylim(-0.02, 1.02)
    axis.set_title("label recovery against gradient noise", fontsize=9)
    axis.legend(fontsize=6)
    figure.tight_layout()
    return _save(figure, path, dpi=120)


def landscape_figure(records: list[dict[str, Any]], path: Path, *, per_case: int = 1) -> Path:
    """Residual vs mu: per case, the full curve (symlog mu axis, true and found mu marked) and
    a zoom on the true mu. ``per_case`` trials are drawn for each case."""
    pyplot = _pyplot()
    chosen: list[dict[str, Any]] = []
    counts: dict[str, int] = defaultdict(int)
    for record in records:
        if counts[record["case"]] < per_case:
            chosen.append(record)
            counts[record["case"]] += 1
    figure, axes = pyplot.subplots(len(chosen), 2, figsize=(10, 2.8 * len(chosen)), squeeze=False)
    for (full, zoom), record in zip(axes, chosen, strict=True):
        full.plot(record["scales"], record["residuals"], linewidth=0.8)
        full.set_xscale("symlog", linthresh=1.0)
        full.set_yscale("log")
        for scale, style, name in (
            (record["true_scale"], "--", "true mu"),
            (record["found_scale"], ":", "found mu"),
        ):
            full.axvline(scale, linestyle=style, color="k", linewidth=0.8, label=name)
        for minimum in record["local_minima"]:
            full.plot(minimum["scale"], minimum["residual"], "rv", markersize=4)
        full.set_title(f"{record['case']}, trial {record['trial']}", fontsize=8)
        full.set_xlabel("mu")
        full.set_ylabel("family residual")
        full.legend(fontsize=7)
        zoom.plot(record["zoom_scales"], record["zoom_residuals"], linewidth=0.8)
        zoom.axvline(record["true_scale"], linestyle="--", color="k", linewidth=0.8)
        zoom.set_yscale("log")
        zoom.set_title("zoom: true mu +- 5%", fontsize=8)
        zoom.set_xlabel("mu")
    figure.tight_layout()
    return _save(figure, path, dpi=110)


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


def image_grid(records: list[dict[str, Any]], path: Path) -> Path | None:
    """Truth and each variant's reconstruction for every record that carries images
    (``truth_png``/``image_png``): one row per (setting, trial), PSNR in the titles."""
    rows: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        if record.get("image_png"):
            rows[(record["case"], record["trial"])].append(record)
    if not rows:
        return None
    pyplot = _pyplot()
    width = 1 + max(len(group) for group in rows.values())
    figure, axes = pyplot.subplots(
        len(rows), width, figsize=(1.9 * width, 2.1 * len(rows)), squeeze=False
    )
    cases = list(dict.fromkeys(case for case, _ in rows))
    ordered = sorted(rows.items(), key=lambda item: (cases.index(item[0][0]), item[0][1]))
    for axis_row, ((_, trial), group) in zip(axes, ordered, strict=True):
        panels = [(f"truth, trial {trial}\n{group[0]['label_family']}", group[0]["truth_png"])]
        panels += [(f"{r['variant']}\n{r['psnr']:.1f} dB", r["image_png"]) for r in group]
        for axis in axis_row:
            axis.axis("off")
        for axis, (title, text) in zip(axis_row, panels, strict=False):
            axis.imshow(_decode_png(text), cmap="gray", vmin=0, vmax=255)
            axis.set_title(title, fontsize=6)
    figure.tight_layout()
    return _save(figure, path, dpi=120)


def save_grid(panels: Sequence[tuple[str, Tensor]], path: Path, *, title: str = "") -> Path:
    """Write a PNG grid of images in [0, 1]: one titled column per panel (truth first, then
    variants); a batch panel fills one row per sample (its columns matched by assignment).

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
            if column == 0 and rows > 1:
                axis.set_ylabel(f"sample {row}", fontsize=8)
    if title:
        figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    return _save(figure, path, dpi=120)
