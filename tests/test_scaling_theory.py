"""theory.scaling against independent computations: noise scales and the one-step optimum
vs numerical optimization, the trade-off fit on synthetic curves, the two-batch estimators
as identities of their expectations, the variance of |g_B|² by exhaustive enumeration of
minibatches, the NQM moment recursion vs closed forms, an independent matrix recursion,
scipy's Lyapunov solver and NumPy Monte Carlo, and steps to target vs brute force."""
import itertools

import numpy as np
import pytest
from scipy import linalg, optimize

from simulations import stats
from theory import nqm as nqm_th
from theory import scaling as th
from theory.validation import InvalidParameter


def _problem(rng, d=5):
    A = rng.normal(size=(d, d))
    H = A @ A.T + 0.5 * np.eye(d)
    C = rng.normal(size=(d, d))
    S = C @ C.T
    return rng.normal(size=d), H, S


# ------------------------------------------------------------------- noise scale
def test_noise_scales_and_one_step_optimum(rng):
    G, H, S = _problem(rng)
    ns = th.noise_scales(G, H, S)
    assert ns["b_noise"] == pytest.approx(np.trace(H @ S) / (G @ H @ G), rel=1e-12)
    assert ns["b_simple"] == pytest.approx(np.trace(S) / (G @ G), rel=1e-12)
    for B in (1.0, 7.0, 300.0):
        res = optimize.minimize_scalar(lambda e: -th.expected_improvement(e, B, G, H, S), bounds=(0, 10),
                                       method="bounded", options={"xatol": 1e-12})
        assert res.x == pytest.approx(th.optimal_step(B, ns["eps_max"], ns["b_noise"]), rel=1e-6)
        assert -res.fun == pytest.approx(th.optimal_improvement(B, ns["delta_max"], ns["b_noise"]), rel=1e-9)
    # ΔL(ε) is the exact expectation over a Gaussian minibatch noise of covariance Σ/B (quadratic loss)
    B, eps = 4.0, 0.05
    xi = rng.multivariate_normal(np.zeros(5), S / B, size=200_000)
    f = lambda x: 0.5 * np.einsum("...i,ij,...j->...", x, H, x)
    theta = np.linalg.solve(H, G)  # G = Hθ for L = ½θᵀHθ
    gain = f(theta) - f(theta - eps * (G + xi))
    m, se, _ = stats.mean_stderr(gain)
    assert abs(m - th.expected_improvement(eps, B, G, H, S)) <= 5 * se


def test_noise_scales_reject_bad_input(rng):
    G, H, S = _problem(rng)
    with pytest.raises(InvalidParameter, match="^G = .*nonzero"):
        th.noise_scales(np.zeros(5), H, S)
    with pytest.raises(InvalidParameter, match="^H = .*GᵀHG > 0"):
        th.noise_scales(G, -H, S)
    with pytest.raises(InvalidParameter, match="^Sigma = "):
        th.noise_scales(G, H, -S)


# ------------------------------------------------------------------------ trade-off
def test_fit_recovers_the_tradeoff_and_the_product_is_one():
    bs = 2.0 ** np.arange(10)
    S = th.tradeoff_steps(bs, 30.0, 50.0)
    E = th.tradeoff_examples(bs, 30.0 * 50.0, 50.0)
    np.testing.assert_allclose(S * bs, E, rtol=1e-12)
    np.testing.assert_allclose(th.tradeoff_product(S, E, 30.0, 1500.0), 1.0, rtol=1e-9)
    fit = th.fit_tradeoff(bs, S)
    assert (fit["s_min"], fit["e_min"], fit["b_crit"]) == pytest.approx((30.0, 1500.0, 50.0), rel=1e-9)
    assert np.max(np.abs(fit["log_residual"])) < 1e-12
    # unreached points (inf) are left out; fewer than 2 finite points: NaN
    S2 = S.copy()
    S2[-3:] = np.inf
    assert th.fit_tradeoff(bs, S2)["b_crit"] == pytest.approx(50.0, rel=1e-9)
    assert np.isnan(th.fit_tradeoff(bs[:2], [np.inf, 5.0])["b_crit"])
    # relative least squares = the minimizer of Σ((S − a − b/B)/S)² over a, b >= 0
    noisy = S * np.exp(np.random.default_rng(0).normal(0, 0.1, S.size))
    f = th.fit_tradeoff(bs, noisy)
    obj = lambda p: np.sum(((noisy - p[0] - p[1] / bs) / noisy) ** 2)
    ref = optimize.minimize(obj, [20, 1000], method="Nelder-Mead", options=dict(xatol=1e-10, fatol=1e-14,
                                                                               maxiter=20000))
    assert obj([f["s_min"], f["e_min"]]) <= ref.fun + 1e-12


