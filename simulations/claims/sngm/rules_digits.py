"""Verdict rule of ``sngm.test_accuracy``: paired test-accuracy differences SNGM − baseline
at the tuned η, with a Student-t interval over data splits (the independent units: each
split carries its own tuning and seeds), against a margin fixed before the runs."""
from __future__ import annotations

import numpy as np

from simulations import stats
from simulations.registry import Verdict


def compare(split_means, margin, confidence):
    """Student-t interval of the mean paired difference over splits, and its class: worse
    (interval below 0), non-inferior (low end >= −margin and not below 0), undecided (the
    interval reaches below −margin and above 0)."""
    mean, lo, hi = stats.mean_ci(split_means, confidence)
    cls = "worse" if hi < 0 else ("non-inferior" if lo >= -margin else "undecided")
    return float(mean), float(lo), float(hi), cls


def test_accuracy(ev, cfg):
    methods = list(ev.methods)
    test, best, etas = ev.test, ev.best_index.astype(int), ev.etas   # test: (split, method, seed)
    n_splits, _, n_eval = test.shape
    n_cmp = len(methods) - 1
    conf = 1 - (1 - cfg["confidence"]) / n_cmp  # Bonferroni over the baselines
    rows, classes, measured = [], [], {}
    for b in range(1, len(methods)):
        per_split = (test[:, 0] - test[:, b]).mean(axis=-1)  # paired within each split
        mean, lo, hi, cls = compare(per_split, cfg["margin"], conf)
        classes.append(cls)
        better = lo > 0
        rows.append(f"SNGM − {methods[b].upper()} = {100 * mean:+.2f} pp [{100 * lo:+.2f}, {100 * hi:+.2f}] "
                    f"({cls}{', SNGM better' if better else ''})")
        measured[f"diff_vs_{methods[b]}"] = dict(mean=mean, low=lo, high=hi, result=cls, superior=better,
                                                 per_split=per_split)
    edge = sorted({methods[m] for s in range(n_splits) for m in range(len(methods))
                   if best[s, m] in (0, etas.shape[1] - 1)})
    if edge:
        status = "inconclusive"
    elif "worse" in classes:
        status = "refuted"
    else:
        status = "confirmed" if all(c == "non-inferior" for c in classes) else "inconclusive"
    acc = test.mean(axis=(0, 2))
    tuned = {m: [float(etas[i, best[s, i]]) for s in range(n_splits)] for i, m in enumerate(methods)}
    per = "; ".join(f"{m.upper()} {100 * acc[i]:.2f}% (η {min(tuned[m]):.2g}–{max(tuned[m]):.2g})"
                    for i, m in enumerate(methods))
    return Verdict(
        status=status,
        summary=(f"digits MLP, B = {cfg['batch_size']} of n = {ev.n_train}, T = {cfg['n_steps']} steps, "
                 f"{n_splits} data splits × {n_eval} held-out seeds: test accuracy {per}; "
                 + "; ".join(rows) + (f"; tuned η at the grid edge for {edge}" if edge else "")
                 + f" → {status}"),
        measured=dict(measured, test_accuracy_mean={m: float(acc[i]) for i, m in enumerate(methods)},
                      diverged_runs=int(np.sum(ev.n_diverged)), tuned_eta=tuned,
                      tuned_eta_at_grid_edge=edge),
        predicted=dict(sngm_minus_baseline=">= 0 (SNGM's test accuracy >= MSGD's and LARS's)",
                       margin=cfg["margin"]),
        rule=(f"On each of {n_splits} data splits (drawn from the claim's key): η per method = argmax "
              f"over its log grid of the mean validation accuracy over {cfg['n_seeds']} seeds; test "
              f"accuracy at that η on {n_eval} other seeds, paired across methods (same init and "
              "minibatches per seed); a run that becomes non-finite counts as accuracy 0. For each "
              "baseline, the paired difference SNGM − baseline averaged within each split, and the "
              f"Student-t interval of its mean over the splits ({n_splits - 1} dof: split, tuning and "
              f"seed variance all enter) at confidence {conf:.4g} (family "
              f"{cfg['confidence']:g}, Bonferroni over {n_cmp} baselines): 'worse' if the interval is "
              f"below 0, 'non-inferior' if its lower end is >= −{100 * cfg['margin']:g} pp (margin "
              "decided before the runs) and it is not below 0, else 'undecided'. Confirmed iff "
              "non-inferior to every baseline; refuted iff worse than any; else inconclusive, and "
              "inconclusive whenever a tuned η sits at an end of its grid on any split (tuning "
              "censored)"),
        sizes=dict(cfg, dtype="float32", weight_decay="none (all three methods)",
                   minibatches="B indices uniform with replacement from the training split",
                   accuracy="of the final iterate w_T", split_seeds=list(ev.split_seeds)))


test_accuracy.__test__ = False  # a verdict rule, not a pytest test
