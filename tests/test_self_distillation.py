"""Claims of Mobahi, Farajtabar & Bartlett (self-distillation): the four theorems share one
family run and their rules are violated by contradicting evidence; the U-shape rule reaches
every outcome on hand-made evidence; quick and full fidelity agree at key 0; the runs draw
their data from the key. The registry-wide contract test runs every claim at quick fidelity
and asserts the theorems hold."""
from __future__ import annotations

import jax
import numpy as np
import pytest
from conftest import quick

from simulations.claims.self_distillation import rules, runs
from simulations.registry import Evidence, get_claims
from simulations.testbeds import kernel_regression as kr

U = np.finfo(np.float64).eps


THEOREMS = ["selfdistill.closed_form", "selfdistill.amplification", "selfdistill.sparsification",
            "selfdistill.collapse"]


def _edit(ev, name, **changes):
    """Evidence with ev.family.<name> fields replaced (hand-made contradicting evidence)."""
    d = ev.to_dict()
    fam = d["family"]
    if name:
        fam[name] = {**fam[name], **changes}
    else:
        fam.update(changes)
    return Evidence(d)


def _row(fam, dataset="toy", kernel="laplace"):
    sel = np.flatnonzero((np.asarray(fam.dataset) == dataset) & (np.asarray(fam.kernel) == kernel)
                         & (fam.collapse_case == 0))
    return int(sel[0])


def test_theorem_claims_share_one_family_run():
    claims = get_claims(THEOREMS)
    for fidelity in ("quick", "full"):
        assert all(c.uses == {"family": runs.family} for c in claims)
        assert len({str(c.config(fidelity)["family"]) for c in claims}) == 1


def test_quick_verdicts_equal_full_at_key_0():
    for claim in get_claims(THEOREMS + ["selfdistill.u_shape"]):
        _, _, full = claim.evaluate("full", key=jax.random.key(0))
        assert quick(claim.id)[3].status == full.status, full.summary
    assert quick("selfdistill.u_shape")[3].status == "confirmed"


def test_runs_draw_their_data_from_the_key():
    _, cfg, ev, _ = quick("selfdistill.u_shape")
    again = runs.u_shape(cfg, key=jax.random.key(0))
    np.testing.assert_array_equal(again["risk"], ev.risk)
    other = runs.u_shape(cfg, key=jax.random.key(1))
    assert not np.array_equal(other["risk"], ev.risk)
    _, cfg, ev, _ = quick("selfdistill.closed_form")
    other = runs.family(cfg["family"], key=jax.random.key(1))
    assert not np.array_equal(other.toy.y, ev.family.toy.y)


@pytest.mark.parametrize("field, value", [
    ("diff_test", lambda cf, j, g: 3 * cf.bound_test[g, 0]),     # a Gaussian test fit 1.5× over
    ("diff_train", lambda cf, j, g: 3 * cf.bound_train[j, 1]),   # a Laplace target 1.5× over
    ("diff_test", lambda cf, j, g: np.nan),                      # a non-finite fit
    ("diff_c", lambda cf, j, g: 3 * cf.bound_c[j, 0]),           # roots apart beyond 2η_t
    ("diff_c", lambda cf, j, g: np.nan),                         # only one side collapsed
])
def test_closed_form_rule_is_violated_beyond_its_tolerance(field, value):
    _, cfg, ev, _ = quick("selfdistill.closed_form")
    cf = ev.family.closed_form
    j, g = _row(ev.family), _row(ev.family, kernel="gaussian")
    x = cf[field].copy()
    x[g if field == "diff_test" else j, 1 if field == "diff_train" else 0] = value(cf, j, g)
    assert rules.closed_form(_edit(ev, "closed_form", **{field: x}), cfg).status == "violated"


@pytest.mark.parametrize("field, index, broken, check", [
    ("c", 0, lambda a, j: a.c_upper[j, 0] * (1 + 1e-9), "c_bounds"),         # c₀ > d_max/(r₀ − 1)
    ("r", 1, lambda a, j: a.r_next_upper_derived[j, 0] * (1 + 1e-9), "r_derived"),  # r₁ > √(r₀²−1)
    ("r", 1, lambda a, j: a.r_next_lower_paper[j, 0] * (1 - 1e-9), "r_paper"),  # r₁ below eq. (5)
    ("c", 1, lambda a, j: a.c[j, 0], "c_monotone"),                          # c₁ = c₀: no growth
])
def test_amplification_rule_is_violated_by_contradicting_evidence(field, index, broken, check):
    _, cfg, ev, _ = quick("selfdistill.amplification")
    a, j = ev.family.amplification, _row(ev.family)
    x = a[field].copy()
    x[j, index] = broken(a, j)
    v = rules.amplification(_edit(ev, "amplification", **{field: x}), cfg)
    assert v.status == "violated" and v.measured["violations"][check] >= 1, v.measured


