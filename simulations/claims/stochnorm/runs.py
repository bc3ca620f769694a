"""Runs for the Stochastic Normalization claims (Kou, You, Long, Wang, NeurIPS 2020).

* :func:`layer` — the layer of :mod:`simulations.layers` on one small random batch,
  next to the float64 equations of :mod:`theory.stochnorm`: p = 1 against batch
  normalization (training and evaluation, running statistics included), every mask
  enumerated for the moments over s, and masks drawn from keys.
* :func:`few_shot` — pretraining on the source task, then few-shot fine-tuning on the
  target task (:mod:`simulations.testbeds.digits_finetune`) for every arm, n and η, all
  in ONE compiled engine program (every call has the same shapes).

Randomness: the layer's batch and statistics from ``subkey(key, "layer")``, its drawn
masks from ``subkey(key, "masks")``; the source/target image split from
``numpy_rng(subkey(key, "split"))``, pretraining from ``subkey(key, "pretrain")``, the
fine-tuning trajectories from ``subkey(key, "finetune")`` with common random numbers
(seed s has the same start network, training subset, validation/test split, head,
minibatches and mask uniforms in every arm and configuration).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from simulations import engine, layers, optimizers
from simulations.keys import numpy_rng, subkey
from simulations.testbeds import digits_finetune as dft
from theory import stochnorm as snt
from theory import validation as check



# ============================================================================ layer
def _batch(cfg, key):
    """A batch x (m, C), a layer whose moving statistics differ from the batch's, and a
    readout W (C, J); float32 NumPy from ``numpy_rng(subkey(key, "layer"))``."""
    m, c = cfg["batch"], cfg["channels"]
    rng = numpy_rng(subkey(key, "layer"))
    x = 1.5 * rng.standard_normal((m, c)) + rng.standard_normal(c)
    params = {"scale": rng.uniform(0.5, 2.0, c), "offset": rng.standard_normal(c)}
    state = {"mean": rng.standard_normal(c), "var": rng.uniform(0.3, 3.0, c)}
    w_out = rng.standard_normal((c, cfg["readout"]))
    f32 = lambda t: jax.tree_util.tree_map(lambda a: np.asarray(a, np.float32), t)  # noqa: E731
    return f32(x), f32(params), f32(state), np.asarray(w_out, np.float32)


@jax.jit
def _layer_outputs(params, state, x, masks, draw_keys, key_p1, draw_p):
    """Everything the layer claim measures, in one compiled call."""
    m = x.shape[0]
    y1, s1 = layers.stoch_norm(params, state, x, p=1)
    y1k, s1k = layers.stoch_norm(params, state, x, key=key_p1, p=1.0)
    pad = jnp.concatenate([x, 7.0 + x[:3]])
    yp, sp = layers.stoch_norm(params, state, pad, p=1, weights=jnp.arange(m + 3) < m)
    evals = [layers.stoch_norm(params, state, x, key=key_p1, p=p, train=False) for p in (0.0, 0.5, 1.0)]
    ys, states = jax.vmap(lambda s: layers.stoch_norm(params, state, x, mask=s))(masks)
    y_draw = jax.vmap(lambda k: layers.stoch_norm(params, state, x, key=k, p=draw_p)[0])(draw_keys)
    return dict(y1=y1, s1=s1, y1k=y1k, s1k=s1k, yp=yp[:m], sp=sp, eval_y=[e[0] for e in evals],
                eval_state=[e[1] for e in evals], ys=ys, states=states, y_draw=y_draw)


def _err(a, b):
    """max |a − b| / max(1, |b|), elementwise over all entries (float64)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(b))))


