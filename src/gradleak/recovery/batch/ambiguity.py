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
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

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
