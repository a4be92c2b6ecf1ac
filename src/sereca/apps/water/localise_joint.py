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

:func:`fit_one_steps` and :func:`joint_refit_steps` are generators: the
``residuals`` callback is itself a generator function that yields once per
network solve, so the detector can spread a re-fit over several time steps
(``result = yield from joint_refit_steps(...)``). :func:`fit_one` and
:func:`joint_refit` run them to the end with a plain ``residuals`` function.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

Leak = tuple[int, float]  # (candidate row, emitter coefficient (L/s)/m**0.5)
Sample = tuple[float, np.ndarray]  # (t, readings)
# residuals(samples, leaks) -> (n_samples, n_detect) standardised residual matrix
Residuals = Callable[[Sequence[Sample], Sequence[Leak]], np.ndarray]
# the same as a generator function: yields once per network solve, returns the matrix
T = TypeVar("T")
ResidualSteps = Callable[[Sequence[Sample], Sequence[Leak]], Generator[Any, None, np.ndarray]]


def run_steps(steps: Generator[Any, None, T]) -> T:
    """Run a step generator to the end; its return value."""
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]


def _plain(residuals: Residuals) -> ResidualSteps:
    def steps(samples: Sequence[Sample], leaks: Sequence[Leak]) -> Generator[Any, None, np.ndarray]:
        return residuals(samples, leaks)
        yield  # a generator function

    return steps


@dataclass
class FitResult:
    leaks: list[Leak]  # re-fitted leaks, same order, without the dropped ones
    kept: list[int]  # index (in the input) of every kept leak
    sse: float  # objective with the re-fitted leaks
    sse_start: float  # objective with the input leaks


def _sse(r: np.ndarray) -> float:
    return float(np.sum(r**2))


def secant_scale(without: np.ndarray, with_leak: np.ndarray) -> float | None:
    """Scale of a leak's size that minimises the objective, taking the residual as linear in
    the size between ``without`` the leak (scale 0) and ``with_leak`` (scale 1); None when the
    leak changes nothing. The predicted residual at scale x is ``without + x * (with_leak - without)``."""
    delta = with_leak - without
    dd = float(np.sum(delta * delta))
    return -float(np.sum(without * delta)) / dd if dd > 0 else None


def fit_one(residuals: Residuals, samples: Sequence[Sample], others: Sequence[Leak], signatures: np.ndarray,
            ref_coefficient: float, current: Leak | None, screen: int = 6, allowed: np.ndarray | None = None,
            newton: int = 2, move_gain: float = 0.0, move_relative: float = 0.0,
            max_coeff: float = np.inf) -> tuple[Leak | None, float, float]:
    """:func:`fit_one_steps` run to the end with a plain ``residuals`` function."""
    return run_steps(fit_one_steps(_plain(residuals), samples, others, signatures, ref_coefficient, current,
                                   screen, allowed, newton, move_gain, move_relative, max_coeff))


