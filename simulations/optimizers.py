"""Optimizers as ``optax.GradientTransformation``s: what the toolkit adds to optax.

* :func:`gaussian_noise` — add D ξ, ξ ~ N(0, I), to the gradient: noise of covariance
  C = D Dᵀ (Wen et al. 2020's structured covariance noise). The PRNG key lives in the
  transform's state, as in ``optax.add_noise``.
* :func:`noisy_sgd` — x ← x − α (g + D ξ).
* :func:`gradient_covariance_noise` — add √s ζ, ζ ~ N(0, P(Σ(w_t))): Wen et al.'s noise
  shaped by the gradient covariance *at the current iterate* (state-dependent), sampled
  by the testbed (``testbed.gradient_noise``), which the engine passes as an extra arg.
* :func:`momentum_sgd` — MSGD, u ← βu + g, w ← w − ηu (``optax.sgd`` with momentum).
* :func:`sngm` — SNGM (Zhao et al. 2020), u ← βu + g/‖g‖, w ← w − ηu, composed exactly
  from ``optax.normalize_by_update_norm`` and ``optax.sgd``.
* :func:`isotropic_gaussian_noise` — add std·ξ (std traced, O(d) per step); :func:`select`
  — a traced choice among transforms; :func:`large_batch_method` (SNGM / MSGD /
  ``optax.lars``) and :func:`noisy_sngm_or_msgd`, with their engine factories.
* :func:`annealed_sgd` — SGD whose step size drops once, η₁ → η₂ at a (traced) step
  (Li, Wei & Ma 2019), ``optax.sgd`` on ``optax.join_schedules``; :func:`annealed_nesterov`
  — weight decay + Nesterov-momentum SGD with one anneal (their patch experiments' recipe).
* :func:`contrastive_penalty` — add ∇ of DReg's λ·R(W, W′) for replicated layers (Yuan,
  Hua, Zhou & Yu 2020); :func:`scale_layers` — per-layer learning-rate factors;
  :func:`dreg_sgd` — their engine factory around ``optax.sgd``.
* :func:`finetune_sgd` — fine-tuning with a state (Kou, You, Long & Wang 2020): Nesterov
  SGD with weight decay on the body, 10× on the new head, and moving statistics set to the
  forward pass's values (``optax.multi_transform``).

Factories used by :func:`simulations.engine.simulate` take the hyperparameters of one
configuration (traced arrays) and a key: ``make(hparams, *, key) -> GradientTransformation``.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from theory import quadratic
from theory import validation as check


class NoiseState(NamedTuple):
    key: jax.Array


def additive_noise(sample, *, key) -> optax.GradientTransformation:
    """Add ``sample(k, flat)`` to the flattened updates, with a fresh key k each step; the
    key stream is carried in the state, as in ``optax.add_noise``. The building block of
    :func:`gaussian_noise` and :func:`isotropic_gaussian_noise`."""

    def init_fn(params):
        del params
        return NoiseState(key=key)

    def update_fn(updates, state, params=None):
        del params
        flat, unravel = ravel_pytree(updates)
        next_key, sample_key = jax.random.split(state.key)
        return unravel(flat + sample(sample_key, flat)), NoiseState(key=next_key)

    return optax.GradientTransformation(init_fn, update_fn)


def gaussian_noise(factor, *, key) -> optax.GradientTransformation:
    """Add D ξ to the (flattened) updates, ξ ~ N(0, I_m), so the noise has covariance DDᵀ.

    Args:
      factor: (d, m) matrix D, d = number of parameters (a pytree is flattened with
        ``ravel_pytree``). May be a traced array (swept in a grid).
      key: typed PRNG key; the stream is carried in the state.
    """
    return additive_noise(
        lambda k, flat: factor @ jax.random.normal(k, (factor.shape[-1],), dtype=flat.dtype), key=key)


def gradient_covariance_noise(scale, structure: str, *, key) -> optax.GradientTransformationExtraArgs:
    """Add √s ζ with ζ ~ N(0, P(Σ(w))), Σ(w) the per-example gradient covariance at the
    current parameters w and P the structure (``full``, ``diagonal``, ``isotropic``).

    On a large batch M_L with s = 1/M_S − 1/M_L, the update's conditional covariance is
    Σ(w)/M_L + sΣ(w) = Σ(w)/M_S at every w: exactly that of small-batch SGD (with
    replacement). Requires ``testbed=`` in ``update`` (the engine passes it).
    """

    def init_fn(params):
        del params
        return NoiseState(key=key)

    def update_fn(updates, state, params=None, *, testbed, **extra_args):
        del extra_args
        next_key, sample_key = jax.random.split(state.key)
        zeta = testbed.gradient_noise(params, structure, key=sample_key)
        return updates + jnp.sqrt(scale) * zeta, NoiseState(key=next_key)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


@functools.lru_cache(maxsize=None)
def sgd_with_gradient_noise(structure: str):
    """Engine factory (one per structure, cached so its identity is stable): SGD with
    :func:`gradient_covariance_noise`; hparams ``learning_rate`` and ``noise_scale``."""

    def make(hparams, *, key):
        return optax.chain(gradient_covariance_noise(hparams["noise_scale"], structure, key=key),
                           optax.sgd(hparams["learning_rate"]))

    make.__name__ = f"sgd_with_{structure}_gradient_noise"
    return make


def noisy_sgd(learning_rate, factor, *, key) -> optax.GradientTransformation:
    """x ← x − α (g + D ξ): gradient descent with additive noise of covariance DDᵀ."""
    return optax.chain(gaussian_noise(factor, key=key), optax.sgd(learning_rate))


def momentum_sgd(learning_rate, momentum) -> optax.GradientTransformation:
    """MSGD: u_{t+1} = β u_t + g_t, w_{t+1} = w_t − η u_{t+1} (heavy ball, u₀ = 0)."""
    return optax.sgd(learning_rate, momentum=momentum)


def sngm(learning_rate, momentum) -> optax.GradientTransformation:
    """SNGM (Zhao, Shi, Xie, Li 2020): u_{t+1} = β u_t + g_t/‖g_t‖, w_{t+1} = w_t − η u_{t+1}.

    ‖·‖ is one global Euclidean norm over all parameters; ‖u_t‖ ≤ 1/(1 − β). The jitter of
    the normalization is the smallest normal float, so g/(‖g‖ + tiny) = g/‖g‖ exactly
    for any representable ‖g‖ ≥ 2⁻¹⁰⁰ and a zero gradient gives a zero step (not NaN).
    """
    tiny = float(np.finfo(np.float32).tiny)
    return optax.chain(optax.normalize_by_update_norm(scale_factor=1.0, eps=tiny),
                       optax.sgd(learning_rate, momentum=momentum))


# ------------------------------------------------------------- noise factors (NumPy)
def covariance_factor(C) -> np.ndarray:
    """The symmetric PSD square root D = C^{1/2} (so D Dᵀ = C; works when C is singular).

    The symmetric root varies continuously with C, so two nearby covariances driven by the
    same ξ give nearby noise: common-random-number comparisons are then sharply paired.
    """
    C = check.psd("C", C)
    w, V = np.linalg.eigh(C)
    D = (V * np.sqrt(np.clip(w, 0.0, None))) @ V.T
    return 0.5 * (D + D.T)


def structured_noise_factor(matrix, structure: str, scale: float, blocks=None) -> np.ndarray:
    """Factor of C = s · P(matrix), P one of ``theory.quadratic.STRUCTURES``."""
    return covariance_factor(quadratic.structured_covariance(matrix, structure, scale, blocks))


# ------------------------------------------------------- factories for the engine
def make_noisy_sgd(hparams, *, key) -> optax.GradientTransformation:
    """Engine factory: hparams ``learning_rate`` (scalar) and ``noise_factor`` (d, m)."""
    return noisy_sgd(hparams["learning_rate"], hparams["noise_factor"], key=key)


def make_sgd(hparams, *, key) -> optax.GradientTransformation:
    """Engine factory: plain SGD with hparams ``learning_rate``."""
    del key
    return optax.sgd(hparams["learning_rate"])


def make_momentum_sgd(hparams, *, key) -> optax.GradientTransformation:
    """Engine factory: heavy ball (:func:`momentum_sgd`) with traced hparams
    ``learning_rate`` and ``momentum`` (β = 0 is plain SGD)."""
    del key
    return momentum_sgd(hparams["learning_rate"], hparams["momentum"])


# ------------------------------------------- Zhao, Shi, Xie & Li (2020): SNGM vs MSGD vs LARS
#: the large-batch methods, in the order of the traced ``method`` index of the factories below.
LARGE_BATCH_METHODS = ("sngm", "msgd", "lars")
_TINY = float(np.finfo(np.float32).tiny)


def isotropic_gaussian_noise(std, *, key) -> optax.GradientTransformation:
    """Add std·ξ, ξ ~ N(0, I), to the (flattened) updates: noise of covariance std²·I at
    O(d) per step (:func:`gaussian_noise` with D = std·I would cost a d×d product).

    ``std`` may be traced (swept in a grid, e.g. σ/√(dB) for a batch size B); the key
    stream is carried in the state as in :func:`gaussian_noise`.
    """
    return additive_noise(lambda k, flat: std * jax.random.normal(k, flat.shape, flat.dtype), key=key)


class SelectState(NamedTuple):
    inner: tuple


def select(index, transforms) -> optax.GradientTransformationExtraArgs:
    """Apply every transform in ``transforms`` to the same updates and return those of
    ``transforms[index]``; ``index`` may be traced, so the method becomes a swept value (one
    compiled program for all methods). Each transform keeps its own state; the states of the
    unselected ones evolve on the selected trajectory's gradients and are never used."""
    transforms = tuple(transforms)

    def init_fn(params):
        return SelectState(inner=tuple(t.init(params) for t in transforms))

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        outs = [t.update(updates, s, params) for t, s in zip(transforms, state.inner)]
        picks = [index == k for k in range(len(transforms))]
        chosen = jax.tree_util.tree_map(lambda *us: jnp.select(picks, us), *[o[0] for o in outs])
        return chosen, SelectState(inner=tuple(o[1] for o in outs))

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def large_batch_method(index, learning_rate, momentum) -> optax.GradientTransformationExtraArgs:
    """One of :data:`LARGE_BATCH_METHODS` by a (traced) index, all with u₀ = 0:

    * SNGM (:func:`sngm`): u ← βu + g/‖g‖ (one global norm), w ← w − ηu;
    * MSGD (:func:`momentum_sgd`): u ← βu + g, w ← w − ηu;
    * LARS (``optax.lars`` with its defaults: trust coefficient 10⁻³ on every layer, no
      weight decay): per layer g ← 10⁻³‖w‖/‖g‖·g, u ← βu + ηg, w ← w − u.
    """
    return select(index, (sngm(learning_rate, momentum), momentum_sgd(learning_rate, momentum),
                          optax.lars(learning_rate, momentum=momentum)))


