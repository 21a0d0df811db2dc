"""Tables and figures that do not mislead: exact PSNR counted apart, rows in config order,
N on the figures, every trial and marker drawn and named (asserted on the matplotlib Figure,
not on pixels)."""

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from gradleak.cli.report import in_config_order, write_report
from gradleak.experiments import figures
from gradleak.experiments.reconstruction_tables import (
    COLUMNS,
    markdown,
    mean_std,
    summarise_reconstruction,
)
from gradleak.experiments.variants import VARIANTS, describe_budget
from gradleak.reconstruction import MatchingSettings

FINITE_PSNR = "PSNR dB, finite (mean ± std)"
EXACT_PSNR = "PSNR inf (exact)"


@pytest.fixture
def drawn(monkeypatch):
    """The figures the figure functions would save, kept open for inspection."""
    kept = []

    def keep(figure, path, *, dpi):
        kept.append(figure)
        return Path(path)

    monkeypatch.setattr(figures, "_save", keep)
    yield kept
    figures._pyplot().close("all")


def _reconstruction_record(case, variant, trial, psnr, ssim=0.5, **extra):
    return {
        "case": case,
        "variant": variant,
        "trial": trial,
        "psnr": psnr,
        "psnr_8bit": psnr,
        "ssim": ssim,
        "converged": True,
        "seconds": 0.1,
        "label_family": "mixup",
    } | extra


def test_mean_std_runs_over_finite_values_and_says_how_many():
    assert mean_std([1.0, 3.0], 2) == "2.00 ± 1.00"
    assert mean_std([math.inf, 154.43], 2) == "154.43 (n = 1)"
    assert mean_std([math.inf, 10.0, 14.0], 1) == "12.0 ± 2.0 (n = 2)"
    assert mean_std([9.84], 2) == "9.84"
    assert mean_std([math.inf, math.inf], 2) == "-"
    assert mean_std([], 2) == "-"


def test_reconstruction_table_counts_exact_psnr_apart_from_the_finite_mean():
    records = [
        _reconstruction_record("fcn4", "analytic-fc", 0, math.inf, 1.0),
        _reconstruction_record("fcn4", "analytic-fc", 1, 154.43, 1.0),
        _reconstruction_record("fcn4", "dlg", 0, 10.0),
        _reconstruction_record("fcn4", "dlg", 1, 12.0),
    ]
    analytic, dlg = summarise_reconstruction(records)
    assert analytic["N"] == 2 and analytic[EXACT_PSNR] == 1
    assert analytic[FINITE_PSNR] == "154.43 (n = 1)"
    assert dlg[EXACT_PSNR] == 0 and dlg[FINITE_PSNR] == "11.00 ± 1.00"
    table = markdown([analytic, dlg])
    header, _, first, _ = table.splitlines()
    assert FINITE_PSNR in header and EXACT_PSNR in header
    cells = [cell.strip() for cell in first.strip("|").split("|")]
    assert cells[COLUMNS.index(EXACT_PSNR)] == "1"
    assert cells[COLUMNS.index(FINITE_PSNR)] == "154.43 (n = 1)"
    assert "154.43 ± 0.00" not in table  # no spread invented from one finite value


NOISE_SCALES = (0.0, 1e-7, 1e-6, 1e-5)


def _noise_records(trials: int = 2) -> tuple[list[str], list[dict]]:
    """Label records of a noise config (gaussian then laplace, each scale, two families)."""
    names, records = [], []
    for defense in ("gaussian-noise", "laplace-noise"):
        for scale in NOISE_SCALES:
            for family in ("smoothing", "mixup"):
                name = f"lenet (uniform) embedded-cifar10 C=10 {family} + {defense} {scale:g}"
                names.append(name)
                records += [
                    {
                        "case": name,
                        "method": "fast-search",
                        "scale": "known",
                        "trial": trial,
                        "label_family": family,
                        "defense": defense,
                        "defense_params": {"noise_scale": scale},
                        "converged": True,
                        "correct": scale < 1e-5,
                        "l1": 1e-7,
                        "reason": "",
                        "seconds": 1e-3,
                        "trial_records": 1,
                    }
                    for trial in range(trials)
                ]
    return names, records


