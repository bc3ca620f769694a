"""The noisy quadratic model (NQM) of Zhang, Li, Nado, Martens, Sachdeva, Dahl, Shallue,
Grosse, "Which Algorithmic Choices Matter at Which Batch Sizes? Insights From a Noisy
Quadratic Model" (NeurIPS 2019, arXiv 1907.04164), in closed form.

**NQM** (Zhang et al.). L(θ) = ½ Σ_i h_i θ_i², stochastic gradient Hθ + ξ, ξ ~ N(0, C/B)
with C diagonal (c_i; C = H in the paper's model). Coordinates are independent. With a
preconditioner H^−p the effective step of coordinate i is a_i = α h_i^−p (the noise is
preconditioned too); heavy-ball momentum β; an exponential moving average of the iterates
θ̄_{t+1} = γθ̄_t + (1−γ)θ_{t+1} (θ̄₀ = θ₀). Per coordinate, with the state
x_t = (θ_t, θ_{t−1}, θ̄_t),

    θ_{t+1} = (1 + β − a h)θ_t − βθ_{t−1} − a ξ_t,   Var ξ_t = c/B,                 (5)

is linear with additive Gaussian noise, so the raw second moments
s = (Eθ², Eθθ₋, Eθ₋², Eθθ̄, Eθ₋θ̄, Eθ̄²) evolve by an exact affine recursion
(:func:`nqm_moments`), and E L(θ_t) = ½ Σ h_i Eθ_{i,t}², E L(θ̄_t) = ½ Σ h_i Eθ̄²_{i,t}.
Stationary values: SGD Eθ² = a²(c/B)/(1 − (1 − ah)²); heavy ball (an AR(2))
Eθ² = a²(c/B)(1 + β)/((1 − β)((1 + β)² − (1 + β − ah)²)); the average of SGD's iterates
Eθ̄² = Eθ²·(1 − γ)(1 + rγ)/((1 + γ)(1 − rγ)), r = 1 − ah (:func:`nqm_stationary`).
Stable iff 0 < ah < 2(1 + β).

**Steps to target** S(B) = min over the hyperparameter grid of the first step t with
E L(t) ≤ L_target (:func:`nqm_steps_to_target`): exact up to the grid of hyperparameters
(a coarse log grid below the largest α whose stationary loss is under the target, then a
local refinement around the best point).

All functions are float64 NumPy, deterministic, and validate their inputs.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from theory import validation as check

#: the NQM variants of :func:`nqm_steps_to_target`: (momentum grid, EMA grid, evaluated iterate).
VARIANTS = ("sgd", "momentum", "preconditioned", "ema")


def nqm_problem(d: int, *, x0: str = "equal_loss"):
    """h_i = 1/i, c_i = h_i (C = H) for i = 1..d, and θ₀: ``"equal_loss"`` θ₀ᵢ = h_i^−½
    (every coordinate starts with loss ½) or ``"ones"`` θ₀ᵢ = 1."""
    d = check.integer_at_least("d", d, 1)
    h = 1.0 / np.arange(1, d + 1, dtype=np.float64)
    if x0 == "equal_loss":
        theta0 = 1.0 / np.sqrt(h)
    elif x0 == "ones":
        theta0 = np.ones(d)
    else:
        raise check.InvalidParameter(f"x0 = {x0!r} is not allowed: need 'equal_loss' or 'ones'")
    return h, h.copy(), theta0


def _check_nqm(h, c, theta0):
    h = check.finite_vector("h", h)
    c = check.finite_vector("c", c)
    theta0 = check.finite_vector("theta0", theta0)
    if np.any(h <= 0):
        check.fail("h", h, "curvatures h_i > 0")
    if np.any(c < 0):
        check.fail("c", c, "noise variances c_i >= 0")
    check.same_shape("h", h, "c", c)
    check.same_shape("h", h, "theta0", theta0)
    return h, c, theta0


def _hyper(lr, batch, momentum, ema, precond_power):
    """Broadcast the hyperparameters of n configurations to (n, 1) arrays."""
    arrs = np.broadcast_arrays(*(np.atleast_1d(np.asarray(v, np.float64))
                                 for v in (lr, batch, momentum, ema, precond_power)))
    lr, batch, beta, gamma, p = (a.reshape(-1, 1) for a in arrs)
    for name, v, ok, need in (("lr", lr, lr > 0, "lr > 0"), ("batch", batch, batch > 0, "batch B > 0"),
                              ("momentum", beta, (beta >= 0) & (beta < 1), "0 <= momentum < 1"),
                              ("ema", gamma, (gamma >= 0) & (gamma < 1), "0 <= ema < 1"),
                              ("precond_power", p, (p >= 0) & (p <= 1), "0 <= precond_power <= 1")):
        if not np.all(np.isfinite(v) & ok):
            bad = v[~(np.isfinite(v) & ok)].ravel()[0]
            check.fail(name, bad, need)
    return lr, batch, beta, gamma, p


def stability_limit(h, momentum: float = 0.0, precond_power: float = 0.0) -> float:
    """The largest stable α: a_i h_i = α h_i^{1−p} < 2(1 + β) for every i."""
    h = check.finite_vector("h", h)
    _, _, beta, _, p = (float(v[0, 0]) for v in _hyper(1.0, 1.0, momentum, 0.0, precond_power))
    return float(2.0 * (1.0 + beta) / np.max(h ** (1.0 - p)))


class _State:
    """Raw moments of (θ_t, θ_{t−1}, θ̄_t) per (configuration, coordinate), eq. (5)."""

    def __init__(self, theta0, n):
        x = np.broadcast_to(theta0, (n, theta0.size))
        self.m = [x.copy(), x.copy(), x.copy()]                  # means of θ, θ₋, θ̄
        self.s = [x * x for _ in range(6)]                       # s00 s01 s11 s02 s12 s22

    def step(self, a, b, e2q, g):
        m0, m1, m2 = self.m
        s00, s01, s11, s02, s12, s22 = self.s
        n00 = a * a * s00 + 2 * a * b * s01 + b * b * s11 + e2q
        n01 = a * s00 + b * s01
        cross = a * s02 + b * s12                                 # E θ_{t+1} θ̄_t
        n02 = g * cross + (1 - g) * n00
        n12 = g * s02 + (1 - g) * n01
        n22 = g * g * s22 + 2 * g * (1 - g) * cross + (1 - g) ** 2 * n00
        self.s = [n00, n01, s00, n02, n12, n22]
        mn = a * m0 + b * m1
        self.m = [mn, m0, g * m2 + (1 - g) * mn]

    def keep(self, rows):
        self.m = [m[rows] for m in self.m]
        self.s = [s[rows] for s in self.s]


def _coefficients(h, c, lr, batch, beta, gamma, p):
    a_i = lr * h[None, :] ** (-p)          # effective step per coordinate
    a = 1.0 + beta - a_i * h[None, :]
    b = np.broadcast_to(-beta, a.shape)
    e2q = a_i ** 2 * c[None, :] / batch
    return a, b, e2q, np.broadcast_to(gamma, a.shape)


def nqm_moments(h, c, theta0, *, lr, batch, steps, momentum=0.0, ema=0.0, precond_power=0.0) -> dict:
    """Exact E L and Var L of θ_t and of θ̄_t at the integer ``steps`` (eq. 5) for n
    configurations (hyperparameters broadcast against each other).

    Returns a dict of (n, len(steps)) arrays ``loss``, ``loss_ema`` (E L(θ_t), E L(θ̄_t)),
    ``loss_sd``, ``loss_ema_sd`` (their per-trajectory standard deviations: θ_t is
    Gaussian, so Var(½Σhθ²) = Σ h²(σ⁴/2 + μ²σ²) with μ, σ² its mean and variance) and
    ``loss_amax``, ``loss_ema_amax`` (max_i ½h_iσ_i²: the largest weight of L written as
    Σ a_i(Z_i + b_i)², Z_i standard normal, which bounds its upper tail; see
    :func:`simulations.stats.quadratic_form_halfwidths`)."""
    h, c, theta0 = _check_nqm(h, c, theta0)
    lr, batch, beta, gamma, p = _hyper(lr, batch, momentum, ema, precond_power)
    steps = np.asarray(steps)
    if steps.ndim != 1 or np.any(steps < 0) or np.any(np.mod(steps, 1) != 0) or np.any(np.diff(steps) < 0):
        check.fail("steps", steps, "non-decreasing integers >= 0")
    a, b, e2q, g = _coefficients(h, c, lr, batch, beta, gamma, p)
    st = _State(theta0, a.shape[0])
    out = {k: np.empty((a.shape[0], steps.size))
           for k in ("loss", "loss_ema", "loss_sd", "loss_ema_sd", "loss_amax", "loss_ema_amax")}

    def record(j):
        for name, mean, sq in (("loss", st.m[0], st.s[0]), ("loss_ema", st.m[2], st.s[5])):
            var = np.maximum(sq - mean ** 2, 0.0)
            out[name][:, j] = 0.5 * (h * sq).sum(axis=1)
            out[name + "_sd"][:, j] = np.sqrt((h ** 2 * (0.5 * var ** 2 + mean ** 2 * var)).sum(axis=1))
            out[name + "_amax"][:, j] = np.max(0.5 * h * var, axis=1)

    t, j = 0, 0
    while j < steps.size:
        while j < steps.size and steps[j] == t:
            record(j)
            j += 1
        if j < steps.size:
            st.step(a, b, e2q, g)
            t += 1
    return out


def nqm_stationary(h, c, *, lr, batch, momentum=0.0, ema=0.0, precond_power=0.0) -> dict:
    """Stationary E L of θ and of θ̄ (closed forms of the module docstring; inf where the
    recursion is unstable). The EMA formula holds for momentum 0 only (NaN otherwise)."""
    h = check.finite_vector("h", h)
    c = check.finite_vector("c", c)
    lr, batch, beta, gamma, p = _hyper(lr, batch, momentum, ema, precond_power)
    a_i = lr * h[None, :] ** (-p)
    x = a_i * h[None, :]
    stable = np.all((x > 0) & (x < 2 * (1 + beta)), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        var = a_i ** 2 * (c / batch) * (1 + beta) / ((1 - beta) * ((1 + beta) ** 2 - (1 + beta - x) ** 2))
        r = 1 - x
        var_ema = np.where(beta == 0, var * (1 - gamma) * (1 + r * gamma) / ((1 + gamma) * (1 - r * gamma)), np.nan)
    loss = np.where(stable, 0.5 * (h * var).sum(axis=1), np.inf)
    loss_ema = np.where(stable, 0.5 * (h * var_ema).sum(axis=1), np.inf)
    return dict(loss=loss, loss_ema=loss_ema)


def _largest_admissible_lr(h, c, target, batch, beta, gamma, p, use_ema, n_grid=400):
    """The largest α (on a fine log grid below the stability limit) whose stationary loss
    is below ``target``, with every smaller α of the grid also below it."""
    top = float(stability_limit(h, beta, p)) * (1 - 1e-9)
    grid = top * np.geomspace(1e-6, 1.0, n_grid)
    st = nqm_stationary(h, c, lr=grid, batch=batch, momentum=beta, ema=gamma, precond_power=p)
    loss = st["loss_ema"] if use_ema else st["loss"]
    bad = ~(loss < target)
    if bad[0]:
        return np.nan
    return float(grid[-1] if not bad.any() else grid[np.argmax(bad) - 1])


def _first_crossings(h, c, theta0, target, lr, batch, beta, gamma, p, use_ema, group, max_steps):
    """First step with E L <= target for each group (min over its configurations): the
    affine moment recursion iterated for all configurations at once; a group stops when
    one of its configurations crosses. Returns (steps per group, winning config index)."""
    n_groups = int(group.max()) + 1
    steps = np.full(n_groups, np.inf)
    winner = np.full(n_groups, -1)
    a, b, e2q, g = _coefficients(h, c, lr, batch, beta, gamma, p)
    idx = np.arange(lr.shape[0])
    st = _State(theta0, lr.shape[0])
    ema = np.asarray(use_ema, bool).reshape(-1, 1)

    def losses():
        return 0.5 * (h * np.where(ema, st.s[5], st.s[0])).sum(axis=1)

    for t in range(max_steps + 1):
        loss = losses()
        hit = loss <= target
        if hit.any():
            for gr in np.unique(group[hit]):
                rows = np.flatnonzero((group == gr) & hit)
                steps[gr] = t
                winner[gr] = idx[rows[np.argmin(loss[rows])]]
            keep = ~np.isin(group, np.unique(group[hit]))
            if not keep.any():
                break
            a, b, e2q, g, group, idx, ema = (v[keep] for v in (a, b, e2q, g, group, idx, ema))
            st.keep(keep)
        if t < max_steps:
            st.step(a, b, e2q, g)
    return steps, winner


def nqm_steps_to_target(h, c, theta0, target, *, batch_sizes: Sequence[float],
                        variants: Sequence[dict], n_lr: int = 24, n_refine: int = 9,
                        lr_span: float = 64.0, max_steps: int = 100_000) -> dict:
    """Steps to E L <= target with the hyperparameters optimized per batch size.

    Args:
      h, c, theta0: the NQM (see :func:`nqm_problem`).
      target: L_target > 0.
      batch_sizes: B values.
      variants: one dict per optimizer: ``momenta`` (grid of β, default [0]), ``emas``
        (grid of γ, default [0]; with γ > 0 the EMA iterate θ̄ is evaluated),
        ``precond_power`` p (default 0).
      n_lr: points of the coarse log grid of α per (variant, B, β, γ), from α_top/lr_span
        to α_top, α_top the largest α whose stationary loss is below the target (the
        stability limit if smaller); then ``n_refine`` points between the best α's
        neighbours (at the best β, γ).
      max_steps: S = inf beyond this.

    Returns a dict of (variant, B) arrays: ``steps`` (S, inf if not reached), ``lr``,
    ``momentum``, ``ema`` (the optimal hyperparameters), ``lr_top`` (α_top at the optimal
    β, γ) and ``examples`` = B·S.
    """
    h, c, theta0 = _check_nqm(h, c, theta0)
    target = check.positive("target", target)
    bs = check.finite_vector("batch_sizes", batch_sizes)
    if np.any(bs <= 0):
        check.fail("batch_sizes", bs, "batch sizes B > 0")
    n_lr = check.integer_at_least("n_lr", n_lr, 2)
    n_refine = check.integer_at_least("n_refine", n_refine, 0)
    lr_span = check.positive("lr_span", lr_span)
    max_steps = check.integer_at_least("max_steps", max_steps, 1)
    specs = []
    for v in variants:
        momenta = np.atleast_1d(np.asarray(v.get("momenta", [0.0]), np.float64))
        emas = np.atleast_1d(np.asarray(v.get("emas", [0.0]), np.float64))
        p = float(v.get("precond_power", 0.0))
        _hyper(1.0, 1.0, momenta, 0.0, p)
        _hyper(1.0, 1.0, 0.0, emas, p)
        if np.any(emas > 0) and np.any(momenta > 0):
            check.fail("variants", 0, "an EMA grid with momentum 0 only (the closed-form stationary "
                       "loss of the average is derived for SGD)")
        specs.append((momenta, emas, p))
    V, NB = len(specs), bs.size
    out = {k: np.full((V, NB), np.nan) for k in ("steps", "lr", "momentum", "ema", "lr_top")}

    def run(rows):
        cols = list(zip(*rows))
        lr, batch, beta, gamma, p = (np.asarray(x, np.float64).reshape(-1, 1) for x in cols[:5])
        use_ema, group = np.asarray(cols[5], bool), np.asarray(cols[6], int)
        return _first_crossings(h, c, theta0, target, lr, batch, beta, gamma, p, use_ema, group, max_steps)

    rows, tops = [], {}
    for vi, (momenta, emas, p) in enumerate(specs):
        for bi, B in enumerate(bs):
            for beta in momenta:
                for gamma in emas:
                    top = _largest_admissible_lr(h, c, target, B, beta, gamma, p, gamma > 0)
                    tops[(vi, bi, beta, gamma)] = top
                    if np.isfinite(top):
                        rows += [(a, B, beta, gamma, p, gamma > 0, vi * NB + bi)
                                 for a in top * np.geomspace(1.0 / lr_span, 1.0, n_lr)[:-1]]
    if not rows:
        out["examples"] = out["steps"] * bs[None, :]
        return out
    steps, win = run(rows)
    refine = []
    for gi in np.flatnonzero(np.isfinite(steps[:V * NB])):
        a, B, beta, gamma, p, e, _ = rows[win[gi]]
        top = tops[(gi // NB, gi % NB, beta, gamma)]
        ratio = lr_span ** (1.0 / (n_lr - 1))
        for x in np.geomspace(a / ratio, min(a * ratio, top * (1 - 1e-9)), n_refine + 2)[1:-1]:
            refine.append((x, B, beta, gamma, p, e, gi))
    best = [rows[w] if w >= 0 else None for w in win[:V * NB]]
    best_steps = np.array(steps[:V * NB])
    if refine:
        steps2, win2 = run(refine)
        for gi in range(min(len(steps2), V * NB)):
            if win2[gi] >= 0 and steps2[gi] < best_steps[gi]:
                best_steps[gi], best[gi] = steps2[gi], refine[win2[gi]]
    for gi in range(V * NB):
        vi, bi = divmod(gi, NB)
        out["steps"][vi, bi] = best_steps[gi]
        if best[gi] is not None:
            a, B, beta, gamma, *_ = best[gi]
            out["lr"][vi, bi], out["momentum"][vi, bi], out["ema"][vi, bi] = a, beta, gamma
            out["lr_top"][vi, bi] = tops[(vi, bi, beta, gamma)]
    out["examples"] = out["steps"] * bs[None, :]
    return out


def nqm_noise_scale(h, c, theta) -> np.ndarray:
    """B_noise(θ) = tr(HΣ)/(GᵀHG) = Σ h_i c_i / Σ h_i³θ_i² on the NQM (Σ = C, G = Hθ);
    ``theta`` (..., d)."""
    h = check.finite_vector("h", h)
    c = check.finite_vector("c", c)
    theta = np.asarray(theta, np.float64)
    return (h * c).sum() / (h ** 3 * theta ** 2).sum(axis=-1)


def nqm_simple_noise_scale(h, c, theta) -> np.ndarray:
    """B_simple(θ) = tr Σ/|G|² = Σ c_i / Σ h_i²θ_i² on the NQM."""
    h = check.finite_vector("h", h)
    c = check.finite_vector("c", c)
    theta = np.asarray(theta, np.float64)
    return c.sum() / (h ** 2 * theta ** 2).sum(axis=-1)


def nqm_mean_path(h, theta0, *, lr, steps: int, momentum=0.0, precond_power=0.0) -> np.ndarray:
    """(steps + 1, d) mean iterates E θ_t (the noise-free path) of one configuration."""
    h = check.finite_vector("h", h)
    theta0 = check.finite_vector("theta0", theta0)
    n = check.integer_at_least("steps", steps, 0)
    lr, _, beta, _, p = (float(v[0, 0]) for v in _hyper(lr, 1.0, momentum, 0.0, precond_power))
    a = 1 + beta - lr * h ** (1 - p)
    path = np.empty((n + 1, h.size))
    prev = cur = theta0.copy()
    path[0] = cur
    for t in range(n):
        cur, prev = a * cur - beta * prev, cur
        path[t + 1] = cur
    return path
