"""Suite registry: the key in a config's ``suite =`` -> case type, trial function, report."""

from gradleak.experiments.suites import identifiability, labels, landscape, reconstruction
from gradleak.experiments.suites.base import Record, Suite, TrialTask

SUITES: dict[str, Suite] = {
    "labels": Suite(
        "labels",
        labels.LabelTrials,
        labels.run_trial,
        labels.report,
        "label recovery: Tables 1 and 2, noise appendix, unknown family",
    ),
    "reconstruction": Suite(
        "reconstruction",
        reconstruction.ReconstructionTrials,
        reconstruction.run_trial,
        reconstruction.report,
        "image reconstruction: Table 3 and the FCN-4 comparison",
    ),
    "landscape": Suite(
        "landscape",
        landscape.LandscapeTrials,
        landscape.run_trial,
        landscape.report,
        "loss-landscape figure: family residual against mu",
    ),
    "identifiability": Suite(
        "identifiability",
        identifiability.IdentifiabilityTrials,
        identifiability.run_trial,
        identifiability.report,
        "false accepts at the smallest class counts, on random float32 last layers",
    ),
}

CASE_TYPES = {name: suite.case_type for name, suite in SUITES.items()}

__all__ = ["CASE_TYPES", "SUITES", "Record", "Suite", "TrialTask"]