# ------------------------------------------------------------- two-batch estimators
def test_two_batch_estimators_are_identities_of_their_expectations(rng):
    G, H, S = _problem(rng)
    for bs, bb in ((1, 2), (4, 64), (3, 1000)):
        e_small = G @ G + np.trace(S) / bs
        e_big = G @ G + np.trace(S) / bb
        g2, tr = th.two_batch_estimates(e_small, e_big, bs, bb)
        assert (g2, tr) == pytest.approx((G @ G, np.trace(S)), rel=1e-10)
    with pytest.raises(InvalidParameter, match="^b_big = "):
        th.two_batch_estimates(1.0, 1.0, 4, 4)


@pytest.mark.parametrize("B", [1, 2, 3])
def test_sq_norm_variance_by_enumerating_every_minibatch(rng, B):
    """Var|g_B|² over all n^B ordered minibatches (with replacement) of 5 per-example
    gradients equals the moment formula exactly (to float64 round-off)."""
    U = rng.normal(size=(5, 3)) + 0.7
    vals = [np.sum(U[list(idx)].mean(0) ** 2) for idx in itertools.product(range(5), repeat=B)]
    m = th.per_example_moments(U)
    assert th.minibatch_sq_norm_variance(m["G"], m["Sigma"], m["third"], m["fourth"], B) == pytest.approx(
        np.var(vals), rel=1e-10)
    # H-weighted: |R g|² with R = H^{1/2}
    _, H, _ = _problem(rng, 3)
    w = th.weighted_moments(m, H)
    vals_h = [U[list(idx)].mean(0) @ H @ U[list(idx)].mean(0) for idx in itertools.product(range(5), repeat=B)]
    assert th.minibatch_sq_norm_variance(w["G"], w["Sigma"], w["third"], w["fourth"], B) == pytest.approx(
        np.var(vals_h), rel=1e-9)


def test_gaussian_moments_match_monte_carlo(rng):
    G, _, S = _problem(rng, 3)
    m = th.gaussian_moments(G, S)
    x = rng.multivariate_normal(G, S / 4, size=400_000)
    v = np.sum(x * x, axis=1)
    pred = th.minibatch_sq_norm_variance(m["G"], m["Sigma"], m["third"], m["fourth"], 4)
    assert np.var(v) == pytest.approx(pred, rel=0.02)  # sample variance of 4e5 draws: ~0.5% SE


# ------------------------------------------------------------------------ the NQM
def _matrix_recursion(h, c, theta0, lr, B, T, beta=0.0, gamma=0.0, p=0.0):
    """Independent: per coordinate, P_{t+1} = A P Aᵀ + n nᵀ with 3×3 matrices."""
    out, out_ema = [], []
    for hi, ci, t0 in zip(h, c, theta0):
        a_i = lr * hi ** (-p)
        a = 1 + beta - a_i * hi
        A = np.array([[a, -beta, 0], [1, 0, 0], [(1 - gamma) * a, -(1 - gamma) * beta, gamma]])
        nvec = np.array([-a_i, 0, -(1 - gamma) * a_i]) * np.sqrt(ci / B)
        P = np.full((3, 3), t0 ** 2)
        rows = []
        for _ in range(T + 1):
            rows.append((P[0, 0], P[2, 2]))
            P = A @ P @ A.T + np.outer(nvec, nvec)
        out.append([0.5 * hi * r[0] for r in rows])
        out_ema.append([0.5 * hi * r[1] for r in rows])
    return np.sum(out, axis=0), np.sum(out_ema, axis=0)


