"""Runs for the label-noise claims: the sparse model (label noise, GD, SGLD), the
(η, σ, B) grid at one λ, the three-parameter toy with its reference flows, and the
two-layer network.

Three simulations are shared runs, stored once and read by two claims each:
:data:`sparse` (sparse recovery, flatness), :data:`toy` (beyond linear scaling, tracks the
regularized flow) and :data:`mlp` (flatness). Label-noise SGD (σ > 0) and GD (σ = 0) are
two configurations of one compiled program (σ is traced); SGLD (isotropic parameter noise)
is a static switch of the oracle, so it is its own program.

Randomness comes from the claim's key only: data from ``subkey(key, "sparse-data")`` /
``"mlp-data"``, trajectories from ``"ln"``, ``"sgld"``, ``"B<batch>"``, ``"toy"``,
``"mlp"``, the Hessian probes (Lanczos start vectors) from ``"probes"``, and the
rules' bootstrap resamples from the ``bootstrap_seed`` drawn from ``"bootstrap"``.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from simulations import engine, flows
from simulations.keys import numpy_rng, subkey
from simulations.optimizers import make_momentum_sgd
from simulations.registry import shared_run
from simulations.testbeds import label_noise as tbs
from theory import label_noise as th
from theory import validation as check

ARMS = ("label noise", "GD", "SGLD")
MLP_ARMS = ("label noise", "GD")


def bootstrap_seed(key) -> int:
    """The seed of the rules' bootstrap resamples, drawn from the claim's key."""
    return int(numpy_rng(subkey(key, "bootstrap")).integers(2 ** 31))


def probe_key(key):
    """The key of the Hessian probes (Lanczos start vectors) of a run at the claim's key."""
    return subkey(key, "probes")


def _records(cfg):
    steps = check.integer_at_least("n_steps", cfg["n_steps"], 1)
    n_rec = check.integer_at_least("n_records", cfg["n_records"], 1)
    if steps % n_rec:
        check.fail("n_records", n_rec, f"a divisor of n_steps = {steps}")
    return steps, steps // n_rec


def _common(cfg):
    check.positive("eta", cfg["eta"])
    check.nonnegative("sigma", cfg["sigma"])
    check.integer_at_least("n_seeds", cfg["n_seeds"], 2)
    return _records(cfg)


# ======================================================================= sparse model
def sparse_testbed(cfg, key, batch_size=None):
    """The sparse u⊙u − v⊙v regression of the claim's key (d, n, k from ``cfg``)."""
    return tbs.make_sparse_regression(key=subkey(key, "sparse-data"), d=cfg["d"], n=cfg["n"],
                                      k=cfg["k"], batch_size=batch_size)


def _lasso(tb, lam):
    X, y = np.asarray(tb.features, np.float64), np.asarray(tb.targets, np.float64)
    return th.weighted_lasso(X, y, lam)


