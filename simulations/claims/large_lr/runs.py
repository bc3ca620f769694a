"""Runs of Li, Wei & Ma's P/Q claims: the arms on the P/Q data (a shared run).

The arms are configurations of one compiled engine program (their step sizes, anneal
step and pre-activation noise are traced hyperparameters, :data:`ARMS`), with common
random numbers (the same initialization and minibatches per seed). Every constant comes
from the configuration. A data draw (geometry, training and test sets) is one engine call
with ``seeds_per_draw`` trajectories per arm; statistics are over data draws (per-draw
means over the valid seeds), so every interval includes the data variance.

Regimes (:data:`REGIMES`) pair a "large" arm with a "small" one: real minibatch SGD
(η₁ → η₂ vs η₂), the paper's mitigation (η₂ + annealed pre-activation noise vs η₂), and
the theory's model of a large learning rate's noise as explicit Gaussian noise on the
pre-activations whose variance grows with the step size (∝ η or ∝ η², each arm carrying
the noise of its own η_t, so the noise falls with the anneal).

Randomness: data draw i from ``fold_in(subkey(key, f"{stream}-data"), i)``, its
trajectories from ``fold_in(subkey(key, f"{stream}-sgd"), i)``, stream "pq" unless the
configuration names another (the parameter map, the confirmation runs and the
pre-registered run use their own streams, so their draws are fresh).
"""
from __future__ import annotations

import time
import warnings

import jax
import numpy as np

from simulations import engine, optimizers
from simulations.keys import subkey
from simulations.registry import shared_run
from simulations.testbeds import pq
from theory import large_lr as th
from theory import validation as check

THRESHOLD = 0.9  # "learned": training accuracy of a type >= 0.9


def _arm(before, after, noise_std="", noise_scale="", power=1.0):
    """An arm's row (η before the anneal, η after it, annealed noise std, η-scaled noise
    scale, its power) from the configuration's entries of these names ("": 0)."""
    def row(cfg):
        return (cfg[before], cfg[after], cfg[noise_std] if noise_std else 0.0,
                cfg[noise_scale] if noise_scale else 0.0, power)
    return row


#: arm name -> its row (η before the anneal, η after, annealed noise std, η-scaled noise
#: scale, noise power), read from the configuration; a new arm is one more entry.
ARMS = {"large_anneal": _arm("eta1", "eta2"), "small": _arm("eta2", "eta2"),
        "small_noise": _arm("eta2", "eta2", noise_std="noise_std"),
        "large_eta_noise": _arm("eta1", "eta2", noise_scale="noise_scale"),
        "small_eta_noise": _arm("eta2", "eta2", noise_scale="noise_scale"),
        "large_eta2_noise": _arm("eta1", "eta2", noise_scale="noise_scale", power=2.0),
        "small_eta2_noise": _arm("eta2", "eta2", noise_scale="noise_scale", power=2.0)}
ALL_ARMS = list(ARMS)

#: regime -> (the arm in the role of the large learning rate, the small-LR arm)
REGIMES = {"sgd": ("large_anneal", "small"), "mitigation": ("small_noise", "small"),
           "noise_eta": ("large_eta_noise", "small_eta_noise"),
           "noise_eta2": ("large_eta2_noise", "small_eta2_noise")}
REGIME_WORDS = {
    "sgd": "real minibatch SGD, η₁ → η₂ vs η₂",
    "mitigation": "η₂ + pre-activation noise annealed at the anneal step vs η₂ (minibatch SGD)",
    "noise_eta": ("minibatch SGD + explicit pre-activation noise of variance ∝ η_t "
                  "(std noise_scale·√η_t), η₁ → η₂ vs η₂"),
    "noise_eta2": ("minibatch SGD + explicit pre-activation noise of variance ∝ η_t² "
                   "(std noise_scale·η_t), η₁ → η₂ vs η₂")}


