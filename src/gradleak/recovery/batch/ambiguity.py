"""Is a root pinned? The flattest direction of its residual, followed until the residual leaves
a band around its noise, must not move its label.

A root whose label moves by more than PROBE_L1 (l1) at a point where the residual is still
within AMBIGUITY_FACTOR x its noise is not pinned by the gradient (a saturated softmax, or two
samples of one label in a nearly linear one): it is refused as ambiguous. At the noise itself
the label then moves by about PROBE_L1 / AMBIGUITY_FACTOR = 3e-4, 30x below the 1e-2 at which
the benchmarks call a label recovered. The step comes from the Jacobian's smallest singular
value and is halved until the residual actually evaluated there is inside the band: curvature
the linear model does not see can pin a root. The peel probes each root alone; the joint fit
probes all atoms at once (a weak atom is pinned by the gradient it must explain as well).

Two samples can also be re-mixed: affine combinations of their features, weights and labels
stay in the family when the two labels together use no more classes than the family frees
(one for hard and smoothing: the same target; two for mixup and auto: any two hard labels,
or mixup partners), and where the softmax is linear between the two features the re-mixed
pair explains the gradient as well. Only the softmax's curvature between them pins the split
(`remix_reason`). A default-initialised sigmoid LeNet (nearly collinear features, logit
spread 0.3) accepted such re-mixed pairs as exact roots in 10 of 80 batches of 4 (mixup with a
bias, hard without), and in 1 of 60 a 3-cycle mixup at lam = 0.985 as three hard labels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from gradleak.families import FAMILIES
from gradleak.recovery.batch.roots import softmax
from gradleak.recovery.batch.sample import EXACT, LABEL_TOL, Sample

PROBE_L1 = 3e-3
#: How far above the root's noise the probe looks.
AMBIGUITY_FACTOR = 10.0
#: Slack on that band for the residual evaluated at the probe point, and the step halvings.
AMBIGUITY_BAND = 1.5
AMBIGUITY_HALVINGS = 40


def moves_label(
    point: np.ndarray,
    jacobian: np.ndarray,
    evaluate: Callable[[np.ndarray], tuple[float, np.ndarray]],
    noise: float,
) -> bool:
    """Whether the label(s) move by more than PROBE_L1 along the flattest direction of the
    residual at ``point`` before the residual leaves AMBIGUITY_BAND x AMBIGUITY_FACTOR x
    ``noise``. ``evaluate(point)`` gives the residual's norm and the label(s) (C,) or (k, C)
    (the largest l1 move over the k labels counts). Shapes: ``jacobian`` (residuals, n)."""
    _u, singular, right_t = np.linalg.svd(np.nan_to_num(jacobian), full_matrices=False)
    if singular.size == 0:
        return False
    smallest = float(singular[-1])
    step = AMBIGUITY_FACTOR * noise / smallest if smallest > 0 else np.inf
    if not np.isfinite(step):
        return True
    _residual, label = evaluate(point)
    band = AMBIGUITY_BAND * AMBIGUITY_FACTOR * noise
    for _ in range(AMBIGUITY_HALVINGS):
        residual, moved = evaluate(point + step * right_t[-1])
        if float(np.abs(moved - label).sum(axis=-1).max()) <= PROBE_L1:
            return False  # even the largest step inside the band keeps the label
        if residual <= band:
            return True
        step /= 2.0
    return False


#: A re-mixable pair of samples is pinned when the softmax's departure from linearity between
#: their features, ||p(mean x) - mean p||_1, exceeds this multiple of the measured noise (the
#: root bar, `joint.ROOT_STAGE`). Measured midpoint defects over the noise: re-mixed pairs
#: accepted wrongly 16-140; true pairs of the batch benchmark 830 and above (default-init
#: ResNet18), 8,500 and above (LeNet U(-0.5, 0.5)).
REMIX_STAGE = 300.0


def remix_reason(
    samples: Sequence[Sample],
    weight: np.ndarray,
    bias: np.ndarray | None,
    noise: float,
    family: str,
) -> str:
    """Why the recovered split of the batch is not pinned ("" when it is): some pair of samples
    whose labels together use at most the classes ``family`` frees (entries above each label's
    floor; "auto" as mixup, its widest) and whose midpoint defect ||p((x_i + x_j) / 2) -
    (p_i + p_j) / 2||_1 stays within REMIX_STAGE x ``noise``.
    Shapes: ``weight`` (C, m), ``bias`` (C,) or None; each sample's feature (m,)."""
    free = FAMILIES["mixup" if family == "auto" else family].free
    offset = 0.0 if bias is None else bias
    supports = [
        frozenset(np.flatnonzero(s.soft_label > s.soft_label.min() + LABEL_TOL).tolist())
        for s in samples
    ]
    features = np.stack([sample.feature for sample in samples])
    probs = softmax(features @ weight.T + offset)
    bar = REMIX_STAGE * max(noise, EXACT)
    for first in range(len(samples)):
        for second in range(first + 1, len(samples)):
            classes = supports[first] | supports[second]
            if len(classes) > free:
                continue  # a re-mix would leave the family
            middle = softmax((features[first] + features[second]) / 2 @ weight.T + offset)
            defect = float(np.abs(middle - (probs[first] + probs[second]) / 2).sum())
            if defect <= bar:
                named = ", ".join(str(c) for c in sorted(classes))
                return (
                    f"ambiguous split: samples {first} and {second} (classes {named}) can be "
                    f"re-mixed within the {family} family and the softmax is nearly linear "
                    f"between their features (midpoint defect {defect:.1e}, within "
                    f"{REMIX_STAGE:g}x the measured noise {noise:.1e}), so the re-mixed pair "
                    "fits the gradient as well; refusing to pick one split"
                )
    return ""
