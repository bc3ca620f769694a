"""The large-batch sweep behind ``dreg.large_batch``: arms × learning rates × data splits ×
batch sizes on two testbeds, and the tuning and steps-to-target read off it.

Testbeds (:mod:`simulations.testbeds.mixture`): the digits two-layer network on a
stratified digits split, and the same network on a Gaussian-mixture task of the same
sizes; B = n is the full batch. Every split (a digits split, or a fresh mixture draw)
comes from the key; each (testbed, split, B) is ONE engine call on the DReg-parametrized
network (:class:`simulations.testbeds.dreg.DRegNet`, κ and ρ of the config) with every
(arm, η) as a configuration and ``seeds_per_split`` seeds under common random numbers
(seed s: the same W₀, D and minibatches in every arm). Arms differ only in traced
hyperparameters (:func:`arm_hparams`):

    baseline         λ = 0, factor κ²/2 on every copied layer: the plain network
    control(ℓ)       λ = 0, factor 1 on ℓ: the plain network with ℓ's learning rate × 2/κ²
    DReg(ℓ, R, λ)    λ on ℓ with regularizer R, factor 1 on ℓ

(the identities are ``dreg.reparametrization``'s, checked to float precision); other
layers keep factor κ²/2. An arm may carry momentum β, its η then being (1 − β)·grid.
The epoch budget is fixed: T = r·W steps with W ≈ ``records`` windows of r steps and
T·B ≈ epochs·n. Records: the full training loss every r steps, validation and test
accuracy of the merged network at the end; per split the ``seeds_per_split`` seeds are
averaged (the split is the statistical unit; a diverged seed counts as loss +inf and
accuracy 0).
"""
from __future__ import annotations

import numpy as np

from simulations import engine, optimizers
from simulations.claims.dreg.runs import LAYERS, hparams, split_seed
from simulations.keys import subkey
from simulations.registry import shared_run
from simulations.testbeds import digits, digits_mlp, dreg, mixture
from theory import dreg as th
from theory import validation as check

TESTBEDS = ("digits", "mixture")
KINDS = ("baseline", "control", "dreg")


# ------------------------------------------------------------------------ arms
def arm_label(arm) -> str:
    kind = arm["kind"]
    text = {"baseline": "baseline", "control": f"LR control ({arm.get('layer')})"}.get(
        kind, f"DReg ({arm.get('layer')}, {arm.get('reg')}, λ = {arm.get('lam', 0):g})")
    return text + (f", β = {arm['beta']:g}" if arm.get("beta") else "")


def check_arm(arm) -> dict:
    """The arm in its normal form {kind, layer, reg, lam, beta}, or InvalidParameter."""
    if arm.get("kind") not in KINDS:
        check.fail("arm kind", arm.get("kind"), f"one of {KINDS}")
    if arm["kind"] != "baseline" and arm.get("layer") not in LAYERS:
        check.fail("arm layer", arm.get("layer"), f"one of {LAYERS}")
    if arm["kind"] == "dreg":
        if arm.get("reg") not in optimizers.DREG_REGULARIZERS:
            check.fail("arm reg", arm.get("reg"), f"one of {optimizers.DREG_REGULARIZERS}")
        check.positive("arm lam", arm.get("lam", 0.0))
    check.in_range("arm beta", arm.get("beta", 0.0), 0.0, 1.0)
    return dict(kind=arm["kind"], layer=arm.get("layer"), reg=arm.get("reg"),
                lam=float(arm.get("lam", 0.0)), beta=float(arm.get("beta", 0.0)))


def arm_hparams(arm, kappa: float) -> dict:
    """The :func:`runs.hparams` arm of an arm spec (see the module docstring)."""
    keep = th.baseline_copy_factor(kappa)
    factor = np.full(len(LAYERS), keep)
    lam = np.zeros(len(LAYERS))
    if arm["kind"] != "baseline":
        factor[LAYERS.index(arm["layer"])] = 1.0
    if arm["kind"] == "dreg":
        lam[LAYERS.index(arm["layer"])] = arm["lam"]
    return dict(factor=factor, reg=arm.get("reg"), lam=lam, beta=arm.get("beta", 0.0))


