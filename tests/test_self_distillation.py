"""Self-distillation in Hilbert space (Mobahi et al. 2020; CLAIMS.md §5).

Theorems are asserted exactly (float rules beside each assertion); bounds are re-typed from
the spec here rather than imported, so a typo in theory/self_distillation.py cannot hide.
"""
from __future__ import annotations

import json
import math

import jax
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from simulations.registry import jsonable
from simulations.testbeds import kernel_regression as kr
from theory import self_distillation as sd
from theory.validation import InvalidParameter

U = np.finfo(np.float64).eps
SPEC_TOL = 1e-12
PROPERTY = settings(max_examples=40, deadline=None, derandomize=True)


# ----------------------------------------------------------------------------- helpers
def random_gram(seed: int, K: int, log10_kappa: float) -> np.ndarray:
    """G = Qᵀ diag(d) Q with Haar-random Q and log-uniform d spanning κ = 10^log10_kappa."""
    rng = np.random.default_rng(seed)
    Q, R = np.linalg.qr(rng.standard_normal((K, K)))
    Q = Q * np.sign(np.diag(R))
    d = np.sort(10.0 ** (-log10_kappa * rng.uniform(0, 1, K)))
    d[0], d[-1] = 10.0 ** -log10_kappa, 1.0
    G = (Q * d) @ Q.T
    return 0.5 * (G + G.T)


def random_problem(seed, K, log10_kappa, eps_fraction):
    """(G, y, ε) with ε = eps_fraction·‖y‖²/K (so r₀ = 1/√eps_fraction)."""
    rng = np.random.default_rng(seed + 7919)
    G = random_gram(seed, K, log10_kappa)
    y = rng.standard_normal(K)
    return G, y, eps_fraction * float(y @ y) / K


problems = st.tuples(st.integers(0, 10_000), st.integers(2, 12), st.floats(0.0, 4.0),
                     st.floats(0.002, 0.9))


def laplace_instances():
    rng = np.random.default_rng(2024)
    out = [kr.sinusoid_toy(rng)] + [kr.noisy_sinusoid(rng, 40) for _ in range(3)]
    return [(data, sd.gram_matrix(data.x, "laplace", 0.2),
             sd.feature_rows(data.x_test, data.x, "laplace", 0.2)) for data in out]


# ----------------------------------------------------------------------------- one round
def test_ridge_fit_makes_the_constraint_active():
    data, G, _ = laplace_instances()[1]
    eps = 0.01
    fit = sd.ridge_fit(G, data.y, eps)
    mse = float(np.mean((fit.fitted - data.y) ** 2))
    # c is solved to relative ~4u·|log c|; the training MSE then matches ε to ~1e-13 relative
    assert not fit.collapsed and fit.c > 0
    assert abs(mse - eps) <= 1e-10 * eps
    assert abs(sd.constraint_value(fit.c, G, data.y) - eps) <= 1e-10 * eps


def test_constraint_value_increases_from_zero_to_norm():
    data, G, _ = laplace_instances()[0]
    cs = np.logspace(-8, 8, 60)
    h = np.array([sd.constraint_value(c, G, data.y) for c in cs])
    d, V = sd.gram_spectrum(G)
    hs = np.array([sd.constraint_value_spectral(c, d, V @ data.y) for c in cs])
    assert np.all(np.diff(h) > 0)
    assert h[0] < 1e-10 and abs(h[-1] - data.y @ data.y / data.n) <= 1e-6 * h[-1]
    np.testing.assert_allclose(hs, h, rtol=1e-9)  # solve vs eigenbasis: u·κ(cI+G) ≤ 1e-13


# ----------------------------------------------------------------------------- closed form
@pytest.mark.parametrize("eps", [0.003, 0.01, 0.05])
def test_closed_form_equals_iterated_fits_laplace(eps):
    for data, G, rows in laplace_instances():
        cf = sd.closed_form_distillation(G, data.y, eps, x_rows=rows)
        it = sd.iterate_distillation(G, data.y, eps, n_rounds=len(cf.c), x_rows=rows)
        assert cf.n_nontrivial == it.n_nontrivial >= 1
        # spec tolerance 1e-12: with the Laplace kernel (κ ≤ 2e4 here, well-separated
        # spectrum) both computations carry round-off ~ K·rounds·u·κ(c_tI + G) ≪ 1e-12
        assert np.max(np.abs(cf.targets - it.targets)) <= SPEC_TOL
        assert np.max(np.abs(cf.predictions - it.predictions)) <= SPEC_TOL
        fin = np.isfinite(cf.c)
        np.testing.assert_array_equal(np.isfinite(it.c), fin)
        np.testing.assert_allclose(cf.c[fin], it.c[fin], rtol=1e-10)


