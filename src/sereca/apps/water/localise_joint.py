"""Joint re-fit of all modelled leaks (positions and sizes) against recent readings.

A leak placed at the wrong junction, or one that has since been repaired, leaves
a residual the CUSUMs later read as a "new" leak elsewhere. This module re-fits
every modelled leak by coordinate descent: for each leak in turn, with the others
held fixed, it

1. solves the network without that leak at each sample time (the residual it
   has to explain),
2. screens every candidate junction linearly (sensitivity matrix: best size and
   SSE reduction in closed form),
3. re-solves the network with an emitter at the few best candidates (and the
   leak's current junction) at a few sizes, and keeps the best;
4. drops the leak when the best fit barely beats no leak at all (repaired, or
   its effect is explained by the other leaks).

The objective is the sum of squared standardised residuals (against the
leak-free bias and noise learned in warm-up) over the sample times.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

Leak = tuple[int, float]  # (candidate row, emitter coefficient (L/s)/m**0.5)
Sample = tuple[float, np.ndarray]  # (t, readings)
# residuals(samples, leaks) -> (n_samples, n_detect) standardised residual matrix
Residuals = Callable[[Sequence[Sample], Sequence[Leak]], np.ndarray]


@dataclass
class FitResult:
    leaks: list[Leak]  # re-fitted leaks, same order, without the dropped ones
    kept: list[int]  # index (in the input) of every kept leak
    sse: float  # objective with the re-fitted leaks
    sse_start: float  # objective with the input leaks


def _sse(r: np.ndarray) -> float:
    return float(np.sum(r**2))


def fit_one(residuals: Residuals, samples: Sequence[Sample], others: Sequence[Leak], signatures: np.ndarray,
            ref_coefficient: float, current: Leak | None, screen: int = 6, allowed: np.ndarray | None = None,
            newton: int = 2, move_gain: float = 0.0, move_relative: float = 0.0,
            max_coeff: float = np.inf) -> tuple[Leak | None, float, float]:
    """Best single leak added to ``others``: ``(leak, sse_with, sse_without)``.

    ``signatures``: (n_candidates, n_detect) change of the standardised residual per
    emitter of ``ref_coefficient`` at each candidate (the model's sign: reading minus
    leak-free expected). ``current`` (if any) is always among the re-solved candidates;
    ``allowed`` (boolean per candidate) restricts where the leak may be. Each candidate's
    size starts from the linear estimate and takes ``newton`` Gauss-Newton steps
    (non-linear re-solves), so the size error does not pose as a second leak.
    Hysteresis: the leak leaves ``current``'s junction only when that lowers the objective
    by more than ``move_gain`` and by more than the fraction ``move_relative`` of it.
    """
    base = residuals(samples, others)  # what the leak must explain: reading - model(others)
    sse0 = _sse(base)
    # Linear screening: residual ~ a * g_c at each sample; closed-form a and SSE reduction.
    gg = np.einsum("ij,ij->i", signatures, signatures)
    n = max(1, base.shape[0])
    proj = signatures @ base.sum(axis=0)  # sum_k g_c . r_k
    a = np.where(gg > 0, proj / np.maximum(n * gg, 1e-300), 0.0)
    gain = np.where(a > 0, proj * a, 0.0)
    if allowed is not None:
        gain = np.where(allowed, gain, 0.0)
    order = [int(i) for i in np.argsort(-gain)[:screen] if gain[i] > 0]
    starts: list[Leak] = [(row, float(a[row] * ref_coefficient)) for row in order]
    if current is not None and current[0] not in order:
        starts.append(current)
    best: Leak | None = None
    best_sse = sse0
    stay: Leak | None = None
    stay_sse = sse0
    for row, coeff in starts:
        coeff = min(coeff, max_coeff)
        if coeff <= 0 or gg[row] <= 0:
            continue
        for it in range(newton + 1):
            r = residuals(samples, [*others, (row, coeff)])
            sse = _sse(r)
            if sse < best_sse:
                best, best_sse = (row, coeff), sse
            if current is not None and row == current[0] and sse < stay_sse:
                stay, stay_sse = (row, coeff), sse
            if it == newton:
                break
            step = float(signatures[row] @ r.sum(axis=0)) / (n * gg[row]) * ref_coefficient
            coeff = min(max(coeff + step, 0.05 * coeff), max_coeff)
    if (stay is not None and best is not None and best[0] != stay[0]
            and stay_sse - best_sse <= max(move_gain, move_relative * stay_sse)):
        return stay, stay_sse, sse0
    return best, best_sse, sse0


def joint_refit(residuals: Residuals, samples: Sequence[Sample], leaks: Sequence[Leak], signatures: np.ndarray,
                ref_coefficient: float, min_gain: float, rounds: int = 1, screen: int = 6,
                near: Callable[[int], np.ndarray] | None = None, move_relative: float = 0.0,
                max_growth: float = np.inf) -> FitResult:
    """Coordinate descent over all modelled leaks; drop those that explain less than ``min_gain``.

    ``min_gain`` is per sample: a leak is kept when it lowers the objective by at least
    ``min_gain * len(samples)`` compared with the same model without it. ``near(row)``
    gives the candidates a leak now at ``row`` may move to (None: anywhere); no leak may
    grow beyond ``max_growth`` times its input size.
    """
    current = list(leaks)
    alive = list(range(len(leaks)))
    sse_start = _sse(residuals(samples, current)) if current else 0.0
    sse = sse_start
    for _ in range(rounds):
        j = 0
        while j < len(current):
            others = current[:j] + current[j + 1:]
            leak, sse_with, sse_without = fit_one(residuals, samples, others, signatures, ref_coefficient,
                                                  current[j], screen=screen,
                                                  allowed=near(current[j][0]) if near else None,
                                                  move_gain=min_gain * len(samples), move_relative=move_relative,
                                                  max_coeff=max_growth * leaks[alive[j]][1])
            if leak is None or sse_without - sse_with < min_gain * len(samples):
                del current[j]
                del alive[j]
                sse = sse_without
                continue
            current[j] = leak
            sse = sse_with
            j += 1
    return FitResult(leaks=current, kept=alive, sse=sse, sse_start=sse_start)
