"""Squared-loss regression testbeds with a label-noise gradient oracle, and their metrics.

Paper: Damian, Ma, Lee, "Label Noise SGD Provably Prefers Flat Global Minimizers"
(NeurIPS 2021, arXiv 2106.06530); HaoChen, Wei, Lee, Ma, "Shape Matters" (COLT 2021).

    L(θ) = (1/n) Σ_i ½ (f_i(θ) − y_i)²,
    g(θ) = (1/B) Σ_{i∈batch} (f_i(θ) − y_i − ε_i) ∇f_i(θ) + τ ξ,

with fresh label noise ε_i ~ σ·Unif{±1} (``noise="rademacher"``) or N(0, σ²)
(``noise="gaussian"``) for every drawn example at every step, and ξ ~ N(0, I) isotropic
parameter noise (SGLD). σ and τ are *traced* hyperparameters read from the
configuration (``hparams["sigma"]``, ``hparams["param_noise"]``), so label-noise SGD and
plain GD (σ = 0) are two configurations of one compiled program, and a sweep over σ never
recompiles. The SGLD draw is switched on by the static field ``langevin`` (Gaussian
parameter noise costs more random numbers than the labels' noise, so the label-noise
program does not pay for it). A batch of B < n examples is drawn with replacement;
B = n is the full batch.

Models (``model``, static):

* ``sparse``    f(x) = ⟨u⊙u − v⊙v, x⟩, θ = {u, v} (quadratically parametrized regression);
* ``sparse_vv`` f(x) = ⟨v⊙v, x⟩, θ = {v} (Shape Matters' variant; their loss ¼(y − f)²
  at learning rate η equals ours at η/2);
* ``toy``       f(x) = a⟨(b, c), x⟩, θ = (a, b, c), data (e₁, 1), (e₂, 1);
* ``mlp``       f(x) = w₂ᵀ tanh(W₁ᵀx + b₁)/√m, θ = {W₁, b₁, w₂} (two-layer tanh network).

Metrics (``f(testbed, θ)``, for :func:`simulations.engine.simulate`): :func:`loss`,
:func:`sparse_w`, :func:`sparse_trace` and :func:`mlp_trace` (tr ∇²L in closed form),
:func:`lambda_max` (Lanczos), :func:`toy_theta`, :func:`toy_q`. Lanczos's start vector comes
from the testbed's ``probe_key`` (:meth:`LabelNoiseRegression.with_probe_key`), which a
claim derives from its own key: the same probe at every record and seed of one run, a fresh
one at a fresh key.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from simulations import hessian
from simulations.keys import numpy_rng, subkey
from theory import validation as check

MODELS = ("sparse", "sparse_vv", "toy", "mlp")
NOISES = ("rademacher", "gaussian")


def predict(model: str, theta, X):
    """f(θ, x_i) for the rows of X (shape (m,))."""
    if model == "sparse":
        return X @ (theta["u"] ** 2 - theta["v"] ** 2)
    if model == "sparse_vv":
        return X @ theta["v"] ** 2
    if model == "toy":
        a, b, c = theta[0], theta[1], theta[2]
        return a * (b * X[:, 0] + c * X[:, 1])
    h = jnp.tanh(X @ theta["w1"] + theta["b1"])
    return h @ theta["w2"] / jnp.sqrt(theta["w2"].shape[0])


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class LabelNoiseRegression:
    """Finite-sum squared loss with a label-noise (and optional SGLD) gradient oracle.

    Attributes:
      features: (n, d) inputs X.    targets: (n,) labels y.    theta0: start (pytree).
      model: static, one of ``MODELS``.   batch_size: B (static; 1 <= B <= n).
      noise: static, ``"rademacher"`` (ε = ±σ) or ``"gaussian"`` (ε ~ N(0, σ²)).
      langevin: static; add τξ, τ = hparams["param_noise"] (SGLD).
      probe_key: raw data of the typed key the Hessian metrics draw their probes from
        (None until :meth:`with_probe_key`).
    """

    features: jax.Array
    targets: jax.Array
    theta0: Any
    model: str = dataclasses.field(metadata=dict(static=True), default="sparse")
    batch_size: int = dataclasses.field(metadata=dict(static=True), default=1)
    noise: str = dataclasses.field(metadata=dict(static=True), default="rademacher")
    langevin: bool = dataclasses.field(metadata=dict(static=True), default=False)
    probe_key: Any = None
    gradient_uses_hyperparams = True

    def __post_init__(self):
        shape = np.shape(self.features)
        # leaves may be placeholders inside JAX transforms; check only real data
        if len(shape) == 2 and not 1 <= self.batch_size <= shape[0]:
            check.fail("batch_size", self.batch_size, f"an integer with 1 <= B <= n = {shape[0]}")
        if self.model not in MODELS:
            check.fail("model", self.model, f"one of {MODELS}")
        if self.noise not in NOISES:
            check.fail("noise", self.noise, f"one of {NOISES}")

    @property
    def n(self) -> int:
        return int(np.shape(self.features)[0])

    def with_batch(self, batch_size: int) -> "LabelNoiseRegression":
        return dataclasses.replace(self, batch_size=batch_size)

    def with_langevin(self, langevin: bool = True) -> "LabelNoiseRegression":
        """The same testbed with (or without) SGLD parameter noise in the oracle."""
        return dataclasses.replace(self, langevin=bool(langevin))

    def with_probe_key(self, key) -> "LabelNoiseRegression":
        """The same testbed whose Hessian metrics draw their probes from the typed ``key``."""
        return dataclasses.replace(self, probe_key=np.asarray(jax.random.key_data(key)))

    def probes(self, name: str):
        """The typed key of one kind of probe (``"lanczos"``: :func:`lambda_max`'s start vector)."""
        if self.probe_key is None:
            raise ValueError("this testbed has no probe key: call with_probe_key(key) first")
        return subkey(jax.random.wrap_key_data(jnp.asarray(self.probe_key, jnp.uint32)), name)

    def init(self, *, key=None):
        del key
        return self.theta0

    def predict(self, theta, X=None):
        return predict(self.model, theta, self.features if X is None else X)

    def loss(self, theta):
        """L(θ) = (1/n) Σ_i ½ (f_i(θ) − y_i)²."""
        r = self.predict(theta) - self.targets
        return 0.5 * jnp.mean(r ** 2)

    def _label_noise(self, key, shape, dtype):
        if self.noise == "rademacher":
            return jax.random.rademacher(key, shape, dtype=dtype)
        return jax.random.normal(key, shape, dtype)

    def gradient(self, theta, *, key, hparams, step=None):
        """(1/B) Σ_{i∈batch} (f_i − y_i − σε_i)∇f_i + τξ with σ = hparams["sigma"],
        τ = hparams["param_noise"] (only with ``langevin``)."""
        del step
        # one random-bits call per step when nothing else is drawn (full batch, no SGLD):
        # on CPU each threefry call has a fixed cost that dominates this small step
        if self.batch_size < self.n or self.langevin:
            k_batch, k_label, k_param = jax.random.split(key, 3)
        else:
            k_batch = k_param = None
            k_label = key
        X, y = self.features, self.targets
        if self.batch_size < self.n:
            idx = jax.random.randint(k_batch, (self.batch_size,), 0, self.n)
            X, y = X[idx], y[idx]
        eps = hparams["sigma"] * self._label_noise(k_label, y.shape, y.dtype)
        noisy = y + eps
        grads = jax.grad(lambda t: 0.5 * jnp.mean((predict(self.model, t, X) - noisy) ** 2))(theta)
        if not self.langevin:
            return grads
        leaves, tree = jax.tree_util.tree_flatten(grads)
        keys = jax.random.split(k_param, len(leaves))
        noisy_leaves = [g + hparams["param_noise"] * jax.random.normal(k, g.shape, g.dtype)
                        for g, k in zip(leaves, keys)]
        return jax.tree_util.tree_unflatten(tree, noisy_leaves)

    # ---------------------------------------------------------- exact quantities
    def per_example_gradient_sq_norms(self, theta):
        """‖∇f_i(θ)‖² for every example, shape (n,)."""
        def one(x):
            g = jax.grad(lambda t: predict(self.model, t, x[None])[0])(theta)
            return sum(jnp.sum(leaf ** 2) for leaf in jax.tree_util.tree_leaves(g))
        return jax.vmap(one)(self.features)

    def matched_param_noise(self, sigma) -> float:
        """SGLD's τ with E‖τξ‖² = E‖label-noise perturbation of the full-batch gradient‖² at
        θ₀: τ² p = σ² Σ_i ‖∇f_i(θ₀)‖² / n² (p parameters)."""
        sigma = check.nonnegative("sigma", sigma)
        theta0 = jax.tree_util.tree_map(jnp.asarray, self.theta0)
        g2 = np.asarray(self.per_example_gradient_sq_norms(theta0), np.float64)
        p = sum(np.size(x) for x in jax.tree_util.tree_leaves(self.theta0))
        return float(sigma * np.sqrt(g2.sum() / (self.n ** 2 * p)))


# ---------------------------------------------------------------------- metrics
def loss(tb, theta):
    """L(θ)."""
    return tb.loss(theta)


def sparse_w(tb, theta):
    """w = u⊙u − v⊙v (sparse model)."""
    del tb
    return theta["u"] ** 2 - theta["v"] ** 2


def sparse_trace(tb, theta):
    """tr ∇²L of the sparse model, exactly: (4/n) Σ_i Σ_j x_ij² (u_j² + v_j²). With
    ∇f_i = 2(u⊙x_i, −v⊙x_i) and tr ∇²f_i = Σ_j (2x_ij − 2x_ij) = 0 the residual term
    vanishes at every θ."""
    m = jnp.mean(tb.features ** 2, axis=0)
    return 4.0 * jnp.sum(m * (theta["u"] ** 2 + theta["v"] ** 2))


def lambda_max(tb, theta):
    """λ_max(∇²L) by min(20, p) Lanczos steps from the testbed's Lanczos probe."""
    p = sum(int(np.size(x)) for x in jax.tree_util.tree_leaves(theta))
    return hessian.top_eigenvalues(tb.loss, theta, 1, key=tb.probes("lanczos"), n_iter=min(20, p))[0]


def mlp_trace(tb, theta):
    """tr ∇²L of the two-layer tanh net, exactly: (1/n) Σ_i [‖∇f_i‖² + r_i tr ∇²f_i] with
    h = tanh(W₁ᵀx + b₁), s = 1 − h², f = w₂ᵀh/√m:
    ‖∇f‖² = (Σ_k h_k² + Σ_k w₂ₖ² s_k² (1 + ‖x‖²))/m (w₂, then b₁ and W₁) and
    tr ∇²f = −2 Σ_k w₂ₖ h_k s_k (1 + ‖x‖²)/√m (∂²f/∂w₂² = 0). No probes: no estimator error."""
    X = tb.features
    m = theta["w2"].shape[0]
    h = jnp.tanh(X @ theta["w1"] + theta["b1"])                 # (n, m)
    s = 1.0 - h ** 2
    xx = 1.0 + jnp.sum(X ** 2, axis=1, keepdims=True)          # (n, 1)
    g2 = (jnp.sum(h ** 2, axis=1) + jnp.sum(theta["w2"] ** 2 * s ** 2 * xx, axis=1)) / m
    tr_f = -2.0 * jnp.sum(theta["w2"] * h * s * xx, axis=1) / jnp.sqrt(m)
    r = h @ theta["w2"] / jnp.sqrt(m) - tb.targets
    return jnp.mean(g2 + r * tr_f)


def toy_theta(tb, theta):
    """θ = (a, b, c) (toy)."""
    del tb
    return theta


def toy_q(tb, theta):
    """q = a² (toy)."""
    del tb
    return theta[0] ** 2


def toy_loss_flat(theta):
    """The toy's L(a, b, c) = ¼[(ab − 1)² + (ac − 1)²] on a flat vector (for the reference
    flows of :mod:`simulations.flows`, whose loss is a static argument)."""
    a, b, c = theta[0], theta[1], theta[2]
    return 0.25 * ((a * b - 1.0) ** 2 + (a * c - 1.0) ** 2)


# ------------------------------------------------------------- hyperparameters
def label_noise_hyperparams(learning_rate, sigma, *, momentum=0.0, param_noise=None) -> dict:
    """Engine hyperparameters (leading config axis) for label-noise SGD / GD / SGLD with
    :func:`simulations.optimizers.make_momentum_sgd`: η > 0, σ >= 0 (label-noise scale;
    σ = 0 is GD), 0 <= β < 1 (heavy ball), τ >= 0 (SGLD parameter noise, used only by a
    ``langevin`` testbed). Scalars and arrays broadcast to one config axis; every value is
    checked here, before anything compiles."""
    arrays = [np.atleast_1d(np.asarray(x, np.float64)) for x in (learning_rate, sigma, momentum)]
    if param_noise is not None:
        arrays.append(np.atleast_1d(np.asarray(param_noise, np.float64)))
    try:
        arrays = np.broadcast_arrays(*arrays)
    except ValueError:
        check.fail("hyperparams", [np.shape(a) for a in arrays], "shapes that broadcast to one config axis")
    for v in arrays[0]:
        check.positive("learning_rate", v)
    for v in arrays[1]:
        check.nonnegative("sigma", v)
    for v in arrays[2]:
        check.in_range("momentum", v, 0.0, 1.0)
    hp = {"learning_rate": arrays[0].copy(), "sigma": arrays[1].copy(), "momentum": arrays[2].copy()}
    if param_noise is not None:
        for v in arrays[3]:
            check.nonnegative("param_noise", v)
        hp["param_noise"] = arrays[3].copy()
    return hp


# ---------------------------------------------------------------------- factories
def _batch_and_noise(n, batch_size, noise):
    B = n if batch_size is None else batch_size
    if not (isinstance(B, (int, np.integer)) and 1 <= B <= n):
        check.fail("batch_size", B, f"an integer with 1 <= B <= n = {n}")
    if noise not in NOISES:
        check.fail("noise", noise, f"one of {NOISES}")
    return int(B)


def make_sparse_regression(*, key, d: int = 100, n: int = 40, k: int = 5, init: float = 1.0,
                           batch_size: int | None = None, noise: str = "rademacher",
                           variant: str = "sparse") -> LabelNoiseRegression:
    """Sparse regression y = ⟨w*, x⟩ (noiseless), x ~ N(0, I_d), w*_j = 1 on the first k
    coordinates, start u = v = ``init`` (``variant="sparse_vv"``: v = ``init``)."""
    d = check.integer_at_least("d", d, 1)
    n = check.integer_at_least("n", n, 1)
    k = check.integer_at_least("k", k, 1)
    if k > d:
        check.fail("k", k, f"1 <= k <= d = {d}")
    init = check.positive("init", init)
    if variant not in ("sparse", "sparse_vv"):
        check.fail("variant", variant, "'sparse' (u⊙u − v⊙v) or 'sparse_vv' (v⊙v)")
    B = _batch_and_noise(n, batch_size, noise)
    rng = numpy_rng(key)
    X = rng.standard_normal((n, d))
    w_star = np.zeros(d)
    w_star[:k] = 1.0
    theta0 = ({"u": np.full(d, init), "v": np.full(d, init)} if variant == "sparse"
              else {"v": np.full(d, init)})
    return LabelNoiseRegression(X, X @ w_star, theta0, model=variant, batch_size=B, noise=noise)


def make_toy(*, q0: float = 2.0, batch_size: int | None = None,
             noise: str = "rademacher") -> LabelNoiseRegression:
    """The three-parameter toy at the zero-loss point a = √q0, b = c = 1/a."""
    q0 = check.positive("q0", q0)
    B = _batch_and_noise(2, batch_size, noise)
    a = np.sqrt(q0)
    return LabelNoiseRegression(np.eye(2), np.ones(2), np.array([a, 1 / a, 1 / a]),
                                model="toy", batch_size=B, noise=noise)


def make_two_layer(*, key, n: int = 128, d: int = 8, width: int = 64,
                   batch_size: int | None = None, noise: str = "rademacher") -> LabelNoiseRegression:
    """A two-layer tanh network f(x) = w₂ᵀ tanh(W₁ᵀx + b₁)/√m on a teacher task:
    x ~ N(0, I_d/d), y = a teacher network of width 4 (noiseless), start W₁ ~ N(0, I),
    b₁ = 0, w₂ ~ N(0, 1)."""
    n = check.integer_at_least("n", n, 1)
    d = check.integer_at_least("d", d, 1)
    width = check.integer_at_least("width", width, 1)
    B = _batch_and_noise(n, batch_size, noise)
    rng = numpy_rng(key)
    X = rng.standard_normal((n, d)) / np.sqrt(d)
    teacher = {"w1": rng.standard_normal((d, 4)) * 2.0, "b1": np.zeros(4), "w2": rng.standard_normal(4)}
    y = np.asarray(predict("mlp", teacher, X), np.float64)
    theta0 = {"w1": rng.standard_normal((d, width)), "b1": np.zeros(width),
              "w2": rng.standard_normal(width)}
    return LabelNoiseRegression(X, y, theta0, model="mlp", batch_size=B, noise=noise)
