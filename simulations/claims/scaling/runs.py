"""Runs of the batch-size frame: the two-batch estimators, the regression sweep of every
optimizer (shared run :data:`regression`), and the claims' own reductions of the shared
runs (the NQM in :mod:`.runs_nqm`, the digits sweep in :mod:`simulations.batch_scaling`).

Randomness from the claim's key: data from ``subkey(key, "regression/data")``, Monte
Carlo from ``subkey(key, "<name>/mc")``, bootstraps from ``subkey(key, "bootstrap/...")``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from simulations import batch_scaling as bsc
from simulations import engine, optimizers, stats
from simulations.keys import numpy_rng, subkey
from simulations.registry import shared_run
from simulations.testbeds import batch_regression as br
from simulations.testbeds import nqm as nqm_tb
from theory import nqm as nqm_th
from theory import scaling as th
from theory import validation as check

QUANTITIES = ("grad_sq", "trace_sigma", "ghg", "trace_h_sigma")


# ================================================================ two-batch estimators
def _regression(cfg, key, max_batch):
    r = cfg["regression"]
    return br.make_regression_sampler(n=r["n"], d=r["d"], noise_std=r["noise_std"], lambda_max=r["lambda_max"],
                                      lambda_min=r["lambda_min"], w0_distance=r["w0_distance"],
                                      max_batch=max_batch, key=subkey(key, "regression/data"))


def _testbeds(cfg, key):
    """name -> (testbed, point, hparams maker, H, moments) with exact per-example moments."""
    bb = cfg["b_big"]
    h, c, theta0 = nqm_th.nqm_problem(cfg["nqm_d"])
    nq = nqm_tb.NQM(h=h, c=c, theta0=theta0)
    point_n = {"w": theta0, "ema": theta0}
    reg = _regression(cfg, key, bb)
    ex = reg.exact()
    w = np.asarray(reg.w0, np.float64)
    X, y = np.asarray(reg.features, np.float64), np.asarray(reg.targets, np.float64)
    U = X * (X @ w - y)[:, None]                      # per-example gradients at w
    return {"nqm": (nq, point_n, lambda B: {"batch_size": B}, np.diag(h),
                    th.gaussian_moments(h * theta0, np.diag(c))),
            "regression": (reg, w, lambda B: {"batch_size": B, "label_noise": 0.0}, ex.hessian(),
                           th.per_example_moments(U))}


def estimator_power(moments, H, cfg, critical) -> dict:
    """Pairs needed so that each check resolves the bias of the single-batch estimate
    |g_big|² of |G|² (tr Σ/B_big), and its H-weighted analogue, with probability
    >= 1 − 1e-4 (exact per-pair sd from :func:`theory.scaling.two_batch_sd`)."""
    bs_, bb = cfg["b_small"], cfg["b_big"]
    plain = th.two_batch_sd(moments, bs_, bb)
    weighted = th.two_batch_sd(th.weighted_moments(moments, H), bs_, bb)
    tr = float(np.trace(moments["Sigma"]))
    trh = float(np.sum(H * moments["Sigma"]))
    need = max(stats.required_samples(tr / bb, plain["grad_sq"], critical=critical),
               stats.required_samples(trh / bb, weighted["grad_sq"], critical=critical))
    return dict(pairs_needed=int(need), sd_plain=plain, sd_weighted=weighted)


def estimators(cfg, *, key):
    """K independent pairs (g_small, g_big) of minibatch gradients at a fixed point on each
    testbed (the testbed's own oracle, float64), the two-batch estimates of every pair, and
    the exact values."""
    bs_, bb = check.integer_at_least("b_small", cfg["b_small"], 1), check.integer_at_least("b_big", cfg["b_big"], 2)
    if bb <= bs_:
        check.fail("b_big", bb, f"b_big > b_small = {bs_}")
    K = check.integer_at_least("n_pairs", cfg["n_pairs"], 2)
    crit = stats.critical_t(n_comparisons=2 * (len(QUANTITIES) + 2), dof=K - 1)  # 2 testbeds
    beds = _testbeds(cfg, key)
    out = dict(testbeds=list(beds), quantities=list(QUANTITIES), critical=crit, n_pairs=K,
               b_small=bs_, b_big=bb)
    for name, (tb, point, hp, H, mom) in beds.items():
        power = estimator_power(mom, H, cfg, crit)
        if power["pairs_needed"] > K:
            check.fail("n_pairs", K, f">= {power['pairs_needed']} to resolve the single-batch bias tr Σ/B_big "
                       f"on the {name} testbed with probability >= 1 − 1e-4")
        ns = th.noise_scales(mom["G"], H, mom["Sigma"])
        with jax.enable_x64(True):
            tb64 = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float64), tb)
            pt = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float64), point)
            Hj = jnp.asarray(H)

            def grads(k, B):
                g = tb64.gradient(pt, key=k, hparams={kk: jnp.asarray(v, jnp.float64) for kk, v in hp(B).items()})
                g = g["w"] if isinstance(g, dict) else g
                return jnp.stack([g @ g, g @ (Hj @ g)])

            keys = jax.random.split(subkey(key, f"estimators/{name}"), 2 * K).reshape(2, K)
            small = np.asarray(jax.vmap(lambda k: grads(k, float(bs_)))(keys[0]))
            big = np.asarray(jax.vmap(lambda k: grads(k, float(bb)))(keys[1]))
        g2, tr = th.two_batch_estimates(small[:, 0], big[:, 0], bs_, bb)
        ghg, trh = th.two_batch_estimates(small[:, 1], big[:, 1], bs_, bb)
        est = np.stack([g2, tr, ghg, trh])                          # (quantity, pair)
        mean, se, _ = stats.mean_stderr(est, axis=1)
        exact = np.array([ns["grad_sq"], ns["trace_sigma"], ns["ghg"], ns["trace_h_sigma"]])
        # B_simple and B_noise of the estimates: E[tr Σ̂] − B·E[|Ĝ|²] = 0 at the exact B
        lin = np.stack([tr - ns["b_simple"] * g2, trh - ns["b_noise"] * ghg])
        lm, lse, _ = stats.mean_stderr(lin, axis=1)
        out[name] = dict(mean=mean, se=se, exact=exact, ratio_mean=[float(np.mean(tr) / np.mean(g2)),
                                                                    float(np.mean(trh) / np.mean(ghg))],
                         ratio_exact=[ns["b_simple"], ns["b_noise"]], combination_mean=lm, combination_se=lse,
                         naive_grad_sq_mean=float(np.mean(big[:, 0])), pairs_needed=power["pairs_needed"],
                         planned_sd=[power["sd_plain"]["grad_sq"], power["sd_plain"]["trace"],
                                     power["sd_weighted"]["grad_sq"], power["sd_weighted"]["trace"]],
                         sample_sd=np.std(est, axis=1, ddof=1))
    return out


# ================================================================ regression sweep
#: the optimizers of the regression sweep: (factory, method index, momentum?, label noise?, noise?)
REG_METHODS = ("sgd", "msgd", "sngm", "label_noise", "covnoise")
REG_LABELS = {"sgd": "SGD", "msgd": "momentum SGD", "sngm": "SNGM", "label_noise": "label-noise SGD",
              "covnoise": "SGD + Σ(w) noise (Wen et al.)"}


def regression_etas(cfg, batch_sizes) -> np.ndarray:
    """(method, B, η): :func:`simulations.batch_scaling.eta_grid` (one rule for every method)."""
    return bsc.eta_grid(cfg, REG_METHODS, batch_sizes)


@shared_run("scaling.regression")
def regression(cfg, *, key):
    """Every optimizer of :data:`REG_METHODS` × B × η × seed on one finite-data regression
    problem; the excess loss at every step; steps to the target per (method, B, η) from
    the mean over seeds, and per B the best η (per-B tuned); bootstrap over seeds of the
    critical batch size of each method and of the comparisons of the frame's predictions."""
    bs = np.asarray(cfg["batch_sizes"], np.float64)
    if np.any(bs > cfg["max_batch"]) or np.any(np.diff(bs) <= 0):
        check.fail("batch_sizes", bs, f"increasing batch sizes <= max_batch = {cfg['max_batch']}")
    n_seeds = check.integer_at_least("n_seeds", cfg["n_seeds"], 2)
    b_emulated = check.integer_at_least("covnoise_batch", cfg["covnoise_batch"], 1)
    tb = br.make_regression_sampler(n=cfg["n"], d=cfg["d"], noise_std=cfg["noise_std"], lambda_max=cfg["lambda_max"],
                                    lambda_min=cfg["lambda_min"], w0_distance=cfg["w0_distance"],
                                    max_batch=cfg["max_batch"], key=subkey(key, "regression/data"))
    e0 = float(tb.exact().excess_loss(np.asarray(tb.w0)))
    target = check.in_range("target_fraction", cfg["target_fraction"], 0.0, 1.0, closed_low=False) * e0
    etas = regression_etas(cfg, bs)
    M, NB, NE = len(REG_METHODS), bs.size, etas.shape[2]
    grid, shape = engine.config_grid(method=np.arange(M), batch=np.arange(NB), eta=np.arange(NE))
    mi, bi, ei = grid["method"], grid["batch"], grid["eta"]
    name = np.asarray(REG_METHODS)[mi]
    hp = dict(method=np.where(name == "sngm", 0, 1).astype(np.int32), learning_rate=etas[mi, bi, ei],
              momentum=np.where(np.isin(name, ["msgd", "sngm"]), cfg["momentum"], 0.0),
              batch_size=bs[bi], label_noise=np.where(name == "label_noise", cfg["label_noise"], 0.0),
              noise_scale=np.where(name == "covnoise", np.maximum(1.0 / b_emulated - 1.0 / bs[bi], 0.0), 0.0))
    losses = np.empty(shape + (n_seeds, cfg["n_steps"] + 1))
    wall, before = 0.0, engine.trace_count()
    for make, sel in ((optimizers.make_normalized_or_plain_momentum, name != "covnoise"),
                      (optimizers.sgd_with_gradient_noise("full"), name == "covnoise")):
        sub = {k: v[sel] for k, v in hp.items()}
        res = engine.simulate(tb, make, sub, key=subkey(key, "regression/mc"), n_seeds=n_seeds,
                              n_steps=cfg["n_steps"], record_every=1, metrics={"excess": br.excess_loss},
                              common_random_numbers=True)
        wall += res.metadata["wall_seconds"]
        vals = np.where(res.valid[..., None], res.records["excess"].astype(np.float64), np.inf)
        losses.reshape((-1,) + losses.shape[3:])[sel] = vals
    steps = np.arange(cfg["n_steps"] + 1)
    S = bsc.first_crossing(losses.mean(axis=3), target, steps)            # (method, B, η)
    best, edge = bsc.tune(S, maximize=False)
    s_star = np.min(S, axis=-1)
    j_emul = int(np.argmin(np.abs(np.log(bs / b_emulated))))
    k_sgd, k_ln, k_cov = (REG_METHODS.index(m) for m in ("sgd", "label_noise", "covnoise"))

    def statistic(Sb):                                    # (boot, M·NB·NE) -> (boot, k)
        s = Sb.reshape((-1,) + shape).min(-1)             # per-B tuned, (boot, M, B)
        lb = np.array([[np.log2(max(th.fit_tradeoff(bs, row)["b_crit"], 1e-300)) for row in boot] for boot in s])
        with np.errstate(divide="ignore", invalid="ignore"):
            cov_ratio = s[:, k_cov, j_emul:] / s[:, k_sgd, j_emul:j_emul + 1]
        return np.concatenate([lb, (lb[:, k_ln] - lb[:, k_sgd])[:, None], cov_ratio], axis=1)

    conf = check.in_range("interval_confidence", cfg["interval_confidence"], 0.0, 1.0, closed_low=False)
    flat = losses.reshape((-1, n_seeds, steps.size))
    est, lo, hi = bsc.seed_bootstrap_crossings(flat, target, steps, rng=numpy_rng(subkey(key, "bootstrap/regression")),
                                               n_boot=cfg["n_boot"], confidence=conf, statistic=statistic)
    iv = np.stack([est, lo, hi], axis=1)
    fits = {m: {q: th.fit_tradeoff(bs, s_star[i])[q] for q in ("s_min", "e_min", "b_crit")}
            for i, m in enumerate(REG_METHODS)}
    mom = th.per_example_moments(np.asarray(tb.features, np.float64)
                                 * (np.asarray(tb.features, np.float64) @ np.asarray(tb.w0, np.float64)
                                    - np.asarray(tb.targets, np.float64))[:, None])
    ns0 = th.noise_scales(mom["G"], tb.exact().hessian(), mom["Sigma"])
    return dict(methods=list(REG_METHODS), batch_sizes=bs, etas=etas, target=target, initial_excess=e0,
                steps=S, tuned=best, tuned_at_edge=edge & np.isfinite(S).any(-1), steps_tuned=s_star, fits=fits,
                b_crit_log2=iv[:M], label_noise_vs_sgd_log2=iv[M], covnoise_ratio=iv[M + 1:],
                covnoise_batches=bs[j_emul:], emulated_batch=b_emulated, interval_confidence=conf,
                mean_curves=np.take_along_axis(losses.mean(3), best[..., None, None], axis=2)[:, :, 0][..., ::cfg["curve_stride"]],
                curve_steps=steps[::cfg["curve_stride"]], n_seeds=n_seeds, initial_noise_scale=ns0["b_noise"],
                initial_simple_noise_scale=ns0["b_simple"], compilations=engine.trace_count() - before,
                wall_seconds=wall)


# ============================================================ the digits network
def digits_steps(ev, method: str) -> np.ndarray:
    """(split, B) optimizer steps of ``method`` to the validation target (inf: not reached)."""
    return ev.steps[:, list(ev.methods).index(method)]


def _median_curve(per_split) -> np.ndarray:
    """(B,) median over splits (an unreached split counts as +inf)."""
    return np.median(per_split, axis=0)


def _fit_stats(bs, s) -> np.ndarray:
    """[log₂ B_crit, max |log(S/S_fit)|] of a steps curve (NaN where fewer than 3 points are
    finite: two parameters need a third point to be tested)."""
    fit = th.fit_tradeoff(bs, s)
    if fit["n_points"] < 3:
        return np.array([np.nan, np.nan])
    with np.errstate(divide="ignore"):
        return np.array([np.log2(fit["b_crit"]) if fit["b_crit"] > 0 else -np.inf,
                         np.nanmax(np.abs(fit["log_residual"]))])


def digits_fits(ev, methods, *, key, name, n_boot, confidence) -> dict:
    """Per method: the fit of its median-over-splits steps curve, and bootstrap intervals
    over splits of [log₂ B_crit, max |log residual|, S(B_min)/S_SGD(B_min),
    log₂ B_crit − log₂ B_crit(SGD)] (splits resampled jointly across methods)."""
    bs = ev.batch_sizes.astype(np.float64)
    rows = [list(ev.methods).index(m) for m in methods]
    sgd = list(ev.methods).index("sgd")
    steps = ev.steps                                                   # (split, method, B)

    def stat(sample):
        med = np.median(sample, axis=0)                               # (method, B)
        base = _fit_stats(bs, med[sgd])
        out = []
        for r in rows:
            f = _fit_stats(bs, med[r])
            with np.errstate(divide="ignore", invalid="ignore"):
                out += [f[0], f[1], med[r, 0] / med[sgd, 0], f[0] - base[0]]
        return np.array(out)

    full = stat(steps)
    rng = numpy_rng(subkey(key, name))
    idx = rng.integers(0, steps.shape[0], size=(n_boot, steps.shape[0]))
    boots = np.array([stat(steps[i]) for i in idx])
    with np.errstate(invalid="ignore"):
        lo, hi = np.nanquantile(boots, [(1 - confidence) / 2, (1 + confidence) / 2], axis=0, method="inverted_cdf")
    nan_share = np.isnan(boots).mean(axis=0)
    lo = np.where(nan_share > (1 - confidence) / 2, np.nan, lo)       # too many failed fits: no interval
    hi = np.where(nan_share > (1 - confidence) / 2, np.nan, hi)
    out = {}
    for i, m in enumerate(methods):
        sl = slice(4 * i, 4 * i + 4)
        out[m] = dict(median_steps=_median_curve(steps[:, rows[i]]), estimate=full[sl], low=lo[sl], high=hi[sl])
    return out


def tradeoff(cfg, *, key):
    """The digits network's SGD steps curve, fitted, with bootstrap intervals over splits
    (the NQM side is read from the shared run by the rule)."""
    ev = bsc.digits_sweep(cfg["digits"], key=key)
    conf = check.in_range("confidence", cfg["confidence"], 0.0, 1.0, closed_low=False)
    fits = digits_fits(ev, ["sgd"], key=key, name="bootstrap/tradeoff/digits", n_boot=cfg["n_boot"],
                       confidence=1 - (1 - conf) / cfg["n_interval_findings"])
    bs = ev.batch_sizes.astype(np.float64)
    med = fits["sgd"]["median_steps"]
    fit = th.fit_tradeoff(bs, med)
    return dict(digits_fit={q: fit[q] for q in ("s_min", "e_min", "b_crit", "n_points")},
                digits_log_residual=fit["log_residual"], digits_sgd=fits["sgd"],
                digits_interval_confidence=1 - (1 - conf) / cfg["n_interval_findings"])


def predictions(cfg, *, key):
    """The digits network's steps curves of SGD, momentum SGD and (at full fidelity) LAMB,
    with bootstrap intervals over splits (the NQM side is in the shared run)."""
    ev = bsc.digits_sweep(cfg["digits"], key=key)
    conf = check.in_range("confidence", cfg["confidence"], 0.0, 1.0, closed_low=False)
    methods = [m for m in ("sgd", "msgd", "lamb") if m in ev.methods]
    c = 1 - (1 - conf) / cfg["n_interval_findings"]
    return dict(digits_methods=methods, digits_interval_confidence=c,
                digits_fits=digits_fits(ev, methods, key=key, name="bootstrap/predictions/digits", n_boot=cfg["n_boot"],
                                   confidence=c))
