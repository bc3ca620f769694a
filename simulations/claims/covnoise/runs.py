"""Runs for the claims of Wen et al. (structured covariance noise): closed forms next to
Monte Carlo on the noisy quadratic, and the six arms on linear regression.

Every run derives its randomness from the claim's key: the quadratic's rotation from
``subkey(key, "quadratic")``, the Monte Carlo from ``subkey(key, "mc")`` etc.
"""
from __future__ import annotations

import numpy as np

from simulations import engine, optimizers, stats
from simulations.keys import subkey
from simulations.testbeds import make_linear_regression, make_noisy_quadratic
from theory import quadratic as qt
from theory import validation as check

STRUCTURES = qt.STRUCTURES
ARMS = ("SGD, small batch", "SGD, large batch", "large + full Σ(w) noise",
        "large + diagonal Σ(w) noise", "large + isotropic Σ(w) noise",
        "large + full Σ(ŵ) noise (fixed)")
PRIMARY, FIXED = 2, 5


def _loss(testbed, params):
    return testbed.loss(params)


def quadratic(cfg, key, x0_norm):
    """The rotated log-spectrum quadratic of the claim's key, and A in float64."""
    tb = make_noisy_quadratic(d=cfg["d"], lambda_max=cfg["lambda_max"], lambda_min=cfg["lambda_min"],
                              x0_norm=x0_norm, key=subkey(key, "quadratic"))
    return tb, np.asarray(tb.hessian, np.float64)


