"""The noisy quadratic model: closed-form steps to target with tuned hyperparameters, and
the Monte Carlo of the same optimizers in the engine (shared run :data:`nqm`).

Variants (Zhang et al. 2019): SGD; heavy-ball momentum (β tuned on a grid); SGD
preconditioned by H^−p; SGD with an exponential moving average of the iterates (γ tuned,
the average evaluated). The closed form (:func:`theory.nqm.nqm_steps_to_target`) gives
S(B) and the optimal hyperparameters per B; the Monte Carlo runs each variant at those
hyperparameters (the closed form is the tuning oracle), and SNGM (no closed form) over an
η grid per B, all in ONE engine program (B, η, β, the preconditioner and γ are traced).

Monte-Carlo steps to target = the first step at which the mean loss over seeds reaches
the target (records at every step). Randomness: the engine from ``subkey(key, "nqm/mc")``,
bootstraps from ``subkey(key, "bootstrap/nqm/...")``.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from simulations import batch_scaling as bsc
from simulations import engine, optimizers, stats
from simulations.keys import numpy_rng, subkey
from simulations.registry import shared_run
from simulations.testbeds import nqm as nqm_tb
from theory import nqm as nqm_th
from theory import scaling as th
from theory import validation as check

VARIANTS = ("sgd", "momentum", "preconditioned", "ema")
LABELS = {"sgd": "SGD", "momentum": "momentum SGD", "preconditioned": "SGD, H^−p preconditioned",
          "ema": "SGD + iterate EMA", "sngm": "SNGM"}


def problem(cfg):
    """(h, c, θ₀, L₀, target) of the configuration."""
    h, c, theta0 = nqm_th.nqm_problem(cfg["d"], x0=cfg["x0"])
    L0 = 0.5 * float(np.sum(h * theta0 ** 2))
    frac = check.in_range("target_fraction", cfg["target_fraction"], 0.0, 1.0, closed_low=False)
    return h, c, theta0, L0, frac * L0


def variant_specs(cfg) -> list[dict]:
    return [dict(), dict(momenta=cfg["momenta"]), dict(precond_power=cfg["precond_power"]),
            dict(emas=cfg["emas"])]


def closed_form(cfg, batch_sizes) -> dict:
    h, c, theta0, _, target = problem(cfg)
    return nqm_th.nqm_steps_to_target(h, c, theta0, target, batch_sizes=batch_sizes, variants=variant_specs(cfg),
                                  n_lr=cfg["n_lr"], n_refine=cfg["n_refine"])


def sngm_etas(cfg, batch_sizes) -> np.ndarray:
    """(B, η) SNGM's grid: centre·B^κ·2^(j − (n−1)/2)."""
    n = check.integer_at_least("sngm_n_eta", cfg["sngm_n_eta"], 1)
    bs = np.asarray(batch_sizes, np.float64)
    return (check.positive("sngm_eta_centre", cfg["sngm_eta_centre"]) * bs[:, None] ** cfg["sngm_eta_exponent"]
            * 2.0 ** (np.arange(n)[None, :] - (n - 1) / 2))


def exact_curves(cfg, cf, h, c, theta0, batch_sizes, steps) -> dict:
    """(variant, B, step) exact mean, per-seed sd and largest quadratic-form weight of the
    evaluated loss (θ, or θ̄ for the EMA variant) of every closed-form configuration, in one
    vectorized recursion (:func:`theory.nqm.nqm_moments`); NaN where S is infinite."""
    V, NB = cf["steps"].shape
    ok = np.isfinite(cf["lr"])
    p = np.array([cfg["precond_power"] if VARIANTS[v] == "preconditioned" else 0.0 for v in range(V)])
    bb = np.broadcast_to(np.asarray(batch_sizes, np.float64), (V, NB))
    mo = nqm_th.nqm_moments(h, c, theta0, lr=np.where(ok, cf["lr"], 1.0)[ok], batch=bb[ok], steps=steps,
                        momentum=cf["momentum"][ok], ema=cf["ema"][ok], precond_power=np.broadcast_to(p[:, None], (V, NB))[ok])
    is_ema = np.broadcast_to(np.array([v == "ema" for v in VARIANTS])[:, None], (V, NB))[ok][:, None]
    out = {}
    for name in ("", "_sd", "_amax"):
        full = np.full((V, NB, np.size(steps)), np.nan)
        full[ok] = np.where(is_ema, mo["loss_ema" + name], mo["loss" + name])
        out["mean" if not name else name[1:]] = full
    return out