def test_closed_form_prediction_at_training_points_is_next_target():
    data, G, _ = laplace_instances()[1]
    rows = sd.feature_rows(data.x, data.x, "laplace", 0.2)
    cf = sd.closed_form_distillation(G, data.y, 0.01, x_rows=rows)
    # f_t(X) = G(c_tI + G)⁻¹y_t = y_{t+1}: identity, round-off only
    assert np.max(np.abs(cf.predictions - cf.targets[1:])) <= SPEC_TOL


@PROPERTY
@given(problems)
def test_closed_form_equals_iterated_fits_random_kernels(p):
    G, y, eps = random_problem(*p)
    cf = sd.closed_form_distillation(G, y, eps)
    it = sd.iterate_distillation(G, y, eps, n_rounds=len(cf.c))
    kappa = sd.condition_number(cf.eigenvalues)
    # float rule: a solve / eigendecomposition with condition number κ leaves round-off
    # ~u·κ·‖y‖∞; the spec's 1e-12 is the floor
    tol = max(SPEC_TOL, 16 * U * kappa * np.max(np.abs(y)))
    assert np.max(np.abs(cf.targets - it.targets)) <= tol
    assert cf.n_nontrivial == it.n_nontrivial


# ----------------------------------------------------------------------------- amplification
def assert_amplification(cf, slack=1e-12):
    """c_{t+1} > c_t, the c_t bounds and the r_{t+1} bounds (spec), relative slack 1e-12
    (c_t solved to ~4u·|log c|, r_t has ~K·u rounding)."""
    d = cf.eigenvalues
    dmin, dmax = d[0], d[-1]
    kappa = dmax / dmin
    T, c, r = cf.n_nontrivial, cf.c, cf.ratio
    for t in range(T):
        assert r[t] > 1
        assert dmin / (r[t] - 1) * (1 - slack) <= c[t] <= dmax / (r[t] - 1) * (1 + slack)
        low = r[t] * (r[t] - 1) / (r[t] - 1 + kappa)
        high = r[t] * kappa * (r[t] - 1) / (1 + kappa * (r[t] - 1))
        assert low * (1 - slack) <= r[t + 1] <= high * (1 + slack)
        # derived here: ‖y_t − y_{t+1}‖ = √(Kε) and ⟨y_{t+1}, y_t − y_{t+1}⟩ ≥ 0
        assert (r[t] - 1) * (1 - slack) <= r[t + 1] <= math.sqrt(r[t] ** 2 - 1) * (1 + slack)
        if t + 1 < T:
            assert c[t + 1] > c[t]


@PROPERTY
@given(problems)
def test_amplification_random_kernels(p):
    assert_amplification(sd.closed_form_distillation(*random_problem(*p)))


@pytest.mark.parametrize("eps", [0.003, 0.03])
def test_amplification_testbeds(eps):
    for data, G, _ in laplace_instances():
        assert_amplification(sd.closed_form_distillation(G, data.y, eps))


# ----------------------------------------------------------------------------- sparsification
def assert_sparsification(cf):
    d, B, A, T = cf.eigenvalues, cf.B, cf.A, cf.n_nontrivial
    jj, kk = np.nonzero(np.subtract.outer(d, d) < 0)  # pairs with d_j < d_k
    for t in range(T):
        before, after = B[t, jj] / B[t, kk], B[t + 1, jj] / B[t + 1, kk]
        drop = 1 - A[t, jj] / A[t, kk]
        # float rule: a ratio of two (t+1)-fold products has relative error ≤ 4(t+2)u, so a
        # strict decrease is asserted where the exact drop exceeds 8(t+2)u
        tol = 8 * (t + 2) * U
        assert np.all(after[drop > tol] < before[drop > tol])
        assert np.all(after <= before * (1 + tol))
    for tau in (0.3, 1e-2, 1e-5):
        counts = sd.basis_count(B[: T + 2], tau)
        assert np.all(np.diff(counts) <= 0)  # integers: exact
        assert counts[-1] == 0  # the collapsed round has B = 0