def fit_one_steps(residuals: ResidualSteps, samples: Sequence[Sample], others: Sequence[Leak],
                  signatures: np.ndarray, ref_coefficient: float, current: Leak | None, screen: int = 6,
                  allowed: np.ndarray | None = None, newton: int = 2, move_gain: float = 0.0,
                  move_relative: float = 0.0, max_coeff: float = np.inf,
                  ) -> Generator[Any, None, tuple[Leak | None, float, float]]:
    """Best single leak added to ``others``: ``(leak, sse_with, sse_without)``.

    ``signatures``: (n_candidates, n_detect) change of the standardised residual per
    emitter of ``ref_coefficient`` at each candidate (the model's sign: reading minus
    leak-free expected). ``current`` (if any) is always among the re-solved candidates;
    ``allowed`` (boolean per candidate) restricts where the leak may be. Each candidate is
    re-solved (non-linear) at the linear estimate of its size; with ``newton`` > 0 its best
    size then follows in closed form from the secant between the solves without and with
    it (residual taken as linear in the size), and the winner is re-solved at that size,
    so the size error does not pose as a second leak: 1 + starts + 1 solves per sample.
    Hysteresis: the leak leaves ``current``'s junction only when that lowers the objective
    by more than ``move_gain`` and by more than the fraction ``move_relative`` of it.
    """
    base = yield from residuals(samples, others)  # what the leak must explain: reading - model(others)
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
    # (row, coefficient, sse, exact) for each start: the solve at its linear size, then the
    # secant optimum predicted from it (exact=False until re-solved).
    points: list[tuple[int, float, float, bool]] = []
    for row, coeff in starts:
        coeff = min(coeff, max_coeff)
        if coeff <= 0 or gg[row] <= 0:
            continue
        r = yield from residuals(samples, [*others, (row, coeff)])
        points.append((row, coeff, _sse(r), True))
        lam = secant_scale(base, r) if newton > 0 else None
        if lam is not None:
            c_opt = min(max(lam * coeff, 0.05 * coeff), max_coeff)
            lam = c_opt / coeff
            points.append((row, c_opt, _sse(base + lam * (r - base)), False))

    def pick(rows: Sequence[tuple[int, float, float, bool]]) -> tuple[Leak | None, float, bool]:
        kept = [pt for pt in rows if pt[2] < sse0]
        if not kept:
            return None, sse0, True
        row, coeff, sse, exact = min(kept, key=lambda pt: pt[2])
        return (row, coeff), sse, exact

    best, best_sse, best_exact = pick(points)
    stay, stay_sse, stay_exact = pick([pt for pt in points if current is not None and pt[0] == current[0]])
    if (stay is not None and best is not None and best[0] != stay[0]
            and stay_sse - best_sse <= max(move_gain, move_relative * stay_sse)):
        best, best_sse, best_exact = stay, stay_sse, stay_exact
    if best is not None and not best_exact:
        # The predicted optimum, re-solved; the start's own solve if that fits better.
        r = yield from residuals(samples, [*others, best])
        sse = _sse(r)
        probe = [pt for pt in points if pt[0] == best[0] and pt[3]]
        if probe and probe[0][2] < sse:
            best, sse = (probe[0][0], probe[0][1]), probe[0][2]
        if sse >= sse0:
            return None, sse0, sse0
        return best, sse, sse0
    return best, best_sse, sse0


def joint_refit(residuals: Residuals, samples: Sequence[Sample], leaks: Sequence[Leak], signatures: np.ndarray,
                ref_coefficient: float, min_gain: float, rounds: int = 1, screen: int = 6,
                near: Callable[[int], np.ndarray] | None = None, move_relative: float = 0.0,
                max_growth: float = np.inf) -> FitResult:
    """:func:`joint_refit_steps` run to the end with a plain ``residuals`` function."""
    return run_steps(joint_refit_steps(_plain(residuals), samples, leaks, signatures, ref_coefficient, min_gain,
                                       rounds, screen, near, move_relative, max_growth))


def joint_refit_steps(residuals: ResidualSteps, samples: Sequence[Sample], leaks: Sequence[Leak],
                      signatures: np.ndarray, ref_coefficient: float, min_gain: float, rounds: int = 1,
                      screen: int = 6, near: Callable[[int], np.ndarray] | None = None,
                      move_relative: float = 0.0, max_growth: float = np.inf,
                      ) -> Generator[Any, None, FitResult]:
    """Coordinate descent over all modelled leaks; drop those that explain less than ``min_gain``.

    ``min_gain`` is per sample: a leak is kept when it lowers the objective by at least
    ``min_gain * len(samples)`` compared with the same model without it. ``near(row)``
    gives the candidates a leak now at ``row`` may move to (None: anywhere); no leak may
    grow beyond ``max_growth`` times its input size.
    """
    current = list(leaks)
    alive = list(range(len(leaks)))
    sse_start = _sse((yield from residuals(samples, current))) if current else 0.0
    sse = sse_start
    for _ in range(rounds):
        j = 0
        while j < len(current):
            others = current[:j] + current[j + 1:]
            leak, sse_with, sse_without = yield from fit_one_steps(
                residuals, samples, others, signatures, ref_coefficient, current[j], screen=screen,
                allowed=near(current[j][0]) if near else None, move_gain=min_gain * len(samples),
                move_relative=move_relative, max_coeff=max_growth * leaks[alive[j]][1])
            if leak is None or sse_without - sse_with < min_gain * len(samples):
                del current[j]
                del alive[j]
                sse = sse_without
                continue
            current[j] = leak
            sse = sse_with
            j += 1
    return FitResult(leaks=current, kept=alive, sse=sse, sse_start=sse_start)