@shared_run("labelnoise.sparse")
def sparse(cfg, *, key):
    """Label-noise SGD, GD (σ = 0: deterministic in full batch) and SGLD with τ matched to
    the label-noise perturbation at θ₀, on the sparse model; per-seed tail-averaged w and
    its distances, per-seed loss, exact tr ∇²L and Lanczos λ_max at every record."""
    T, r = _common(cfg)
    check.integer_at_least("sgld_seeds", cfg["sgld_seeds"], 2)
    tb = sparse_testbed(cfg, key).with_probe_key(probe_key(key))
    lam = th.regularization_strength(cfg["eta"], cfg["sigma"], tb.n)
    w_lasso = _lasso(tb, lam)
    w_star = np.zeros(cfg["d"])
    w_star[: cfg["k"]] = 1.0
    kw = dict(n_steps=T, record_every=r, window_metrics={"w": tbs.sparse_w},
              metrics={"loss": tbs.loss, "trace": tbs.sparse_trace, "lambda_max": tbs.lambda_max})
    tau = tb.matched_param_noise(cfg["sigma"])
    hp_both = tbs.label_noise_hyperparams([cfg["eta"]] * 2, [cfg["sigma"], 0.0])
    hp_sgld = tbs.label_noise_hyperparams(cfg["eta"], 0.0, param_noise=tau)
    both = engine.simulate(tb, make_momentum_sgd, hp_both, key=subkey(key, "ln"),
                           n_seeds=cfg["n_seeds"], **kw)
    sgld = engine.simulate(tb.with_langevin(), make_momentum_sgd, hp_sgld, key=subkey(key, "sgld"),
                           n_seeds=cfg["sgld_seeds"], **kw)
    arms = {"label noise": (both, 0), "GD": (both, 1), "SGLD": (sgld, 0)}
    out = dict(lam=lam, w_lasso=w_lasso, w_star=w_star, tau=tau, steps=both.record_steps,
               window_steps=np.arange(T // r) * r + r / 2, arms=list(arms),
               bootstrap_seed=bootstrap_seed(key), probe_key=tb.probe_key,
               wall_seconds=dict(label_noise_and_gd=both.metadata["wall_seconds"],
                                 sgld=sgld.metadata["wall_seconds"]))
    for a, (res, c) in arms.items():
        valid = res.valid[c]
        tail = res.window_average("w", cfg["tail_start"])[c][valid]          # (seed, d)
        wmean = res.windows["w"][c][valid].mean(axis=0)                       # (window, d)
        out[a] = dict(
            n_valid=int(valid.sum()), n_seeds=int(valid.size),
            dist_lasso=np.linalg.norm(tail - w_lasso, axis=1),
            dist_star=np.linalg.norm(tail - w_star, axis=1),
            tail_mean=tail.mean(axis=0),
            support_mean=wmean[:, : cfg["k"]].mean(axis=1),
            off_support_abs=np.abs(wmean[:, cfg["k"]:]).mean(axis=1),
            dist_lasso_t=np.linalg.norm(wmean - w_lasso, axis=1),
            **{m: res.records[m][c][valid] for m in ("loss", "trace", "lambda_max")})
    return out


# ------------------------------------------------------------------- lambda only
def _check_lambda_configs(cfg):
    lam = check.positive("lam", cfg["lam"])
    check.integer_at_least("n_seeds", cfg["n_seeds"], 2)
    configs = cfg["configs"]
    if len(configs) < 2:
        check.fail("configs", configs, "at least two (η, B) pairs")
    for eta, B in configs:
        check.positive("eta", eta)
        if not (float(B).is_integer() and 1 <= B <= cfg["n"]):
            check.fail("B", B, f"an integer with 1 <= B <= n = {cfg['n']}")
    return lam


def first_reach(dist, reach, steps):
    """Step of the first window whose distance is <= reach (NaN if none), along the last axis."""
    hit = dist <= reach
    idx = np.argmax(hit, axis=-1)
    return np.where(hit.any(axis=-1), np.asarray(steps, np.float64)[idx], np.nan)


def lambda_only(cfg, *, key):
    """Endpoints and per-seed times to reach w_Lasso over (η, B) pairs with σ = √(λB/η)."""
    lam = _check_lambda_configs(cfg)
    T, r = _records(cfg)
    w_lasso = _lasso(sparse_testbed(cfg, key), lam)
    window_steps = np.arange(T // r) * r + r / 2
    rows = {}
    for B in sorted({int(c[1]) for c in cfg["configs"]}):
        idx = [i for i, c in enumerate(cfg["configs"]) if int(c[1]) == B]
        etas = [cfg["configs"][i][0] for i in idx]
        sigmas = [np.sqrt(lam * B / e) for e in etas]  # λ = ησ²/B
        tb = sparse_testbed(cfg, key, batch_size=B)
        hp = tbs.label_noise_hyperparams(etas, sigmas)
        res = engine.simulate(tb, make_momentum_sgd, hp, key=subkey(key, f"B{B}"),
                              n_seeds=cfg["n_seeds"], n_steps=T, record_every=r,
                              metrics={"loss": tbs.loss}, window_metrics={"w": tbs.sparse_w})
        for c, i in enumerate(idx):
            valid = res.valid[c]
            w = res.windows["w"][c][valid]                                    # (seed, window, d)
            rows[i] = dict(tail=res.window_average("w", cfg["tail_start"])[c][valid],
                           curve=np.linalg.norm(w.mean(0) - w_lasso, axis=1),
                           reach=first_reach(np.linalg.norm(w - w_lasso, axis=-1), cfg["reach"],
                                             window_steps),
                           n_diverged=int((~valid).sum()))
    rows = [rows[i] for i in range(len(cfg["configs"]))]
    return dict(lam=lam, configs=[list(c) for c in cfg["configs"]], w_lasso=w_lasso,
                window_steps=window_steps, record_every=r, bootstrap_seed=bootstrap_seed(key),
                tail_mean=np.stack([x["tail"].mean(0) for x in rows]),
                tail_se=np.stack([x["tail"].std(0, ddof=1) / np.sqrt(len(x["tail"])) for x in rows]),
                n_valid=[len(x["tail"]) for x in rows], n_diverged=[x["n_diverged"] for x in rows],
                dist_curves=np.stack([x["curve"] for x in rows]),
                t_reach=[x["reach"] for x in rows])


# ========================================================================== the toy
def _check_levels(levels):
    levels = np.asarray(levels, float)
    if levels.shape != (2,) or not np.isclose(levels[0], 4 * levels[1]) or levels[1] <= 0:
        check.fail("eta_lambdas", levels.tolist(), "two positive values [ηλ, ηλ/4] (Richardson pair)")
    return levels


@shared_run("labelnoise.toy")
def toy(cfg, *, key):
    """Label-noise SGD on the toy at each η and two strengths ηλ, ηλ/4, with the reference
    flows (R_η, ¼ tr, none) from the same start at the same recorded steps; per-seed θ at
    every record (the rules resample seeds)."""
    levels = _check_levels(cfg["eta_lambdas"])
    etas = np.asarray(cfg["etas"], float)
    for e in etas:
        th.toy_stable_interval(e)  # raises for η >= √2 (no stable point)
    check.integer_at_least("n_seeds", cfg["n_seeds"], 2)
    tb = tbs.make_toy(q0=cfg["q0"])
    theta0 = np.asarray(tb.theta0, np.float64)
    out = dict(etas=etas, eta_lambdas=levels, q_star=[th.toy_q_star(e) for e in etas], q0=cfg["q0"],
               bootstrap_seed=bootstrap_seed(key), levels=[])
    # one program for every (strength, η): T is set by the weaker strength, so the stronger
    # one simply runs 4x more relaxation times
    r = int(round(cfg["time_units"] / levels[1])) // cfg["n_records"]
    T = r * cfg["n_records"]
    el_grid, eta_grid = np.repeat(levels, len(etas)), np.tile(etas, len(levels))
    sigmas = np.sqrt(tb.n * el_grid) / eta_grid          # ηλ = η²σ²/B is fixed per strength
    hp = tbs.label_noise_hyperparams(eta_grid, sigmas)
    res = engine.simulate(tb, make_momentum_sgd, hp, key=subkey(key, "toy"),
                          n_seeds=cfg["n_seeds"], n_steps=T, record_every=r,
                          metrics={"theta": tbs.toy_theta}, window_metrics={"q": tbs.toy_q},
                          dtype=jnp.float64)
    q_tail = res.window_average("q", cfg["tail_start"])
    qm, qse, qn = res.stats(q_tail)
    th_mean, th_se, _ = res.stats(res.records["theta"])                   # (config, record, 3)
    theta = np.where(res.valid[:, :, None, None], res.records["theta"], np.nan)
    for li, el in enumerate(levels):
        rows = slice(li * len(etas), (li + 1) * len(etas))
        lam = el / etas
        ref = {kind: np.stack([flows.regularized_flow(tbs.toy_loss_flat, theta0, eta=e, lam=l, n_steps=T,
                                                      record_every=r, kind=kind)
                               for e, l in zip(etas, lam)]) for kind in flows.KINDS}
        out["levels"].append(dict(
            eta_lambda=el, lam=lam, sigma=sigmas[rows], n_steps=T, steps=res.record_steps,
            q_mean=qm[rows], q_se=qse[rows], n_valid=qn[rows], n_diverged=res.n_diverged[rows],
            q_t=np.stack([res.windows["q"][c][res.valid[c]].mean(0) for c in range(len(el_grid))[rows]]),
            q_flow_end={k: v[:, -1, 0] ** 2 for k, v in ref.items()},
            dist={k: np.linalg.norm(th_mean[rows] - v, axis=-1) for k, v in ref.items()},
            noise_floor=np.sqrt((th_se[rows] ** 2).sum(-1)),
            flows=ref, theta=theta[rows]))                                      # (η, seed, record, 3)
    return out


# ===================================================================== two-layer net
@shared_run("labelnoise.mlp")
def mlp(cfg, *, key):
    """Label-noise SGD and GD on the two-layer tanh network (one program): per-seed loss,
    exact tr ∇²L and Lanczos λ_max at every record (Lanczos start from the claim's key)."""
    T, r = _common(cfg)
    tb = tbs.make_two_layer(key=subkey(key, "mlp-data"), n=cfg["n"], d=cfg["d"], width=cfg["width"])
    tb = tb.with_probe_key(probe_key(key))
    hp = tbs.label_noise_hyperparams([cfg["eta"]] * 2, [cfg["sigma"], 0.0])
    res = engine.simulate(tb, make_momentum_sgd, hp, key=subkey(key, "mlp"), n_seeds=cfg["n_seeds"],
                          n_steps=T, record_every=r,
                          metrics={"loss": tbs.loss, "trace": tbs.mlp_trace, "lambda_max": tbs.lambda_max})
    return dict(steps=res.record_steps, arms=list(MLP_ARMS), probe_key=tb.probe_key,
                lam=th.regularization_strength(cfg["eta"], cfg["sigma"], tb.n),
                wall_seconds=res.metadata["wall_seconds"],
                **{a: dict(n_valid=int(res.valid[c].sum()), n_seeds=int(res.valid[c].size),
                           **{m: res.records[m][c][res.valid[c]] for m in ("loss", "trace", "lambda_max")})
                   for c, a in enumerate(MLP_ARMS)})
