"""The batch-size frame: McCandlish et al. (2018), Shallue et al. (2018), Zhang et al. (2019).

Theorems (derived): ``scaling.estimators_unbiased``, ``scaling.nqm_closed_form``;
hypotheses: ``scaling.tradeoff_curve``, ``scaling.nqm_predictions``,
``scaling.optimizers_on_one_plot``. Theory: :mod:`theory.scaling`; the shared sweep code:
:mod:`simulations.batch_scaling` (its digits sweep is also read by
``sngm.allowable_batch_real``); testbeds: :mod:`simulations.testbeds.nqm`,
:mod:`simulations.testbeds.batch_regression`, :mod:`simulations.testbeds.digits_mlp`.
Shared runs: the NQM (:data:`runs_nqm.nqm`), the regression sweep (:data:`runs.regression`)
and the digits sweep (:data:`simulations.batch_scaling.digits_sweep`).
"""
from simulations import batch_scaling as bsc
from simulations.claims.scaling import figures, rules, runs, runs_nqm
from simulations.registry import HYPOTHESIS, THEOREM, claim

PAPER = ("McCandlish, Kaplan, Amodei et al. (2018), arXiv 1812.06162; Shallue, Lee, Antognini et al. "
         "(2018), arXiv 1811.03600; Zhang, Li, Nado, Martens, Sachdeva, Dahl, Shallue, Grosse "
         "(NeurIPS 2019), arXiv 1907.04164")
FIDELITIES = ("quick", "full")
NQM_TESTBED = ("noisy quadratic model, d = 32, h_i = 1/i, gradient noise N(0, H/B), θ₀ᵢ = h_i^−½ (every "
               "coordinate starts at loss ½), target E L = 0.005·L(θ₀)")
REGRESSION = dict(n=256, d=16, noise_std=0.5, lambda_max=1.0, lambda_min=0.05, w0_distance=3.0)
REG_TESTBED = ("well-specified linear regression, n = 256, d = 16, anisotropic features (spectrum 1 … 0.05), "
               "label noise σ = 0.5, minibatches with replacement (exact Σ(w)), start at distance 3 from the "
               "optimum, target excess loss 3% of the initial")

# ----------------------------------------------------------------------- shared runs
_NQM = dict(d=32, x0="equal_loss", target_fraction=0.005, momenta=[0.5, 0.8, 0.9, 0.95, 0.98],
            emas=[0.5, 0.8, 0.9, 0.95, 0.98], precond_power=0.5, n_lr=24, n_refine=9, step_margin=1.2,
            sngm_momentum=0.9, sngm_eta_centre=0.03, sngm_eta_exponent=0.25, interval_confidence=0.995)
NQM = {"quick": dict(_NQM, batch_sizes=[1, 4, 16, 64, 256, 1024, 4096], n_seeds=24, sngm_n_eta=4, n_boot=400),
       "full": dict(_NQM, batch_sizes=[2.0 ** k for k in range(13)], n_seeds=48, sngm_n_eta=6, n_boot=1000)}
_REG = dict(REGRESSION, max_batch=64, batch_sizes=[1, 4, 16, 64], target_fraction=0.03, momentum=0.9,
            label_noise=0.5, covnoise_batch=4, n_steps=400, eta_ratio=2.0, curve_stride=4,
            interval_confidence=0.995,
            eta_centres=dict(sgd=0.07, msgd=0.007, sngm=0.01, label_noise=0.05, covnoise=0.16),
            eta_batch_exponent=dict(sgd=0.6, msgd=0.8, sngm=0.35, label_noise=0.75, covnoise=0.0))
REG = {"quick": dict(_REG, n_eta=4, n_seeds=6, n_boot=400),
       "full": dict(_REG, n_eta=6, n_seeds=64, n_boot=1000)}

# ----------------------------------------------------------------------------- claims
claim(
    "scaling.estimators_unbiased", paper=PAPER, kind=THEOREM, provenance="derived",
    testbed=f"{NQM_TESTBED} (at θ₀); {REG_TESTBED} (at the start)",
    statement=("With E|g_B|² = |G|² + tr Σ/B (sampling with replacement), the two-batch estimates "
               "(B_big|g_big|² − B_small|g_small|²)/(B_big − B_small) of |G|² and (|g_small|² − |g_big|²)/"
               "(1/B_small − 1/B_big) of tr Σ are unbiased, and so are their H-weighted versions for GᵀHG "
               "and tr(HΣ); hence B_simple = tr Σ/|G|² and B_noise = tr(HΣ)/(GᵀHG) from the estimates' "
               "means converge to the exact values."),
    configs={"quick": dict(b_small=4, b_big=64, n_pairs=10_000, nqm_d=32, regression=REGRESSION),
             "full": dict(b_small=4, b_big=64, n_pairs=40_000, nqm_d=32, regression=REGRESSION)},
    run=runs.estimators, rule=rules.estimators, figure=figures.estimators)