def make_large_batch_method(hparams, *, key) -> optax.GradientTransformationExtraArgs:
    """Engine factory: :func:`large_batch_method` with hparams ``method`` (index into
    :data:`LARGE_BATCH_METHODS`), ``learning_rate`` η and ``momentum`` β."""
    del key
    return large_batch_method(hparams["method"], hparams["learning_rate"], hparams["momentum"])


def noisy_sngm_or_msgd(index, learning_rate, momentum, noise_std, *, key) -> optax.GradientTransformation:
    """g ← g + noise_std·ξ (:func:`isotropic_gaussian_noise`), then SNGM (index 0: g ← g/‖g‖
    by ``optax.normalize_by_update_norm``) or MSGD (index 1: g unchanged), then
    ``optax.sgd`` with momentum: u ← βu + g, w ← w − ηu. The two methods differ only in the
    selected normalization, so one momentum buffer serves both; with index 0 this is exactly
    :func:`sngm` on the noisy gradient, with index 1 exactly :func:`momentum_sgd`."""
    normalize = select(index, (optax.normalize_by_update_norm(scale_factor=1.0, eps=_TINY),
                               optax.identity()))
    return optax.chain(isotropic_gaussian_noise(noise_std, key=key), normalize,
                       optax.sgd(learning_rate, momentum=momentum))


