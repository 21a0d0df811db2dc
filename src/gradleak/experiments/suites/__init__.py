"""Suite registry: the key in a config's ``suite =`` -> case type, trial function, report."""

from gradleak.experiments.suites import batch, identifiability, labels, landscape, reconstruction
from gradleak.experiments.suites.base import Record, Suite, TrialTask
from gradleak.registry import Registry

SUITES: Registry[Suite] = Registry("suite")
for _suite in (
    Suite(
        "labels",
        labels.LabelTrials,
        labels.run_trial,
        labels.report,
        "label recovery: Tables 1 and 2, noise appendix, unknown family",
    ),
    Suite(
        "reconstruction",
        reconstruction.ReconstructionTrials,
        reconstruction.run_trial,
        reconstruction.report,
        "image reconstruction: Table 3 and the FCN-4 comparison",
    ),
    Suite(
        "landscape",
        landscape.LandscapeTrials,
        landscape.run_trial,
        landscape.report,
        "loss-landscape figure: family residual against mu",
    ),
    Suite(
        "identifiability",
        identifiability.IdentifiabilityTrials,
        identifiability.run_trial,
        identifiability.report,
        "false accepts at the smallest class counts, on random float32 last layers",
    ),
    Suite(
        "batch",
        batch.BatchTrials,
        batch.run_trial,
        batch.report,
        "every sample's soft label and feature from one batch gradient, and label counts",
    ),
):
    SUITES.add(_suite.key, _suite)

#: Suite key -> its case type (what a config's cases are validated into).
CASE_TYPES = {key: suite.case_type for key, suite in SUITES.items()}

__all__ = ["CASE_TYPES", "SUITES", "Record", "Suite", "TrialTask"]