def test_noise_table_rows_follow_the_config_when_records_arrive_shuffled(tmp_path):
    names, records = _noise_records()
    random.Random(0).shuffle(records)
    assert [r["case"] for r in records][: len(names)] != names  # really shuffled
    manifest = {"config": {"suite": "labels", "case_names": names}, "runs": []}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    report = write_report(tmp_path)
    rows = (tmp_path / "table.md").read_text().splitlines()[2:]
    assert [row.split(" | ")[0].lstrip("| ") for row in rows] == names
    assert tmp_path / "accuracy-vs-noise.png" in report.written


def test_cases_a_manifest_does_not_name_stay_whole_in_first_seen_order():
    records = [{"case": c, "trial": t} for c, t in (("B", 0), ("A", 0), ("A", 1), ("B", 1))]
    ordered = in_config_order(records, {"config": {}})
    assert [(r["case"], r["trial"]) for r in ordered] == [("B", 0), ("B", 1), ("A", 0), ("A", 1)]
    named = in_config_order(records, {"config": {"case_names": ["A"]}})
    assert [(r["case"], r["trial"]) for r in named] == [("A", 0), ("A", 1), ("B", 0), ("B", 1)]


def test_noise_figure_draws_zero_at_zero_keeps_coincident_curves_apart_and_shows_n(drawn, tmp_path):
    _, records = _noise_records(trials=3)
    figures.accuracy_vs_noise(records, tmp_path / "noise.png")
    (figure,) = drawn
    (axis,) = figure.axes
    assert "N = 3" in axis.get_title()
    assert axis.get_xscale() == "symlog"
    figure.canvas.draw()
    labels = [label.get_text() for label in axis.get_xticklabels()]
    assert any(text.replace("$\\mathdefault{", "").startswith("0") for text in labels)
    assert not any("10^{-8}" in text for text in labels)
    lines = axis.get_lines()
    assert len(lines) == 4
    assert len({(line.get_marker(), line.get_linestyle()) for line in lines}) == 4
    # Every curve has the same accuracies: drawn as measured (never shifted), each visible
    # through the others as a hollow marker of its own size.
    assert len({tuple(np.round(line.get_ydata(), 12)) for line in lines}) == 1
    assert len({line.get_markersize() for line in lines}) == 4
    assert all(line.get_markerfacecolor() == "none" for line in lines)
    assert all(line.get_alpha() < 1 for line in lines)
    assert all("N = 3 per point" in text.get_text() for text in axis.get_legend().get_texts())


def _landscape_record(case: str, trial: int, true: float, found: float) -> dict:
    magnitudes = np.logspace(0, 4, 50)
    scales = np.concatenate([-magnitudes[::-1], magnitudes])
    zoom = true * (1 + np.linspace(-0.05, 0.05, 21))
    return {
        "case": case,
        "trial": trial,
        "true_scale": true,
        "found_scale": found,
        "scales": scales.tolist(),
        "residuals": (np.abs(scales - true) + 1e-6).tolist(),
        "zoom_scales": zoom.tolist(),
        "zoom_residuals": (np.abs(zoom - true) + 1e-9).tolist(),
        "local_minima": [{"scale": true, "residual": 1e-3}],
    }


