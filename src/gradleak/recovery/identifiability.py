"""When does one gradient single out one label? Equations against unknowns, as a pure function.

Paper: Wang, Liang & He, ICLR 2024, Theorem 1 and Sec. 4. For one input, every row of
dL/dW = k (p - y) x^T is a multiple of x, so the gradient fixes x up to one scalar mu, and the
label y(mu) has C entries. They give C - 1 independent equations: the C-th is the identity
sum_i y_i(mu) = 1, which holds for every mu (Theorem 1) and pins nothing. Against them stand
the continuous unknowns:

- the scalar mu, unless a classifier bias pins it in closed form (x = g_r / (dL/db)_r);
- the gradient scale k when it is unknown (clipping, an unknown learning rate): one more;
- the label family's parameters: hard 0, smoothing 1 (eps), mixup 2 (lam, eps).

The target class (and the mixup pair) is a discrete choice on top. With as many equations
as unknowns the system has finitely many roots, and nothing says which one the client used
(C = 3 smoothing: a root at the true label and often a second, valid one). Only when the
equations outnumber the unknowns does a root at a wrong label require a coincidence (the
extra equation must vanish too), which happens with probability zero for a continuous
distribution of weights and inputs. So the label is identifiable when

    C - 1 > unknowns,  i.e.  C >= unknowns + 2,

and gradleak refuses below that (``converged=False``, reason "not identifiable: ..."), never
guessing among the roots. With a bias and a known scale nothing is unknown: the label is
y = softmax(W x + b) - dL/db for any C >= 2, and the family only names it. ``family="auto"``
must rule out every family it might claim, and the families are nested (a hard label is a
smoothing label with eps = 0, a smoothing label a mixup label with lam = 0), so it needs the
bound of the largest family, mixup.

At an unknown scale without a bias the count has a second, analytic limit: where the
softmax is nearly linear over the logits (small logits, as in a default-initialised ResNet),
p(lam mu) ~ U + lam (p(mu) - U) with U uniform, so x -> lam x, k -> k / lam^2 turns the label y
into (1 - lam) U + lam y, again a smoothing (mixup) label: the family is closed under this
path and only the softmax's curvature (second order in the logits) tells lam = 1 apart. When
that curvature sits below the gradient's precision the rival labels fit as well as the true
one, and the verdict refuses them as ambiguous ("several scalars fit"); a bias or a hard label
(not closed under the path) removes the limit.

The count is generic: it assumes every equation moves with mu. Where the softmax saturates
(p_i below the gradient's precision on a class), that class's equation stops moving with mu
and the count drops (`scale_equations`); the verdict recounts at the solution it found and
refuses unless two equations, or one linear one, still pin the scalar.
"""

from __future__ import annotations

from dataclasses import dataclass

from gradleak.families import FAMILIES
from gradleak.recovery.last_layer import SCALE_MODES

#: A constrained class whose probability is below this multiple of its rounding slack is
#: saturated away: its entry of y(t) is -t c_i for every t near the solution, so it no longer
#: tells one scalar from another.
SATURATION_FACTOR = 100.0

#: The family whose bound ``family="auto"`` must meet: it contains the other two.
LARGEST_FAMILY = "mixup"


@dataclass(frozen=True)
class Identifiability:
    """The count behind the verdict: ``equations`` (C - 1) against the named ``unknowns``.

    ``identifiable`` is ``equations > len(unknowns)``; ``min_classes`` is the smallest C for
    which that holds in this setting; ``reason`` is empty when identifiable, else the refusal.
    """

    num_classes: int
    family: str
    equations: int
    unknowns: tuple[str, ...]
    min_classes: int
    identifiable: bool
    reason: str


def _unknowns(family: str, *, scale: str, bias: bool) -> tuple[str, ...]:
    parameters = FAMILIES[family].parameters
    if scale not in SCALE_MODES:
        raise ValueError(f"scale={scale!r} is unknown; choose one of {SCALE_MODES}")
    scalar = () if bias else ("mu",)
    gradient_scale = ("k",) if scale == "unknown" else ()
    if bias and scale == "known":
        return ()  # y = softmax(W x + b) - dL/db: the label is read off, the family only names it
    return (*scalar, *gradient_scale, *parameters)


