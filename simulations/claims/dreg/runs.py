"""The float64 runs behind DReg's two theorems (``dreg.reparametrization``,
``dreg.inert_at_copy``): one shared run, one compiled program.

On a digits split drawn from the key, the two-layer network with both weight layers
replicated (:class:`simulations.testbeds.dreg.DRegNet`, κ ∈ ``kappas``, copy offset
ρ ∈ ``offsets``) is trained for T steps by SGD with momentum β ∈ ``momenta``, in five arms
that differ only in traced hyperparameters:

    control   λ = 0, layer learning-rate factor 1       (DReg without its regularizer)
    baseline  λ = 0, factor κ²/2 on both copies          (should be the plain network)
    cosine, unitwise, margin   λ > 0 with that R on both layers, factor 1

and the plain network (``active = 0``, the same program) runs with layer factors 2/κ²
(the learning-rate control, one per κ) and 1 (the baseline). Every run uses the same
key with common random numbers, so seed s has the same initialization W₀ and the same
minibatches in every run. Records every step: the merged parameters and W − W′.

The comparisons are reduced to error / tolerance ratios here, with the float rule of
:func:`theory.dreg.roundoff_tolerance`: ``ulps``·(t + 1)·u·S, u = 2⁻⁵³, S the largest
magnitude of W_eff and (|W| + |W′|)/κ on the compared trajectories.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from simulations import engine, optimizers
from simulations.keys import numpy_rng, subkey
from simulations.registry import shared_run
from simulations.testbeds import dreg, mixture
from theory import dreg as th
from theory import validation as check

LAYERS = ("w1", "w2")
EXACT_ARMS = ("control", "baseline", "cosine", "unitwise", "margin")
REG_INDEX = {name: i for i, name in enumerate(optimizers.DREG_REGULARIZERS)}


def split_seed(key, name: str = "split") -> int:
    """An integer data-split seed derived from the key (digits splits take an int)."""
    return int(numpy_rng(subkey(key, name)).integers(2 ** 31 - 1))


def hparams(arms, *, eta, beta, margin, n_layers: int = len(LAYERS)):
    """Hyperparameter arrays for :func:`simulations.optimizers.dreg_sgd`, one config per
    arm; an arm is a dict with ``factor`` (per layer), and optionally ``lam`` (per layer)
    and ``reg`` (a name of optimizers.DREG_REGULARIZERS), ``eta`` and ``beta``."""
    n = len(arms)
    lam = np.zeros((n, n_layers, len(REG_INDEX)))
    for i, arm in enumerate(arms):
        if arm.get("reg") is not None:
            lam[i, :, REG_INDEX[arm["reg"]]] = arm["lam"]
    return dict(learning_rate=np.array([a.get("eta", eta) for a in arms], np.float64),
                momentum=np.array([a.get("beta", beta) for a in arms], np.float64),
                dreg_lambda=lam, dreg_margin=np.full(n, float(margin)),
                layer_lr_factor=np.array([np.broadcast_to(a["factor"], (n_layers,)) for a in arms],
                                         np.float64))


def _exact_arms(kappa, cfg):
    lam = np.array([cfg["lam"], cfg["lam"]])
    mlam = np.array([cfg["margin_lam"], cfg["margin_lam"]])
    return [dict(factor=1.0), dict(factor=th.baseline_copy_factor(kappa)),
            dict(factor=1.0, reg="cosine", lam=lam), dict(factor=1.0, reg="unitwise", lam=lam),
            dict(factor=1.0, reg="margin", lam=mlam)]


def _plain_arms(kappas):
    """LR controls (2/κ² per κ), the plain network (1), padded to len(EXACT_ARMS) configs
    (one compiled program: the same number of configurations in every call)."""
    factors = [th.effective_lr_factor(k) for k in kappas] + [1.0]
    factors += [1.0] * (len(EXACT_ARMS) - len(factors))
    return [dict(factor=f) for f in factors]


def _layout(base):
    """(start, stop, shape) of each replicated layer in the merged flat vector, and in the
    flat copy-difference vector (leaf order: sorted dict keys)."""
    shapes = jax.eval_shape(lambda k: base.init(key=k), jax.random.key(0))
    at, merged = 0, {}
    for name in sorted(shapes):
        size = int(np.prod(shapes[name].shape))
        merged[name] = (at, at + size, shapes[name].shape)
        at += size
    at, diff = 0, {}
    for name in LAYERS:
        size = int(np.prod(shapes[name].shape))
        diff[name] = (at, at + size, shapes[name].shape)
        at += size
    return merged, diff


def _max_over(x, axes):
    return np.max(np.abs(x), axis=axes)


@shared_run("dreg.exact")
def exact(cfg, *, key):
    kappas = [th.check_kappa(k) for k in cfg["kappas"]]
    offsets = [check.nonnegative("offset", r) for r in cfg["offsets"]]
    momenta = [check.in_range("momentum", b, 0.0, 1.0) for b in cfg["momenta"]]
    T = check.integer_at_least("n_steps", cfg["n_steps"], 2)
    eta, ulps = check.positive("learning_rate", cfg["learning_rate"]), cfg["ulps"]
    base = mixture.make_digits_classifier(cfg["batch_size"], split_seed=split_seed(key))
    common = dict(key=subkey(key, "mc"), n_seeds=cfg["n_seeds"], n_steps=T, record_every=1,
                  dtype=jnp.float64, common_random_numbers=True,
                  metrics={"flat": dreg.merged(dreg.flat_params), "diff": dreg.copy_differences})
    make = optimizers.dreg_sgd(LAYERS)

    def grid(arms):
        hp = [hparams(arms, eta=eta, beta=b, margin=cfg["margin"]) for b in momenta]
        return {k: np.concatenate([h[k] for h in hp]) for k in hp[0]}  # (β, arm) flattened

    before = engine.trace_count()
    plain = engine.simulate(dreg.make_dreg(base, active=False), make, grid(_plain_arms(kappas)), **common)
    n_b, n_a = len(momenta), len(EXACT_ARMS)
    P = plain.records["flat"].reshape(n_b, n_a, *plain.records["flat"].shape[1:])  # (β, arm, s, t, p)
    merged_at, diff_at = _layout(base)
    tol_unit = th.roundoff_tolerance(T, 1.0, ulps=ulps)  # (t,) per unit scale
    out = {name: np.zeros((len(kappas), len(offsets), n_b)) for name in (
        "control_ratio", "baseline_ratio", "margin_ratio", "delta_const_ratio", "wrong_factor_ratio",
        "inert_delta_ratio", "inert_weff_ratio", "first_step_ratio", "first_step_size_ratio")}
    curves = {"control": {}, "copy_change": {}}
    wall, n_div = plain.metadata["wall_seconds"], int(plain.n_diverged.sum())
    for i, kappa in enumerate(kappas):
        for j, rho in enumerate(offsets):
            res = engine.simulate(dreg.make_dreg(base, kappa=kappa, offset=rho), make,
                                  grid(_exact_arms(kappa, cfg)), **common)
            wall += res.metadata["wall_seconds"]
            n_div += int(res.n_diverged.sum())
            F = res.records["flat"].reshape(n_b, n_a, *res.records["flat"].shape[1:])
            D = res.records["diff"].reshape(n_b, n_a, *res.records["diff"].shape[1:])
            # copies from the merged weights and the differences: W, W′ = (κ W_eff ± Δ)/2
            copy_mag = np.zeros(F.shape[:4])
            for name, (a, b, _) in merged_at.items():
                if name in diff_at:
                    c0, c1, _ = diff_at[name]
                    s = 0.5 * kappa * F[..., a:b]
                    copy_mag = np.maximum(copy_mag, (np.abs(s + 0.5 * D[..., c0:c1]) +
                                                     np.abs(s - 0.5 * D[..., c0:c1])).max(-1) / kappa)
            mag = np.maximum(np.abs(F).max(-1), copy_mag)                     # (β, arm, s, t)

            def ratio(x, y, scale):  # max over seeds and steps of |x − y| / tol(t)
                err = _max_over(x - y, (-1,)).max(axis=-2)                     # (..., t)
                return err / (tol_unit * scale[..., None]), err

            def scale(*arms_mag):
                return np.max(np.stack(arms_mag), axis=(0, -1, -2))          # max over seeds, t

            ctrl, base_arm = 0, 1
            for b in range(n_b):
                Pc, Pb = P[b, i], P[b, len(kappas)]
                S_ctrl = max(scale(mag[b, ctrl]), np.abs(Pc).max())
                r, err = ratio(F[b, ctrl], Pc, np.asarray(S_ctrl))
                out["control_ratio"][i, j, b] = r.max()
                S_base = max(scale(mag[b, base_arm]), np.abs(Pb).max())
                out["baseline_ratio"][i, j, b] = ratio(F[b, base_arm], Pb, np.asarray(S_base))[0].max()
                m = EXACT_ARMS.index("margin")
                S_m = max(scale(mag[b, m]), np.abs(Pc).max())
                out["margin_ratio"][i, j, b] = ratio(F[b, m], Pc, np.asarray(S_m))[0].max()
                dc = max(ratio(D[b, a], D[b, a, :, :1], np.asarray(scale(mag[b, a])))[0].max()
                         for a in (ctrl, base_arm))
                out["delta_const_ratio"][i, j, b] = dc
                wrong = np.abs(F[b, ctrl, :, -1] - Pb[:, -1]).max() / (tol_unit[-1] * S_ctrl)
                out["wrong_factor_ratio"][i, j, b] = wrong
                if rho == max(offsets) and b == n_b - 1:  # the figure: ρ = max, β = max
                    curves["control"][f"{kappa:g}"] = dict(
                        err=err, tol=tol_unit * S_ctrl, wrong=_max_over(F[b, ctrl] - Pb, (-1,)).max(0))
                regs = [EXACT_ARMS.index(r) for r in ("cosine", "unitwise", "margin")]
                if rho == 0:
                    out["inert_delta_ratio"][i, j, b] = max(
                        ratio(D[b, a], 0.0 * D[b, a], np.asarray(scale(mag[b, a])))[0].max() for a in regs)
                    out["inert_weff_ratio"][i, j, b] = max(
                        ratio(F[b, a], F[b, ctrl], np.asarray(scale(mag[b, a], mag[b, ctrl])))[0].max()
                        for a in regs)
                first, size = _first_step(F[b], D[b], kappa, eta, cfg, merged_at, diff_at)
                S1 = scale(*mag[b, 2:])
                out["first_step_ratio"][i, j, b] = first / (tol_unit[1] * S1)
                out["first_step_size_ratio"][i, j, b] = size / (tol_unit[1] * S1)
            if kappa == kappas[0]:  # the figure: how far the cosine arm moves W − W′ (β = 0)
                a = EXACT_ARMS.index("cosine")
                curves["copy_change"][f"{rho:g}"] = dict(
                    change=_max_over(D[0, a] - D[0, a, :, :1], (-1,)).max(0),
                    tol=tol_unit * scale(mag[0, a]))
    return dict(out, kappas=kappas, offsets=offsets, momenta=momenta, n_steps=T, steps=np.arange(T + 1),
                arms=list(EXACT_ARMS), plain_factors=[a["factor"] for a in _plain_arms(kappas)],
                curves=curves, n_diverged=n_div, ulps=ulps,
                compilations=engine.trace_count() - before, wall_seconds=wall)


def _first_step(F, D, kappa, eta, cfg, merged_at, diff_at):
    """max |engine Δ(1) − Δ(0) − closed form| and max |closed form| over the λ > 0 arms,
    seeds and replicated layers; closed form −ηλ(∇_W R − ∇_{W′} R) at (W(0), W′(0))
    (theory.dreg.regularizer_grad; the first momentum step is the gradient itself)."""
    worst, size = 0.0, 0.0
    for reg in ("cosine", "unitwise", "margin"):
        a = EXACT_ARMS.index(reg)
        lam = cfg["margin_lam"] if reg == "margin" else cfg["lam"]
        for s in range(F.shape[1]):
            for name, (c0, c1, shape) in diff_at.items():
                m0, m1, _ = merged_at[name]
                weff, delta = F[a, s, 0, m0:m1].reshape(shape), D[a, s, 0, c0:c1].reshape(shape)
                W, Wc = 0.5 * (kappa * weff + delta), 0.5 * (kappa * weff - delta)
                gW, gWc = th.regularizer_grad(reg, W, Wc, cfg["margin"])
                predicted = -eta * lam * (gW - gWc).ravel()
                measured = D[a, s, 1, c0:c1] - D[a, s, 0, c0:c1]
                worst = max(worst, float(np.abs(measured - predicted).max()))
                size = max(size, float(np.abs(predicted).max()))
    return worst, size
