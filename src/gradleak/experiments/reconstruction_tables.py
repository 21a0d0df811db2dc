"""Reconstruction tables as pure functions of benchmark records (the image grids are in
`experiments/figures.py`)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

COLUMNS = (
    "setting",
    "variant",
    "N",
    "PSNR dB, finite (mean ± std)",
    "PSNR inf (exact)",
    "SSIM (mean ± std)",
    "exact 8-bit",
    "not converged",
    "median s",
)


def mean_std(values: Sequence[float], digits: int) -> str:
    """Mean ± std over the finite ``values`` ("-": none). Where some are not finite (an exact
    reconstruction's PSNR is inf) the cell says over how many it ran, "(n = k)"; one finite
    value has no spread and is shown alone."""
    finite = np.array([v for v in values if math.isfinite(v)], dtype=float)
    if finite.size == 0:
        return "-"
    text = f"{finite.mean():.{digits}f}"
    if finite.size > 1:
        text += f" ± {finite.std():.{digits}f}"
    if finite.size < len(values):
        text += f" (n = {finite.size})"
    return text


def summarise_reconstruction(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (setting, variant), in first-seen order. PSNR is on de-normalised images
    clamped to [0, 1]; its mean ± std runs over the finite values only, and "PSNR inf (exact)"
    counts the trials left out (float image equal to the truth, PSNR inf); "exact 8-bit"
    counts trials whose 8-bit image equals the truth."""
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
                "PSNR dB, finite (mean ± std)": mean_std([r["psnr"] for r in trials], 2),
                "PSNR inf (exact)": sum(math.isinf(r["psnr"]) for r in trials),
                "SSIM (mean ± std)": mean_std([r["ssim"] for r in trials], 4),
                "exact 8-bit": sum(math.isinf(r["psnr_8bit"]) for r in trials),
                "not converged": sum(not r["converged"] for r in trials),
                "median s": f"{np.median([r['seconds'] for r in trials]):.3g}",
            }
        )
    return rows


def markdown(rows: list[dict[str, Any]], columns: Sequence[str] = COLUMNS) -> str:
    """The rows of `summarise_reconstruction` as a markdown table."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def csv(rows: list[dict[str, Any]], columns: Sequence[str] = COLUMNS) -> str:
    """The rows of `summarise_reconstruction` as CSV text (a header line, then one per row)."""
    lines = [",".join(columns)] + [",".join(str(row[c]) for c in columns) for row in rows]
    return "\n".join(lines) + "\n"