claim(
    "scaling.nqm_closed_form", paper=PAPER, kind=THEOREM, provenance="derived", testbed=NQM_TESTBED,
    statement=("The exact moment recursion of the NQM (SGD, heavy-ball momentum, H^−p preconditioning, "
               "iterate averaging) gives E L(θ_t) at every step, hence the steps to a target loss: the "
               "engine's Monte-Carlo mean loss agrees with it at every step within a family-wise Student-t "
               "interval, and the Monte-Carlo steps to target bracket the exact ones, at the hyperparameters "
               "the closed form finds optimal for each batch size."),
    configs={f: {"nqm": NQM[f]} for f in FIDELITIES}, uses={"nqm": runs_nqm.nqm},
    rule=rules.nqm_closed_form, figure=figures.nqm_closed_form)

claim(
    "scaling.tradeoff_curve", paper=PAPER, kind=HYPOTHESIS, provenance="paper, made precise",
    testbed=f"{NQM_TESTBED}; digits two-layer network (4 epochs, 85% validation accuracy target)",
    statement=("SGD's steps to target with a per-B tuned learning rate follow S(B) = S_min(1 + B_crit/B), "
               "i.e. (S/S_min − 1)(E/E_min − 1) = 1, within 25% at every batch size, on the NQM and on the "
               "digits network; and on the NQM B_crit = E_min/S_min is within 3× of the gradient noise scale "
               "B_noise = tr(HΣ)/E[GᵀHG] averaged over the SGD run at the batch size nearest B_crit."),
    configs={f: dict(nqm=NQM[f], digits=bsc.DIGITS[f], confidence=0.95, n_interval_findings=4, n_boot=1000,
                     fit_band=1.25, noise_band=3.0) for f in FIDELITIES},
    uses={"nqm": runs_nqm.nqm, "digits": bsc.digits_sweep},
    run=runs.tradeoff, rule=rules.tradeoff, figure=figures.tradeoff)

claim(
    "scaling.nqm_predictions", paper=PAPER, kind=HYPOTHESIS, provenance="paper",
    testbed=f"{NQM_TESTBED}; digits two-layer network (SGD, momentum SGD, LAMB; 4 epochs)",
    statement=("Zhang et al.: at small batch sizes momentum and preconditioning do not help (steps within "
               "a factor 1.25 of SGD's at the smallest B) but both raise the critical batch size; an "
               "exponential moving average of the iterates helps at small B (fewer than 0.8× SGD's steps). "
               "Checked in closed form and by Monte Carlo on the NQM, and for momentum (and LAMB as the "
               "preconditioned method) on the digits network."),
    configs={f: dict(nqm=NQM[f], digits=bsc.DIGITS[f], confidence=0.95, n_interval_findings=4, n_boot=1000,
                     no_help_band=[0.8, 1.25], helps_below=0.8) for f in FIDELITIES},
    uses={"nqm": runs_nqm.nqm, "digits": bsc.digits_sweep},
    run=runs.predictions, rule=rules.predictions, figure=figures.predictions)

claim(
    "scaling.optimizers_on_one_plot", paper=PAPER, kind=HYPOTHESIS, provenance="derived",
    testbed=(f"{NQM_TESTBED} (SGD, momentum, preconditioned, EMA with closed forms; SNGM by Monte Carlo); "
             f"{REG_TESTBED} (SGD, momentum SGD, SNGM, label-noise SGD with fresh N(0, 0.5²) label noise, "
             "SGD + full Σ(w) noise emulating B = 4)"),
    statement=("Every optimizer whose gradient noise shrinks with B (SGD, momentum SGD, preconditioned SGD, "
               "iterate averaging and SNGM on the NQM; SGD, momentum SGD, SNGM and label-noise SGD on "
               "regression) has, with a per-B tuned learning rate, a critical batch size inside the grid of "
               "batch sizes; label noise raises the critical batch size over SGD's; SGD with covariance noise "
               "emulating batch B_s gains no steps beyond B_s (S(B)/S_SGD(B_s) within [0.8, 1.25])."),
    configs={f: dict(nqm=NQM[f], regression=REG[f], no_gain_band=[0.8, 1.25]) for f in FIDELITIES},
    uses={"nqm": runs_nqm.nqm, "regression": runs.regression},
    rule=rules.one_plot, figure=figures.one_plot)