def make_noisy_sngm_or_msgd(hparams, *, key) -> optax.GradientTransformation:
    """Engine factory: :func:`noisy_sngm_or_msgd` with hparams ``method`` (0 = SNGM, 1 =
    MSGD, the order of :data:`LARGE_BATCH_METHODS`), ``learning_rate``, ``momentum`` and
    ``noise_std``, all traced: methods × batch sizes (noise_std = σ/√(dB)) × η are one
    compiled program."""
    return noisy_sngm_or_msgd(hparams["method"], hparams["learning_rate"], hparams["momentum"],
                              hparams["noise_std"], key=key)


# -------------------------------------- Li, Wei & Ma (2019): one learning-rate anneal
def annealed_sgd(eta1, eta2, anneal_step) -> optax.GradientTransformation:
    """SGD with step size η₁ for steps t < anneal_step and η₂ from then on (one anneal).

    ``optax.sgd`` on ``optax.join_schedules`` of two constant schedules; all three values
    may be traced (swept in a grid, or arms of one program) without recompiling.
    """
    schedule = optax.join_schedules([optax.constant_schedule(eta1), optax.constant_schedule(eta2)],
                                    [anneal_step])
    return optax.sgd(schedule)


def make_annealed_sgd(hparams, *, key) -> optax.GradientTransformation:
    """Engine factory: :func:`annealed_sgd` with traced hparams ``eta1``, ``eta2`` and
    ``anneal_step`` (one configuration per arm)."""
    del key
    return annealed_sgd(hparams["eta1"], hparams["eta2"], hparams["anneal_step"])


