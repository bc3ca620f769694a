"""Claims of Zhao, Shi, Xie, Li (arXiv 2007.13985): SNGM vs MSGD at large batch sizes.

Theorem (derived): ``sngm.bound``; hypotheses: ``sngm.bmax_linear_in_C``,
``sngm.lsmooth_parity``, ``sngm.relaxed_advantage``, ``sngm.no_lower_batch_limit`` and
(paper) ``sngm.allowable_batch_real``. Bounds: :mod:`theory.sngm`; testbeds:
:mod:`simulations.testbeds.smooth` and :mod:`simulations.testbeds.digits_mlp`; sweeps:
:mod:`simulations.sweep` (methods × B × η × seeds in one engine call). One sweep per
(testbed, start, sizes) is the shared run :data:`runs.sweep`, read by every claim that
needs it; the digits sweep across batch sizes is the shared run
:data:`simulations.batch_scaling.digits_sweep` (also read by the batch-size frame's claims);
runs, rules and figures in this package (``*_digits``: the allowable-batch claim).
"""
from simulations.claims.sngm import figures, figures_digits, rules, rules_digits, runs, runs_digits
from simulations import batch_scaling as bsc
from simulations.registry import HYPOTHESIS, THEOREM, claim

PAPER = "Zhao, Shi, Xie, Li (2020), arXiv 2007.13985"
LSMOOTH = ("F(w) = Σ_j (w_j²/2 + 3 cos w_j), d = 10, L = 4, w₀ = 3·1; gradient ∇F + N(0, σ²/(dB) I), "
           "σ = 1; budget C gradient computations, T = C/B steps")
L0L1 = ("F(w) = Σ_j (cosh w_j + 3 cos w_j), d = 10, (L0, L1)-smooth, w₀ = x0·1; gradient "
        "∇F + N(0, σ²/(dB) I), σ = 1; budget C, T = C/B steps")

_LS = dict(testbed="lsmooth", x0=3.0, d=10, sigma=1.0, beta=0.9, eps=0.2,
           sngm_eta_range=[1e-3, 1.0], msgd_eta_range=[1e-5, 1.0])
LS = {"quick": dict(_LS, batch_sizes=[4, 8, 16, 32, 64, 128, 256], budgets=[2 ** 10, 2 ** 12],
                    n_eta=8, n_seeds=4),
      "full": dict(_LS, batch_sizes=[4, 8, 16, 32, 64, 128, 256, 512], budgets=[2 ** 12, 2 ** 14],
                   n_eta=16, n_seeds=8)}
# the η grids of the old ten-point (L0, L1) grids without their two outer points, which never
# matter (SNGM's tail floor at η >= 0.46 is above ε; MSGD at 1e-6 barely leaves the start and at
# 0.1 diverges from every start): the same points, eight per method
_L01 = dict(_LS, testbed="l0l1", x0=12.0, sngm_eta_range=[1e-3, 10 ** (-3 + 7 / 3)],
            msgd_eta_range=[10 ** (-6 + 5 / 9), 10 ** (-6 + 40 / 9)],
            batch_sizes=[1, 2, 4, 8, 16, 32, 64, 128], n_eta=8)
L01 = {"quick": dict(_L01, budgets=[2 ** 9, 2 ** 11], n_eta=6, n_seeds=3),
       "full": dict(_L01, budgets=[2 ** 12, 2 ** 14], n_seeds=5)}
#: starts of sngm.relaxed_advantage (one batch grid: the three sweeps share one compiled program)
_STARTS = [dict(x0=6.0), dict(x0=9.0), dict(x0=12.0)]
FULL_LS = LS["full"]
_BOOT = dict(n_boot=2000, confidence=0.95)
FIDELITIES = ("quick", "full")

claim(
    "sngm.bound", paper=PAPER, kind=THEOREM, provenance="derived", testbed=LSMOOTH,
    statement=("On the L-smooth testbed, for every (B, η): (1/T)Σ E‖∇F(w_t)‖ <= (1-β)Δ/(ηT) + "
               "(1+β)Lη/(2(1-β)²) + 2σ/√B for SNGM, and (1/T)Σ E‖∇F‖² <= 4(1-β)Δ/(ηT) + "
               "c_β Lησ²/((1-β)B) for MSGD with η <= (1-β)²/(4L), T = C/B."),
    configs={f: {"sweep": LS[f]} for f in FIDELITIES}, uses={"sweep": runs.sweep},
    run=runs.bound, rule=rules.bound, figure=figures.bound)

