"""theory.sngm: the derived SNGM / MSGD bounds vs numerical optimization, exact algebra,
eigenvalues and a small Monte Carlo run on the L-smooth testbed (float64). Every function the
claims use (``sngm_bound``, ``msgd_bound``, ``msgd_eta_cap``, ``sngm_batch_window``,
``heavy_ball_cap``, ``lsmooth_delta``, ``l0l1_lambda_max``, ``LSMOOTH_L``) is checked here
against an independent computation."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy import optimize

from theory import sngm as sg
from theory.validation import InvalidParameter

EPS = np.finfo(np.float64).eps
HYP = settings(max_examples=50, deadline=None, derandomize=True)

# a generic problem: β, B, C, L, Δ, σ
P = dict(beta=0.9, B=64.0, C=1e6, L=4.0, delta=8.85, sigma=2.0)


def _sngm_minimize_eta(beta, B, C, L, delta, sigma):
    f = lambda log_eta: sg.sngm_bound(np.exp(log_eta), beta, B, C, L, delta, sigma)
    return optimize.minimize_scalar(f, bounds=(-40, 10), method="bounded",
                                    options={"xatol": 1e-12})


# ------------------------------------------------------------------------------- SNGM
def test_best_eta_minimizes_sngm_bound():
    eta_star = sg.sngm_best_eta(P["beta"], P["C"], P["B"], P["L"], P["delta"])
    res = _sngm_minimize_eta(**P)
    # a/η + bη is flat at η*: |η − η*|/η* ~ √(rounding of the objective) ~ √(1e-16) ≈ 1e-8,
    # and minimize_scalar stops at xatol in log η; 1e-6 relative covers both
    assert abs(np.exp(res.x) - eta_star) <= 1e-6 * eta_star
    # the value is second-order in the argument error: equal to a few ulp-scale relative
    assert sg.sngm_bound(eta_star, **P) <= res.fun * (1 + 1e-12)
    # a fine grid around η* never beats it
    grid = eta_star * np.geomspace(0.5, 2.0, 2001)
    vals = np.array([sg.sngm_bound(e, **P) for e in grid])
    assert vals.min() >= sg.sngm_bound(eta_star, **P) * (1 - 8 * EPS)  # few-ulp slack


def test_bound_at_best_eta_equals_closed_form():
    beta, B, C, L, delta, sigma = P.values()
    eta_star = sg.sngm_best_eta(beta, C, B, L, delta)
    direct = sg.sngm_bound(eta_star, **P)
    closed = np.sqrt(2 * (1 + beta) * L * delta * B / ((1 - beta) * C)) + 2 * sigma / np.sqrt(B)
    assert abs(direct - closed) <= 1e-12 * closed  # acceptance: 1e-12 relative
    assert abs(sg.sngm_bound_at_best_eta(**P) - closed) <= 1e-12 * closed


@HYP
@given(beta=st.floats(0.0, 0.99), logB=st.floats(0.0, 8.0), logT=st.floats(0.0, 8.0),
       logL=st.floats(-3, 3), logD=st.floats(-3, 3), logS=st.floats(-3, 3))
def test_property_best_eta_identity(beta, logB, logT, logL, logD, logS):
    B, L, delta, sigma = 10 ** logB, 10 ** logL, 10 ** logD, 10 ** logS
    C = B * 10 ** logT
    eta_star = sg.sngm_best_eta(beta, C, B, L, delta)
    at_best = sg.sngm_bound_at_best_eta(beta, B, C, L, delta, sigma)
    # a handful of float64 ops with (1 − β) ≥ 0.01: 1e-12 relative
    assert abs(sg.sngm_bound(eta_star, beta, B, C, L, delta, sigma) - at_best) <= 1e-12 * at_best
    # η* is a minimum: moving η by a factor 1 ± 1e-3 increases the bound (second order,
    # relative rise ≥ ~1e-6·(share of the η-terms), above rounding unless σ-term dominates)
    for f in (1 - 1e-3, 1 + 1e-3):
        assert sg.sngm_bound(eta_star * f, beta, B, C, L, delta, sigma) >= at_best * (1 - 1e-13)
    # the two η-terms are equal at η* (balance of a/η and bη)
    T = C / B
    a_term = (1 - beta) * delta / (eta_star * T)
    b_term = (1 + beta) * L * eta_star / (2 * (1 - beta) ** 2)
    assert abs(a_term - b_term) <= 1e-12 * a_term


def test_best_batch_minimizes_best_eta_bound():
    beta, _, C, L, delta, sigma = P.values()
    b_star = sg.sngm_best_batch(beta, C, L, delta, sigma)
    f = lambda logb: sg.sngm_bound_at_best_eta(beta, np.exp(logb), C, L, delta, sigma)
    res = optimize.minimize_scalar(f, bounds=(0.0, np.log(C)), method="bounded",
                                   options={"xatol": 1e-12})
    assert abs(np.exp(res.x) - b_star) <= 1e-6 * b_star  # flat minimum: √ε-level argument error
    grid = b_star * np.geomspace(0.5, 2.0, 2001)
    vals = np.array([sg.sngm_bound_at_best_eta(beta, b, C, L, delta, sigma) for b in grid])
    assert vals.min() >= f(np.log(b_star)) * (1 - 8 * EPS)
    # Θ(√C): quadrupling the budget doubles B*
    assert abs(sg.sngm_best_batch(beta, 4 * C, L, delta, sigma) - 2 * b_star) <= 1e-14 * b_star


@HYP
@given(beta=st.floats(0.0, 0.99), logC=st.floats(4.0, 12.0),
       logL=st.floats(-2, 2), logD=st.floats(-2, 2), logS=st.floats(-1, 2))
def test_property_best_batch_is_stationary(beta, logC, logL, logD, logS):
    C, L, delta, sigma = 10 ** logC, 10 ** logL, 10 ** logD, 10 ** logS
    b = sg.sngm_best_batch(beta, C, L, delta, sigma)
    if not (1 <= b <= C):
        return  # the formula is the unconstrained minimizer; only test it where admissible
    # at B*, k√B = 2σ/√B (d/dB [k√B + 2σ/√B] = 0 ⇔ k√B = 2σ/√B): the terms are equal
    opt_term = np.sqrt(2 * (1 + beta) * L * delta * b / ((1 - beta) * C))
    noise_term = 2 * sigma / np.sqrt(b)
    assert abs(opt_term - noise_term) <= 1e-12 * noise_term  # few-op round-off
    h = lambda B: sg.sngm_bound_at_best_eta(beta, B, C, L, delta, sigma)
    for f in (1 - 1e-3, 1 + 1e-3):
        if 1 <= b * f <= C:
            assert h(b * f) >= h(b) * (1 - 1e-13)


def test_sngm_window_endpoints_make_each_term_half_eps():
    beta, _, _, L, delta, sigma = P.values()
    eps, C = 1.0, 1e8  # a budget large enough for a non-empty window
    w = sg.sngm_batch_window(eps, beta, C, L, delta, sigma)
    assert not w.empty
    # low: the noise term 2σ/√B equals ε/2
    assert abs(2 * sigma / np.sqrt(w.low) - eps / 2) <= 1e-14 * eps
    # high: the optimization term at η* equals ε/2
    opt = sg.sngm_bound_at_best_eta(beta, w.high, C, L, delta, 0.0)
    assert abs(opt - eps / 2) <= 1e-14 * eps
    # inside the window the bound is ≤ ε, equal to ε nowhere but B* if low = high
    for b in np.geomspace(w.low, w.high, 7):
        assert sg.sngm_bound_at_best_eta(beta, b, C, L, delta, sigma) <= eps * (1 + 1e-14)
    # B* is the geometric mean of the window's endpoints (low·high = B*²)
    b_star = sg.sngm_best_batch(beta, C, L, delta, sigma)
    assert abs(np.sqrt(w.low * w.high) - b_star) <= 1e-14 * b_star


def test_window_empty_is_reported_not_raised():
    beta, _, C, L, delta, sigma = P.values()
    eps = 1e-3
    w = sg.sngm_batch_window(eps, beta, C, L, delta, sigma)
    # the endpoints from their defining equations, solved by hand: 2σ/√low = ε/2 and
    # √(2(1+β)LΔ·high/((1−β)C)) = ε/2
    assert w.low == pytest.approx((4 * sigma / eps) ** 2, rel=1e-14)
    assert w.high == pytest.approx((eps / 2) ** 2 * (1 - beta) * C / (2 * (1 + beta) * L * delta), rel=1e-14)
    assert w.empty
    m = sg.msgd_batch_window(eps, beta, C, L, delta, sigma)
    assert m.empty and m.low > m.high
    assert sg.sngm_batch_window(0.1, beta, C, L, 0.0, sigma).high == np.inf


# ------------------------------------------------------------------------------- MSGD
def test_msgd_window_endpoints_at_step_cap():
    beta, _, C, L, delta, sigma = P.values()
    eps = 0.5
    cap = sg.msgd_eta_cap(beta, L)
    w = sg.msgd_batch_window(eps, beta, C, L, delta, sigma)
    assert not w.empty
    # each endpoint makes one term of bound (4) at η = cap equal to ε²/2; isolate the terms
    # by zeroing σ resp. Δ
    noise = sg.msgd_bound(cap, beta, w.low, C, L, 0.0, sigma)
    opt = sg.msgd_bound(cap, beta, w.high, C, L, delta, 0.0)
    assert abs(noise - eps ** 2 / 2) <= 1e-14 * eps ** 2
    assert abs(opt - eps ** 2 / 2) <= 1e-14 * eps ** 2
    for b in np.geomspace(w.low, w.high, 7):
        assert sg.msgd_bound(cap, beta, b, C, L, delta, sigma) <= eps ** 2 * (1 + 1e-14)


def test_msgd_bound_monotonic_facts():
    beta, B, C, L, delta, sigma = P.values()
    cap = sg.msgd_eta_cap(beta, L)
    base = sg.msgd_bound(cap / 2, **P)
    # larger budget (more iterations) lowers the optimization term; more noise raises it
    assert sg.msgd_bound(cap / 2, beta, B, 2 * C, L, delta, sigma) < base
    assert sg.msgd_bound(cap / 2, beta, B, C, L, 2 * delta, sigma) > base
    assert sg.msgd_bound(cap / 2, beta, B, C, L, delta, 2 * sigma) > base
    # c_β increases with β, from 2 at β = 0
    betas = np.linspace(0, 0.99, 100)
    c = np.array([sg.msgd_c_beta(b) for b in betas])
    assert c[0] == 2.0 and np.all(np.diff(c) > 0)
    # cap shrinks as (1 − β)²: β = 0.9 gives 1/100 of β = 0
    assert abs(sg.msgd_eta_cap(0.9, L) - sg.msgd_eta_cap(0.0, L) / 100) <= 1e-14
    # at fixed η, in B the bound is a·B + b/B: convex, minimized at √(b/a)
    a = 4 * (1 - beta) * delta / (cap * C)
    b = sg.msgd_c_beta(beta) * L * cap * sigma ** 2 / (1 - beta)
    bs = np.sqrt(b / a)
    vals = [sg.msgd_bound(cap, beta, x, C, L, delta, sigma) for x in bs * np.array([0.9, 1, 1.1])]
    assert vals[1] < vals[0] and vals[1] < vals[2]
    # the SNGM window's noise-side end scales as σ²/ε² like MSGD's, ratio 32/(c_β(1 − β))
    s = sg.sngm_batch_window(0.5, **{k: P[k] for k in ("beta", "C", "L", "delta", "sigma")})
    m = sg.msgd_batch_window(0.5, **{k: P[k] for k in ("beta", "C", "L", "delta", "sigma")})
    assert abs(s.low / m.low - 32 / (sg.msgd_c_beta(beta) * (1 - beta))) <= 1e-13 * s.low / m.low


@HYP
@given(beta=st.floats(0.0, 0.99), frac=st.floats(0.01, 1.0), logL=st.floats(-2, 2),
       logD=st.floats(-2, 2), logS=st.floats(-2, 2), logB=st.floats(0, 6))
def test_property_bounds_match_unsimplified_derivation(beta, frac, logL, logD, logS, logB):
    L, delta, sigma, B = 10 ** logL, 10 ** logD, 10 ** logS, 10 ** logB
    C = 1e3 * B
    T = C / B
    # SNGM: descent lemma at z plus the z − w gap give Lηβ/(1 − β)² + Lη/(2(1 − β))
    eta = frac
    raw = (1 - beta) * delta / (eta * T) + L * eta * beta / (1 - beta) ** 2 \
        + L * eta / (2 * (1 - beta)) + 2 * sigma / np.sqrt(B)
    assert abs(sg.sngm_bound(eta, beta, B, C, L, delta, sigma) - raw) <= 1e-12 * raw
    # MSGD before using η ≤ cap: ¼·avg ≤ (1 − β)Δ/(ηT) + [Lη/(2(1 − β)) + L²η²β²/(2(1 − β)⁴)]σ²/B
    # (the gradient-norm coefficient Lη/(2(1 − β)) + L²η²β²/(2(1 − β)⁴) ≤ 1/8 + 1/32 ≤ 1/4);
    # bounding L²η² ≤ Lη·(1 − β)²/(4) gives (4): equal at the cap, larger below it
    cap = sg.msgd_eta_cap(beta, L)
    eta = frac * cap
    coef = L * eta / (2 * (1 - beta)) + (L * eta * beta) ** 2 / (2 * (1 - beta) ** 4)
    assert coef <= 0.25
    raw = 4 * ((1 - beta) * delta / (eta * T) + coef * sigma ** 2 / B)
    bound = sg.msgd_bound(eta, beta, B, C, L, delta, sigma)
    assert raw <= bound * (1 + 1e-12)
    if frac == 1.0:
        assert abs(raw - bound) <= 1e-12 * bound


def test_c_beta_values():
    # c_β = 2 + β²/(2(1 − β)): exact in binary for these β
    assert sg.msgd_c_beta(0.0) == 2.0
    assert sg.msgd_c_beta(0.5) == 2.25
    assert abs(sg.msgd_c_beta(0.9) - 6.05) <= 1e-14 * 6.05


def test_msgd_step_above_cap_names_the_cap():
    cap = sg.msgd_eta_cap(P["beta"], P["L"])
    sg.msgd_bound(cap, **P)  # the cap itself is allowed
    with pytest.raises(InvalidParameter, match=r"eta = .*\(1 - beta\)\^2/\(4L\) = 0\.000625"):
        sg.msgd_bound(cap * (1 + 1e-9), **P)


# -------------------------------------------------------------------------- heavy ball
def _spectral_radius(beta, eta, lam):
    M = np.array([[1 + beta - eta * lam, -beta], [1.0, 0.0]])
    return np.max(np.abs(np.linalg.eigvals(M)))


@pytest.mark.parametrize("beta", [0.0, 0.5, 0.9, 0.99])
@pytest.mark.parametrize("lam", [0.1, 3.9699774898013365, 50.0])
def test_heavy_ball_cap_is_the_stability_edge(beta, lam):
    cap = sg.heavy_ball_cap(beta, lam)
    # at ηλ = 2(1 + β) the eigenvalues are −1 and −β, so ρ − 1 ≈ (δη)·λ/(1 − β) to first
    # order; a relative offset of 1e-6 moves ρ by ≳ 1e-6, far above eigvals round-off ~1e-15
    assert _spectral_radius(beta, cap * (1 - 1e-6), lam) < 1
    assert _spectral_radius(beta, cap * (1 + 1e-6), lam) > 1
    # and the whole range below the cap is stable
    for eta in cap * np.linspace(1e-3, 1 - 1e-3, 50):
        assert _spectral_radius(beta, eta, lam) < 1


# ---------------------------------------------------------------------------- testbeds
def test_lsmooth_testbed_constants():
    delta = sg.lsmooth_delta(3.0, 10)
    # independent route: F* from a bounded scalar minimization of the coordinate function
    res = optimize.minimize_scalar(lambda x: x ** 2 / 2 + 3 * np.cos(x), bounds=(1.0, np.pi),
                                   method="bounded", options={"xatol": 1e-10})
    ref = 10 * (4.5 + 3 * np.cos(3.0) - res.fun)
    # the objective is flat at the minimum: xatol 1e-10 gives a value error ~ f''·1e-20
    assert abs(delta - ref) <= 1e-12 * ref
    assert abs(delta - 8.845134010249577) <= 1e-12 * delta  # reported value (≈ 8.85)
    # no grid point is lower than the brentq minimum
    x = np.linspace(-10, 10, 200001)
    assert np.min(x ** 2 / 2 + 3 * np.cos(x)) >= sg.lsmooth_min() - 4 * EPS * 10
    # L = 4 bounds |f''| = |1 − 3cos x| (attained at x = π)
    assert np.max(np.abs(1 - 3 * np.cos(x))) <= sg.LSMOOTH_L
    assert abs(np.max(np.abs(1 - 3 * np.cos(x))) - 4.0) <= 1e-8  # grid hits within 1e-4 of π
    # λ_max at w₀ = 3·1 from a finite-difference Hessian of F itself
    F = lambda w: np.sum(w ** 2 / 2 + 3 * np.cos(w))
    assert abs(sg.lsmooth_lambda_max(3.0) - _fd_lambda_max(F, 3.0)) <= 1e-5 * sg.lsmooth_lambda_max(3.0)


def test_l0l1_testbed_constants():
    L0, L1 = sg.L0L1_CONSTANTS
    x = np.linspace(-20, 20, 400001)
    fpp = np.cosh(x) - 3 * np.cos(x)
    fp = np.sinh(x) - 3 * np.sin(x)
    # (L0, L1)-smoothness of the separable F: |f''(x)| ≤ L0 + L1 |f'(x)| per coordinate
    assert np.all(np.abs(fpp) <= (L0 + L1 * np.abs(fp)) * (1 + 4 * EPS))
    assert np.min(np.cosh(x) + 3 * np.cos(x)) >= sg.l0l1_min() - 1e-12  # brentq min is the min
    res = optimize.minimize_scalar(lambda v: np.cosh(v) + 3 * np.cos(v), bounds=(0.5, np.pi),
                                   method="bounded", options={"xatol": 1e-10})
    ref = 10 * (np.cosh(3.0) + 3 * np.cos(3.0) - res.fun)
    assert abs(sg.l0l1_delta(3.0, 10) - ref) <= 1e-12 * ref
    # λ_max(∇²F(x0·1)) from a finite-difference Hessian of F at the claims' starts (the
    # heavy-ball caps of sngm.relaxed_advantage are 2(1+β)/λ_max)
    F = lambda w: np.sum(np.cosh(w) + 3 * np.cos(w))
    for x0 in (6.0, 9.0, 12.0):
        lam = sg.l0l1_lambda_max(x0)
        assert abs(lam - _fd_lambda_max(F, x0)) <= 1e-5 * lam
        assert sg.heavy_ball_cap(0.9, lam) == pytest.approx(3.8 / lam, rel=1e-15)


def _fd_lambda_max(F, x0, d=3):
    """Largest eigenvalue of the central finite-difference Hessian of F at x0·1 (d dims),
    step h = 1e-4·max(1, |x0|): truncation O(h²·F⁽⁴⁾) and round-off O(ε|F|/h²), both far
    below 1e-5 relative for these F."""
    h = 1e-4 * max(1.0, abs(x0))
    w0, E = np.full(d, x0), np.eye(d) * h
    H = np.array([[(F(w0 + E[i] + E[j]) - F(w0 + E[i] - E[j]) - F(w0 - E[i] + E[j]) + F(w0 - E[i] - E[j]))
                   / (4 * h * h) for j in range(d)] for i in range(d)])
    return float(np.max(np.linalg.eigvalsh((H + H.T) / 2)))


# ------------------------------------------------------------------ Monte Carlo sanity
def _run(kind, eta, beta, B, T, sigma, seeds, rng, d=10, x0=3.0):
    """SNGM / MSGD on the L-smooth testbed, minibatch noise N(0, σ²/(dB) I) (so per-sample
    E‖ξ‖² = σ²); returns avg_t ‖∇F(w_t)‖ and avg_t ‖∇F(w_t)‖² per seed, and max ‖u_t‖."""
    w = np.full((seeds, d), x0)
    u = np.zeros_like(w)
    z_err, gsum, g2sum, umax = 0.0, 0.0, 0.0, 0.0
    for _ in range(T):
        grad = w - 3 * np.sin(w)
        gsum = gsum + np.linalg.norm(grad, axis=1)
        g2sum = g2sum + np.sum(grad ** 2, axis=1)
        g = grad + sigma / np.sqrt(d * B) * rng.standard_normal(w.shape)
        step = g / np.linalg.norm(g, axis=1, keepdims=True) if kind == "sngm" else g
        z = w - eta * beta / (1 - beta) * u
        u = beta * u + step
        w = w - eta * u
        z_next = w - eta * beta / (1 - beta) * u
        z_err = max(z_err, np.max(np.abs(z_next - (z - eta / (1 - beta) * step))))
        umax = max(umax, np.max(np.linalg.norm(u, axis=1)))
    return gsum / T, g2sum / T, umax, z_err


def test_monte_carlo_sngm_and_msgd_within_bounds(rng):
    beta, B, sigma, T, L = 0.9, 16.0, 1.0, 400, sg.LSMOOTH_L
    C, delta = B * T, sg.lsmooth_delta(3.0, 10)
    eta = sg.sngm_best_eta(beta, C, B, L, delta)
    avg, _, umax, z_err = _run("sngm", eta, beta, B, T, sigma, 32, rng)
    # the auxiliary sequence identity z_{t+1} = z_t − η/(1 − β)·ĝ_t is exact algebra:
    # round-off ~ (number of ops)·ε·|w| with |w| ≲ 10
    assert z_err <= 1e-12
    assert umax <= 1 / (1 - beta) * (1 + 1e-12)  # ‖u_t‖ ≤ 1/(1 − β)
    bound = sg.sngm_bound(eta, beta, B, C, L, delta, sigma)
    # the bound is on E; the seed mean plus 4 standard errors must stay below it
    assert avg.mean() + 4 * avg.std(ddof=1) / np.sqrt(len(avg)) <= bound
    eta = sg.msgd_eta_cap(beta, L)
    _, avg2, _, z_err = _run("msgd", eta, beta, B, T, sigma, 32, rng)
    assert z_err <= 1e-12
    bound2 = sg.msgd_bound(eta, beta, B, C, L, delta, sigma)
    assert avg2.mean() + 4 * avg2.std(ddof=1) / np.sqrt(len(avg2)) <= bound2


# -------------------------------------------------------------------------- bad inputs
GOOD = dict(eta=0.01, beta=0.9, B=16, C=1e4, L=4.0, delta=8.85, sigma=1.0)


@pytest.mark.parametrize("name,value", [
    ("beta", 1.0), ("beta", -0.1), ("beta", np.nan), ("B", 0.5), ("B", 0), ("C", 8),
    ("eta", 0.0), ("eta", -1e-3), ("L", 0.0), ("L", -1.0), ("sigma", -1.0), ("delta", -0.5),
])
def test_bad_inputs_name_the_parameter(name, value):
    for fn in (sg.sngm_bound, sg.msgd_bound):
        with pytest.raises(InvalidParameter, match=rf"^{name} = .* is not allowed: need"):
            fn(**{**GOOD, name: value})


@pytest.mark.parametrize("fn", [sg.sngm_batch_window, sg.msgd_batch_window])
@pytest.mark.parametrize("name,value", [("eps", 0.0), ("eps", -1.0), ("beta", 1.0),
                                        ("C", 0.0), ("L", 0.0), ("delta", -1.0), ("sigma", -1.0)])
def test_bad_window_inputs(fn, name, value):
    args = dict(eps=0.1, beta=0.9, C=1e4, L=4.0, delta=8.85, sigma=1.0)
    with pytest.raises(InvalidParameter, match=rf"^{name} = "):
        fn(**{**args, name: value})


def test_bad_inputs_other_functions():
    with pytest.raises(InvalidParameter, match=r"^delta = 0 .*delta > 0"):
        sg.sngm_best_eta(0.9, 1e4, 16, 4.0, 0.0)
    with pytest.raises(InvalidParameter, match=r"^delta = "):
        sg.sngm_best_batch(0.9, 1e4, 4.0, 0.0, 1.0)
    with pytest.raises(InvalidParameter, match=r"^C = 8 .*C >= B = 16"):
        sg.sngm_bound_at_best_eta(0.9, 16, 8, 4.0, 1.0, 1.0)
    with pytest.raises(InvalidParameter, match=r"^lambda_max = "):
        sg.heavy_ball_cap(0.9, 0.0)
    with pytest.raises(InvalidParameter, match=r"^beta = 1 "):
        sg.heavy_ball_cap(1.0, 1.0)
    with pytest.raises(InvalidParameter, match=r"^L = "):
        sg.msgd_eta_cap(0.5, -1.0)
    with pytest.raises(InvalidParameter, match=r"^d = "):
        sg.lsmooth_delta(3.0, 0)


# ------------------------------------------------------- bad inputs: property-based
# every public function of theory.sngm rejects β ∉ [0, 1), B < 1, C < B and ε <= 0 with an
# InvalidParameter naming the parameter, whatever the other (valid) arguments are
_bad_beta = st.one_of(st.floats(1.0, 1e6), st.floats(-1e6, -1e-12), st.just(float("nan")),
                      st.just(float("inf")))
_good = dict(beta=st.floats(0.0, 0.99), B=st.floats(1.0, 1e4), L=st.floats(1e-3, 1e3),
             delta=st.floats(0.0, 1e3), sigma=st.floats(0.0, 1e3))


@HYP
@given(beta=_bad_beta, B=_good["B"], L=_good["L"], delta=_good["delta"], sigma=_good["sigma"])
def test_property_bad_beta_named(beta, B, L, delta, sigma):
    C = 10 * B
    calls = [lambda: sg.sngm_bound(1e-3, beta, B, C, L, delta, sigma),
             lambda: sg.msgd_bound(1e-9, beta, B, C, L, delta, sigma),
             lambda: sg.sngm_bound_at_best_eta(beta, B, C, L, delta, sigma),
             lambda: sg.sngm_best_eta(beta, C, B, L, delta + 1),
             lambda: sg.sngm_best_batch(beta, C, L, delta + 1, sigma),
             lambda: sg.sngm_batch_window(0.1, beta, C, L, delta, sigma),
             lambda: sg.msgd_batch_window(0.1, beta, C, L, delta, sigma),
             lambda: sg.msgd_eta_cap(beta, L), lambda: sg.msgd_c_beta(beta),
             lambda: sg.heavy_ball_cap(beta, L)]
    for call in calls:
        with pytest.raises(InvalidParameter, match=r"^beta = .* is not allowed: need 0 <= beta < 1"):
            call()


@HYP
@given(B=st.one_of(st.floats(-1e6, 1.0, exclude_max=True), st.just(float("nan"))),
       beta=_good["beta"], L=_good["L"], delta=_good["delta"], sigma=_good["sigma"])
def test_property_batch_below_one_named(B, beta, L, delta, sigma):
    for fn in (sg.sngm_bound, sg.msgd_bound):
        with pytest.raises(InvalidParameter, match=r"^B = .* is not allowed: need B >= 1"):
            fn(1e-9, beta, B, 1e4, L, delta, sigma)
    with pytest.raises(InvalidParameter, match=r"^B = "):
        sg.sngm_bound_at_best_eta(beta, B, 1e4, L, delta, sigma)


@HYP
@given(B=_good["B"], frac=st.floats(0.0, 1.0, exclude_max=True), beta=_good["beta"],
       L=_good["L"], delta=_good["delta"], sigma=_good["sigma"])
def test_property_budget_below_batch_named(B, frac, beta, L, delta, sigma):
    C = frac * B  # C < B: not even one iteration
    for call in (lambda: sg.sngm_bound(1e-3, beta, B, C, L, delta, sigma),
                 lambda: sg.msgd_bound(1e-9, beta, B, C, L, delta, sigma),
                 lambda: sg.sngm_bound_at_best_eta(beta, B, C, L, delta, sigma)):
        with pytest.raises(InvalidParameter, match=r"^C = .* is not allowed: need C >= B = "):
            call()


@HYP
@given(eps=st.one_of(st.floats(-1e6, 0.0), st.just(float("nan"))), beta=_good["beta"],
       L=_good["L"], delta=_good["delta"], sigma=_good["sigma"])
def test_property_eps_not_positive_named(eps, beta, L, delta, sigma):
    for fn in (sg.sngm_batch_window, sg.msgd_batch_window):
        with pytest.raises(InvalidParameter, match=r"^eps = .* is not allowed: need eps > 0"):
            fn(eps, beta, 1e4, L, delta, sigma)
