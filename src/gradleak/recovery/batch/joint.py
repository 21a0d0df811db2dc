"""Joint refinement: all B atoms of a batch fitted to the gradient at once.

Peeling accepts atoms one at a time, so each accepted atom's error stays in the rest the next
ones are found in. Where two roots of one hypothesis lie close together (two samples with one
hard label whose predictions nearly agree) or the batch has a weak direction (sigma_B small: a
batch-mixup cycle near lam = 1/2), those errors reach the size of the weakest atom and the last
sample no longer fits. The joint problem fits every atom at once:

    unknowns   theta_k (each sample's coordinates in the whole subspace) and w_k (its weight),
    residuals  vec(core - sum_k w_k u_k a_k^T) / sigma_1   and   r_k / ||d_R,k|| for every k,

with u_k = U^T d_k and a_k = a0 + N theta_k (`subspace`), r_k the root residual of sample k's
hypothesis (`roots.Hypotheses`). The core alone (B^2 equations) does not fix B(n + 1)
unknowns: the root conditions (C - |S| - B - [eps] equations each) do, as in the count of
`batch_identifiability`. A Levenberg-Marquardt on the stacked residual starts from the peeled
atoms; the caller judges the result by the same tolerances as the peel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gradleak.recovery.batch.ambiguity import moves_label
from gradleak.recovery.batch.candidates import POLISH_ITERATIONS
from gradleak.recovery.batch.roots import Hypotheses, fit_roots, relative_residual
from gradleak.recovery.batch.sample import EXACT, LABEL_TOL, Sample
from gradleak.recovery.batch.subspace import Subspace

#: Most Levenberg-Marquardt iterations of the joint fit. Two samples of one label start as
#: nearly one atom and take about 60 to come apart; a fit whose cost does not halve within
#: JOINT_STALL iterations (a wrong combination at its positive minimum) stops earlier.
JOINT_ITERATIONS = 120
JOINT_STALL = 15
#: Every refined atom must be a root to this multiple of the measured noise (the peel's
#: EXACT_STAGE), or to PEER_FACTOR x the median residual of the atoms the peel vouched for.
#: (A sample of two blended into one, or one sample split in two, fits its root condition 30x
#: worse than the batch's true roots while the core is explained to the noise.)
ROOT_STAGE = 300.0
PEER_FACTOR = 10.0


@dataclass(frozen=True)
class Atom:
    """One sample of the joint fit: its hypothesis (free classes, whether eps is free), its
    coordinates theta (n,) in the whole subspace and its weight."""

    free: tuple[int, ...]
    eps_free: bool
    theta: np.ndarray
    weight: float


@dataclass(frozen=True)
class JointFit:
    """The refined atoms, each one's root residual rho and label (C,), its feature coordinates a
    (r,), its relative size |w_k| ||u_k|| ||a_k|| / sigma_1, what the atoms leave of the core
    (``rest`` = core - sum_k w_k u_k a_k^T, (r, r)) and its relative size ``misfit`` =
    ||rest||_F / sigma_1; ``root_weight`` as it was fitted with."""

    atoms: tuple[Atom, ...]
    residuals: np.ndarray
    labels: np.ndarray
    coordinates: np.ndarray
    sizes: np.ndarray
    rest: np.ndarray
    misfit: float
    root_weight: float


class _Joint:
    """The stacked residual of `refine` and its Jacobian."""

    def __init__(self, whole: Subspace, core: np.ndarray, atoms: list[Atom], root_weight: float):
        self.whole, self.core = whole, core
        self.scale = float(np.linalg.norm(core, 2))
        self.root_weight = root_weight
        self.problems = [Hypotheses(whole, [atom.free], atom.eps_free) for atom in atoms]
        self.size = whole.directions.shape[1]

    def split(self, unknowns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        count = len(self.problems)
        thetas = unknowns[: count * self.size].reshape(count, self.size)
        return thetas, unknowns[count * self.size :]

    def parts(self, unknowns: np.ndarray, *, jacobian: bool):
        """Per atom: u, a, rho, label (and du/dtheta, the root residual and its Jacobian)."""
        thetas, _weights = self.split(unknowns)
        whole, rank = self.whole, self.whole.rank
        out = []
        for problem, theta in zip(self.problems, thetas, strict=True):
            probs, masked, residual, coefficients, fitted, norm = problem.evaluate(theta[None])
            relative, d_relative = problem.jacobian(probs, residual, fitted, norm)
            u = coefficients[0, :rank]
            entry = {
                "u": u,
                "a": whole.coordinates(theta),
                "rho": float(relative_residual(residual, norm)[0]),
                "label": probs[0] - u @ whole.left.T,
                "relative": np.nan_to_num(relative[0]),
            }
            if jacobian:
                directions = whole.directions
                dp = masked[0][:, None] * (directions - probs[0] @ directions)
                entry["du"] = problem.inverse[0, :rank] @ dp
                entry["d_relative"] = np.nan_to_num(d_relative[0])
            out.append(entry)
        return out

    def residual(self, unknowns: np.ndarray, parts) -> np.ndarray:
        _thetas, weights = self.split(unknowns)
        misfit = self.core - sum(
            w * np.outer(part["u"], part["a"]) for w, part in zip(weights, parts, strict=True)
        )
        return np.concatenate(
            [misfit.ravel() / self.scale, *(self.root_weight * part["relative"] for part in parts)]
        )

    def jacobian(self, unknowns: np.ndarray, parts) -> np.ndarray:
        _thetas, weights = self.split(unknowns)
        count, size, rank = len(parts), self.size, self.whole.rank
        classes = parts[0]["relative"].shape[0]
        jac = np.zeros((rank * rank + count * classes, count * (size + 1)))
        null = self.whole.null
        for k, (w, part) in enumerate(zip(weights, parts, strict=True)):
            columns = slice(k * size, (k + 1) * size)
            # d(w u a^T)/d theta_j = w (du_j a^T + u (N e_j)^T), flattened row-major.
            d_atom = w * (
                part["du"].T[:, :, None] * part["a"][None, None, :]
                + part["u"][None, :, None] * null.T[:, None, :]
            )
            jac[: rank * rank, columns] = -d_atom.reshape(size, -1).T / self.scale
            jac[: rank * rank, count * size + k] = (
                -np.outer(part["u"], part["a"]).ravel() / self.scale
            )
            rows = slice(rank * rank + k * classes, rank * rank + (k + 1) * classes)
            jac[rows, columns] = self.root_weight * part["d_relative"]
        return jac


def root_weight(noise: float, residuals) -> float:
    """How much a root residual weighs against the core's misfit in the joint fit: the core's
    noise over the roots' (the median ``residuals`` of roots the peel vouched for), at most 1.
    The core is the gradient itself, its noise the measured one; a root is judged in U and
    V̂, which that noise moves more (a nearly linear softmax: 1000x). Weighted so, both parts
    sit at the noise at the truth."""
    floor = max(noise, EXACT)
    typical = float(np.median(residuals)) if len(residuals) else floor
    return min(1.0, floor / max(typical, floor))


def refine(
    whole: Subspace,
    core: np.ndarray,
    atoms: list[Atom],
    *,
    root_weight: float = 1.0,
    iterations: int = JOINT_ITERATIONS,
) -> JointFit:
    """Fit every atom at once (module docstring) from ``atoms``; ``core`` is U^T Ĝ V̂ (r, r);
    root residuals weigh ``root_weight`` (`root_weight`) against the core's misfit."""
    with np.errstate(all="ignore"):
        joint = _Joint(whole, core, atoms, root_weight)
        unknowns = np.concatenate(
            [np.concatenate([atom.theta for atom in atoms]), [atom.weight for atom in atoms]]
        )
        parts = joint.parts(unknowns, jacobian=True)
        residual = joint.residual(unknowns, parts)
        cost = float(residual @ residual)
        damping = 1e-3
        history: list[float] = []
        for _ in range(iterations):
            history.append(cost)
            if len(history) > JOINT_STALL and cost > 0.5 * history[-JOINT_STALL - 1]:
                break
            jac = joint.jacobian(unknowns, parts)
            normal = jac.T @ jac
            diagonal = np.diag(normal) + 1e-12 * np.diag(normal).max() + 1e-300
            step = np.linalg.lstsq(normal + damping * np.diag(diagonal), jac.T @ residual)[0]
            trial = unknowns - step
            trial_parts = joint.parts(trial, jacobian=True)
            trial_residual = joint.residual(trial, trial_parts)
            trial_cost = float(trial_residual @ trial_residual)
            if np.isfinite(trial_cost) and trial_cost < cost:
                unknowns, parts, residual = trial, trial_parts, trial_residual
                improvement, cost = cost - trial_cost, trial_cost
                damping /= 3.0
                if improvement <= 1e-12 * cost:
                    break
            else:
                damping *= 4.0
                if damping > 1e12:
                    break
    thetas, weights = joint.split(unknowns)
    refined = tuple(
        Atom(atom.free, atom.eps_free, theta, float(w))
        for atom, theta, w in zip(atoms, thetas, weights, strict=True)
    )
    rest = core - sum(
        w * np.outer(part["u"], part["a"]) for w, part in zip(weights, parts, strict=True)
    )
    return JointFit(
        atoms=refined,
        residuals=np.array([part["rho"] for part in parts]),
        labels=np.stack([part["label"] for part in parts]),
        coordinates=np.stack([part["a"] for part in parts]),
        sizes=np.array(
            [
                abs(w) * np.linalg.norm(part["u"]) * np.linalg.norm(part["a"]) / joint.scale
                for w, part in zip(weights, parts, strict=True)
            ]
        ),
        rest=rest,
        misfit=float(np.linalg.norm(rest) / joint.scale),
        root_weight=root_weight,
    )