# ----------------------------- Kou, You, Long & Wang (2020): fine-tuning with a state
FINETUNE_PARTS = ("body", "head", "state")


def finetune_sgd(learning_rate, *, head_multiplier=10.0, weight_decay=5e-4,
                 momentum=0.9) -> optax.GradientTransformation:
    """The fine-tuning recipe of the Stochastic Normalization paper's code, for params
    ``{"body": ..., "head": ..., "state": ...}``:

    * body (pretrained layers): weight decay, then Nesterov-momentum SGD at η;
    * head (the new classifier): the same at ``head_multiplier``·η;
    * state (moving statistics and other non-trained leaves): the oracle returns
      old − new in the gradient's place and the update is its negative, so the state
      becomes the value the forward pass computed (``optax.scale(-1)``).

    ``optax.multi_transform`` of ``optax.chain(optax.add_decayed_weights, optax.sgd)``;
    every number may be traced.
    """
    def sgd(lr):
        return optax.chain(optax.add_decayed_weights(weight_decay),
                           optax.sgd(lr, momentum=momentum, nesterov=True))

    def labels(params):
        missing = [k for k in FINETUNE_PARTS if k not in params]
        if missing or len(params) != len(FINETUNE_PARTS):
            raise ValueError(f"finetune_sgd needs params with exactly the parts {FINETUNE_PARTS}, "
                             f"got {tuple(params)}")
        return {k: jax.tree_util.tree_map(lambda _, k=k: k, params[k]) for k in FINETUNE_PARTS}

    return optax.multi_transform({"body": sgd(learning_rate),
                                  "head": sgd(head_multiplier * learning_rate),
                                  "state": optax.scale(-1.0)}, labels)


def make_finetune_sgd(hparams, *, key) -> optax.GradientTransformation:
    """Engine factory: :func:`finetune_sgd` with traced hparams ``learning_rate`` (η of
    the body) and ``head_multiplier``, ``weight_decay``, ``momentum``."""
    del key
    return finetune_sgd(hparams["learning_rate"], head_multiplier=hparams["head_multiplier"],
                        weight_decay=hparams["weight_decay"], momentum=hparams["momentum"])