@PROPERTY
@given(problems)
def test_sparsification_random_kernels(p):
    assert_sparsification(sd.closed_form_distillation(*random_problem(*p)))


def test_sparsification_testbeds():
    for data, G, _ in laplace_instances():
        cf = sd.closed_form_distillation(G, data.y, 0.003)
        assert_sparsification(cf)
        counts = sd.basis_count(cf.B, 1e-2)
        assert counts[cf.n_nontrivial] < counts[0]  # it really sparsifies on real data


# ----------------------------------------------------------------------------- collapse
def assert_collapse(G, y, eps):
    cf = sd.closed_form_distillation(G, y, eps)
    T, K = cf.n_nontrivial, y.size
    it = sd.iterate_distillation(G, y, eps, n_rounds=T + 3, x_rows=G)
    small = np.sum(it.targets ** 2, axis=1) <= K * eps * (1 + 1e-9)
    assert int(np.argmax(small)) == T  # first round with ‖y_t‖² ≤ Kε (1e-9: round-off margin)
    assert np.all(it.predictions[T:] == 0) and np.all(it.targets[T + 1:] == 0)
    assert np.all(np.any(it.predictions[:T] != 0, axis=1))
    r0, kappa = cf.ratio[0], sd.condition_number(cf.eigenvalues)
    if T:  # bounds are stated for r₀ > 1
        assert (r0 - 1) / kappa <= T <= kappa * (r0 - 1) + 1
        assert math.ceil(r0 - 1) <= T <= math.ceil(r0 ** 2 - 1)  # derived here
    return T


@PROPERTY
@given(problems)
def test_collapse_random_kernels(p):
    assert assert_collapse(*random_problem(*p)) >= 1


def test_collapse_testbeds():
    for data, G, _ in laplace_instances():
        for eps in (0.003, 0.03, 0.3):
            assert_collapse(G, data.y, eps)


@pytest.mark.parametrize("factor", [1.0, 1.0 + 1e-6, 2.0, 100.0])
def test_tolerance_above_label_norm_collapses_at_round_zero(factor):
    data, G, rows = laplace_instances()[0]
    eps = factor * float(data.y @ data.y) / data.n
    for dist in (sd.closed_form_distillation(G, data.y, eps, x_rows=rows),
                 sd.iterate_distillation(G, data.y, eps, x_rows=rows)):
        assert dist.n_nontrivial == 0
        assert np.isinf(dist.c[0]) and np.all(dist.predictions == 0)
    fit = sd.ridge_fit(G, data.y, eps)
    assert fit.collapsed and np.all(fit.fitted == 0)


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize("eps", [0.0, -0.1, float("nan"), float("inf")])
def test_bad_tolerance_is_rejected(eps):
    data, G, _ = laplace_instances()[0]
    for fn in (sd.ridge_fit, sd.closed_form_distillation, sd.iterate_distillation):
        with pytest.raises(InvalidParameter, match="eps"):
            fn(G, data.y, eps)


def test_non_psd_gram_is_rejected():
    G = np.array([[1.0, 2.0], [2.0, 1.0]])
    with pytest.raises(InvalidParameter, match=r"^G = .*positive semi-definite"):
        sd.closed_form_distillation(G, np.ones(2), 0.1)
    with pytest.raises(InvalidParameter, match="G"):
        sd.ridge_fit(G, np.ones(2), 0.1)


@pytest.mark.parametrize("shift", [0.0, 3e-17, -3e-17])
def test_singular_gram_is_rejected_with_jitter_hint(shift):
    # rank one, plus a shift of its zero eigenvalues below the round-off level n·u·λ_max
    # (6.7e-16 here): which sign LAPACK returns for them depends on the CPU's kernels, so
    # every such matrix must get the same clear error, never numpy's LinAlgError
    G = np.ones((3, 3)) / 3 + shift * np.eye(3)
    with pytest.raises(InvalidParameter, match="jitter"):
        sd.iterate_distillation(G, np.arange(3.0), 0.1)
    with pytest.raises(InvalidParameter, match="jitter"):
        sd.closed_form_distillation(G, np.arange(3.0), 0.1)