# ------------------------------------------------------------------------ validation
def check_schedule(cfg, n_steps_key="n_steps", anneal_key="anneal_step", every_key="record_every"):
    """η₁, η₂ > 0, noise ≥ 0, an anneal step inside the run on the recording grid, ≥ 2
    data draws (intervals over draws) and ≥ 1 seed per draw."""
    check.positive("eta1", cfg["eta1"])
    check.positive("eta2", cfg["eta2"])
    check.nonnegative("noise_std", cfg.get("noise_std", 0.0))
    n_steps = check.integer_at_least(n_steps_key, cfg[n_steps_key], 2)
    every = check.integer_at_least(every_key, cfg[every_key], 1)
    a = cfg[anneal_key]
    if isinstance(a, bool) or int(a) != a or not 1 <= int(a) <= n_steps - 1:
        check.fail(anneal_key, a, f"an integer step inside the run, 1 <= {anneal_key} <= "
                                  f"{n_steps - 1} (n_steps = {n_steps})")
    if n_steps % every or int(a) % every:
        check.fail(every_key, every, f"a divisor of {n_steps_key} = {n_steps} and of "
                                     f"{anneal_key} = {int(a)} (the anneal step is recorded)")
    check.integer_at_least("n_draws", cfg["n_draws"], 2)
    check.integer_at_least("seeds_per_draw", cfg["seeds_per_draw"], 1)


def spec_of(cfg) -> th.PQSpec:
    """The :class:`theory.large_lr.PQSpec` of a configuration."""
    return th.PQSpec(d=cfg["d"], p0=cfg["p0"], q0=cfg["q0"], margin=cfg.get("margin"),
                     p_noise=cfg["p_noise"], r=cfg.get("r"), q_noise=cfg.get("q_noise", 0.0),
                     z_norm=cfg.get("z_norm", 1.0))


def validate(cfg) -> th.PQSpec:
    """Spec, schedule, arms, noise and sizes of a P/Q configuration (raises before compiling)."""
    spec = spec_of(cfg)
    check_schedule(cfg)
    unknown = [a for a in cfg["arms"] if a not in ARMS]
    if unknown or not cfg["arms"]:
        check.fail("arms", len(cfg["arms"]), f"a non-empty list of arm names from {sorted(ARMS)}")
    if any(a.endswith(("eta_noise", "eta2_noise")) for a in cfg["arms"]):
        check.nonnegative("noise_scale", cfg.get("noise_scale", -1.0))
    if cfg["batch_size"] > cfg["n"]:
        check.fail("batch_size", cfg["batch_size"], f"1 <= batch_size <= n = {cfg['n']}")
    if cfg.get("n_pad") is not None and cfg["n_pad"] < cfg["n"]:
        check.fail("n_pad", cfg["n_pad"], f"n_pad >= n = {cfg['n']} (None: no padding)")
    return spec


def arm_hparams(cfg, arms):
    """The traced hyperparameters of the arms: one configuration per arm."""
    rows = np.array([ARMS[a](cfg) for a in arms], dtype=np.float64)
    return dict(eta1=rows[:, 0], eta2=rows[:, 1], noise_std=rows[:, 2], noise_scale=rows[:, 3],
                noise_power=rows[:, 4], anneal_step=np.full(len(arms), float(cfg["anneal_step"])))


# ---------------------------------------------------------------------- measurements
def first_crossing(acc, steps, threshold=THRESHOLD):
    """First recorded step with acc >= threshold along the last axis (NaN: never)."""
    hit = np.asarray(acc) >= threshold
    return np.where(hit.any(axis=-1), np.asarray(steps)[np.argmax(hit, axis=-1)], np.nan)