#: A peel that stalls this many samples short (or fewer) tries the joint fit, with each
#: combination of the JOINT_TRIES best roots of its last pass (and the roots there of the labels
#: already peeled: a second sample of one label) for the missing samples.
JOINT_MISSING = 2
JOINT_TRIES = 3
#: The joint fit must explain the core to JOINT_FACTOR x the measured noise. (True batches:
#: misfit about the noise itself; two samples of one label merged into one atom leave 1e3 x
#: more.)
JOINT_FACTOR = 30.0


def ambiguous(whole: Subspace, core: np.ndarray, fit: JointFit, noise: float) -> bool:
    """Whether some label of the joint fit moves along the flattest direction of the stacked
    residual before it leaves the band around its noise (`ambiguity.moves_label`, all atoms at
    once: a weak atom is pinned by the core as much as by its own root condition)."""
    joint = _Joint(whole, core, list(fit.atoms), fit.root_weight)
    unknowns = np.concatenate(
        [np.concatenate([atom.theta for atom in fit.atoms]), [atom.weight for atom in fit.atoms]]
    )
    parts = joint.parts(unknowns, jacobian=True)
    floor = float(np.linalg.norm(joint.residual(unknowns, parts)))

    def evaluate(point: np.ndarray) -> tuple[float, np.ndarray]:
        moved = joint.parts(point, jacobian=False)
        labels = np.stack([part["label"] for part in moved])
        return float(np.linalg.norm(joint.residual(point, moved))), labels

    with np.errstate(all="ignore"):
        return moves_label(unknowns, joint.jacobian(unknowns, parts), evaluate, max(floor, noise))