# ------------------------ Yuan, Hua, Zhou & Yu (2020): DReg, a replicated layer pushed apart
#: the regularizers R of the DReg family (theory.dreg), in the order of ``dreg_lambda``'s columns
DREG_REGULARIZERS = ("cosine", "unitwise", "margin")


def _cosine(w, c, axis=None):
    """⟨w, c⟩/(‖w‖‖c‖) with the norms' squares floored at the dtype's smallest normal
    number: the same value for any nonzero w, c, and a finite gradient at c = 0 (so a
    zero weight λ = 0 adds exactly zero, never 0·NaN)."""
    tiny = jnp.finfo(w.dtype).tiny
    norm = lambda x: jnp.sqrt(jnp.sum(x * x, axis=axis) + tiny)
    return jnp.sum(w * c, axis=axis) / (norm(w) * norm(c))


def dreg_regularizers(w, c, margin):
    """(R_cosine, R_unitwise, R_margin)(W, W′): cos(vec W, vec W′); the mean over output
    units j of cos(W[:, j], W′[:, j]); −min(‖W − W′‖², margin) (see :mod:`theory.dreg`)."""
    return jnp.stack([_cosine(w, c), jnp.mean(_cosine(w, c, 0)),
                      -jnp.minimum(jnp.sum((w - c) ** 2), margin)])


def contrastive_penalty(weights, margin, layers) -> optax.GradientTransformation:
    """Add ∇ of λ·R = Σ_ℓ Σ_k weights[ℓ, k]·R_k(W_ℓ, W′_ℓ) to the updates (a loss term,
    like ``optax.add_decayed_weights``), R_k of :data:`DREG_REGULARIZERS`, for the DReg
    parameters ``{"net": ..., "copy": ...}`` of :class:`simulations.testbeds.dreg.DRegNet`.

    ``weights`` (len(layers), 3) and ``margin`` may be traced (arms of one program); a
    zero weight adds exactly zero. Parameters without a ``"copy"`` part (the plain
    network) pass through unchanged, so one optimizer serves both parametrizations.
    """
    layers = tuple(layers)

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("contrastive_penalty needs params (the copies' current values)")
        if not (isinstance(params, dict) and "copy" in params):
            return updates, state

        net, copy = dict(updates["net"]), dict(updates["copy"])
        for i, n in enumerate(layers):
            for k in range(len(DREG_REGULARIZERS)):
                # each term on its own, selected by where(): a zero weight contributes an
                # exact zero even where R's gradient is not finite (a zero copy)
                gw, gc = jax.grad(lambda w, c: dreg_regularizers(w, c, margin)[k], argnums=(0, 1))(
                    params["net"][n], params["copy"][n])
                on = weights[i, k] != 0
                net[n] = net[n] + jnp.where(on, weights[i, k] * gw, 0.0)
                copy[n] = copy[n] + jnp.where(on, weights[i, k] * gc, 0.0)
        return {**updates, "net": net, "copy": copy}, state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update_fn)


def scale_layers(factors, layers) -> optax.GradientTransformation:
    """Multiply the updates of the named layer weights by ``factors[i]`` (a per-layer
    learning-rate factor; traced): in a plain params dict, or in both copies of DReg
    parameters. After a linear optimizer (SGD, heavy ball) this is that optimizer with the
    layer's learning rate multiplied by the factor."""
    layers = tuple(layers)

    def scale(tree):
        return {k: (v * factors[layers.index(k)] if k in layers else v) for k, v in tree.items()}

    def update_fn(updates, state, params=None):
        del params
        if "copy" in updates:
            return {**updates, "net": scale(updates["net"]), "copy": scale(updates["copy"])}, state
        return scale(updates), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update_fn)