def layer(cfg, *, key):
    """Evidence for ``stochnorm.layer``; every error is max |JAX − float64| / max(1, |ref|)."""
    for name in ("batch", "channels"):
        check.integer_at_least(name, cfg[name], 2)
    if cfg["channels"] > 10:
        check.fail("channels", cfg["channels"], "<= 10 (2^C masks are enumerated)")
    probs = [check.in_range("p", p, 0.0, 1.0, closed_low=False) for p in cfg["ps"]]
    n_draws = check.integer_at_least("n_draws", cfg["n_draws"], 2)
    p_draw = check.in_range("draw_p", cfg["draw_p"], 0.0, 1.0, closed_low=False)
    x, params, state, w_out32 = _batch(cfg, key)
    x64, g, b = (np.asarray(a, np.float64) for a in (x, params["scale"], params["offset"]))
    mean0, var0, w_out = (np.asarray(a, np.float64) for a in (state["mean"], state["var"], w_out32))
    m, c = x.shape
    masks_all, _ = snt.masks(c, 0.5)
    out = _layer_outputs(params, state, x, jnp.asarray(masks_all, jnp.float32),
                         jax.random.split(subkey(key, "masks"), n_draws), subkey(key, "p1"),
                         jnp.float32(p_draw))
    out = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), out)
    # (1) p = 1 is batch normalization in training mode, running statistics included; also
    # with a key, and on a padded batch (weights 0 on appended rows: its real rows only)
    y_ref, mean_ref, var_ref = snt.batch_norm_train(x64, g, b, mean0, var0)

    def state_err(st):
        return max(_err(st["mean"], mean_ref), _err(st["var"], var_ref))
    bn_errors = dict(output=_err(out["y1"], y_ref), mean=_err(out["s1"]["mean"], mean_ref),
                     var=_err(out["s1"]["var"], var_ref), keyed_p1=_err(out["y1k"], y_ref),
                     keyed_p1_state=state_err(out["s1k"]),
                     padded=max(_err(out["yp"], y_ref), state_err(out["sp"])),
                     state_after_every_mask=max(state_err(jax.tree_util.tree_map(lambda a: a[i], out["states"]))
                                                for i in range(len(masks_all))))
    # (2) evaluation = batch-norm evaluation, state unchanged, for every p
    eval_ref = snt.batch_norm_eval(x64, g, b, mean0, var0)
    eval_err = [_err(y, eval_ref) for y in out["eval_y"]]
    eval_same = [bool(np.array_equal(st["mean"], mean0) and np.array_equal(st["var"], var0))
                 for st in out["eval_state"]]
    # (3) every mask enumerated: moments over s, state independent of s, linear readout
    xb, xm = snt.branches(x64, mean0, var0)
    ys = out["ys"]                                                  # (2^C, m, C)
    z = ys @ w_out                                                  # (2^C, m, J)
    state_spread = max(float(np.max(np.abs(v - v[:1]))) for v in out["states"].values())
    scale_y, scale_z = float(np.max(np.abs(ys))), float(np.max(np.abs(z)))
    moments = []
    for p in probs:
        _, prob = snt.masks(c, p)
        mean_enum = np.einsum("s,sic->ic", prob, ys)
        var_enum = np.einsum("s,sic->ic", prob, (ys - mean_enum) ** 2)
        mean_cf, var_cf = snt.output_moments(xb, xm, g, b, p)
        zc = z - np.einsum("s,sij->ij", prob, z)
        cov_enum = np.einsum("s,sij,skl->ikjl", prob, zc, zc)
        cov_cf = snt.readout_covariance(xb, xm, g, w_out, p)
        var_z = snt.readout_variance(xb, xm, g, w_out, p)
        moments.append(dict(p=p, mean_err=float(np.max(np.abs(mean_enum - mean_cf))),
                            var_err=float(np.max(np.abs(var_enum - var_cf))),
                            readout_var_err=float(np.max(np.abs(np.einsum("iijj->ij", cov_enum) - var_z))),
                            readout_cov_err=float(np.max(np.abs(cov_enum - cov_cf))),
                            cross_example_cov=float(np.max(np.abs(cov_cf[~np.eye(m, dtype=bool)]))),
                            mean_closed=mean_cf[:, 0], var_closed=var_cf[:, 0],
                            mean_enumerated=mean_enum[:, 0], var_enumerated=var_enum[:, 0],
                            var_all_closed=var_cf.ravel(), var_all_enumerated=var_enum.ravel()))
    # (4) masks drawn from keys: recover s per (draw, example, channel) from the output
    y_bat, y_mov = ys[-1], ys[0]   # the masks of ones (batch branch) and zeros (moving branch)
    gap = y_bat - y_mov
    resolved = np.abs(gap) > 1e-3 * np.max(np.abs(gap))      # where the branches differ
    s_hat = (out["y_draw"] - y_mov) / np.where(resolved, gap, 1.0)           # (R, m, C)
    s_hat = np.where(resolved, s_hat, np.nan)
    first = np.argmax(resolved, axis=0)                       # an example resolving each channel
    s_pass = np.round(s_hat[:, first, np.arange(c)])          # (R, C): one s per pass and channel
    centred = s_pass - p_draw
    second = np.einsum("rc,rd->rcd", centred, centred)
    return dict(
        batch=m, channels=c, ps=probs, bn_errors=bn_errors, eval_errors=eval_err,
        eval_state_unchanged=eval_same, state_spread_over_masks=state_spread,
        n_masks=len(masks_all), moments=moments, scale_y=scale_y, scale_z=scale_z,
        readout_width=cfg["readout"],
        # one batch, for the figure: channel 0 of x, the two branches and evaluation
        x0=x64[:, 0], batch_branch0=y_bat[:, 0], moving_branch0=y_mov[:, 0], eval0=out["eval_y"][1][:, 0],
        bn_ref0=y_ref[:, 0], eval_ref0=eval_ref[:, 0],
        # drawn masks: recovery error, one s per pass and channel, its moments
        draw_p=p_draw, n_draws=n_draws,
        recovery_err=float(np.nanmax(np.abs(s_hat - np.round(s_hat)))),
        resolved_fraction=float(resolved.mean()),
        shared_by_examples=bool(np.all((np.round(s_hat) == s_pass[:, None, :]) | ~resolved)),
        ones_per_channel=s_pass.sum(axis=0),
        second_moment_mean=second.mean(axis=0), second_moment_se=second.std(axis=0, ddof=1) / np.sqrt(n_draws),
        second_moment_exact=p_draw * (1 - p_draw) * np.eye(c),
        first_moment_mean=s_pass.mean(axis=0), first_moment_se=s_pass.std(axis=0, ddof=1) / np.sqrt(n_draws),
        distinct_masks=int(len({tuple(r) for r in s_pass.astype(int)})))