def test_gaussian_kernel_needs_the_stated_jitter():
    x = np.linspace(0, 1, 40)
    bare = np.linalg.eigvalsh(sd.gram_matrix(x, "gaussian", 0.2, jitter=0.0))
    # without jitter the smallest eigenvalue is at round-off level (either sign)
    assert abs(bare[0]) <= 1e3 * U * bare[-1]
    d, _ = sd.gram_spectrum(sd.gram_matrix(x, "gaussian", 0.2))
    # eigenvalues shift by exactly jitter/K; round-off of eigh is ~u·d_max
    assert d[0] >= sd.GAUSSIAN_JITTER / 40 - 1e3 * U * d[-1]


def test_bad_kernel_and_targets():
    with pytest.raises(InvalidParameter, match="kernel"):
        sd.gram_matrix(np.arange(3.0), "cosine", 0.2)
    with pytest.raises(InvalidParameter, match="length_scale"):
        sd.gram_matrix(np.arange(3.0), "laplace", 0.0)
    with pytest.raises(InvalidParameter, match="y"):
        sd.ridge_fit(np.eye(3), np.ones(4), 0.1)


def test_testbeds_are_deterministic_given_the_generator():
    a = kr.noisy_sinusoid(np.random.default_rng(5))
    b = kr.noisy_sinusoid(np.random.default_rng(5))
    np.testing.assert_array_equal(a.y, b.y)
    toy = kr.sinusoid_toy(np.random.default_rng(0), noise_sd=0.0)
    np.testing.assert_allclose(toy.x, np.arange(11) / 10, atol=1e-15)
    np.testing.assert_allclose(toy.y, np.sin(2 * np.pi * toy.x), atol=1e-15)


# ----------------------------------------------------------------------------- claims
CLAIM_IDS = ["selfdistill.closed_form", "selfdistill.amplification", "selfdistill.sparsification",
             "selfdistill.collapse", "selfdistill.u_shape"]


@pytest.fixture(scope="module")
def claims():
    from simulations.registry import get_claims
    return {c.id: c for c in get_claims(CLAIM_IDS)}


@pytest.fixture(scope="module")
def quick_runs(claims):
    out = {}
    for cid, claim in claims.items():
        cfg = claim.config("quick")
        ev = claim.run(cfg, key=jax.random.key(0))
        ev_json = json.loads(json.dumps(jsonable(ev)))  # evidence is stored as JSON
        out[cid] = (cfg, ev, ev_json, claim.make_verdict(ev_json, cfg))
    return out


@pytest.mark.parametrize("cid", CLAIM_IDS[:4])
def test_theorem_claims_hold_at_quick_fidelity(quick_runs, cid):
    v = quick_runs[cid][3]
    assert v.status == "holds", v.summary
    assert v.rule and v.summary and v.sizes


def test_u_shape_verdict_is_reproducible(claims, quick_runs):
    cfg, ev, _, v = quick_runs["selfdistill.u_shape"]
    ev2 = claims["selfdistill.u_shape"].run(cfg, key=jax.random.key(0))
    assert json.dumps(jsonable(ev), sort_keys=True) == json.dumps(jsonable(ev2), sort_keys=True)
    assert v.status in ("confirmed", "refuted", "inconclusive")
    assert v.sizes["n_seeds"] >= 20 and len(v.sizes["eps_grid"]) >= 3
    assert claims["selfdistill.u_shape"].make_verdict(ev2, cfg) == v


def test_u_shape_evidence_is_consistent(quick_runs):
    _, ev, _, _ = quick_runs["selfdistill.u_shape"]
    risk, best = np.asarray(ev["risk"]), np.asarray(ev["best_round"])
    np.testing.assert_array_equal(best, np.argmin(risk, axis=2))
    # the last column is f ≡ 0, whose excess risk is mean(sin²) over the grid
    f0 = np.mean(np.sin(2 * np.pi * kr.evaluation_grid()) ** 2)
    np.testing.assert_allclose(risk[..., -1], f0, rtol=1e-12)


@pytest.mark.parametrize("cid", CLAIM_IDS)
def test_figures_are_written(claims, quick_runs, cid, tmp_path):
    _, _, ev_json, v = quick_runs[cid]
    path = tmp_path / f"{cid}.png"
    claims[cid].figure(ev_json, v, path)
    assert path.exists() and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
