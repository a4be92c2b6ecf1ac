"""Joint re-fit of modelled leaks (coordinate descent), on a linear toy model."""

from __future__ import annotations

import numpy as np

from sereca.apps.water.localise_joint import fit_one, joint_refit

REF = 2.0  # emitter coefficient of one signature unit


def _toy(true: dict[int, float], n_candidates: int = 40, n_sensors: int = 12, seed: int = 0):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    g = rng.normal(size=(n_candidates, n_sensors)) * 3.0
    noise = rng.normal(size=(5, n_sensors)) * 0.1
    samples = [(float(i), np.zeros(1)) for i in range(5)]
    truth = sum(c / REF * g[row] for row, c in true.items())

    def residuals(samples, leaks):  # type: ignore[no-untyped-def]
        model = sum((c / REF * g[row] for row, c in leaks), np.zeros(n_sensors))
        return np.vstack([truth - model + noise[i] for i in range(len(samples))])

    return g, samples, residuals


def test_fit_one_finds_position_and_size() -> None:
    g, samples, residuals = _toy({7: 3.0})
    leak, sse_with, sse_without = fit_one(residuals, samples, [], g, REF, current=None)
    assert leak is not None and leak[0] == 7
    assert abs(leak[1] - 3.0) < 0.05
    assert sse_with < 0.01 * sse_without


def test_joint_refit_moves_misplaced_and_drops_repaired() -> None:
    g, samples, residuals = _toy({7: 3.0, 20: 1.5})
    # leak 0 is at the wrong candidate, leak 1 is right, leak 2 is not there (repaired)
    fit = joint_refit(residuals, samples, [(8, 2.0), (20, 1.0), (30, 2.0)], g, REF, min_gain=1.0, rounds=4)
    assert sorted(row for row, _ in fit.leaks) == [7, 20]
    assert fit.kept == [0, 1]
    assert fit.sse < fit.sse_start


def test_joint_refit_respects_the_neighbourhood() -> None:
    g, samples, residuals = _toy({7: 3.0})
    allowed = np.zeros(len(g), dtype=bool)
    allowed[[8, 9]] = True
    fit = joint_refit(residuals, samples, [(8, 3.0)], g, REF, min_gain=0.0, near=lambda row: allowed)
    assert all(row in (8, 9) for row, _ in fit.leaks)


def test_joint_refit_caps_growth_of_every_leak() -> None:
    # Both leaks are modelled far too small; uncapped they grow to their true sizes.
    g, samples, residuals = _toy({7: 3.0, 20: 1.5})
    start = [(7, 0.1), (20, 0.1)]
    stay = np.eye(len(g), dtype=bool)  # each leak may only be re-sized, not moved

    free = joint_refit(residuals, samples, start, g, REF, min_gain=0.0, near=lambda row: stay[row])
    assert np.allclose([c for _, c in free.leaks], [3.0, 1.5], atol=0.3)
    capped = joint_refit(residuals, samples, start, g, REF, min_gain=0.0, max_growth=4.0, near=lambda row: stay[row])
    assert capped.kept == [0, 1]
    assert all(c <= 4.0 * 0.1 + 1e-9 for _, c in capped.leaks)
    assert capped.sse > free.sse