@functools.lru_cache(maxsize=None)
def dreg_sgd(layers=("w1", "w2")):
    """Engine factory (one per ``layers``, cached so its identity is stable): SGD with
    momentum on the task loss + the DReg penalty, with per-layer learning-rate factors,

        optax.chain(contrastive_penalty, optax.sgd(η, momentum=β), scale_layers)

    hparams ``learning_rate`` η, ``momentum`` β, ``dreg_lambda`` (len(layers), 3),
    ``dreg_margin`` and ``layer_lr_factor`` (len(layers),), all traced. The same factory
    trains the plain network (the penalty then passes through): with factor 2/κ² it is
    DReg's learning-rate control; DReg itself with factor κ²/2 on a layer and λ = 0 there
    is the plain network (theory.dreg, fact 2)."""
    layers = tuple(layers)

    def make(hparams, *, key):
        del key
        return optax.chain(contrastive_penalty(hparams["dreg_lambda"], hparams["dreg_margin"], layers),
                           optax.sgd(hparams["learning_rate"], momentum=hparams["momentum"]),
                           scale_layers(hparams["layer_lr_factor"], layers))

    make.__name__ = "dreg_sgd_" + "_".join(layers)
    return make


# ------------- Li, Wei & Ma (2019): Nesterov + weight decay with one anneal (the recipe
# ------------- of their patch experiments)
def annealed_schedule(eta1, eta2, anneal_step):
    """η₁ for t < anneal_step, η₂ from then on (``optax.join_schedules``; traceable)."""
    return optax.join_schedules([optax.constant_schedule(eta1), optax.constant_schedule(eta2)],
                                [anneal_step])


def annealed_nesterov(eta1, eta2, anneal_step, *, momentum=0.9, weight_decay=5e-4) -> optax.GradientTransformation:
    """Weight decay added to the gradient, then Nesterov-momentum SGD on the schedule
    η₁ → η₂ (``optax.chain(optax.add_decayed_weights, optax.sgd(nesterov=True))``: the
    update order of PyTorch's SGD with weight_decay); every number may be traced."""
    return optax.chain(optax.add_decayed_weights(weight_decay),
                       optax.sgd(annealed_schedule(eta1, eta2, anneal_step), momentum=momentum,
                                 nesterov=True))


def make_annealed_nesterov(hparams, *, key) -> optax.GradientTransformation:
    """Engine factory: :func:`annealed_nesterov` with traced hparams ``eta1``, ``eta2``,
    ``anneal_step``, ``momentum`` and ``weight_decay``."""
    del key
    return annealed_nesterov(hparams["eta1"], hparams["eta2"], hparams["anneal_step"],
                             momentum=hparams["momentum"], weight_decay=hparams["weight_decay"])


# ---------- The batch-size frame (McCandlish et al. 2018; Shallue et al. 2018; Zhang et al.
# ---------- 2019): every optimizer across batch sizes, the batch size a traced value
def normalized_or_plain_momentum(index, learning_rate, momentum) -> optax.GradientTransformation:
    """SNGM (index 0: g ← g/‖g‖, ``optax.normalize_by_update_norm``) or heavy ball (index 1:
    g unchanged), then ``optax.sgd`` with momentum: u ← βu + g, w ← w − ηu. Index and every
    number may be traced; with index 1 and β = 0 this is plain SGD. The same as
    :func:`noisy_sngm_or_msgd` without the added noise."""
    normalize = select(index, (optax.normalize_by_update_norm(scale_factor=1.0, eps=_TINY),
                               optax.identity()))
    return optax.chain(normalize, optax.sgd(learning_rate, momentum=momentum))


def make_normalized_or_plain_momentum(hparams, *, key) -> optax.GradientTransformation:
    """Engine factory: :func:`normalized_or_plain_momentum` with hparams ``method`` (0 = SNGM,
    1 = MSGD/SGD), ``learning_rate`` and ``momentum``."""
    del key
    return normalized_or_plain_momentum(hparams["method"], hparams["learning_rate"], hparams["momentum"])


