"""DReg as a parameter transformation that any testbed with dict parameters can use.

Yuan, Hua, Zhou & Yu (arXiv 2011.08968) replicate a layer and push the two copies apart.
:class:`DRegNet` wraps a testbed (its ``init``, ``gradient``, ``loss``) and replaces each
named layer weight W by a pair (W, W′) whose merge W_eff = (W + W′)/κ is what the base
network sees, in training and at inference. The parameters are

    {"net": base params (the named layers hold W), "copy": {layer: W′}}

and the gradient is the base oracle's gradient at the merged parameters pulled back
through the merge (``jax.vjp``): autodiff of the forward (W + W′)x/κ. The regularizer
λ·R(W, W′) is not part of the testbed: it is an optax transform
(:func:`simulations.optimizers.contrastive_penalty`), like weight decay, so one
implementation serves every testbed and optimizer. The equations and the derived facts
(the reparametrization, the inert exact copy) are in :mod:`theory.dreg`.

κ (1 sum, 2 average), the copy offset ρ and a switch ``active`` are array leaves (traced:
changing them never recompiles). The initialization W = (κ/2)(W₀ + ρD), W′ = (κ/2)(W₀ − ρD)
keeps W_eff(0) = W₀, the base network's own draw at the same key, so a DReg run and a
plain run with the same key start from the same function; D is a second draw of the
base's initial law (both draws in one batched call). With ``active = 0`` the testbed is
the plain network in DReg's parameter structure: W = W₀, W′ = 0 and never used, merge
1·W + 0·(…) = W and the pulled-back gradient 1·G + 0·G/κ = G, bit for bit the plain
network's arithmetic, so one compiled program runs both (the checks of
``dreg.reparametrization`` compare them).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from theory import validation as check


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class DRegNet:
    """A testbed whose named layers are replicated (see the module docstring).

    Attributes:
      base: the wrapped testbed (params a dict holding each named layer's weight).
      kappa: κ > 0, scalar array: W_eff = (W + W′)/κ.
      offset: ρ >= 0, scalar array: the copies start at (κ/2)(W₀ ± ρD).
      active: 1.0 (DReg) or 0.0 (the plain network, W′ = 0 unused), scalar array.
      layers: names of the replicated weights (static).
    """

    base: Any
    kappa: jax.Array
    offset: jax.Array
    active: jax.Array
    layers: tuple = dataclasses.field(metadata=dict(static=True), default=("w1", "w2"))

    def init(self, *, key):
        """Base draw W₀ (the plain network's at this key) and a second draw D, one call."""
        keys = jnp.stack([key, jax.random.fold_in(key, 1)])
        both = jax.vmap(lambda k: self.base.init(key=k))(keys)
        net = jax.tree_util.tree_map(lambda x: x[0], both)
        a, half = self.active, 0.5 * self.kappa
        out, copy = dict(net), {}
        for name in self.layers:
            w0, d = net[name], both[name][1]
            out[name] = a * (half * (w0 + self.offset * d)) + (1 - a) * w0
            copy[name] = a * (half * (w0 - self.offset * d))
        return {"net": out, "copy": copy}

    def merge(self, params):
        """The base network's parameters: each named layer W_eff = (W + W′)/κ (active) or
        W (inactive)."""
        a, net = self.active, dict(params["net"])
        for name in self.layers:
            w = params["net"][name]
            net[name] = a * ((w + params["copy"][name]) / self.kappa) + (1 - a) * w
        return net

    def gradient(self, params, *, key):
        """The base oracle at the merged parameters, pulled back through the merge: each
        copy gets G/κ (G the gradient w.r.t. W_eff); other parameters get theirs."""
        merged, pullback = jax.vjp(self.merge, params)
        return pullback(self.base.gradient(merged, key=key))[0]

    def loss(self, params):
        """The task loss of the merged network (the regularizer is not included)."""
        return self.base.loss(self.merge(params))


def make_dreg(base, *, kappa: float = 1.0, offset: float = 1.0, active: bool = True,
              layers=("w1", "w2")) -> DRegNet:
    """Wrap ``base``: κ > 0, ρ >= 0, ``layers`` names of 2-d weights in its params;
    ``active=False`` gives the plain network in the same parameter structure."""
    kappa = check.positive("kappa", kappa)
    offset = check.nonnegative("offset", offset)
    if not isinstance(active, (bool, np.bool_)):
        check.fail("active", active, "True (DReg) or False (the plain network)")
    layers = tuple(layers)
    if not layers or len(set(layers)) != len(layers):
        check.fail("layers", len(layers), "a non-empty tuple of distinct layer names")
    params = jax.eval_shape(lambda k: base.init(key=k), jax.random.key(0))
    for name in layers:
        if not isinstance(params, dict) or name not in params:
            have = list(params) if isinstance(params, dict) else type(params).__name__
            check.fail("layer", name, f"a weight of the base network's params ({have})")
        if len(params[name].shape) != 2:
            check.fail("layer", name, f"a 2-d weight, got shape {params[name].shape}")
    return DRegNet(base=base, kappa=np.float64(kappa), offset=np.float64(offset),
                   active=np.float64(bool(active)), layers=layers)


# ------------------------------------------------------------------------ metrics
@functools.lru_cache(maxsize=None)
def merged(metric):
    """The base metric ``metric(base_testbed, params)`` on a DRegNet's merged parameters
    (cached, so the engine sees one function object per metric and compiles once)."""
    def fn(testbed, params):
        return metric(testbed.base, testbed.merge(params))
    fn.__name__ = f"merged_{getattr(metric, '__name__', 'metric')}"
    return fn


def flat_params(testbed, params):
    """All parameters as one vector (leaf order of the pytree); with :func:`merged`, a
    DRegNet's merged parameters in the order of its base network's."""
    del testbed
    return jnp.concatenate([jnp.ravel(x) for x in jax.tree_util.tree_leaves(params)])


def copy_differences(testbed, params):
    """W − W′ of every replicated layer, flattened and concatenated in ``layers`` order."""
    return jnp.concatenate([jnp.ravel(params["net"][n] - params["copy"][n]) for n in testbed.layers])