def planned_interval(curves, target, steps, n_compared, n_seeds) -> np.ndarray:
    """(variant, B, 2) the Monte-Carlo steps-to-target interval expected before any
    simulation: the first steps at which E L minus / plus the check's half-widths
    (:func:`simulations.stats.quadratic_form_halfwidths`, exact sd and weights) reach the
    target. It says how finely the seeds resolve S: wide where the optimal learning rate puts
    the loss floor just under the target (small B), narrow where the loss falls fast."""
    lo, hi = stats.quadratic_form_halfwidths(curves["sd"], curves["amax"], n_seeds, n_comparisons=n_compared)
    return np.stack([bsc.first_crossing(curves["mean"] - hi, target, steps),
                     bsc.first_crossing(curves["mean"] + lo, target, steps)], axis=-1)


@shared_run("scaling.nqm")
def nqm(cfg, *, key):
    """Closed form and Monte Carlo of the NQM variants across batch sizes (see the module)."""
    h, c, theta0, L0, target = problem(cfg)
    bs = np.asarray(cfg["batch_sizes"], np.float64)
    n_seeds = check.integer_at_least("n_seeds", cfg["n_seeds"], 2)
    cf = closed_form(cfg, bs)
    V, NB = len(VARIANTS), bs.size
    etas = sngm_etas(cfg, bs)
    NE = etas.shape[1]
    n_steps = int(np.ceil(cfg["step_margin"] * np.nanmax(np.where(np.isfinite(cf["steps"]), cf["steps"], np.nan))))
    n_compared = V * NB * (n_steps + 1)  # the closed-form configurations at every record
    curves = exact_curves(cfg, cf, h, c, theta0, bs, np.arange(n_steps + 1))
    planned = planned_interval(curves, target, np.arange(n_steps + 1), n_compared, n_seeds)
    ones = np.ones_like(h)
    hp = {k: [] for k in ("method", "learning_rate", "momentum", "precond", "ema_decay", "batch_size")}
    for v in range(V):
        for j in range(NB):
            p = cfg["precond_power"] if VARIANTS[v] == "preconditioned" else 0.0
            lr = cf["lr"][v, j] if np.isfinite(cf["lr"][v, j]) else 1e-3
            for name, val in (("method", 1), ("learning_rate", lr), ("momentum", cf["momentum"][v, j]),
                              ("precond", h ** (-p)), ("ema_decay", cf["ema"][v, j]), ("batch_size", bs[j])):
                hp[name].append(val)
    for j in range(NB):
        for e in range(NE):
            for name, val in (("method", 0), ("learning_rate", etas[j, e]), ("momentum", cfg["sngm_momentum"]),
                              ("precond", ones), ("ema_decay", 0.0), ("batch_size", bs[j])):
                hp[name].append(val)
    hp = {k: np.asarray(v, np.int32 if k == "method" else np.float64) for k, v in hp.items()}
    res = engine.simulate(nqm_tb.NQM(h=h, c=c, theta0=theta0), optimizers.make_nqm_optimizer, hp,
                          key=subkey(key, "nqm/mc"), n_seeds=n_seeds, n_steps=n_steps, record_every=1,
                          metrics={"loss": nqm_tb.loss, "loss_ema": nqm_tb.loss_ema}, dtype=jnp.float64)
    steps = res.record_steps
    is_ema = np.array([VARIANTS[v] == "ema" for v in range(V) for _ in range(NB)] + [False] * (NB * NE))
    loss = np.where(is_ema[:, None, None], res.records["loss_ema"], res.records["loss"]).astype(np.float64)
    loss = np.where(res.valid[..., None], loss, np.inf)  # a diverged run never reaches the target
    mean, se, n_valid = stats.mean_stderr(loss, axis=1)
    # exact mean, per-seed sd and largest quadratic-form weight of the loss of the closed-form
    # configurations at every record; the Monte-Carlo mean must lie within the family-wise
    # bounds of stats.quadratic_form_halfwidths (the loss is a weighted sum of squared Gaussians,
    # heavy-tailed when a few coordinates dominate: a t or normal critical value on a few dozen
    # seeds would understate its right tail)
    exact, exact_sd, amax = curves["mean"], curves["sd"], curves["amax"]
    m_cf = mean[:V * NB].reshape(V, NB, -1)
    n_cf = n_valid[:V * NB].reshape(V, NB, -1)
    lo_w, hi_w = stats.quadratic_form_halfwidths(exact_sd, amax, n_cf, n_comparisons=n_compared)
    dev = m_cf - exact
    excess = np.where(dev >= 0, dev / np.where(hi_w > 0, hi_w, np.inf), -dev / np.where(lo_w > 0, lo_w, np.inf))
    excess = np.where((hi_w > 0) | (dev != 0), excess, 0.0)
    z = np.where(exact_sd > 0, np.abs(dev) / np.where(exact_sd > 0, exact_sd / np.sqrt(n_cf), 1.0), 0.0)
    first, early, late = bsc.crossing_band(m_cf, target, steps, lo_w, hi_w)
    exact_first = bsc.first_crossing(exact, target, steps)
    s_sngm = bsc.first_crossing(mean[V * NB:].reshape(NB, NE, -1), target, steps)   # (B, η)
    # bootstrap over seeds: the MC steps of every configuration → B_crit of each variant and
    # of SNGM (min over its η grid per B), and each variant's ratio to SGD at the smallest B
    conf = check.in_range("interval_confidence", cfg["interval_confidence"], 0.0, 1.0, closed_low=False)

    def statistic(S):                                        # S: (boot, n_cfg)
        var = S[:, :V * NB].reshape(-1, V, NB)
        sn = S[:, V * NB:].reshape(-1, NB, NE).min(-1)
        allS = np.concatenate([var, sn[:, None]], axis=1)    # (boot, V + 1, B)
        fits = [[fit_summary(bs, row) for row in boot] for boot in allS]
        lb, res = (np.array([[f[q] for f in boot] for boot in fits]) for q in (0, 1))
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = allS[:, :, 0] / allS[:, :1, 0]
        return np.concatenate([lb, lb - lb[:, :1], ratio, res], axis=1)

    est, lo, hi = bsc.seed_bootstrap_crossings(loss, target, steps, rng=numpy_rng(subkey(key, "bootstrap/nqm/mc")),
                                               n_boot=cfg["n_boot"], confidence=conf, statistic=statistic)
    k = V + 1
    iv = lambda a: np.stack([est[a * k:(a + 1) * k], lo[a * k:(a + 1) * k], hi[a * k:(a + 1) * k]], axis=1)
    # exact check of the recursion's stationary limit against the closed forms (AR(1)/AR(2))
    stat_err = []
    for v in (0, 1, 3):
        j = NB // 2
        if np.isfinite(cf["lr"][v, j]):
            far = nqm_th.nqm_moments(h, c, theta0, lr=cf["lr"][v, j], batch=bs[j], steps=[20000],
                                 momentum=cf["momentum"][v, j], ema=cf["ema"][v, j])
            st = nqm_th.nqm_stationary(h, c, lr=cf["lr"][v, j], batch=bs[j], momentum=cf["momentum"][v, j],
                                   ema=cf["ema"][v, j])
            key_ = "loss_ema" if VARIANTS[v] == "ema" else "loss"
            stat_err.append(abs(far[key_][0, 0] / st[key_][0] - 1))
    fits = {VARIANTS[v]: th.fit_tradeoff(bs, cf["steps"][v]) for v in range(V)}
    # steps of the SGD run at the grid B nearest its closed-form B_crit: the trajectory-averaged
    # noise scales tr(HΣ)/E[GᵀHG] and tr Σ/E|G|² (exact expectations over the run's noise)
    j_star = int(np.argmin(np.abs(np.log(bs / fits["sgd"]["b_crit"]))))
    noise = trajectory_noise_scales(h, c, theta0, cf["lr"][0, j_star], bs[j_star], int(cf["steps"][0, j_star]))
    return dict(variants=list(VARIANTS), batch_sizes=bs, target=target, initial_loss=L0,
                cf_steps=cf["steps"], cf_lr=cf["lr"], cf_momentum=cf["momentum"], cf_ema=cf["ema"],
                cf_fit={k_: {q: v_[q] for q in ("s_min", "e_min", "b_crit")} for k_, v_ in fits.items()},
                mc_steps=first, mc_steps_early=early, mc_steps_late=late, exact_steps=exact_first,
                max_excess=excess.max(axis=-1), max_abs_z=z.max(axis=-1), n_compared=n_compared,
                n_seeds=n_seeds,
                planned_interval=planned, n_steps=n_steps, n_diverged=res.n_diverged,
                sngm_etas=etas, sngm_steps=s_sngm,
                b_crit_log2=iv(0), b_crit_log2_vs_sgd=iv(1), small_batch_ratio=iv(2), max_log_residual=iv(3),
                bootstrap_confidence=conf, stationary_rel_err=stat_err,
                curve_steps=steps[_geometric(steps.size)], curve_mean=m_cf[..., _geometric(steps.size)],
                curve_exact=exact[..., _geometric(steps.size)],
                noise_batch=float(bs[j_star]), noise_scale_avg=noise["b_noise"], simple_noise_scale_avg=noise["b_simple"],
                wall_seconds=res.metadata["wall_seconds"])


