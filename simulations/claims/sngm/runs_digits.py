"""The allowable batch size of SNGM, MSGD, SGD, LARS and LAMB on the digits network.

The sweep is the shared run :data:`simulations.batch_scaling.digits_sweep` (every method ×
batch size × η × seed at a fixed epoch budget, on key-derived data splits; η tuned per
(method, B) on the validation split by one rule). This module turns its per-split test
accuracies into the allowable batch size of each method — the largest B whose accuracy is
within ``margin`` of the method's best accuracy over the ``n_reference`` smallest batch
sizes — with percentile-bootstrap intervals over the data splits (the independent units:
each split carries its own tuning and seeds), and into paired single-B comparisons.

Randomness: the bootstrap generators come from ``subkey(key, "bootstrap/allowable/...")``.
"""
from __future__ import annotations

import numpy as np

from simulations import batch_scaling as bsc
from simulations import stats
from simulations.keys import numpy_rng, subkey
from theory import validation as check


def validate(cfg) -> None:
    check.positive("margin", cfg["margin"])
    check.in_range("confidence", cfg["confidence"], 0.0, 1.0, closed_low=False)
    check.integer_at_least("n_boot", cfg["n_boot"], 100)
    methods, ks, *_ = bsc.digits_design(cfg["digits"])
    n_ref = check.integer_at_least("n_reference", cfg["n_reference"], 1)
    if n_ref >= ks.size:
        check.fail("n_reference", n_ref, f"fewer than the {ks.size} batch sizes of the grid")
    for m in ("sngm", "msgd"):
        if m not in methods:
            check.fail("digits.methods", 0, f"a list containing {m!r} (the claim compares SNGM with MSGD)")


def split_accuracy(ev) -> np.ndarray:
    """(split, method, B) test accuracy at the tuned η, averaged over the test seeds."""
    return ev.test.mean(axis=-1)


def allowable_batch(cfg, *, key):
    """Allowable-batch indices with bootstrap intervals over splits, their SNGM − MSGD
    difference, and paired test-accuracy differences SNGM − baseline at every B."""
    validate(cfg)
    ev = bsc.digits_sweep(cfg["digits"], key=key)
    acc = split_accuracy(ev)                                  # (split, method, B)
    methods = list(ev.methods)
    top = acc.shape[-1] - 1
    n_ref, margin = cfg["n_reference"], cfg["margin"]
    conf = 1 - (1 - cfg["confidence"]) / 3                    # gate + two findings
    boot = dict(n_boot=cfg["n_boot"], confidence=conf, axis=0)

    def index_of(m):
        return lambda s: int(bsc.allowable_index(s[:, m].mean(0), n_reference=n_ref, margin=margin))

    intervals = {m: bsc.grid_interval(acc, index_of(i), top=top, rng=numpy_rng(subkey(key, f"bootstrap/allowable/{m}")),
                                      **boot) for i, m in enumerate(methods)}
    s, b = methods.index("sngm"), methods.index("msgd")
    diff = bsc.grid_difference_interval(acc, index_of(s), index_of(b), top=top,
                                        rng=numpy_rng(subkey(key, "bootstrap/allowable/sngm-msgd")), **boot)
    # paired differences SNGM − baseline per split at every B (Student-t over splits)
    paired = {}
    for i, m in enumerate(methods):
        if i == s:
            continue
        d = acc[:, s] - acc[:, i]                             # (split, B)
        mean, lo, hi = stats.mean_ci(d, stats.FIGURE_CONFIDENCE, axis=0)
        paired[m] = dict(mean=mean, low=lo, high=hi, per_split=d)
    top_mean, top_lo, top_hi = stats.mean_ci(acc[:, s, -1] - acc[:, b, -1], conf)
    return dict(methods=methods, split_accuracy=acc, allowable=intervals, sngm_minus_msgd=diff,
                paired=paired, top_difference=dict(mean=top_mean, low=top_lo, high=top_hi),
                finding_confidence=conf)
