"""Li, Wei & Ma (2019): the parameter map (cells, one compiled shape, validation before any
run), the fixed selection rule, the claims judged in the selected cell, the patch recipe's
testbed and claim (bad input, one program, randomness from the key), and every outcome of
their rules on hand-made evidence."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import quick
from test_large_lr import NO_PREMISE, TINY, _pq
from simulations import engine
from simulations.claims.large_lr import rules_map, rules_patch, runs, runs_map, runs_patch
from simulations.registry import Evidence, get_claims
from simulations.testbeds import digits_patch as dp
from simulations.testbeds import digits_patch_norm as dpn
from theory.validation import InvalidParameter


# ------------------------------------------------------------------------ the map
def test_map_cells_configs_and_validation_before_any_run():
    base = dict(TINY, n=32, n_pad=64, noise_scale=0.5)
    cfg = dict(base=base, axes={"p0": [0.1, 0.2], "d_over_n": [0.25, 0.5, 2.0], "z_norm": [3.0]},
               grid=[{"z_norm": 3.0, "p_noise": 0.35}])
    cells = runs_map.map_cells(cfg)
    # the base, the star values that differ from the base (p0 = 0.2, d/n = 0.5 are the base), the grid
    assert [c[0] for c in cells] == ["base", "p0=0.1", "d_over_n=0.25", "d_over_n=2", "z_norm=3",
                                     "z_norm=3, p_noise=0.35"]
    assert runs_map.cell_config(base, {"d_over_n": 0.25})["n"] == 64
    # ‖z‖ moves with r/‖z‖ fixed; r/‖z‖ moves at the base's ‖z‖
    r0 = 16 ** -0.25
    assert runs_map.axis_value(base, "r_over_z") == pytest.approx(r0)
    c = runs_map.cell_config(base, {"z_norm": 3.0})
    assert c["z_norm"] == 3.0 and c["r"] == pytest.approx(3 * r0)
    assert runs_map.cell_config(base, {"r_over_z": 0.6})["r"] == pytest.approx(0.6)
    assert runs_map.cell_config(base, {"noise_scale": 1.5})["noise_scale"] == 1.5
    # d/n = 0.125 gives n = 128 > n_pad: rejected before any cell runs or compiles
    before = engine.trace_count()
    with pytest.raises(InvalidParameter, match="^n_pad = "):
        runs_map.MAP.fn(dict(cfg, axes={"d_over_n": [0.125]}), key=jax.random.key(0))
    with pytest.raises(InvalidParameter, match="^axis = "):
        runs_map.MAP.fn(dict(cfg, axes={"width": [4]}), key=jax.random.key(0))
    assert engine.trace_count() == before


def test_map_cells_share_one_program():
    _, cfg, ev, _ = quick("largelr.parameter_map")
    assert [c.label for c in ev.map.cells] == ["base", "z_norm=10"]
    before = engine.trace_count()
    base = cfg["map"]["base"]
    for changes in ({"d_over_n": 0.5}, {"r_over_z": 0.6, "p_noise": 1.4}):
        runs.PQ.fn(dict(runs_map.cell_config(base, changes), n_draws=2), key=jax.random.key(3))
    assert engine.trace_count() == before


def _cells(gates, q_first):
    """Hand-made map cells: per cell, whether the SGD premise passes and how many of the 6
    draws have Q first for the small LR."""
    out = []
    for i, (ok, k) in enumerate(zip(gates, q_first)):
        large = {} if ok else NO_PREMISE
        ev = _pq(seed=i, large_anneal=large, small=dict(q_first_draws=k))
        out.append(dict(ev, label=f"cell{i}", changes={}, axis="grid", value=None))
    return Evidence(dict(cells=out))["cells"]


def test_selection_rule():
    # cell 1: premise but Q-first 3/6; cell 2: no premise; cells 3, 4: premise, Q-first 5/6, 6/6
    cells = _cells([True, True, False, True, True], [0, 3, 6, 5, 6])
    best, table = runs_map.select_cell(cells, ["sgd"])
    assert best["index"] == 4 and best["q_first"] == 1.0
    assert [r["eligible"] for r in table] == [False, False, False, True, True]
    # ties go to the earlier cell; nothing eligible: None
    assert runs_map.select_cell(_cells([True, True], [6, 6]), ["sgd"])[0]["index"] == 0
    assert runs_map.select_cell(_cells([False, True], [6, 0]), ["sgd"])[0] is None


def _map_ev(p0_gains, dn_gains=None, premise=True):
    """Cells: base (p₀ = 0.2, d/n = 2) with gain 0.05, p₀ ∈ {0.1, 0.4}, d/n ∈ {0.5, 4}."""
    large = {} if premise else NO_PREMISE

    def cell(axis, value, gain, seed):
        ev = _pq(seed=seed, large_anneal=dict(large, test_p=0.9 + gain))
        return dict(ev, label=axis if value is None else f"{axis}={value:g}", changes={}, axis=axis,
                    value=value)
    cells = [cell("base", None, 0.05, 0), cell("p0", 0.1, p0_gains[0], 1), cell("p0", 0.4, p0_gains[1], 2)]
    axes = {"p0": [0.1, 0.4]}
    if dn_gains is not None:
        cells += [cell("d_over_n", 0.5, dn_gains[0], 3), cell("d_over_n", 4.0, dn_gains[1], 4)]
        axes["d_over_n"] = [0.5, 4.0]
    return Evidence({"map": dict(cells=cells, axes=axes, base_values={"p0": 0.2, "d_over_n": 2.0})})


@pytest.mark.parametrize("p0, dn, premise, expected", [
    ((0.10, 0.0), (0.0, 0.10), True, "confirmed"),     # gain falls with p₀, rises with d/n
    ((0.0, 0.10), (0.0, 0.10), True, "refuted"),       # gain rises with p₀: the opposite trend
    ((0.10, 0.0), (0.10, 0.0), True, "refuted"),       # gain falls with d/n
    ((0.05, 0.0499), (0.0, 0.10), True, "inconclusive"),  # p₀ trend unresolved
    ((0.10, 0.0), None, True, "inconclusive"),         # d/n not mapped
    ((0.0, 0.10), (0.0, 0.10), False, "inconclusive"),  # would refute: premise not met
])
def test_map_rule_outcomes(p0, dn, premise, expected):
    cfg = get_claims(["largelr.parameter_map"])[0].config("quick")
    v = rules_map.parameter_map(_map_ev(p0, dn, premise), cfg)
    assert v.status == expected
    assert ("not mapped" in v.summary) == (dn is None)
    assert ("premise not met" in v.summary) == (not premise)
    assert len(v.measured["table"]) == len(v.measured["cells"]) == 4 * (5 if dn else 3)


def _selected_ev(regime="sgd", **arms):
    pq = _pq(**arms)
    cfg = dict(TINY, n_draws=6, arms=runs.ALL_ARMS)
    return Evidence(dict(regimes=[regime], selected=True, candidates=[dict(label="cell3", regime=regime,
                    gate="yes", q_first=1.0, index=3, eligible=True)],
                    selection=dict(index=3, label="cell3", regime=regime, gate="yes", q_first=1.0,
                                   eligible=True),
                    cell_label="cell3", confirm_config=cfg, confirm=pq))


@pytest.mark.parametrize("arms, expected", [
    (dict(small=dict(q_first_draws=6), large_anneal=dict(test_p=0.95)), "confirmed"),
    (dict(small=dict(q_first_draws=6), large_anneal=dict(test_p=0.85)), "refuted"),
    (dict(small=dict(q_first_draws=6), large_anneal=dict(test_p=0.95, q_acc_window=0.95)), "refuted"),
    (dict(small=dict(q_first_draws=6), large_anneal=dict(test_p=0.9005)), "inconclusive"),
    (dict(small=dict(q_first_draws=0), large_anneal=dict(test_p=0.85)), "inconclusive"),  # P first
    (dict(small=dict(q_first_draws=6), large_anneal=dict(test_p=0.85, **NO_PREMISE)), "inconclusive"),
])
def test_selected_cell_rule_outcomes(arms, expected):
    cfg = get_claims(["largelr.sgd_in_premise"])[0].config("quick")
    v = rules_map.in_premise(_selected_ev(**arms), cfg)
    assert v.status == expected
    assert "cell cell3 selected on the map" in v.summary and "regime: real minibatch SGD" in v.summary


def test_selected_cell_figure(tmp_path):
    claim = get_claims(["largelr.sgd_in_premise"])[0]
    cfg = claim.config("quick")
    ev = _selected_ev(small=dict(q_first_draws=6), large_anneal=dict(test_p=0.95))
    v = claim.judge(ev, cfg)
    claim.draw(ev, v, cfg, tmp_path / "selected.png")
    assert (tmp_path / "selected.png").stat().st_size > 10_000


def test_selected_cell_rule_without_a_cell():
    cfg = get_claims(["largelr.explicit_noise"])[0].config("quick")
    ev = Evidence(dict(regimes=["noise_eta", "noise_eta2"], selected=False, candidates=[
        dict(label="base", regime="noise_eta", gate="no", q_first=0.0, index=0, eligible=False),
        dict(label="base", regime="noise_eta2", gate="yes", q_first=0.25, index=0, eligible=False)]))
    v = rules_map.in_premise(ev, cfg)
    assert v.status == "inconclusive" and "premise not met" in v.summary
    assert len(v.measured["candidates"]) == 2


def test_selection_claims_read_the_shared_map():
    for cid in ("largelr.sgd_in_premise", "largelr.explicit_noise"):
        ev, v = quick(cid)[2:]
        assert ev.map.cells[0].label == "base"
        assert len(ev.candidates) == len(ev.map.cells) * len(ev.regimes)
        assert v.status in ("confirmed", "refuted", "inconclusive")
        if not ev.selected:
            assert "premise not met" in v.summary


# ---------------------------------------------------------------- the patch recipe
def test_patch_recipe_testbed():
    tb = dpn.make_digits_patch_norm(key=jax.random.key(0))
    mask = np.asarray(tb.mask).reshape(8, 8)
    assert mask.sum() == 4 and np.all(mask[3:5, 3:5] == 1)             # centred 2×2: 6% of 64
    z, zeta = np.asarray(tb.z), np.asarray(tb.zeta)
    assert np.all(z[mask.ravel() == 0] == 0) and np.all(np.abs(zeta) <= 0.1)
    assert np.all(zeta[:, mask.ravel() == 0] == 0)
    imgs = np.asarray(tb.images)
    assert abs(imgs.mean()) < 1e-6 and abs(imgs.std() - 1) < 1e-6       # standardized pixels
    n = len(imgs)
    assert np.asarray(tb.patched).sum() == round(0.8 * n)
    only = np.asarray(tb.x_patch_only)
    on = mask.ravel() == 1
    assert np.all(only[:, ~on] == 0)                                  # blank outside the patch
    diff, zy = only[:, on] - z[on], zeta[np.asarray(tb.y_patch_only)][:, on]
    plus, minus = (np.all(np.abs(diff - s * zy) < 1e-9, axis=1) for s in (1, -1))
    assert np.all(plus | minus) and 0.3 < plus.mean() < 0.7            # z + s ζ_c, s = ±1 at random
    # the same recipe in NumPy (builder) and JAX (loads): a patched image as written by both
    y = np.asarray(tb.labels)[:3]
    got = dpn.write_patch(tb, jnp.asarray(tb.images[:3]), jnp.asarray(y), jnp.array([1.0, -1.0, 1.0]),
                          jnp.array([False, True, False]), jnp.array([0.5, 0.5, 0.5]), jnp.array([True, True, False]))
    want = np.asarray(tb.images[:3]).copy()
    want[0, on] = z[on] + zeta[y[0], on]
    want[1] = 0.0
    want[1, on] = z[on] - 1.75 * 0.5 * zeta[y[1], on]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_patch_loads_are_redrawn():
    """Every load redraws s, the blank flag (only for patched images) and U: blank loads are
    zero outside the patch, their offset s·1.75·U·ζ_y; unpatched images stay clean."""
    tb = dpn.make_digits_patch_norm(key=jax.random.key(1))
    idx = jnp.arange(tb.images.shape[0])
    a, y = tb.load(idx, jax.random.key(0))
    b, _ = tb.load(idx, jax.random.key(1))
    a, b, m = np.asarray(a), np.asarray(b), np.asarray(tb.mask) > 0
    patched = np.asarray(tb.patched) > 0
    assert not np.array_equal(a, b)
    np.testing.assert_allclose(a[~patched], np.asarray(tb.images)[~patched], rtol=1e-6, atol=1e-6)
    blank = patched & np.all(a[:, ~m] == 0, axis=1)
    assert abs(blank.sum() / patched.sum() - 0.2) < 0.05
    off = (a[blank][:, m] - np.asarray(tb.z)[m]) / np.asarray(tb.zeta)[np.asarray(y)[blank]][:, m]
    assert np.allclose(off, off[:, :1], atol=1e-3) and np.all(np.abs(off[:, 0]) <= 1.75 + 1e-6)
    on = patched & ~blank
    np.testing.assert_allclose(a[on][:, ~m], np.asarray(tb.images)[on][:, ~m], rtol=1e-6, atol=1e-6)


def test_patch_noise_is_shared_across_the_batch_and_annealed():
    tb = dpn.make_digits_patch_norm(key=jax.random.key(0), width=8, depth=2, batch_size=4)
    params = tb.init(key=jax.random.key(1))
    hp = dict(noise_std=jnp.float32(0.4), anneal_step=jnp.float32(10.0))
    k = jax.random.key(3)
    g0 = tb.gradient(params, key=k, hparams=dict(hp, noise_std=jnp.float32(0.0)), step=jnp.int32(0))
    g1 = tb.gradient(params, key=k, hparams=hp, step=jnp.int32(0))
    g2 = tb.gradient(params, key=k, hparams=hp, step=jnp.int32(10))   # ×1e-5 after the anneal
    leaves = lambda g: np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(g)])  # noqa: E731
    assert not np.allclose(leaves(g0), leaves(g1))
    np.testing.assert_allclose(leaves(g2), leaves(g0), rtol=1e-3, atol=1e-5)
    h = dpn.layer_norm(jnp.arange(12.0).reshape(3, 4), jnp.ones(4), jnp.zeros(4))
    np.testing.assert_allclose(np.asarray(h).mean(axis=1), 0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(h).std(axis=1), 1, atol=1e-4)
    # all metrics in one vector = the five metric functions
    v = np.asarray(dpn.all_metrics(tb, params))
    np.testing.assert_allclose(v, [float(dpn.METRICS[k](tb, params)) for k in dpn.ALL_NAMES], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kw, name", [(dict(patch_size=9), "patch_size"), (dict(patch_size=0), "patch_size"),
                                      (dict(depth=0), "depth"), (dict(batch_size=0), "batch_size")])
def test_patch_testbed_bad_input(kw, name):
    with pytest.raises(InvalidParameter, match=rf"^{name} = "):
        dpn.make_digits_patch_norm(key=jax.random.key(0), **kw)
    if name == "patch_size":
        with pytest.raises(InvalidParameter, match=rf"^{name} = "):
            dp.make_digits_patch(key=jax.random.key(0), **kw)


@pytest.mark.parametrize("change, name", [
    (dict(anneal_epoch=8), "anneal_epoch"), (dict(patch_size=9), "patch_size"), (dict(momentum=1.5), "momentum"),
    (dict(weight_decay=-1.0), "weight_decay"), (dict(eta2=0.0), "eta2"), (dict(depth=0), "depth"),
])
def test_patch_claim_bad_input_before_compilation(change, name):
    claim = get_claims(["largelr.patch"])[0]
    before = engine.trace_count()
    with pytest.raises(InvalidParameter, match=rf"^{name} = "):
        claim.run(dict(claim.config("quick"), **change), key=jax.random.key(0))
    assert engine.trace_count() == before


def test_patch_draws_share_one_program_and_come_from_the_key():
    _, cfg, ev, _ = quick("largelr.patch")  # compiles the quick shapes
    before = engine.trace_count()
    kw = dict(data_key=jax.random.key(3), sgd_key=jax.random.key(4))
    a = runs_patch.recipe_curves(cfg, **kw)
    b = runs_patch.recipe_curves(dict(cfg, eta1=0.2, eta2=0.01, noise_std=1.0, momentum=0.5), **kw)
    c = runs_patch.recipe_curves(cfg, **kw)
    assert engine.trace_count() == before
    assert a["patch_only"].shape == (3, cfg["epochs"] + 1)
    assert not np.array_equal(a["clean"], b["clean"])
    np.testing.assert_array_equal(a["clean"], c["clean"])
    assert ev.matched_epoch == min(-(-round(391 * 0.004 / cfg["eta2"]) // ev.steps_per_epoch), cfg["anneal_epoch"])


def test_grid_summary():
    po = np.zeros((2, 2, 9))
    po[0, :, 2:5] = [0.1, 0.2, 0.3]
    po[1, :, 1], po[1, :, -1] = 0.7, 1.0
    cl = np.zeros((2, 2, 9))
    cl[0, :, -1], cl[1, :, -1] = [0.9, 0.8], [0.85, 0.85]
    row = runs_patch.grid_cell(8, 4, po, cl)
    assert row["small_epoch1"] == pytest.approx(0.7) and row["small_final"] == pytest.approx(1.0)
    assert row["large_anneal_pre_anneal"] == pytest.approx(0.2)
    assert row["clean_gain"] == pytest.approx(0.0)


def _patch_ev(first=0.97, large_pre=0.1, clean_gain=0.01, final_small=1.0, premise=True,
              n_draws=6, epochs=8, anneal=4, matched=2):
    rng = np.random.default_rng(1)
    jit = lambda c, s=0.01: np.clip(c + s * rng.standard_normal(n_draws), 0, 1)  # noqa: E731
    po = np.ones((3, n_draws, epochs + 1))
    po[:, :, 0] = 0.1
    po[1, :, 1:] = jit(first)[:, None]
    po[1, :, matched + 1:] = jit(final_small)[:, None]
    po[0, :, 1:anneal + 1] = jit(large_pre)[:, None]
    po[2, :, 1:anneal + 1] = 0.1
    cl = np.full((3, n_draws, epochs + 1), 0.5)
    cl[1, :, -1] = jit(0.85)
    cl[0, :, -1] = cl[1, :, -1] + clean_gain + 0.002 * rng.standard_normal(n_draws)
    acc = np.ones((3, n_draws, epochs + 1))
    loss = np.full((3, n_draws, epochs + 1), 0.05)
    if premise:  # the large arm plateaus at 0.8 with a higher loss, jumps after the anneal
        acc[0, :, :anneal + 1], loss[0, :, :anneal + 1] = jit(0.8)[:, None], 0.6
    else:        # the large arm ahead
        loss[0] = 0.01
    cell = dict(patch_size=3, offset_norm=3.0, strength=9.0, small_epoch1=first, small_pre_anneal=1.0,
                small_final=final_small, large_anneal_epoch1=large_pre, large_anneal_pre_anneal=large_pre,
                large_anneal_final=1.0, clean_gain=clean_gain)
    return Evidence(dict(patch_only=po, clean=cl, patched=cl, train_acc=acc, train_loss=loss,
                         arms=list(runs_patch.ARMS), epochs=np.arange(epochs + 1), anneal_epoch=anneal,
                         matched_epoch=matched, steps_per_epoch=45, n_train=1437, grid=[cell]))


@pytest.mark.parametrize("kw, expected", [
    (dict(), "confirmed"),
    (dict(first=0.5), "refuted"),                     # (a) not memorized at once
    (dict(large_pre=0.9), "refuted"),                 # (b) large LR learns it before annealing
    (dict(clean_gain=-0.05), "refuted"),              # (c) clean accuracy large < small
    (dict(first=0.9), "inconclusive"),                # (a) straddles 0.9
    (dict(first=0.5, premise=False), "inconclusive"),  # premise: the large LR ahead
    (dict(first=0.5, final_small=0.5), "inconclusive"),  # premise: small LR never learns it
])
def test_patch_rule_outcomes(kw, expected):
    cfg = get_claims(["largelr.patch"])[0].config("quick")
    v = rules_patch.patch(_patch_ev(**kw), cfg)
    assert v.status == expected
    premise = kw.get("premise", True) and kw.get("final_small", 1.0) >= 0.9
    assert ("premise gate passed" in v.summary) == premise
    assert ("premise not met" in v.summary) == (not premise)
    assert "Nesterov 0.9" in v.summary and "exploratory grid of 1 cells" in v.summary
