"""Verdict rule of Li, Wei & Ma's patch claim (digits with the authors' patch recipe scaled
down): the premise gate (the regime gate of the P/Q claims on the training curves, and the
small LR learning the patch at all), then the three parts of the claim, each from a 95%
Student-t interval over data draws (split, patterns and assignment redrawn per draw;
per-draw values are means over seeds). The earlier strength grid is reported, not judged."""
from __future__ import annotations

from simulations import stats
from simulations.claims.large_lr.rules import (GATE_RULE, GATE_WORDS, YES_NO, at_least, below, fmt_ci,
                                               gate_findings, interval, paired, relation)
from simulations.claims.large_lr.runs_patch import LEARNED, pre_anneal_epochs
from simulations.registry import Finding, Verdict, decide

PATCH_CHANCE_CAP = 0.2  # "near chance" for the ten-class patch-only images (chance 0.1)
NONINFERIORITY = 0.005  # "clean accuracy large >= small": CI lower end at or above −0.5 point


def _gate(ev, large, small):
    """Regime-gate findings of an arm pair from the per-epoch training loss and accuracy."""
    a = int(ev.anneal_epoch)
    win = pre_anneal_epochs(ev.train_loss.shape[-1] - 1, a)
    return gate_findings(ev.train_loss[:, :, win].mean(-1), ev.train_acc[:, :, a], ev.train_acc[:, :, -1],
                         large, small)


def patch(ev, cfg):
    po, cl = ev.patch_only, ev.clean  # (arm, draw, epoch)
    a, e1 = int(ev.anneal_epoch), int(ev.matched_epoch)
    window = pre_anneal_epochs(po.shape[-1] - 1, a)
    first = interval(po[1, :, e1])
    final_small = interval(po[1, :, -1])
    large = interval(po[0][:, window].mean(-1))
    noisy = interval(po[2][:, window].mean(-1))
    diff = paired(cl[0, :, -1], cl[1, :, -1])
    premise, numbers = _gate(ev, 0, 1)
    learned = at_least(final_small[1], final_small[2], LEARNED)
    gate_ok = stats.all_of([f.supported for f in premise] + [learned])
    found = dict(small_immediately=at_least(first[1], first[2], LEARNED),
                 large_before_anneal=below(large[1], large[2], PATCH_CHANCE_CAP),
                 # non-inferiority: yes iff the lower end >= −margin; no iff the upper end < 0
                 clean_large_ge_small=(True if diff[1] >= -NONINFERIORITY else
                                       False if diff[2] < 0 else None))
    gate_text = ("; ".join(f"{f.name}: {f.detail} ({YES_NO[f.supported]})" for f in premise)
                 + f"; small LR learns the patch: final patch-only {fmt_ci(final_small)} vs {LEARNED} "
                 f"({YES_NO[learned]})")
    status, reason = decide(
        [Finding(f"small LR: patch-only acc at epoch {e1} >= {LEARNED}", found["small_immediately"], fmt_ci(first)),
         Finding("large LR: patch-only acc near chance before annealing", found["large_before_anneal"],
                 fmt_ci(large)),
         Finding("final clean test acc large >= small", found["clean_large_ge_small"], fmt_ci(diff, "+.4f"))],
        gate=Finding("premise", gate_ok, gate_text))
    noise_premise, noise_numbers = _gate(ev, 2, 1)
    parts = {k: YES_NO[v] for k, v in found.items()}
    table = [f"k={c.patch_size} ‖ζ‖/‖z‖={c.offset_norm:g}: patch-only small "
             f"{c.small_epoch1:.2f}/{c.small_pre_anneal:.2f}/{c.small_final:.2f}, large "
             f"{c.large_anneal_epoch1:.2f}/{c.large_anneal_pre_anneal:.2f}/{c.large_anneal_final:.2f} "
             f"(epoch 1/pre-anneal/final); clean gain {c.clean_gain:+.3f}" for c in ev.grid]
    return Verdict(
        status=status,
        summary=(f"[regime: Nesterov {cfg['momentum']}, weight decay {cfg['weight_decay']:g}, B = "
                 f"{cfg['batch_size']}, layer-normalized ReLU network {cfg['depth']}×{cfg['width']}; η "
                 f"{cfg['eta1']:g} → {cfg['eta2']:g} at epoch {a} of {cfg['epochs']} vs {cfg['eta2']:g} "
                 f"vs {cfg['eta2']:g} + noise {cfg['noise_std']:g}; centred {cfg['patch_size']}×"
                 f"{cfg['patch_size']} patch; premise gate {GATE_WORDS[gate_ok]}] small LR at epoch {e1} "
                 f"(the paper's first epoch in LR·steps): patch-only {fmt_ci(first)} "
                 f"{relation(found['small_immediately'], f'>= {LEARNED}', f'< {LEARNED}')} "
                 f"({parts['small_immediately']}); large LR before annealing: {fmt_ci(large)} "
                 f"{relation(found['large_before_anneal'], f'<= {PATCH_CHANCE_CAP}', f'> {PATCH_CHANCE_CAP}')} "
                 f"({parts['large_before_anneal']}); final clean test acc large − small "
                 f"{fmt_ci(diff, '+.4f')} ({parts['clean_large_ge_small']}); small + noise before "
                 f"annealing {fmt_ci(noisy)}; exploratory grid of {len(table)} cells in measured.grid"
                 + ("" if status == "confirmed" else f". {reason}")),
        measured=dict(parts=parts, premise=dict(numbers, small_learns_patch=list(final_small),
                                                passed=YES_NO[gate_ok]),
                      noise_arm_premise=dict(noise_numbers, passed=YES_NO[stats.all_of(
                          [f.supported for f in noise_premise])]),
                      small_patch_only_matched_epoch=list(first), large_patch_only_before_anneal=list(large),
                      noise_patch_only_before_anneal=list(noisy), clean_difference=list(diff),
                      final_clean={arm: float(cl[i, :, -1].mean()) for i, arm in enumerate(ev.arms)},
                      grid=table),
        predicted=dict(small_immediately=f">= {LEARNED}", large_before_anneal=f"<= {PATCH_CHANCE_CAP} (chance 0.1)",
                       clean_difference=">= 0"),
        rule=("95% t-intervals over data draws (per-draw means over seeds). Gate (premise): "
              + GATE_RULE.replace("records with anneal/2 <= step <= anneal", "epochs anneal/2..anneal")
              + f", on the recipe's training set as loaded once; and the small LR learns the patch "
              f"(final patch-only interval at or above {LEARNED}); else inconclusive. (a) small-LR "
              f"patch-only accuracy at the first epoch whose Σ η reaches the paper's first epoch "
              f"(391 × 0.004), at most the anneal epoch: yes iff lower end >= {LEARNED}, no iff upper "
              f"end < {LEARNED}; (b) large-LR patch-only accuracy averaged over epochs anneal/2..anneal: "
              f"yes iff upper end <= {PATCH_CHANCE_CAP}, no iff lower end > {PATCH_CHANCE_CAP}; (c) "
              f"final clean test accuracy large − small (paired): yes iff lower end >= "
              f"-{NONINFERIORITY} (non-inferiority), no iff upper end < 0. Confirmed iff the gate "
              "passes and all are yes; refuted iff it passes and any is no; else inconclusive. The "
              "strength grid (earlier recipe) is exploratory and does not enter the verdict"),
        sizes=dict(cfg, n_train=ev.n_train, steps_per_epoch=ev.steps_per_epoch, matched_epoch=e1))