@pytest.mark.parametrize("kw", [dict(), dict(momentum=0.9), dict(precond_power=0.5), dict(ema=0.8),
                                dict(momentum=0.5, precond_power=1.0)])
def test_nqm_moments_equal_an_independent_matrix_recursion(kw):
    h, c, theta0 = nqm_th.nqm_problem(6)
    T = 60
    mo = nqm_th.nqm_moments(h, c, theta0, lr=0.3, batch=3.0, steps=np.arange(T + 1), **kw)
    ref, ref_ema = _matrix_recursion(h, c, theta0, 0.3, 3.0, T, kw.get("momentum", 0.0), kw.get("ema", 0.0),
                                     kw.get("precond_power", 0.0))
    np.testing.assert_allclose(mo["loss"][0], ref, rtol=1e-12)
    np.testing.assert_allclose(mo["loss_ema"][0], ref_ema, rtol=1e-12)


def test_nqm_sgd_closed_form_and_stationary_limits():
    h, c, theta0 = nqm_th.nqm_problem(8)
    lr, B = 0.7, 5.0
    t = np.arange(0, 400, 7)
    r = 1 - lr * h
    m_inf = lr ** 2 * c / B / (1 - r ** 2)
    closed = 0.5 * np.sum(h * (r[None] ** (2 * t[:, None]) * (theta0 ** 2 - m_inf) + m_inf), axis=1)
    np.testing.assert_allclose(nqm_th.nqm_moments(h, c, theta0, lr=lr, batch=B, steps=t)["loss"][0], closed, rtol=1e-12)
    # stationary: the AR formulas vs scipy's Lyapunov solver per coordinate, and the long recursion
    for beta, gamma in ((0.0, 0.0), (0.9, 0.0), (0.0, 0.7)):
        st = nqm_th.nqm_stationary(h, c, lr=lr, batch=B, momentum=beta, ema=gamma)
        lyap, lyap_ema = 0.0, 0.0
        for hi, ci in zip(h, c):
            a = 1 + beta - lr * hi
            A = np.array([[a, -beta, 0], [1, 0, 0], [(1 - gamma) * a, -(1 - gamma) * beta, gamma]])
            nvec = np.array([-lr, 0, -(1 - gamma) * lr]) * np.sqrt(ci / B)
            P = linalg.solve_discrete_lyapunov(A, np.outer(nvec, nvec))
            lyap += 0.5 * hi * P[0, 0]
            lyap_ema += 0.5 * hi * P[2, 2]
        assert st["loss"][0] == pytest.approx(lyap, rel=1e-9)
        if beta == 0:
            assert st["loss_ema"][0] == pytest.approx(lyap_ema, rel=1e-9)
        else:  # the closed form of the average is derived for SGD only
            assert np.isnan(st["loss_ema"][0])
        far = nqm_th.nqm_moments(h, c, theta0, lr=lr, batch=B, steps=[30_000], momentum=beta, ema=gamma)
        assert far["loss"][0, 0] == pytest.approx(lyap, rel=1e-9)
        assert far["loss_ema"][0, 0] == pytest.approx(lyap_ema, rel=1e-9)
    assert np.isinf(nqm_th.nqm_stationary(h, c, lr=2.5, batch=B)["loss"][0])  # unstable: αh_max > 2


def test_nqm_sd_and_tail_weight_match_numpy_monte_carlo():
    """The per-trajectory sd of L from the Gaussian moments vs 20000 NumPy trajectories
    (heavy ball), and the quadratic-form bound's coverage (Birgé's tail bound)."""
    h, c, theta0 = nqm_th.nqm_problem(4)
    lr, B, beta, T, n = 0.4, 2.0, 0.5, 30, 20_000
    rng = np.random.default_rng(1)
    th_prev = np.tile(theta0, (n, 1))
    th_cur = th_prev.copy()
    for _ in range(T):
        g = h * th_cur + rng.normal(size=th_cur.shape) * np.sqrt(c / B)
        th_cur, th_prev = th_cur - lr * g + beta * (th_cur - th_prev), th_cur
    L = 0.5 * np.sum(h * th_cur ** 2, axis=1)
    mo = nqm_th.nqm_moments(h, c, theta0, lr=lr, batch=B, steps=[T], momentum=beta)
    assert abs(L.mean() - mo["loss"][0, 0]) <= 5 * L.std() / np.sqrt(n)
    assert L.std() == pytest.approx(mo["loss_sd"][0, 0], rel=0.03)
    # means of 8 draws: the two-sided bound at α = 0.05 holds in >= 95% of 2500 groups
    means = L.reshape(2500, 8).mean(1)
    below, above = stats.quadratic_form_halfwidths(mo["loss_sd"][0, 0], mo["loss_amax"][0, 0], 8,
                                                   family_alpha=0.05)
    dev = means - mo["loss"][0, 0]
    assert np.mean((dev > above) | (-dev > below)) <= 0.05
    assert above > below  # the right tail is the heavy one


