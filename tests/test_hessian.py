"""simulations.hessian: HVP, Lanczos, power iteration and Hutchinson vs dense eigh / trace."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simulations import hessian as hs
from simulations.stats import critical_t, mean_stderr
from theory.validation import InvalidParameter


def _sym(rng, eigs):
    d = len(eigs)
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    A = Q @ np.diag(eigs) @ Q.T
    return 0.5 * (A + A.T)


def _quartic(A):
    """½ xᵀAx + ¼ Σ x⁴: Hessian A + diag(3x²) depends on the point."""
    return lambda x: 0.5 * x @ A @ x + 0.25 * jnp.sum(x ** 4)


def _eig_tol(A, dtype):
    # rule: Ritz values from Lanczos (full reorth.) + eigh of T are backward stable up to
    # a modest multiple of d·eps·‖A‖₂; we allow 10·d·eps·‖A‖₂.
    return 10 * A.shape[0] * np.finfo(dtype).eps * np.abs(np.linalg.eigvalsh(A)).max()


def test_hvp_matches_dense_hessian_on_a_pytree(rng, key):
    W0 = rng.standard_normal((3, 4)).astype(np.float32)
    X = rng.standard_normal((6, 3)).astype(np.float32)
    params = {"w": jnp.asarray(W0), "b": jnp.asarray(rng.standard_normal(4), jnp.float32)}
    loss = lambda p: jnp.mean(jnp.tanh(X @ p["w"] + p["b"]) ** 2)
    v = {"w": jnp.asarray(rng.standard_normal((3, 4)), jnp.float32),
         "b": jnp.asarray(rng.standard_normal(4), jnp.float32)}
    both = jax.jit(lambda p, v: (jax.flatten_util.ravel_pytree(hs.hvp(loss, p, v))[0],
                                 hs.dense_hessian(loss, p)))
    got, H = both(params, v)
    ref = H @ jax.flatten_util.ravel_pytree(v)[0]
    # rule: both are float32 evaluations of the same derivatives: 1e-5·‖H‖·‖v‖ absolute
    tol = 1e-5 * float(jnp.linalg.norm(H)) * float(jnp.linalg.norm(jax.flatten_util.ravel_pytree(v)[0]))
    assert float(jnp.max(jnp.abs(got - ref))) <= tol


@pytest.mark.parametrize("x64", [False, True])
def test_lanczos_full_dimension_reproduces_eigh(rng, x64):
    d, k = 24, 5
    eigs = np.concatenate([np.linspace(-2.0, 3.0, d - 2), [3.0, 6.0]])  # repeated value 3
    A = _sym(rng, eigs)
    with jax.enable_x64(x64):
        dtype = jnp.float64 if x64 else jnp.float32
        Aj = jnp.asarray(A, dtype)
        loss = lambda x: 0.5 * x @ Aj @ x
        vals, vecs = hs.top_eigenvalues(loss, jnp.zeros(d, dtype), k, key=jax.random.key(1),
                                        n_iter=d, return_vectors=True)
        assert vals.dtype == dtype
        exact = np.linalg.eigvalsh(A)[::-1][:k]
        tol = _eig_tol(A, dtype)
        np.testing.assert_allclose(np.asarray(vals, np.float64), exact, rtol=0, atol=tol)
        # Ritz vectors: residual ‖A v − θ v‖ of the same order (rule: √d·tol)
        res = np.asarray(vecs, np.float64) @ A - np.asarray(vals, np.float64)[:, None] * np.asarray(vecs, np.float64)
        assert np.linalg.norm(res, axis=1).max() <= np.sqrt(d) * tol


def test_lanczos_fewer_iterations_still_find_the_isolated_top(rng, key):
    d = 30
    A = _sym(rng, np.concatenate([np.linspace(0.0, 1.0, d - 1), [10.0]]))
    loss = lambda x: 0.5 * x @ jnp.asarray(A, jnp.float32) @ x
    top = hs.top_eigenvalues(loss, jnp.zeros(d), 1, key=key, n_iter=15)
    # gap ratio 9 ⇒ Kaniel–Paige bound far below float32 round-off after 15 steps
    assert abs(float(top[0]) - 10.0) <= _eig_tol(A, np.float32)


@pytest.mark.parametrize("x64", [True])
def test_power_iteration_converges_with_a_gap(rng, x64):
    d = 16
    A = _sym(rng, np.concatenate([np.linspace(0.1, 2.0, d - 1), [4.0]]))  # |λ₂/λ₁| = 0.5
    with jax.enable_x64(x64):
        dtype = jnp.float64 if x64 else jnp.float32
        loss = lambda x: 0.5 * x @ jnp.asarray(A, dtype) @ x
        lam, v = hs.power_iteration(loss, jnp.zeros(d, dtype), key=jax.random.key(2), n_iter=80)
        # Rayleigh-quotient error ≤ λ₁·tan²θ₀·0.5^{160} ≪ round-off: rule 10·d·eps·‖A‖
        assert abs(float(lam) - 4.0) <= _eig_tol(A, dtype)
        assert abs(abs(float(v @ np.linalg.eigh(A)[1][:, -1])) - 1.0) <= 1e3 * np.finfo(dtype).eps


def test_hutchinson_within_ci_of_the_exact_trace(rng, key):
    d = 20
    A = _sym(rng, rng.uniform(-1.0, 3.0, d))
    x = jnp.asarray(0.3 * rng.standard_normal(d), jnp.float32)
    loss = _quartic(jnp.asarray(A, jnp.float32))
    run = jax.jit(lambda x, k: (hs.dense_hessian(loss, x), hs.hutchinson_trace(loss, x, key=k, n_samples=2000)))
    H, (est, se) = run(x, key)
    H = np.asarray(H, np.float64)
    t = critical_t(dof=2000 - 1)  # one comparison, family-wise 1e-4, >= 4
    assert abs(float(est) - np.trace(H)) <= t * float(se)  # rule: |est − tr H| ≤ t·SE


def test_hutchinson_variance_formula(rng):
    d = 12
    H = _sym(rng, rng.uniform(-1.0, 3.0, d))
    loss = lambda x: 0.5 * x @ jnp.asarray(H, jnp.float32) @ x
    n_samples, reps = 8, 4000
    keys = jax.random.split(jax.random.key(5), reps)
    est, se = jax.jit(jax.vmap(lambda k: hs.hutchinson_trace(loss, jnp.zeros(d), key=k, n_samples=n_samples)))(keys)
    var_exact = 2 * (np.sum(H ** 2) - np.sum(np.diag(H) ** 2)) / n_samples
    # (est − tr H)² has mean exactly Var(est): compare its sample mean with the formula
    m, s, _ = mean_stderr((np.asarray(est, np.float64) - np.trace(H)) ** 2)
    t = critical_t(n_comparisons=2, dof=reps - 1)
    assert abs(m - var_exact) <= t * s  # rule: |mean − exact| ≤ t·SE
    # and the reported SE² estimates the same variance (mean of unbiased SE² = Var(est))
    m2, s2, _ = mean_stderr(np.asarray(se, np.float64) ** 2)
    assert abs(m2 - var_exact) <= t * s2


def test_vmap_over_a_batch_of_parameter_vectors(rng):
    d, batch, k = 10, 4, 3
    A = jnp.asarray(_sym(rng, rng.uniform(0.0, 2.0, d)), jnp.float32)
    loss = _quartic(A)
    X = jnp.asarray(rng.standard_normal((batch, d)), jnp.float32)
    key = jax.random.key(3)

    @jax.jit
    def everything(X):
        one = lambda x: (hs.top_eigenvalues(loss, x, k, key=key, n_iter=d),
                         hs.power_iteration(loss, x, key=key, n_iter=300)[0],
                         hs.hutchinson_trace(loss, x, key=key, n_samples=500),
                         hs.hvp(loss, x, x), hs.dense_hessian(loss, x))
        return jax.vmap(one)(X)

    vals, lam, (tr, se), Hv, Hs = everything(X)
    t = critical_t(n_comparisons=batch, dof=500 - 1)
    for b in range(batch):
        H = np.asarray(Hs[b], np.float64)
        w = np.linalg.eigvalsh(H)
        np.testing.assert_allclose(np.asarray(vals[b], np.float64), w[::-1][:k], rtol=0, atol=_eig_tol(H, np.float32))
        # power iteration (H is PSD here): Rayleigh-quotient error ≤ λ₁·tan²θ₀·(λ₂/λ₁)^{2·300};
        # rule: tan²θ₀ ≤ 1e6 (a Gaussian start violates it with probability < 1e-3) plus
        # 10·d·eps·λ₁ round-off
        assert w[0] >= 0
        bound = w[-1] * 1e6 * (w[-2] / w[-1]) ** 600 + _eig_tol(H, np.float32)
        assert abs(float(lam[b]) - w[-1]) <= bound
        assert abs(float(tr[b]) - np.trace(H)) <= t * float(se[b])
        np.testing.assert_allclose(np.asarray(Hv[b]), H @ np.asarray(X[b]), rtol=1e-4, atol=1e-4 * np.abs(H).max())


@pytest.mark.parametrize("call, match", [
    (lambda f, x, k: hs.top_eigenvalues(f, x, 0, key=k), r"k = 0 .*k >= 1"),
    (lambda f, x, k: hs.top_eigenvalues(f, x, 7, key=k), r"k = 7 .*d = 6"),
    (lambda f, x, k: hs.top_eigenvalues(f, x, 3, key=k, n_iter=2), r"n_iter = 2 "),
    (lambda f, x, k: hs.top_eigenvalues(f, x, 3, key=k, n_iter=9), r"n_iter = 9 .*d = 6"),
    (lambda f, x, k: hs.hutchinson_trace(f, x, key=k, n_samples=0), r"n_samples = 0 "),
    (lambda f, x, k: hs.power_iteration(f, x, key=k, n_iter=0), r"n_iter = 0 "),
])
def test_bad_input_gives_clear_error(key, call, match):
    with pytest.raises(InvalidParameter, match=match):
        call(lambda x: jnp.sum(x ** 2), jnp.zeros(6), key)
