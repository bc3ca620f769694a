"""Verdict rule of ``sngm.allowable_batch_real``: the allowable batch sizes of SNGM and
MSGD on the digits network at a fixed epoch budget, decided from bootstrap intervals over
the data splits, behind a gate on the paper's premise (MSGD's accuracy degrades within the
grid). Single-B comparisons are measured (mutually exclusive classes) but do not decide."""
from __future__ import annotations

import numpy as np

from simulations import batch_scaling as bsc
from simulations import stats
from simulations.registry import Finding, Verdict, decide


def single_b_class(low, high, margin) -> str:
    """Non-inferior (interval low end >= −margin), inferior (high end < −margin), else
    undecided: the three are mutually exclusive."""
    if low >= -margin:
        return "non-inferior"
    if high < -margin:
        return "inferior"
    return "undecided"


def _b(bs, iv) -> str:
    """'72 [24, 216]' from a grid-index interval (open ends as '>')."""
    def at(i):
        i = int(i)
        return f">{bs[-1]}" if i >= bsc.OPEN else str(int(bs[max(0, min(i, len(bs) - 1))]))
    return f"{int(bs[iv['estimate']])} [{at(iv['low'])}, {at(iv['high'])}]"


def allowable_batch(ev, cfg):
    d = ev.digits
    bs, methods = d.batch_sizes.astype(int), list(ev.methods)
    top = len(bs) - 1
    margin, conf = cfg["margin"], ev.finding_confidence
    iv = {m: ev.allowable[m] for m in methods}
    msgd, diff, td = iv["msgd"], ev.sngm_minus_msgd, ev.top_difference
    premise = msgd["high"] < top
    gate = Finding("premise: MSGD degrades within the grid", True if premise else (False if msgd["low"] >= top else None),
                   f"MSGD's allowable batch {_b(bs, msgd)}: " + ("below" if premise else "not surely below")
                   + f" the full batch {bs[-1]}")
    # tuning censored: a tuned η of SNGM or MSGD at an end of its grid on some split
    edge = d.tuned_at_edge.astype(bool)
    edges = [f"{m} B={bs[j]}" for i, m in enumerate(d.methods) if m in ("sngm", "msgd")
             for j in range(len(bs)) if edge[:, i, j].any()]
    ge = stats.exceeds(diff["low"], diff["high"], -1)          # Δ >= 0 grid steps
    gt = stats.exceeds(td["low"], td["high"], 0.0)              # SNGM − MSGD > 0 at the largest B
    findings = [Finding("SNGM's allowable batch >= MSGD's", ge,
                        f"Δ = {bsc.steps_text(diff)} grid steps"),
                Finding(f"SNGM more accurate than MSGD at B = {bs[-1]}", gt,
                        f"{100 * td['mean']:+.2f} pp [{100 * td['low']:+.2f}, {100 * td['high']:+.2f}]"),
                Finding("tuning inside the η grids", None if edges else True,
                        "tuned η at a grid end: " + ", ".join(edges) if edges else "")]
    status, reason = decide(findings, gate=gate)
    acc = ev.split_accuracy.mean(axis=0)                        # (method, B)
    paired = {m: ev.paired[m] for m in methods if m != "sngm"}
    single = {m: [single_b_class(p["low"][j], p["high"][j], margin) for j in range(len(bs))]
              for m, p in paired.items()}
    allow = "; ".join(f"{m.upper()} {_b(bs, iv[m])}" for m in methods)
    rows = "; ".join(f"{m.upper()} " + "/".join(f"{100 * a:.1f}" for a in acc[i]) for i, m in enumerate(methods))
    n_splits, n_test = ev.split_accuracy.shape[0], d.test.shape[-1]
    return Verdict(
        status=status,
        summary=(f"digits MLP, {cfg['digits']['epochs']} epochs at every B ∈ {{{', '.join(map(str, bs))}}} "
                 f"(T = {'/'.join(str(int(t)) for t in d.optimizer_steps)} steps), {n_splits} splits × {n_test} "
                 f"test seeds: test accuracy (%) {rows}; allowable batch (margin {100 * margin:g} pp) {allow}; "
                 f"SNGM − MSGD allowable {bsc.steps_text(diff)} grid steps; at B = {bs[-1]} SNGM − MSGD = "
                 f"{100 * td['mean']:+.2f} pp [{100 * td['low']:+.2f}, {100 * td['high']:+.2f}] → {status} ({reason})"),
        measured=dict(test_accuracy={m: acc[i] for i, m in enumerate(methods)},
                      allowable_batch={m: int(bs[iv[m]["estimate"]]) for m in methods},
                      allowable_interval={m: dict(iv[m]) for m in methods},
                      sngm_minus_msgd_grid_steps=dict(diff), largest_batch_difference=dict(td),
                      single_b_classes=single, tuned_eta_at_grid_edge=edges,
                      diverged_runs=int(np.sum(d.diverged))),
        predicted=dict(sngm_minus_msgd_allowable=">= 0 grid steps",
                       sngm_minus_msgd_at_largest_batch="> 0", margin=margin),
        rule=(f"On each of {n_splits} data splits (from the claim's key), η per (method, B) = argmax over "
              f"the method's grid of the mean final validation accuracy over {cfg['digits']['n_tune']} tuning "
              f"seeds (the same rule for every method); test accuracy at that η, mean over {n_test} other "
              "seeds (a diverged run counts 0). Allowable batch = the largest B whose split-mean test "
              f"accuracy is >= (the best over the {cfg['n_reference']} smallest B) − {100 * margin:g} pp "
              "(margin fixed before the runs). Intervals: percentile bootstrap over splits "
              f"({cfg['n_boot']} resamples) at confidence {conf:.4g} each (family {cfg['confidence']:g}, "
              "Bonferroni over the gate and two findings); an allowable batch at the full batch is censored "
              "(its end of the interval open). Gate: MSGD's allowable interval lies below the full batch "
              "(else inconclusive: the premise that MSGD degrades is not met). Findings: SNGM − MSGD "
              "allowable index interval >= 0; paired SNGM − MSGD test accuracy at the largest B (Student-t "
              f"over splits, {n_splits - 1} dof) above 0; no tuned η of SNGM or MSGD at a grid end (else "
              "unresolved). Confirmed iff all supported; refuted iff a finding's interval lies on the "
              "other side. Single-B comparisons (figure only): 95% t interval of SNGM − baseline per B, "
              f"non-inferior if low >= −{100 * margin:g} pp, inferior if high < −{100 * margin:g} pp, else "
              "undecided"),
        sizes=dict(cfg, dtype="float32", split_seeds=list(d.split_seeds), examples_per_run=int(d.examples),
                   minibatches=("B = k·8 indices with replacement (k micro-batches of 8 accumulated); the full "
                                "batch is exact gradient descent"),
                   schedule="constant η, no warm-up, no weight decay (every method)",
                   accuracy="of the final iterate"))