def test_sparsification_rule_is_violated_by_contradicting_evidence():
    _, cfg, ev, _ = quick("selfdistill.sparsification")
    fam, j = ev.family, _row(ev.family)
    x = fam.sparsification.step_ratio_max.copy()
    x[j, 0] = 1.0  # a resolvable step that did not decrease
    assert rules.sparsification(_edit(ev, "sparsification", step_ratio_max=x), cfg).status == "violated"
    x = fam.sparsification.weak_ratio_max.copy()
    x[j, 0] = 1 + 1e-9  # an unresolvable step rising beyond round-off
    assert rules.sparsification(_edit(ev, "sparsification", weak_ratio_max=x), cfg).status == "violated"
    counts = fam.basis_counts.copy()
    counts[j, 1, 1] = counts[j, 1, 0] + 1  # a basis count that rises
    assert rules.sparsification(_edit(ev, None, basis_counts=counts), cfg).status == "violated"


@pytest.mark.parametrize("field, change", [
    ("T_iterated", lambda co, T, j: co.T_iterated[j] + 1),   # direct fits collapse later
    ("max_abs_after", lambda co, T, j: 1e-300),              # a non-zero fit after the collapse
    ("min_abs_before", lambda co, T, j: 0.0),                # a zero fit before it
    ("upper_paper", lambda co, T, j: T[j] - 0.5),            # T above the paper's upper bound
    ("lower_derived", lambda co, T, j: T[j] + 1),            # T below ⌈r₀ − 1⌉
])
def test_collapse_rule_is_violated_by_contradicting_evidence(field, change):
    _, cfg, ev, _ = quick("selfdistill.collapse")
    co, j = ev.family.collapse, _row(ev.family)
    x = co[field].copy()
    x[j] = change(co, ev.family.T, j)
    assert rules.collapse(_edit(ev, "collapse", **{field: x}), cfg).status == "violated"


def test_u_shape_evidence_is_consistent():
    _, _, ev, _ = quick("selfdistill.u_shape")
    np.testing.assert_array_equal(ev.best_round, np.argmin(ev.risk, axis=2))
    # the last column is f ≡ 0, whose excess risk is mean(sin²) over the grid (≤ 201u apart)
    f0 = np.mean(np.sin(2 * np.pi * kr.evaluation_grid()) ** 2)
    np.testing.assert_allclose(ev.risk[..., -1], f0, rtol=201 * U)
    np.testing.assert_array_equal(ev.u_shaped, (ev.best_round >= 1) & (ev.best_round < ev.n_nontrivial))


def _ushape_ev(k_u, k_0, n=20, t_min=5):
    """Hand-made evidence at ε/σ² = 1/18, 1/9 (over-fitting), 1/3, 1/2, 1: k_u[e] seeds
    U-shaped (best round 1) at the over-fitting ε, k_0[e] with the teacher best elsewhere."""
    ratio = [1 / 18, 1 / 9, 1 / 3, 1 / 2, 1.0]
    best = np.zeros((5, n), int)
    for e in range(5):
        good = k_u[e] if e < 2 else n - k_0[e]  # over-fitting: U-shaped; else: not teacher-best
        best[e, :good] = 1
    T = np.full((5, n), 10)
    T[0, 0] = t_min
    return Evidence(dict(eps=[0.09 * r for r in ratio], eps_over_noise_var=ratio, best_round=best,
                         n_nontrivial=T, u_shaped=((best >= 1) & (best < T)).astype(int),
                         monotone=(best == 0).astype(int)))


@pytest.mark.parametrize("k_u, k_0, t_min, expected", [
    ((20, 20), (19, 20), 5, "confirmed"),      # every interval above 1/2 (19/20: [0.69, 0.99])
    ((20, 3), (20, 20), 5, "refuted"),         # 3/20 U-shaped: interval [0.04, 0.43] below 1/2
    ((20, 20), (20, 2), 5, "refuted"),         # teacher best in 2/20 at ε = σ²
    ((20, 12), (20, 20), 5, "inconclusive"),   # 12/20: [0.34, 0.82] straddles 1/2
    ((20, 20), (20, 20), 1, "inconclusive"),   # premise: a run collapses right after the teacher
])
def test_u_shape_rule_outcomes(k_u, k_0, t_min, expected):
    _, cfg, _, _ = quick("selfdistill.u_shape")
    ev = _ushape_ev(list(k_u) + [0, 0, 0], [0, 0, 0] + list(k_0), t_min=t_min)
    v = rules.u_shape(ev, cfg)
    assert v.status == expected, v.summary
    if t_min < 2:
        assert "premise" in v.summary
