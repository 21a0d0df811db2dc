"""Reconstruction tables and figures as pure functions of benchmark records."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

COLUMNS = (
    "setting",
    "variant",
    "N",
    "PSNR dB (mean ± std)",
    "SSIM (mean ± std)",
    "exact 8-bit",
    "not converged",
    "median s",
)


def _mean_std(values: Sequence[float], digits: int) -> str:
    finite = np.array([v for v in values if math.isfinite(v)])
    if finite.size == 0:
        return "inf" if values else "-"
    return f"{finite.mean():.{digits}f} ± {finite.std():.{digits}f}"


def summarise_reconstruction(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (setting, variant), in first-seen order. PSNR is on de-normalised images
    clamped to [0, 1]; "exact 8-bit" counts trials whose 8-bit image equals the truth."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault((record["case"], record["variant"]), []).append(record)
    rows = []
    for (case, variant), trials in groups.items():
        rows.append(
            {
                "setting": case,
                "variant": variant,
                "N": len(trials),
                "PSNR dB (mean ± std)": _mean_std([r["psnr"] for r in trials], 2),
                "SSIM (mean ± std)": _mean_std([r["ssim"] for r in trials], 4),
                "exact 8-bit": sum(math.isinf(r["psnr_8bit"]) for r in trials),
                "not converged": sum(not r["converged"] for r in trials),
                "median s": f"{np.median([r['seconds'] for r in trials]):.3g}",
            }
        )
    return rows


def markdown(rows: list[dict[str, Any]], columns: Sequence[str] = COLUMNS) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def save_grid(panels: Sequence[tuple[str, Tensor]], path: Path, *, title: str = "") -> Path:
    """Write a one-row PNG grid of images in [0, 1], each titled (truth first, then variants).

    Shapes: each panel (C, H, W) with C = 1 or 3.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(1, len(panels), figsize=(2.0 * len(panels), 2.4))
    for axis, (name, image) in zip(np.atleast_1d(axes), panels, strict=True):
        pixels = image.detach().double().clamp(0, 1).permute(1, 2, 0).numpy()
        axis.imshow(
            pixels[..., 0] if pixels.shape[-1] == 1 else pixels, cmap="gray", vmin=0, vmax=1
        )
        axis.set_title(name, fontsize=8)
        axis.axis("off")
    if title:
        figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    pyplot.close(figure)
    return path