def budget(batch_size: int, n: int, epochs: float, records: int):
    """(T, r): r = max(1, round(epochs·n/(B·records))) steps per record and T = r·W,
    W = round(epochs·n/(B·r)) windows: T·B within half a window of epochs·n."""
    per = epochs * n / batch_size
    r = max(1, int(round(per / records)))
    return r * max(1, int(round(per / r))), r


def arms_at(cfg, batch_size) -> list[dict]:
    """The arms run at B: ``arms`` at every B, plus ``map_arms`` at the large batch."""
    arms = list(cfg["arms"]) + (list(cfg["map_arms"]) if batch_size == cfg["large_batch"] else [])
    return [check_arm(a) for a in arms]


# ------------------------------------------------------------------------- run
def _loss(testbed, params):
    return testbed.loss(params)


def _data(cfg, key, testbed: str, split: int):
    if testbed == "digits":
        return digits.load_digits_splits(seed=split_seed(key, f"digits-split-{split}"))
    return mixture.mixture_splits(key=subkey(key, f"mixture-draw-{split}"), **cfg["mixture"])


def _validate(cfg):
    for name in cfg["testbeds"]:
        if name not in TESTBEDS:
            check.fail("testbed", name, f"one of {TESTBEDS}")
    n_splits = check.integer_at_least("n_splits", cfg["n_splits"], 3)  # t-intervals need >= 2 dof
    check.integer_at_least("seeds_per_split", cfg["seeds_per_split"], 1)
    sizes = [check.integer_at_least("B", b, 1) for b in cfg["batch_sizes"]]
    for name in ("large_batch", "small_batch"):
        if cfg.get(name) is not None and cfg[name] not in sizes:
            check.fail(name, cfg[name], f"one of batch_sizes {sizes}")
    if cfg["large_batch"] is None:
        check.fail("large_batch", 0, f"one of batch_sizes {sizes}")
    check.positive("epochs", cfg["epochs"])
    etas = np.exp2(np.asarray(cfg["eta_exponents"], np.float64))
    if etas.size < 3:
        check.fail("eta_exponents", etas.size, "at least 3 grid points (an interior optimum)")
    return n_splits, sizes, etas


@shared_run("dreg.sweep")
def sweep(cfg, *, key):
    n_splits, sizes, etas = _validate(cfg)
    kappa, offset = cfg["kappa"], cfg["offset"]
    make = optimizers.dreg_sgd(LAYERS)
    metrics = {"loss": dreg.merged(_loss)}
    final = {"val": dreg.merged(digits_mlp.val_accuracy), "test": dreg.merged(digits_mlp.test_accuracy)}
    before, wall, out = engine.trace_count(), 0.0, {}
    for name in cfg["testbeds"]:
        per_b = {}
        for B in sizes:
            arms = arms_at(cfg, B)
            specs = [dict(arm_hparams(a, kappa), eta=float(e) * (1 - a.get("beta", 0.0)))
                     for a in arms for e in etas]
            hp = hparams(specs, eta=1.0, beta=0.0, margin=cfg["margin"])
            shape = (len(arms), len(etas))
            loss, val, test, div = [], [], [], []
            for split in range(n_splits):
                base = mixture.make_classifier(_data(cfg, key, name, split), B)
                T, r = budget(B, base.n_train, cfg["epochs"], cfg["records"])
                res = engine.simulate(dreg.make_dreg(base, kappa=kappa, offset=offset), make, hp,
                                      key=subkey(key, f"{name}-{split}-B{B}"),
                                      n_seeds=cfg["seeds_per_split"], n_steps=T, record_every=r,
                                      metrics={**metrics, **final}, common_random_numbers=True)
                wall += res.metadata["wall_seconds"]
                ok = res.valid[..., None]
                # a diverged seed: loss +inf from its divergence on, accuracy 0
                after = res.record_steps[None, None, :] >= np.maximum(res.diverged_at, 0)[..., None]
                bad = ~ok & after
                L = np.where(bad, np.inf, res.records["loss"]).mean(axis=1)
                loss.append(L.reshape(*shape, -1))
                val.append(np.where(res.valid, res.records["val"][..., -1], 0.0).mean(1).reshape(shape))
                test.append(np.where(res.valid, res.records["test"][..., -1], 0.0).mean(1).reshape(shape))
                div.append((~res.valid).sum(1).reshape(shape))
            # (arm, η, split, record) and (arm, η, split)
            per_b[f"B{B}"] = dict(batch_size=B, steps=res.record_steps, n_steps=T,
                                  arms=[arm_label(a) for a in arms], specs=arms,
                                  loss=np.stack(loss, axis=2), val=np.stack(val, axis=2),
                                  test=np.stack(test, axis=2), diverged=np.stack(div, axis=2))
        out[name] = per_b
    return dict(out, testbeds=list(cfg["testbeds"]), batch_sizes=sizes, etas=etas,
                compilations=engine.trace_count() - before, wall_seconds=wall)