claim(
    "sngm.bmax_linear_in_C", paper=PAPER, kind=HYPOTHESIS, provenance="derived",
    testbed=f"L-smooth testbed ({LSMOOTH}) and (L0, L1)-smooth testbed from x0 = 12 ({L0L1})",
    statement=("The largest admissible batch grows linearly with the budget: B_max(ε, 4C) ≈ "
               "4·B_max(ε, C) within one grid step (a factor in {2, 4, 8}), for SNGM and MSGD on "
               "both testbeds."),
    configs={f: dict(_BOOT, testbeds={"lsmooth": LS[f], "l0l1": L01[f]}) for f in FIDELITIES},
    run=runs.bmax_linear, rule=rules.bmax_linear, figure=figures.bmax_linear)

claim(
    "sngm.lsmooth_parity", paper=PAPER, kind=HYPOTHESIS, provenance="derived", testbed=LSMOOTH,
    statement=("Under L-smoothness both methods allow a batch of the same order: "
               "B_max(SNGM)/B_max(MSGD) ∈ [1/2, 2] at every budget."),
    configs={f: dict(_BOOT, sweep=LS[f]) for f in FIDELITIES}, uses={"sweep": runs.sweep},
    run=runs.parity, rule=rules.parity, figure=figures.parity)

claim(
    "sngm.relaxed_advantage", paper=PAPER, kind=HYPOTHESIS, provenance="paper, made precise",
    testbed=f"(L0, L1)-smooth testbed, x0 ∈ {{6, 9, 12}} ({L0L1})",
    statement=("On the (L0, L1)-smooth testbed from a far start, B_max(SNGM)/B_max(MSGD) >= 4 and "
               "the ratio grows with x0; MSGD's best η sits within a factor 4 of the heavy-ball cap "
               "2(1+β)/λ_max(w0)."),
    configs={f: dict(_BOOT, sweep=L01[f], starts=_STARTS, eta_factor=4.0) for f in FIDELITIES},
    run=runs.relaxed, rule=rules.relaxed, figure=figures.relaxed)

claim(
    "sngm.no_lower_batch_limit", paper=PAPER, kind=HYPOTHESIS, provenance="derived", testbed=LSMOOTH,
    statement=("The bound's requirement B >= 16σ²/ε² is not needed in practice: SNGM at B = 1 "
               "reaches a median tail metric <= ε (a measured looseness of the bound)."),
    configs={"quick": dict(_LS, budgets=[2 ** 12], n_eta=8, n_seeds=4, confidence=0.95),
             "full": dict(_LS, budgets=[2 ** 14], n_eta=6, n_seeds=16, confidence=0.95)},
    run=runs.no_lower, rule=rules.no_lower, figure=figures.no_lower)

claim(
    "sngm.allowable_batch_real", paper=PAPER, kind=HYPOTHESIS, provenance="paper, made precise",
    testbed=("scikit-learn digits (1797 8×8 images), stratified train/validation/test splits 60/20/20% "
             "drawn from the key; two-layer ReLU network, width 64; minibatches of B indices with "
             "replacement (k micro-batches of 8 accumulated), the full batch exact; a fixed budget of "
             "4 epochs at every B"),
    statement=("At a fixed epoch budget, SNGM's allowable batch size (the largest B whose test accuracy, "
               "with η tuned per (method, B) on validation seeds, is within 1 pp of the method's best over "
               "the two smallest B) is at least MSGD's, and at the largest batch (the full training split) "
               "SNGM's test accuracy is strictly higher than MSGD's; SGD, optax's LARS and LAMB as further "
               "baselines."),
    configs={f: dict(digits=bsc.DIGITS[f], margin=0.01, n_reference=2, confidence=0.95,
                     n_boot=2000) for f in FIDELITIES},
    uses={"digits": bsc.digits_sweep},
    run=runs_digits.allowable_batch, rule=rules_digits.allowable_batch, figure=figures_digits.allowable_batch)