def last_roots(
    whole: Subspace,
    space: Subspace,
    groups,
    rest: np.ndarray,
    samples,
    *,
    count: int = 0,
    first_roots: dict | None = None,
) -> list[Atom]:
    """The stalled peel's candidates for its missing samples, as Atoms in the whole subspace:
    its last pass's JOINT_TRIES lowest-residual roots (whatever their residual: the rest
    carries the peeled atoms' errors) and its JOINT_TRIES best roots of the labels already
    peeled (a second sample of one label), each with its weight fitted to the ``rest`` by
    least squares. A root of a label not yet peeled is polished in the whole subspace, from
    where the rest put it and from that label's root of the first pass (``first_roots``: (free
    classes, eps free) -> theta), whichever ends lower: a rest carries the peeled atoms' errors
    and its best root of a label can be a far spurious one."""
    ranked = sorted(
        (float(fit.residual[row]), index, int(row))
        for index, (_free, _eps, fit) in enumerate(groups)
        for row in np.flatnonzero(np.isfinite(fit.residual))
    )
    count = max(count, JOINT_TRIES)
    peeled = {sample.free_classes for sample in samples}
    twins = [entry for entry in ranked[count:] if groups[entry[1]][0][entry[2]] in peeled]
    twins = twins[:JOINT_TRIES]
    atoms = []
    for _value, index, row in ranked[:count] + twins:
        free, eps_free, fit = groups[index]
        theta = (whole.right.T @ space.feature(fit.theta[row]) - whole.base) @ whole.null
        if free[row] not in peeled:  # (a second sample of a peeled label would slide to it)
            known = (first_roots or {}).get((free[row], eps_free))
            begin = np.stack([theta] if known is None else [theta, known])[:, None, :]
            # (Levenberg-Marquardt keeps only improvements: never worse than the mapped root.)
            theta = fit_roots(
                whole, [free[row]], begin, eps_free=eps_free, iterations=POLISH_ITERATIONS
            ).theta[0]
        atom = _shape(whole, Atom(free[row], eps_free, theta, 1.0))
        weight = float(np.sum(atom * rest) / max(float(np.sum(atom * atom)), 1e-300))
        atoms.append(Atom(free[row], eps_free, theta, weight))
    return atoms


