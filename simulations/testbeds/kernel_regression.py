"""1-D kernel regression data for self-distillation (Mobahi, Farajtabar, Bartlett 2020).

Target f*(x) = sin(2πx), labels y = f*(x) + σ ξ with ξ ~ N(0, 1):

* :func:`sinusoid_toy` — the paper's illustration (Mobahi et al. 2020, arXiv 2002.05715):
  the 11 points x = 0, 0.1, …, 1.0.
* :func:`noisy_sinusoid` — K points drawn uniformly on [0, 1] (sorted), for statistics
  over seeds.
* :func:`kernel_instances` — the family the self-distillation theorems are checked on: the
  toy and K-point datasets × {Laplace, Gaussian + :data:`theory.self_distillation.
  GAUSSIAN_JITTER`} kernels × a grid of tolerances ε.
* :func:`excess_risk`, :func:`risk_per_round` — the test metric: mean squared error to the
  clean target on the test grid, per distillation round.

The noise level is ours (the paper's figure does not fix one we rely on). Randomness comes
from a ``np.random.Generator`` passed in; claims derive it from their JAX key with
:func:`simulations.keys.numpy_rng`.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from theory import self_distillation as sd
from theory import validation as check

#: default label-noise standard deviation (variance 0.09).
NOISE_SD = 0.3


def target_function(x) -> np.ndarray:
    """f*(x) = sin(2πx)."""
    return np.sin(2.0 * np.pi * np.asarray(x, np.float64))


@dataclasses.dataclass(frozen=True)
class RegressionData:
    """Training inputs/labels, the noise level, and a dense test grid with the clean target."""

    x: np.ndarray
    y: np.ndarray
    noise_sd: float
    x_test: np.ndarray
    f_test: np.ndarray

    @property
    def n(self) -> int:
        return int(self.x.size)


def evaluation_grid(n_test: int = 201) -> np.ndarray:
    """Equispaced test inputs on [0, 1]."""
    check.integer_at_least("n_test", n_test, 2)
    return np.linspace(0.0, 1.0, n_test)


def _labels(x, noise_sd, rng: np.random.Generator) -> np.ndarray:
    return target_function(x) + noise_sd * rng.standard_normal(x.size)


def sinusoid_toy(rng: np.random.Generator, noise_sd: float = NOISE_SD,
                 n_test: int = 201) -> RegressionData:
    """The 11-point toy: x = 0, 0.1, …, 1.0, y = sin(2πx) + σξ."""
    sd = check.nonnegative("noise_sd", noise_sd)
    x = np.linspace(0.0, 1.0, 11)
    grid = evaluation_grid(n_test)
    return RegressionData(x, _labels(x, sd, rng), sd, grid, target_function(grid))


def noisy_sinusoid(rng: np.random.Generator, n_points: int = 40, noise_sd: float = NOISE_SD,
                   n_test: int = 201) -> RegressionData:
    """K = n_points inputs uniform on [0, 1] (sorted), y = sin(2πx) + σξ.

    Inputs closer than 1e-9 are redrawn so that the Laplace Gram matrix stays positive
    definite in float64 (a probability-zero event, guarded for determinism of the checks).
    """
    K = check.integer_at_least("n_points", n_points, 2)
    sd = check.nonnegative("noise_sd", noise_sd)
    x = np.sort(rng.uniform(0.0, 1.0, K))
    while np.min(np.diff(x)) < 1e-9:
        x = np.sort(rng.uniform(0.0, 1.0, K))
    grid = evaluation_grid(n_test)
    return RegressionData(x, _labels(x, sd, rng), sd, grid, target_function(grid))


def excess_risk(predictions, data: RegressionData) -> np.ndarray:
    """Mean squared error against the clean target on the test grid, per row of predictions
    (the excess risk; add σ² for the error on fresh noisy labels)."""
    p = np.atleast_2d(np.asarray(predictions, np.float64))
    return np.mean((p - data.f_test) ** 2, axis=1)


@dataclasses.dataclass(frozen=True)
class KernelInstance:
    """One self-distillation problem: data, kernel, ε, Gram matrix G and test rows g_xᵀ.

    ``collapse_case`` marks the instances added with ε = factor·‖y‖²/K (factor ≥ 1), whose
    first round already collapses.
    """

    dataset: str
    kernel: str
    eps: float
    data: RegressionData
    G: np.ndarray
    rows: np.ndarray
    collapse_case: bool = False


def datasets(config, rng: np.random.Generator):
    """[('toy', data), ('K40-s0', data), …]: the toy, then ``n_seeds`` K-point draws, in order.

    config keys: noise_sd, n_test, n_points, n_seeds.
    """
    out = [("toy", sinusoid_toy(rng, config["noise_sd"], config["n_test"]))]
    for s in range(config["n_seeds"]):
        out.append((f"K{config['n_points']}-s{s}",
                    noisy_sinusoid(rng, config["n_points"], config["noise_sd"], config["n_test"])))
    return out


def kernel_instances(config, rng: np.random.Generator, eps_factors=()) -> list[KernelInstance]:
    """Every (dataset, kernel, ε): ε from config['toy_eps'] for the toy and config['eps_grid']
    otherwise, plus ε = factor·‖y‖²/K for each of ``eps_factors`` (collapse cases).

    config keys: those of :func:`datasets`, kernels, length_<kernel>, toy_eps, eps_grid.
    """
    out = []
    for name, data in datasets(config, rng):
        eps_list = [(e, False) for e in (config["toy_eps"] if name == "toy" else config["eps_grid"])]
        eps_list += [(f * float(data.y @ data.y) / data.n, True) for f in eps_factors]
        for kernel in config["kernels"]:
            ell = config[f"length_{kernel}"]
            G = sd.gram_matrix(data.x, kernel, ell)
            rows = sd.feature_rows(data.x_test, data.x, kernel, ell)
            out.extend(KernelInstance(name, kernel, float(e), data, G, rows, extra)
                       for e, extra in eps_list)
    return out


def risk_per_round(data: RegressionData, G, rows, eps, n_rounds=None):
    """(excess test risk of f_0, f_1, … through the first collapsed round, the number of
    non-trivial rounds T), from the closed form of :mod:`theory.self_distillation`."""
    cf = sd.closed_form_distillation(G, data.y, eps, n_rounds=n_rounds, x_rows=rows)
    return excess_risk(cf.predictions, data), cf.n_nontrivial