def fit_summary(batch_sizes, steps) -> tuple:
    """(log₂ B_crit, max |log(S/S_fit)|) of the fit S = S_min + E_min/B (NaN if it fails)."""
    fit = th.fit_tradeoff(batch_sizes, steps)
    with np.errstate(divide="ignore", invalid="ignore"):
        lb = np.log2(fit["b_crit"]) if fit["b_crit"] > 0 else -np.inf
        res = np.nanmax(np.abs(fit["log_residual"])) if fit["n_points"] >= 3 else np.nan
    return float(lb) if np.isfinite(fit["b_crit"]) or fit["b_crit"] == np.inf else float("nan"), float(res)


def _geometric(n: int, points: int = 60) -> np.ndarray:
    """Indices 0..n−1, about ``points`` of them log-spaced (for figures)."""
    return np.unique(np.round(np.geomspace(1, n, points)).astype(int) - 1)


def trajectory_noise_scales(h, c, theta0, lr, batch, steps: int) -> dict:
    """Mean over t < S of tr(HΣ)/E[G_tᵀHG_t] and tr Σ/E|G_t|² along an SGD run on the NQM
    (G_t = Hθ_t, Σ = C; the expectations over the run's noise are exact: E θ_t² per
    coordinate from the moment recursion)."""
    ghg, g2 = [], []
    a, q = (1 - lr * h) ** 2, lr ** 2 * c / batch
    m = theta0 ** 2
    for _ in range(max(steps, 1)):
        ghg.append(np.sum(h ** 3 * m))
        g2.append(np.sum(h ** 2 * m))
        m = a * m + q
    return dict(b_noise=float(np.mean(np.sum(h * c) / np.asarray(ghg))),
                b_simple=float(np.mean(np.sum(c) / np.asarray(g2))))