def draw_means(x, valid):
    """(arm, draw, seed, ...) -> (arm, draw, ...) mean over the valid (finite) seeds."""
    v = np.asarray(valid).reshape(np.shape(valid) + (1,) * (np.ndim(x) - 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all seeds of a draw diverged: NaN
        return np.nanmean(np.where(v, x, np.nan), axis=2)


def pre_anneal_window(steps, anneal):
    """Records in the second half of the pre-anneal phase: anneal/2 <= step <= anneal."""
    steps = np.asarray(steps)
    return (steps >= anneal / 2) & (steps <= anneal)


def summarize(raw, steps, anneal):
    """Evidence of P/Q runs from (arm, draw, seed, record[, type]) records: per-draw curves
    and the per-draw quantities the rules read, per-trajectory first crossings."""
    valid = raw["valid"]
    tr, te = draw_means(raw["train_acc"], valid), draw_means(raw["test_acc"], valid)
    ka = draw_means(raw["kappa"], valid)                         # (arm, draw, record)
    curves = {k: draw_means(raw[k], valid) for k in ("train_loss", "fit_acc", "p_align", "both_share")}
    win = pre_anneal_window(steps, anneal)
    at = int(np.flatnonzero(np.asarray(steps) == anneal)[0])
    t = first_crossing(np.moveaxis(raw["train_acc"], -1, -2), steps)  # (arm, draw, seed, type)
    return dict(record_steps=steps, anneal_step=anneal, train_acc=tr, test_acc=te, kappa=ka,
                **curves, t_first=np.where(valid[..., None], t, np.nan), valid=valid,
                n_diverged=(~valid).sum(axis=(1, 2)), n_draws=tr.shape[1],
                q_acc_window=tr[:, :, win, 1].mean(-1), kappa_window=ka[:, :, win].mean(-1),
                q_acc_final=tr[:, :, -1, 1], kappa_final=ka[:, :, -1], test_final=te[:, :, -1],
                loss_window=curves["train_loss"][:, :, win].mean(-1),
                fit_at_anneal=curves["fit_acc"][:, :, at], fit_final=curves["fit_acc"][:, :, -1],
                both_share_window=curves["both_share"][:, :, win].mean(-1),
                p_align_final=curves["p_align"][:, :, -1])


# ------------------------------------------------------------------------ P/Q runs
def make_testbed(cfg, spec, key) -> pq.PQTestbed:
    return pq.make_pq_testbed(spec, key=key, n=cfg["n"], n_test=cfg["n_test"], width=cfg["width"],
                              batch_size=cfg["batch_size"], l2=cfg["l2"], n_pad=cfg.get("n_pad"))


@shared_run("largelr.pq")
def PQ(cfg, *, key):
    """The arms of ``cfg["arms"]`` on ``n_draws`` P/Q data draws (read by several claims)."""
    spec = validate(cfg)
    hp = arm_hparams(cfg, cfg["arms"])
    stream = cfg.get("stream", "pq")
    k_data, k_sgd = subkey(key, f"{stream}-data"), subkey(key, f"{stream}-sgd")
    parts = {"all": [], "valid": []}
    start = time.perf_counter()
    for i in range(cfg["n_draws"]):
        tb = make_testbed(cfg, spec, jax.random.fold_in(k_data, i))
        res = engine.simulate(tb, optimizers.make_annealed_sgd, hp, key=jax.random.fold_in(k_sgd, i),
                              n_seeds=cfg["seeds_per_draw"], n_steps=cfg["n_steps"],
                              record_every=cfg["record_every"], metrics=pq.GATE_METRICS,
                              common_random_numbers=True)
        parts["all"].append(res.records["all"])
        parts["valid"].append(res.valid)
    raw = {k: np.stack(v, axis=1) for k, v in parts.items()}   # (arm, draw, seed, ...)
    raw.update(pq.split_all(raw.pop("all")))
    return dict(summarize(raw, res.record_steps, cfg["anneal_step"]), arms=list(cfg["arms"]),
                gamma0=spec.gamma0, r_value=spec.radius, wall_seconds=time.perf_counter() - start)