def test_landscape_draws_every_trial_found_mu_on_top_and_names_every_marker(drawn, tmp_path):
    records = [_landscape_record("case a", t, -1.5 - t, -1.5 - t) for t in range(3)]
    records += [_landscape_record("case b", t, -2.0, -2.0) for t in range(3)]
    figures.landscape_figure(records, tmp_path / "landscape.png")
    (figure,) = drawn
    full_a, zoom_a, full_b, zoom_b = figure.axes
    assert "trials 0, 1, 2 (N = 3)" in full_a.get_title()
    legend = [text.get_text() for text in full_a.get_legend().get_texts()]
    assert {"trial 0", "trial 1", "trial 2", "true mu", "found mu", "local minimum"} <= set(legend)
    found = [line for line in full_a.get_lines() if line.get_marker() == "o"]
    assert len(found) == 3
    assert all(line.get_markerfacecolor() == "none" and line.get_zorder() > 2 for line in found)
    curves = [line for line in zoom_a.get_lines() if len(line.get_xdata()) > 2]
    assert len(curves) == 3  # one zoom curve per trial, on a shared relative axis
    assert zoom_a.get_ylabel() == zoom_b.get_ylabel() == "family residual"
    assert list(full_b.get_xticks()) == list(figures._MU_TICKS)


def test_landscape_per_case_limits_the_trials_and_says_which(drawn, tmp_path):
    records = [_landscape_record("case a", t, -1.5, -1.5) for t in range(3)]
    figures.landscape_figure(records, tmp_path / "landscape.png", per_case=2)
    assert "trials 0, 1 (N = 2)" in drawn[0].axes[0].get_title()


def _png() -> str:
    return figures.encode_png(torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(0)))


def test_image_grid_titles_model_data_family_budget_and_scores_every_panel(drawn, tmp_path):
    image = _png()
    common = {"truth_png": image, "image_png": image, "dataset": "embedded-imagenet"}
    records = [
        _reconstruction_record(
            "fcn4 case", "analytic-fc", 0, math.inf, 1.0, model="fcn4", budget="analytic, no steps"
        )
        | common,
        _reconstruction_record("fcn4 case", "dlg", 0, 10.8, 0.021, model="fcn4", budget="2 L-BFGS")
        | common,
        _reconstruction_record(
            "lenet case", "ours", 0, 9.9, 0.018, model="lenet", budget="3 Adam steps x 1 restart"
        )
        | common,
    ]
    figures.image_grid(records, tmp_path / "grid.png")
    (figure,) = drawn
    title = figure._suptitle.get_text()
    for word in ("fcn4", "lenet", "embedded-imagenet", "mixup", "2 L-BFGS", "3 Adam steps"):
        assert word in title
    rows = np.asarray(figure.axes).reshape(2, 3)
    assert rows[0][0].get_ylabel().startswith("fcn4") and rows[1][0].get_ylabel().startswith(
        "lenet"
    )
    assert rows[0][1].get_xlabel() == "PSNR inf (exact) / SSIM 1.000"
    assert rows[0][2].get_xlabel() == "PSNR 10.8 dB / SSIM 0.021"
    assert rows[0][2].get_title() == "dlg\n2 L-BFGS"


def test_save_grid_names_the_model_on_every_row(drawn, tmp_path):
    panels = [("truth", torch.rand(2, 3, 8, 8)), ("ours", torch.rand(2, 3, 8, 8))]
    figures.save_grid(panels, tmp_path / "grid.png", title="lenet", row_label="lenet")
    (figure,) = drawn
    first_column = figure.axes[0::2]
    assert [axis.get_ylabel() for axis in first_column] == ["lenet\nsample 0", "lenet\nsample 1"]


def test_every_variant_budget_is_described():
    settings = MatchingSettings(iterations=4800, restarts=10)
    words = {name: describe_budget(name, settings, dlg_iterations=300) for name in VARIANTS}
    assert words["ours"] == "4800 Adam steps x 10 restarts"
    assert words["dlg"] == "300 L-BFGS steps"
    assert words["analytic-fc"] == "analytic, no steps"
    one = MatchingSettings(iterations=3, restarts=1)
    assert describe_budget("oracle-soft", one) == "3 Adam steps x 1 restart"
