"""The test-accuracy run of SNGM vs MSGD vs LARS on the digits two-layer network.

The data split is part of the experiment: ``n_splits`` stratified train / validation / test
splits are drawn from the claim's key (``subkey(key, "digits/splits")``), and on each split
the whole protocol runs: η tuned per method on that split's validation set, then test
accuracy at the tuned η on fresh seeds, paired across methods (same initialization and
minibatches per seed). Splits are the independent units (clusters) of the verdict's
interval, so the variance of the split, of the tuning and of the seeds all enter it (a
single tuning shared by all splits would leave the tuning's variance out).

Every engine call trains the three methods at one η each on ``n_seeds`` seeds (one η
column of a grid), so tuning and testing share one compiled program.
"""
from __future__ import annotations

import numpy as np

from simulations import sweep as sw
from simulations.keys import numpy_rng, subkey
from simulations.testbeds import digits_mlp as dm
from theory import validation as check


def eta_grid(cfg) -> np.ndarray:
    """(method, η) log grids, one per method of :data:`digits_mlp.METHODS`."""
    n_eta = check.integer_at_least("n_eta", cfg["n_eta"], 2)
    for m in dm.METHODS:
        lo, hi = (check.positive(f"eta_ranges[{m!r}]", e) for e in cfg["eta_ranges"][m])
        if hi <= lo:
            check.fail(f"eta_ranges[{m!r}]", hi, f"an upper end > the lower end {lo:g}")
    return np.stack([np.geomspace(*cfg["eta_ranges"][m], n_eta) for m in dm.METHODS])


def split_seeds(key, n_splits: int) -> list[int]:
    """The integer seeds of the data splits, drawn from the claim's key."""
    return [int(s) for s in numpy_rng(subkey(key, "digits/splits")).integers(0, 2 ** 31, n_splits)]


def _validate(cfg):
    sw.check_beta(cfg["beta"])
    check.integer_at_least("n_splits", cfg["n_splits"], 2)
    check.integer_at_least("n_seeds", cfg["n_seeds"], 1)
    check.positive("margin", cfg["margin"])
    check.in_range("confidence", cfg["confidence"], 0.0, 1.0, closed_low=False)
    dm.make_digits_mlp(cfg["batch_size"], width=cfg["width"])  # B within 1..n, width >= 1
    return eta_grid(cfg)


def tune_and_test(tb, etas, *, key, beta, n_steps, n_seeds) -> dict:
    """One split: every (method, η) on ``n_seeds`` seeds, η per method = argmax of the mean
    validation accuracy, then every method at its tuned η on ``n_seeds`` other seeds."""
    common = dict(beta=beta, n_steps=n_steps, n_seeds=n_seeds)
    cols = [dm.train_grid(tb, etas[:, e:e + 1], key=subkey(key, f"tune/{e}"), **common)
            for e in range(etas.shape[1])]
    val = np.concatenate([c["val"] for c in cols], axis=1)  # (method, η, seed)
    best = np.argmax(val.mean(axis=-1), axis=-1)  # (method,)
    tuned = etas[np.arange(len(best)), best]
    test = dm.train_grid(tb, tuned[:, None], key=subkey(key, "test"), **common)
    runs = cols + [test]
    return dict(val=val, best_index=best, tuned_eta=tuned, test=test["test"][:, 0],
                diverged=sum(r["diverged"].sum(axis=(1, 2)) for r in runs),  # (method,)
                wall_seconds=sum(r["wall_seconds"] for r in runs),
                compilations=sum(r["compilations"] for r in runs))


def test_accuracy(cfg, *, key):
    """The protocol on every split; arrays (split, method, ...)."""
    etas = _validate(cfg)
    per = []
    for s, seed in enumerate(split_seeds(key, cfg["n_splits"])):
        tb = dm.make_digits_mlp(cfg["batch_size"], width=cfg["width"], split_seed=seed)
        per.append(tune_and_test(tb, etas, key=subkey(key, f"digits/{s}"), beta=cfg["beta"],
                                 n_steps=cfg["n_steps"], n_seeds=cfg["n_seeds"]))
    stack = lambda k: np.stack([p[k] for p in per])
    return dict(methods=list(dm.METHODS), etas=etas, split_seeds=split_seeds(key, cfg["n_splits"]),
                val=stack("val"), best_index=stack("best_index"), tuned_eta=stack("tuned_eta"),
                test=stack("test"), n_diverged=stack("diverged"), n_train=int(tb.n_train),
                gradient_computations=cfg["n_steps"] * cfg["batch_size"],
                wall_seconds=float(sum(p["wall_seconds"] for p in per)),
                compilations=int(sum(p["compilations"] for p in per)))


test_accuracy.__test__ = False  # a claim's run, not a pytest test