# ========================================================================= few shot
def arms(cfg):
    """The arms, as (name, start kind, p): BN and StochNorm(p) fine-tuning from the
    pretrained network, BN from scratch, and BN / StochNorm(0.5) from the pretrained
    weights with re-initialized (uninformative) moving statistics."""
    out = [("BN", "pretrained", 1.0)]
    out += [(f"StochNorm({p:g})", "pretrained", float(p)) for p in cfg["p_grid"]]
    out += [("scratch", "scratch", 1.0), ("control BN", "control", 1.0),
            (f"control StochNorm({cfg['p_main']:g})", "control", float(cfg["p_main"]))]
    return out


def _check_few_shot(cfg):
    shots = [check.integer_at_least("shots", n, 1) for n in cfg["shots"]]
    if sorted(set(shots)) != shots:
        check.fail("shots", np.asarray(shots), "distinct values in increasing order")
    if shots[-1] > cfg["n_max"]:
        check.fail("shots", shots[-1], f"<= n_max = {cfg['n_max']}")
    for p in cfg["p_grid"]:
        check.in_range("p_grid", p, 0.0, 1.0)
    if cfg["p_main"] not in cfg["p_grid"]:
        check.fail("p_main", cfg["p_main"], f"one of p_grid = {cfg['p_grid']}")
    etas = np.asarray(cfg["etas"], np.float64)
    if etas.ndim != 1 or etas.size < 2 or not np.all(etas > 0):
        check.fail("etas", etas, "at least two learning rates η > 0")
    if not any(n <= cfg["small_max"] for n in shots) or not any(n >= cfg["large_min"] for n in shots):
        check.fail("shots", np.asarray(shots), f"some n <= small_max = {cfg['small_max']} and "
                   f"some n >= large_min = {cfg['large_min']}")
    check.integer_at_least("n_tune_seeds", cfg["n_tune_seeds"], 1)
    check.integer_at_least("n_eval_seeds", cfg["n_eval_seeds"], 2)
    check.integer_at_least("n_steps", cfg["n_steps"], 1)
    return shots, etas