def test_steps_to_target_is_the_best_of_its_grid_by_brute_force():
    h, c, theta0 = nqm_th.nqm_problem(8)
    target = 0.02 * 0.5 * np.sum(h * theta0 ** 2)
    bs = [1.0, 16.0, 256.0]
    out = nqm_th.nqm_steps_to_target(h, c, theta0, target, batch_sizes=bs, variants=[dict(), dict(momenta=[0.5, 0.9])],
                                 n_lr=10, n_refine=0)
    for v, momenta in enumerate(([0.0], [0.5, 0.9])):
        for j, B in enumerate(bs):
            best = np.inf
            for beta in momenta:
                top = nqm_th._largest_admissible_lr(h, c, target, B, beta, 0.0, 0.0, False)
                lrs = top * np.geomspace(1 / 64, 1, 10)[:-1]
                curves = nqm_th.nqm_moments(h, c, theta0, lr=lrs, batch=B, steps=np.arange(3000), momentum=beta)["loss"]
                for curve in curves:  # one learning rate per row
                    hit = np.flatnonzero(curve <= target)
                    best = min(best, hit[0] if hit.size else np.inf)
            assert out["steps"][v, j] == best
            # the reported hyperparameters reach the target in exactly that many steps
            curve = nqm_th.nqm_moments(h, c, theta0, lr=out["lr"][v, j], batch=B, steps=np.arange(3000),
                                   momentum=out["momentum"][v, j])["loss"][0]
            assert np.flatnonzero(curve <= target)[0] == out["steps"][v, j]
    # refinement never makes it worse
    fine = nqm_th.nqm_steps_to_target(h, c, theta0, target, batch_sizes=bs, variants=[dict()], n_lr=10, n_refine=9)
    assert np.all(fine["steps"][0] <= out["steps"][0])


@pytest.mark.parametrize("kwargs, name", [
    (dict(lr=0.0), "lr"), (dict(batch=-1.0), "batch"), (dict(momentum=1.0), "momentum"),
    (dict(ema=-0.1), "ema"), (dict(precond_power=1.5), "precond_power"), (dict(steps=[3, 1]), "steps"),
])
def test_nqm_moments_reject_bad_input(kwargs, name):
    h, c, theta0 = nqm_th.nqm_problem(4)
    args = dict(lr=0.1, batch=1.0, steps=[0, 1])
    args.update(kwargs)
    with pytest.raises(InvalidParameter, match=rf"^{name} = "):
        nqm_th.nqm_moments(h, c, theta0, **args)


def test_noise_scales_on_the_nqm_are_the_general_formula(rng):
    h, c, theta0 = nqm_th.nqm_problem(6)
    theta = theta0 * rng.uniform(0.1, 1.0, 6)
    ns = th.noise_scales(h * theta, np.diag(h), np.diag(c))
    assert nqm_th.nqm_noise_scale(h, c, theta) == pytest.approx(ns["b_noise"], rel=1e-12)
    assert nqm_th.nqm_simple_noise_scale(h, c, theta) == pytest.approx(ns["b_simple"], rel=1e-12)
    path = nqm_th.nqm_mean_path(h, theta0, lr=0.3, steps=5, momentum=0.5)
    mo = nqm_th.nqm_moments(h, np.zeros(6), theta0, lr=0.3, batch=1.0, steps=np.arange(6), momentum=0.5)
    np.testing.assert_allclose(0.5 * np.sum(h * path ** 2, axis=1), mo["loss"][0], rtol=1e-12)