def covariances(A, cfg):
    """s = 1/M_S − 1/M_L and C = s·P(A) for every structure (full, block, diag, iso)."""
    s = qt.batch_noise_scale(cfg["small_batch"], cfg["large_batch"])
    blocks = [cfg["d"] // cfg["n_blocks"]] * cfg["n_blocks"]
    return s, [qt.structured_covariance(A, p, s, blocks) for p in STRUCTURES]


def tail_exact(A, C, alpha, x0, start, stop):
    """Exact mean of E f(x_k) over k = start … stop−1 (the iterates a tail window averages)."""
    return float(qt.expected_loss(A, C, alpha, x0, np.arange(start, stop)).mean())


# ===================================================================== exact moments
def exact_moments(cfg, *, key):
    tb, A = quadratic(cfg, key, cfg["x0_norm"])
    s, covs = covariances(A, cfg)
    factors = np.stack([optimizers.covariance_factor(C) for C in covs])
    hp = {"learning_rate": np.full(len(covs), cfg["alpha"]), "noise_factor": factors}
    res = engine.simulate(tb, optimizers.make_noisy_sgd, hp, key=subkey(key, "mc"),
                          n_seeds=cfg["n_seeds"], n_steps=cfg["n_steps"],
                          record_every=cfg["record_every"], metrics={"loss": _loss})
    mean, se, n = res.stats(res.records["loss"])
    x0 = np.asarray(tb.x0, np.float64)
    exact = np.stack([qt.expected_loss(A, C, cfg["alpha"], x0, res.record_steps) for C in covs])
    return dict(steps=res.record_steps, mc_mean=mean, mc_se=se, n_valid=n, exact=exact,
                stationary_closed=[qt.stationary_loss(A, C, cfg["alpha"]) for C in covs],
                stationary_lyapunov=[qt.stationary_loss_lyapunov(A, C, cfg["alpha"]) for C in covs],
                scale=s, n_diverged=res.n_diverged, wall_seconds=res.metadata["wall_seconds"])


# ========================================================================= frobenius
def gap_power(A, covs, alphas, n_steps, n_seeds, max_seeds):
    """Power analysis of the Monte-Carlo ordering, made before any simulation.

    For each α and each adjacent pair of structures, the exact tail gap δ and the
    per-seed standard deviation of the paired (common-random-number) tail gap
    (:func:`theory.quadratic.tail_average_sd`) give the seeds needed so that the gap is
    resolved (δ/SE > the one-sided Bonferroni t critical value) with probability
    ≥ 1 − 1e-4 (:func:`simulations.stats.required_samples`). The instance (A) comes from
    the key, so the seeds are sized per key: the run uses max(n_seeds, needed) seeds
    (:func:`planned_seeds`), and raises if that exceeds ``max_seeds``: such a configuration
    could not check the ordering, and a failure to resolve would be read as evidence
    against the theorem. Returns (gaps, sds, seeds needed per gap, seeds to run).
    """
    m = n_steps - n_steps // 2
    x0 = np.zeros(A.shape[0])
    crit = stats.critical_t(n_comparisons=3 * len(alphas), dof=n_seeds - 1, two_sided=False)
    factors = [optimizers.covariance_factor(C) for C in covs]
    gaps, sds, need = (np.zeros((3, len(alphas))) for _ in range(3))
    for j, a in enumerate(alphas):
        tails = [tail_exact(A, C, a, x0, n_steps // 2, n_steps) for C in covs]
        for i in range(3):
            gaps[i, j] = tails[i] - tails[i + 1]
            sds[i, j] = qt.tail_average_sd(A, factors[i:i + 2], [1.0, -1.0], a, m)
            need[i, j] = stats.required_samples(gaps[i, j], sds[i, j], critical=crit)
    i, j = np.unravel_index(np.argmax(need), need.shape)
    n = planned_seeds(int(need.max()), n_seeds, max_seeds,
                      f"the {STRUCTURES[i]} − {STRUCTURES[i + 1]} tail-loss gap {gaps[i, j]:.3g} at "
                      f"α = {alphas[j]:g} (per-seed sd {sds[i, j]:.3g})", "or drop that α")
    return gaps, sds, need, n


def planned_seeds(need: int, n_seeds: int, max_seeds: int, what: str, advice: str = "") -> int:
    """Seeds a Monte-Carlo check runs: the configured ``n_seeds``, raised to ``need`` (what
    the power analysis of this key's instance requires), never above ``max_seeds``, else an
    error before anything is simulated."""
    if need > max_seeds:
        check.fail("max_seeds", max_seeds, f">= {need} to resolve {what} with probability "
                   f">= 1 − 1e-4; raise max_seeds {advice}".rstrip())
    return max(int(n_seeds), int(need))


def frobenius(cfg, *, key):
    tb, A = quadratic(cfg, key, 0.0)
    s, covs = covariances(A, cfg)
    alphas = np.asarray(cfg["alphas"], np.float64)
    T, r = cfg["n_steps"], cfg["record_every"]
    gaps_exact, gap_sd, need, n_seeds = gap_power(A, covs, alphas, T, cfg["n_seeds"], cfg["max_seeds"])
    # (i)-(ii): identities in float64
    identities = dict(
        trace_C=[np.trace(C) for C in covs], s_trace_A=s * np.trace(A),
        tr_AC=[qt.trace_product(A, C) for C in covs],
        s_frob_PA=[s * qt.frobenius_norm(C / s) ** 2 for C in covs],
        frob_C_sq_over_s=[qt.frobenius_norm(C) ** 2 / s for C in covs])
    stationary = np.array([[qt.stationary_loss(A, C, a) for a in alphas] for C in covs])
    fine = np.linspace(0.01, alphas.max(), 60)
    stationary_fine = np.array([[qt.stationary_loss(A, C, a) for a in fine] for C in covs])
    # (iii) small-α limit: fit g(α) = (E f∞ − α trC/4)/α² by a quadratic in α
    small = np.geomspace(cfg["small_alpha_min"], cfg["small_alpha_max"], 12)
    g = np.array([[(qt.stationary_loss(A, C, a) - a * np.trace(C) / 4) / a ** 2 for a in small]
                  for C in covs])
    # (iii) Monte Carlo: tail average of f over the last half of the run
    grid, shape = engine.config_grid(noise_factor=np.stack([optimizers.covariance_factor(C) for C in covs]),
                                     learning_rate=alphas)
    res = engine.simulate(tb, optimizers.make_noisy_sgd, grid, key=subkey(key, "mc"),
                          n_seeds=n_seeds, n_steps=T, record_every=r,
                          window_metrics={"loss": _loss}, common_random_numbers=True)
    tail = res.window_average("loss", 0.5).reshape(shape + (-1,))  # (structure, α, seed)
    mean, se, _ = res.stats(tail.reshape(len(covs) * len(alphas), -1))
    # paired (common random numbers) differences of adjacent structures, per seed
    gap_mean, gap_se, _ = stats.mean_stderr(tail[:-1] - tail[1:], axis=-1)
    x0 = np.zeros(cfg["d"])
    # (iv) from x0 = 0: E f(x_k) <= (α²k/2) tr(AC), equality at k = 1 (closed form and MC)
    K, alpha_b = cfg["bound_steps"], float(alphas[-1])
    k = np.arange(1, K + 1)
    hp_b = {"learning_rate": np.full(len(covs), alpha_b), "noise_factor": grid["noise_factor"][::len(alphas)]}
    res_b = engine.simulate(tb, optimizers.make_noisy_sgd, hp_b, key=subkey(key, "bound"),
                            n_seeds=n_seeds, n_steps=K, record_every=1, metrics={"loss": _loss})
    mb, seb, _ = res_b.stats(res_b.records["loss"][..., 1:])
    return dict(structures=list(STRUCTURES), scale=s, alphas=alphas, **identities,
                frob_C=[qt.frobenius_norm(C) for C in covs], stationary=stationary,
                alpha_fine=fine, stationary_fine=stationary_fine, small_alphas=small,
                small_intercepts=[float(np.polyfit(small, gi, 2)[-1]) for gi in g],
                small_limits=[qt.excess_loss_limit(C, s) for C in covs],
                small_cubic_term=[small[-1] ** 3 * np.trace(np.linalg.matrix_power(A, 4) @ C) / 64
                                  for C in covs],
                mc_tail_mean=mean.reshape(shape), mc_tail_se=se.reshape(shape),
                tail_exact=np.array([[tail_exact(A, C, a, x0, T // 2, T) for a in alphas] for C in covs]),
                mc_gap_mean=gap_mean, mc_gap_se=gap_se, gap_exact=gaps_exact, gap_sd_planned=gap_sd,
                seeds_needed=need, n_seeds=n_seeds,
                n_diverged=res.n_diverged.reshape(shape), bound_alpha=alpha_b, bound_k=k,
                bound=np.array([qt.loss_bound_from_zero(A, C, alpha_b, k) for C in covs]),
                exact_k=np.array([qt.expected_loss(A, C, alpha_b, x0, k) for C in covs]),
                mc_k_mean=mb, mc_k_se=seb,
                wall_seconds=res.metadata["wall_seconds"] + res_b.metadata["wall_seconds"])


# ================================================================== negative control
def negative_control(cfg, *, key):
    tb, A = quadratic(cfg, key, 0.0)
    s = qt.batch_noise_scale(cfg["small_batch"], cfg["large_batch"])
    covs = list(qt.equal_spectrum_pair(A, s * np.linalg.eigvalsh(A)))
    alpha, T, r = cfg["alpha"], cfg["n_steps"], cfg["record_every"]
    x0 = np.zeros(cfg["d"])
    tails = [tail_exact(A, C, alpha, x0, T // 2, T) for C in covs]
    factors = [optimizers.covariance_factor(C) for C in covs]
    # power: independent seeds per arm, so SE(diff)² = (sd₁² + sd₂²)/n
    sds = [qt.tail_average_sd(A, [D], [1.0], alpha, T - T // 2) for D in factors]
    crit = stats.critical_t(n_comparisons=3, dof=cfg["n_seeds"] - 1)
    need = stats.required_samples(tails[0] - tails[1], float(np.hypot(*sds)), critical=crit)
    n_seeds = planned_seeds(need, cfg["n_seeds"], cfg["max_seeds"],
                            f"the predicted tail-loss difference {tails[0] - tails[1]:.3g}")
    hp = {"learning_rate": np.full(2, alpha), "noise_factor": np.stack(factors)}
    res = engine.simulate(tb, optimizers.make_noisy_sgd, hp, key=subkey(key, "mc"),
                          n_seeds=n_seeds, n_steps=T, record_every=r,
                          metrics={"loss": _loss}, window_metrics={"wloss": _loss})
    mean, se, _ = res.stats(res.window_average("wloss", 0.5))
    rec_mean, rec_se, _ = res.stats(res.records["loss"])
    return dict(trace=[np.trace(C) for C in covs], frob=[qt.frobenius_norm(C) for C in covs],
                tr_AC=[qt.trace_product(A, C) for C in covs],
                stationary=[qt.stationary_loss(A, C, alpha) for C in covs],
                tail_exact=tails, mc_tail_mean=mean, mc_tail_se=se, steps=res.record_steps,
                exact=[qt.expected_loss(A, C, alpha, x0, res.record_steps) for C in covs],
                mc_mean=rec_mean, mc_se=rec_se, n_diverged=res.n_diverged, alpha=alpha,
                seeds_needed=need, n_seeds=n_seeds,
                wall_seconds=res.metadata["wall_seconds"])


# ============================================================== emulates small batch
def emulates_small_batch(cfg, *, key):
    """Six arms on one regression problem; tail-averaged excess loss per seed.

    Arms 2-4 add Wen et al.'s noise shaped by the gradient covariance at the current
    iterate, Σ(w_t) (state-dependent); arm 5 is a control with the covariance frozen at the
    optimum, Σ(ŵ), which the quadratic theory of :mod:`theory.quadratic` describes exactly.
    """
    ms, ml = cfg["small_batch"], cfg["large_batch"]
    tb = make_linear_regression(n=cfg["n"], d=cfg["d"], noise_std=cfg["noise_std"],
                                lambda_max=cfg["lambda_max"], lambda_min=cfg["lambda_min"],
                                batch_size=ms, replace=cfg["replace"],
                                rotation_angle=cfg["rotation_angle"], key=subkey(key, "data"))
    large = tb.with_batch(ml)
    H, sigma = tb.hessian(), tb.gradient_covariance()
    s = qt.batch_noise_scale(ms, ml, None if cfg["replace"] else cfg["n"])
    alpha = cfg["alpha"]
    common = dict(n_seeds=cfg["n_seeds"], n_steps=cfg["n_steps"], record_every=cfg["record_every"],
                  metrics={"loss": _loss})
    fixed = np.stack([np.zeros_like(H), optimizers.covariance_factor(s * sigma)])
    runs = [
        engine.simulate(tb, optimizers.make_noisy_sgd, {"learning_rate": np.full(1, alpha),
                        "noise_factor": fixed[:1]}, key=subkey(key, "small"), **common),
        engine.simulate(large, optimizers.make_noisy_sgd, {"learning_rate": np.full(2, alpha),
                        "noise_factor": fixed}, key=subkey(key, "large"), **common)]
    for structure in ("full", "diagonal", "isotropic"):
        runs.append(engine.simulate(large, optimizers.sgd_with_gradient_noise(structure),
                                    {"learning_rate": np.full(1, alpha), "noise_scale": np.full(1, s)},
                                    key=subkey(key, structure), **common))
    loss_hat = float(0.5 * np.mean((np.asarray(tb.features) @ tb.optimum() - np.asarray(tb.targets)) ** 2))
    per_seed, divs = [], []
    for res in runs:
        recs = res.records["loss"]
        tail = recs[..., recs.shape[-1] // 2 + 1:].mean(axis=-1) - loss_hat  # (config, seed)
        per_seed += [np.where(res.valid[c], tail[c], np.nan) for c in range(tail.shape[0])]
        divs += list(res.n_diverged)
    # runs come as small, large (none, fixed Σ(ŵ)), full, diagonal, isotropic: put in ARMS order
    order = [0, 1, 3, 4, 5, 2]
    per_seed = [per_seed[i] for i in order]
    # fixed-covariance quadratic theory (A = H, C = minibatch covariance at ŵ + added noise);
    # exact for arms 1 and 5 up to the state dependence of the minibatch noise itself
    base_small, base_large = tb.minibatch_covariance(), large.minibatch_covariance()
    added = {"full": s * sigma, "diagonal": qt.structured_covariance(sigma, "diagonal", s),
             "isotropic": qt.structured_covariance(sigma, "isotropic", s)}
    covs = [base_small, base_large] + [base_large + added[p] for p in ("full", "diagonal", "isotropic")] \
        + [base_large + s * sigma]
    return dict(arms=list(ARMS), excess_mean=[float(np.nanmean(x)) for x in per_seed],
                excess_se=[float(np.nanstd(x, ddof=1) / np.sqrt(np.isfinite(x).sum())) for x in per_seed],
                n_valid=[int(np.isfinite(x).sum()) for x in per_seed],
                n_diverged=[divs[i] for i in order],
                predicted_fixed_sigma=[qt.stationary_loss(H, C, alpha) for C in covs],
                scale=s, alpha=alpha, loss_at_optimum=loss_hat,
                frob_added_at_optimum=[qt.frobenius_norm(added[p]) for p in ("full", "diagonal", "isotropic")],
                wall_seconds=float(sum(r.metadata["wall_seconds"] for r in runs)))