def identifiability(
    num_classes: int, family: str, *, scale: str = "known", bias: bool = False
) -> Identifiability:
    """Whether one input's last-layer gradient determines its ``family`` label (module text).

    ``family`` is "hard", "smoothing", "mixup" or "auto" (judged as its largest family);
    ``scale`` is "known" (the paper's setting) or "unknown" (fit the gradient scale too);
    ``bias`` says whether the classifier has a bias whose gradient is observed.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
    judged = LARGEST_FAMILY if family == "auto" else family
    unknowns = _unknowns(judged, scale=scale, bias=bias)
    equations = num_classes - 1
    min_classes = max(2, len(unknowns) + 2)
    identifiable = num_classes >= min_classes
    reason = ""
    if not identifiable:
        which = (
            "the attack family 'auto' (it cannot rule out a mixup label)"
            if family == "auto"
            else (f"a {judged} label")
        )
        reason = (
            f"not identifiable: with C={num_classes} classes the gradient gives {equations} "
            f"equation(s) (C - 1; the sum of the label is always 1, Theorem 1) for "
            f"{len(unknowns)} unknown(s) ({', '.join(unknowns)}) of {which}, so several labels "
            f"can fit exactly; it needs C >= {min_classes}"
            + ("" if bias else " (or a classifier bias)")
        )
    return Identifiability(
        num_classes=num_classes,
        family=family,
        equations=equations,
        unknowns=unknowns,
        min_classes=min_classes,
        identifiable=identifiable,
        reason=reason,
    )


def scale_equations(
    *,
    moving: int,
    frozen_low: int,
    frozen_high: int,
    others_equal_zero: bool,
    scale: str = "known",
) -> tuple[int, bool]:
    """Equations that still pin the scalar t at a solution, and whether they are all linear.

    Each constrained entry reads y_i(t) = p_i(t) - s c_i (s = t at a known scale). Where the
    softmax is saturated, p_i is frozen to the gradient's precision (``frozen_low``: p_i ~ 0,
    ``frozen_high``: p_i ~ 1) and the entry is linear; the ``moving`` entries are not. Hard
    (others zero): a frozen-low entry reads -s c_i = 0, a check on c that holds for every s (no
    equation); every other entry gives one. Smoothing and mixup (others equal, their common
    value eps / C eliminated): the frozen-low entries are equal to one another for every s, so
    together they count as one entry, and G entries give G - 1 equations. At an unknown scale
    one equation goes to s, and frozen entries do not involve t at all (p does not move), so t
    rests on the moving entries alone: nothing there is linear in t.

    Two or more equations pin t (the generic count of `identifiability`); one linear equation
    pins it too (a line has one root); one nonlinear equation can have several roots close
    together, and none leaves an interval.
    """
    if others_equal_zero:
        equations = moving + frozen_high
    else:
        equations = moving + (1 if frozen_low else 0) + (1 if frozen_high else 0) - 1
    if scale == "unknown":
        return (max(equations - 1, 0) if moving else 0), False
    return max(equations, 0), moving == 0


#: Free entries of one sample's label beyond eps, per family, in the batch count: hard 0,
#: smoothing 1 (eps), mixup 2 (lam and eps); auto is judged as mixup.
BATCH_LABEL_PARAMETERS = {"hard": 0, "smoothing": 1, "mixup": 2}


def batch_bound(num_classes: int, family: str, *, bias: bool = False) -> int:
    """The largest B whose per-sample labels the gradient determines (`batch_identifiability`)."""
    judged = LARGEST_FAMILY if family == "auto" else family
    return max((num_classes - 2 - BATCH_LABEL_PARAMETERS[judged] + int(bias)) // 2, 0)


def batch_identifiability(
    num_classes: int, family: str, num_samples: int, *, bias: bool = False
) -> Identifiability:
    """Whether a rank-B batch gradient determines every sample's ``family`` label (docs/batch.md).

    One sample is x = V a in the B-dimensional row space (a bias fixes one coordinate:
    B - 1 unknowns) and its label puts the free classes S on top of eps / C (hard: |S| = 1, no
    eps; smoothing: |S| = 1; mixup: |S| = 2). The C - |S| other rows of p - y must lie in
    span(U) (+ span(1) with eps): C - |S| - B - [eps] equations. So a sample is identifiable
    when C >= 2B + 2 + (label parameters) - [bias]; the count is per sample, so a known
    gradient scale (which adds an equation per sample through its atom's weight) is not
    credited. B = 1 is the single-input problem, judged by `identifiability`.
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be an int >= 1, got {num_samples!r}")
    judged = LARGEST_FAMILY if family == "auto" else family
    free = 2 if judged == "mixup" else 1
    eps = 0 if judged == "hard" else 1
    equations = num_classes - free - num_samples - eps
    # The label's free entries and eps are eliminated in the equation count (projected out).
    unknowns = tuple(f"a{i}" for i in range(num_samples - int(bias)))
    bound = batch_bound(num_classes, family, bias=bias)
    min_classes = 2 * num_samples + 2 + BATCH_LABEL_PARAMETERS[judged] - int(bias)
    identifiable = num_samples <= bound
    reason = ""
    if not identifiable:
        reason = (
            f"not identifiable per sample: a batch of B={num_samples} with C={num_classes} "
            f"classes gives each sample {equations} equation(s) (C - {free} - B"
            f"{' - 1' if eps else ''}, the {judged} label's free entries eliminated) for "
            f"{num_samples - int(bias)} coordinate(s) in the gradient's row space; it needs "
            f"C >= 2B + {min_classes - 2 * num_samples} = {min_classes}, so the largest "
            f"identifiable batch here is B = {bound}"
        )
    return Identifiability(
        num_classes=num_classes,
        family=family,
        equations=equations,
        unknowns=unknowns,
        min_classes=min_classes,
        identifiable=identifiable,
        reason=reason,
    )