def accumulate(inner, every_k) -> optax.GradientTransformation:
    """Gradient accumulation (``optax.MultiSteps``): the mean of ``every_k`` consecutive
    gradients is passed to ``inner`` once, zero updates in between. ``every_k`` may be
    traced, so batch sizes B = k·b built from micro-batches of b examples are one
    configuration axis of one program (k micro-batches drawn with replacement are one
    batch of kb drawn with replacement)."""
    return optax.MultiSteps(inner, lambda step: every_k).gradient_transformation()


def make_accumulated_momentum(hparams, *, key) -> optax.GradientTransformation:
    """Engine factory: :func:`accumulate` (k = hparams ``accumulate``) of
    :func:`normalized_or_plain_momentum` (``method``, ``learning_rate``, ``momentum``)."""
    del key
    return accumulate(normalized_or_plain_momentum(hparams["method"], hparams["learning_rate"],
                                                   hparams["momentum"]), hparams["accumulate"])


def make_accumulated_lars(hparams, *, key) -> optax.GradientTransformation:
    """Engine factory: :func:`accumulate` of ``optax.lars(η, momentum=β)`` (trust coefficient
    10⁻³, no weight decay: optax's defaults)."""
    del key
    return accumulate(optax.lars(hparams["learning_rate"], momentum=hparams["momentum"]),
                      hparams["accumulate"])


def make_accumulated_lamb(hparams, *, key) -> optax.GradientTransformation:
    """Engine factory: :func:`accumulate` of ``optax.lamb(η, b1=β)`` (b2 = 0.999, ε = 10⁻⁶,
    no weight decay: optax's defaults)."""
    del key
    return accumulate(optax.lamb(hparams["learning_rate"], b1=hparams["momentum"]), hparams["accumulate"])


def scale_by_vector(scales) -> optax.GradientTransformation:
    """Multiply every leaf of the updates elementwise by ``scales`` (a fixed diagonal
    preconditioner such as H^−p; may be traced)."""

    def update_fn(updates, state, params=None):
        del params
        return jax.tree_util.tree_map(lambda u: u * scales, updates), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update_fn)


def iterate_ema(decay) -> optax.GradientTransformation:
    """Keep an exponential moving average of the iterates in the params ``{"w": θ, "ema": θ̄}``:
    after the update u of θ, θ̄ ← γθ̄ + (1 − γ)(θ + u), i.e. the update of θ̄ is
    (1 − γ)(θ + u − θ̄). ``decay`` γ may be traced (γ = 0: θ̄ follows θ)."""

    def update_fn(updates, state, params=None):
        if params is None or "ema" not in params:
            raise ValueError("iterate_ema needs params {'w': ..., 'ema': ...}")
        new = params["w"] + updates["w"]
        return {**updates, "ema": (1.0 - decay) * (new - params["ema"])}, state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update_fn)


def nqm_optimizer(index, learning_rate, momentum, precond, ema_decay) -> optax.GradientTransformation:
    """The optimizers of the noisy quadratic model as one transformation (every number
    traced): SNGM's normalization or none (``index`` 0/1, :func:`normalized_or_plain_momentum`),
    a diagonal preconditioner ``precond`` (h^−p; ones for none), ``optax.sgd`` with momentum
    β, and the iterate average θ̄ (:func:`iterate_ema`, γ = ``ema_decay``)."""
    normalize = select(index, (optax.normalize_by_update_norm(scale_factor=1.0, eps=_TINY),
                               optax.identity()))
    return optax.chain(normalize, scale_by_vector(precond), optax.sgd(learning_rate, momentum=momentum),
                       iterate_ema(ema_decay))


def make_nqm_optimizer(hparams, *, key) -> optax.GradientTransformation:
    """Engine factory: :func:`nqm_optimizer` with hparams ``method``, ``learning_rate``,
    ``momentum``, ``precond`` (d,) and ``ema_decay``."""
    del key
    return nqm_optimizer(hparams["method"], hparams["learning_rate"], hparams["momentum"],
                         hparams["precond"], hparams["ema_decay"])