def _shape(whole: Subspace, atom: Atom) -> np.ndarray:
    """The atom's direction u a^T on the core (unit weight), its d evaluated at its theta."""
    root = fit_roots(
        whole, [atom.free], atom.theta[None, None], eps_free=atom.eps_free, iterations=0
    )
    return np.outer(whole.left.T @ root.gradient[0], whole.coordinates(atom.theta))


def with_weights(whole: Subspace, rest: np.ndarray, atoms: list[Atom]) -> list[Atom]:
    """``atoms`` with their weights fitted to the ``rest`` together (linear least squares on
    rest = sum_k w_k u_k a_k^T): several missing samples share one rest, so weights fitted one
    by one count each other's share twice."""
    shapes = np.stack([_shape(whole, atom).ravel() for atom in atoms], axis=1)
    weights = np.linalg.lstsq(shapes, rest.ravel())[0]
    return [
        Atom(atom.free, atom.eps_free, atom.theta, float(weight))
        for atom, weight in zip(atoms, weights, strict=True)
    ]


def peer_bar(noise: float, residuals, *, size: float = 0.0, sizes=()) -> float:
    """The residual a root of the whole subspace must meet: ROOT_STAGE x the measured
    ``noise`` (raised by the median of ``sizes`` over ``size`` for an atom smaller than the
    batch's typical one: a nearly saturated sample's small d is known only to noise / its
    size), or PEER_FACTOR x the median ``residuals`` of the roots the peel vouched for when
    larger (a nearly linear softmax puts the true roots far above the noise). Sizes are
    relative to sigma_1."""
    allowed = ROOT_STAGE * max(noise, EXACT)
    if len(sizes) and size > 0:
        allowed *= max(1.0, float(np.median(sizes)) / size)
    if len(residuals):
        allowed = max(allowed, PEER_FACTOR * float(np.median(residuals)))
    return allowed


def explains(fit: JointFit, noise: float, *, peers: int) -> bool:
    """A joint fit counts when it explains the core to JOINT_FACTOR x ``noise``, every atom is
    a root to its `peer_bar` (ROOT_STAGE x ``noise``, more for an atom smaller than the
    batch's typical one, or PEER_FACTOR x the median residual of its first ``peers`` atoms:
    those the peel vouched for, how well this batch's true roots fit, which a nearly linear
    softmax puts far above the noise), and has a positive weight and a label in [0, 1]."""
    floor = max(noise, EXACT)
    allowed = [
        peer_bar(noise, fit.residuals[:peers], size=float(size), sizes=fit.sizes)
        for size in fit.sizes
    ]
    return bool(
        fit.misfit <= JOINT_FACTOR * floor
        and np.all(fit.residuals <= np.array(allowed))
        and min(atom.weight for atom in fit.atoms) > 0
        and fit.labels.min() >= -LABEL_TOL
        and fit.labels.max() <= 1 + LABEL_TOL
    )


def as_samples(fit: JointFit, whole: Subspace, bias: bool):
    """The joint fit's atoms as Samples."""
    for atom, label, rho, coordinates in zip(
        fit.atoms, fit.labels, fit.residuals, fit.coordinates, strict=True
    ):
        feature = whole.right @ coordinates
        yield Sample(
            soft_label=label,
            feature=feature[:-1] if bias else feature,
            weight=atom.weight,
            residual=float(rho),
            free_classes=atom.free,
            theta=atom.theta,
            eps_free=atom.eps_free,
        )


__all__ = ["Atom", "JointFit", "ambiguous", "as_samples", "explains", "last_roots", "refine"]