# ------------------------------------------------------ reading the sweep (rules, figures)
def loo_tuned_index(val, loss_final):
    """Leave-one-split-out tuning: for split i and arm a, the η index maximizing the mean
    validation accuracy over the OTHER splits (ties: lower mean final training loss).
    ``val``, ``loss_final`` (arm, η, split) -> (arm, split) integer indices."""
    A, E, S = val.shape
    idx = np.zeros((A, S), dtype=int)
    for i in range(S):
        others = [j for j in range(S) if j != i]
        v, l = val[:, :, others].mean(-1), loss_final[:, :, others].mean(-1)
        for a in range(A):
            idx[a, i] = min(range(E), key=lambda e: (-v[a, e], l[a, e]))
    return idx


def steps_to_target(steps, curve, target):
    """First step at which ``curve`` (losses at ``steps``) falls to ``target``, linear in
    log-loss between the two records around the crossing; (steps[-1], True) if never
    (censored at the budget)."""
    below = np.flatnonzero(curve <= target)
    if below.size == 0:
        return float(steps[-1]), True
    k = int(below[0])
    if k == 0:
        return float(steps[0]), False
    l0, l1 = np.log(curve[k - 1]), np.log(curve[k])
    frac = (l0 - np.log(target)) / (l0 - l1) if l0 > l1 else 1.0
    return float(steps[k - 1] + frac * (steps[k] - steps[k - 1])), False


def read_off(block, baseline: int = 0):
    """Per split (the unit) at the tuned η of each arm: test accuracy, final training
    loss, steps to the target, the loss curve; the target of split i is the baseline's
    mean training loss over the other splits at its tuned η at half the budget (record
    W//2). Returns a dict of (arm, split) arrays plus ``curves`` (arm, split, record),
    ``target`` (split,), ``edge`` (arm, split) tuned η at an end of the grid."""
    loss, val, test = block["loss"], block["val"], block["test"]
    A, E, S, R = loss.shape
    idx = loo_tuned_index(val, loss[..., -1])
    pick = lambda x: np.take_along_axis(x, idx[:, None, :, *([None] * (x.ndim - 3))], axis=1)[:, 0]
    curves = pick(loss)                                   # (arm, split, record)
    mid = (R - 1) // 2
    target = np.array([np.mean([loss[baseline, idx[baseline, i], j, mid] for j in range(S) if j != i])
                       for i in range(S)])
    steps, censored = np.zeros((A, S)), np.zeros((A, S), dtype=bool)
    for a in range(A):
        for i in range(S):
            steps[a, i], censored[a, i] = steps_to_target(block["steps"], curves[a, i], target[i])
    return dict(eta_index=idx, edge=(idx == 0) | (idx == E - 1), test=pick(test), val=pick(val),
                final_loss=curves[..., -1], curves=curves, target=target, steps=steps,
                censored=censored, diverged=pick(block["diverged"]))