def _hparams(cfg, shots, etas, *, p, head_multiplier):
    grid, shape = engine.config_grid(shots=np.asarray(shots, np.float64), learning_rate=etas)
    n = shape[0] * shape[1]
    grid.update(p=np.full(n, p), head_multiplier=np.full(n, head_multiplier),
                weight_decay=np.full(n, cfg["weight_decay"]), momentum=np.full(n, cfg["momentum"]))
    return grid, shape


def few_shot(cfg, *, key):
    """Pretrain, then fine-tune every arm on every (n, η) and seed; tune η per (arm, n)
    on the validation splits of the tuning seeds, report test accuracies of the other
    seeds at that η. Every engine call has the same shapes: one compilation in all."""
    shots, etas = _check_few_shot(cfg)
    n_seeds = cfg["n_tune_seeds"] + cfg["n_eval_seeds"]
    widths = tuple(cfg["widths"])
    (xs, ys), (xt, yt) = dft.transfer_tasks(numpy_rng(subkey(key, "split")), gamma=cfg["gamma"])
    n_start = len(shots) * len(etas) * n_seeds  # pretraining runs = every call's trajectory count
    sizes = dict(widths=widths, n_max=cfg["n_max"], n_val=cfg["n_val"], batch_size=cfg["batch_size"])
    metrics = {"val": dft.val_accuracy, "test": dft.test_accuracy}
    common = dict(n_seeds=n_seeds, n_steps=cfg["n_steps"], record_every=cfg["n_steps"],
                  metrics=metrics, return_final=True)
    before = engine.trace_count()
    # pretraining on the source task: from scratch, BN, every training-rank image
    source = dft.make_finetune(xs, ys, dft.scratch_start(n_start, widths), he_init=True, **sizes)
    hp, _ = _hparams(cfg, [cfg["n_max"]] * len(shots), np.full(len(etas), cfg["pretrain_eta"]),
                     p=1.0, head_multiplier=1.0)
    pre = engine.simulate(source, optimizers.make_finetune_sgd, hp, key=subkey(key, "pretrain"), **common)
    start = dft.trained_start(pre.final_params)
    starts = {"pretrained": start, "control": dft.with_reset_statistics(start),
              "scratch": dft.scratch_start(n_start, widths)}
    names, val, test, diverged, wall = [], [], [], [], pre.metadata["wall_seconds"]
    for name, kind, p in arms(cfg):
        tb = dft.make_finetune(xt, yt, starts[kind], he_init=kind == "scratch", **sizes)
        hp, shape = _hparams(cfg, shots, etas, p=p, head_multiplier=cfg["head_multiplier"])
        res = engine.simulate(tb, optimizers.make_finetune_sgd, hp, key=subkey(key, "finetune"),
                              common_random_numbers=True, **common)
        ok = res.valid.reshape(shape + (n_seeds,))
        names.append(name)
        val.append(np.where(ok, res.records["val"][..., -1].reshape(ok.shape), 0.0))
        test.append(np.where(ok, res.records["test"][..., -1].reshape(ok.shape), 0.0))
        diverged.append(~ok)
        wall += res.metadata["wall_seconds"]
    val, test, diverged = np.stack(val), np.stack(test), np.stack(diverged)  # (arm, n, η, seed)
    tune, evals = slice(0, cfg["n_tune_seeds"]), slice(cfg["n_tune_seeds"], n_seeds)
    val_tune = val[..., tune].mean(axis=-1)                                 # (arm, n, η)
    best = np.argmax(val_tune, axis=-1)                                     # (arm, n)
    a_idx, n_idx = np.indices(best.shape)
    pre_ok = pre.valid.ravel()
    return dict(arms=names, shots=shots, etas=etas, val_tune_mean=val_tune, best_index=best,
                best_eta=etas[best], test_at_best=test[a_idx, n_idx, best][..., evals],
                test_mean=test[..., evals].mean(axis=-1), diverged=diverged.sum(axis=-1),
                diverged_at_best=diverged[a_idx, n_idx, best][..., evals].sum(axis=-1),
                source_test_accuracy=float(pre.records["test"][..., -1].ravel()[pre_ok].mean()),
                pretrain_diverged=int((~pre_ok).sum()), n_start=n_start,
                n_source=len(ys), n_target=len(yt),
                compilations=engine.trace_count() - before, wall_seconds=wall)
