"""Claims of Mobahi, Farajtabar & Bartlett (NeurIPS 2020): self-distillation in Hilbert space.

Theorems ``selfdistill.closed_form``, ``.amplification``, ``.sparsification``,
``.collapse`` are checked exactly on every instance of one family (the 11-point sinusoid
toy and K = 40 noisy sinusoids over seeds; a Laplace kernel and a jittered Gaussian
kernel; several tolerances ε), computed once per key by the shared run
:data:`runs.family`; the hypothesis ``selfdistill.u_shape`` gets a verdict from seed
counts with Wilson intervals. Formulas: :mod:`theory.self_distillation`; data:
:mod:`simulations.testbeds.kernel_regression`.
"""
from simulations.claims.self_distillation import figures, rules, runs
from simulations.registry import HYPOTHESIS, THEOREM, claim
from simulations.testbeds.kernel_regression import NOISE_SD

PAPER = ("Mobahi, Farajtabar & Bartlett, Self-Distillation Amplifies Regularization in "
         "Hilbert Space, NeurIPS 2020 (arXiv 2002.05715)")
FAMILY = ("11-point sinusoid toy and K = 40 noisy sinusoids (σ = 0.3) over seeds; Laplace "
          "(ℓ = 0.2) and Gaussian (ℓ = 0.1, jitter 1e-6) kernels; several tolerances ε")
_FAMILY = dict(noise_sd=NOISE_SD, n_points=40, n_test=201, kernels=["laplace", "gaussian"],
               length_laplace=0.2, length_gaussian=0.1, toy_eps=[0.005, 0.02, 0.1],
               eps_grid=[0.005, 0.01, 0.03, 0.09], taus=[1e-1, 1e-2, 1e-4],
               # extra instances with ε = factor·‖y‖²/K: the first round collapses
               collapse_eps_factors=[1.0, 1.5])
_THEOREM = dict(paper=PAPER, kind=THEOREM, testbed=FAMILY, uses={"family": runs.family},
                configs={"quick": {"family": dict(_FAMILY, n_seeds=3)},
                         "full": {"family": dict(_FAMILY, n_seeds=20)}})

claim(
    "selfdistill.closed_form", provenance="paper", **_THEOREM,
    statement=("Distilling in the eigenbasis G = VᵀDV, y_t = Vᵀ B_t V y₀ and f_t(x) = g_xᵀ Vᵀ "
               "D⁻¹ B_{t+1} V y₀ with B_t = Π_{i<t} diag(d_k/(c_i + d_k)), equals refitting "
               "constrained kernel ridge regression to the previous round's predictions, on "
               "and off the training points."),
    rule=rules.closed_form, figure=figures.closed_form)

claim(
    "selfdistill.amplification", provenance="paper, made precise", **_THEOREM,
    statement=("The ridge constant grows every round, c_{t+1} > c_t; with r_t = ‖y_t‖/√(Kε) > 1 "
               "and κ = d_max/d_min: d_min/(r_t−1) ≤ c_t ≤ d_max/(r_t−1) and "
               "r_t(r_t−1)/(r_t−1+κ) ≤ r_{t+1} ≤ r_t κ(r_t−1)/(1+κ(r_t−1)); also (derived "
               "here) r_t − 1 ≤ r_{t+1} ≤ √(r_t² − 1)."),
    rule=rules.amplification, figure=figures.amplification)

claim(
    "selfdistill.sparsification", provenance="paper", **_THEOREM,
    statement=("For eigenvalues d_j < d_k the ratio B_t[j]/B_t[k] strictly decreases with the "
               "round t, and the number of k with B_t[k]/max B_t > τ never increases."),
    rule=rules.sparsification, figure=figures.sparsification)

claim(
    "selfdistill.collapse", provenance="paper, made precise", **_THEOREM,
    statement=("The first round with ‖y_t‖² ≤ Kε gives f ≡ 0 and every later round stays 0; "
               "for r₀ > 1 the number of non-trivial rounds T satisfies (r₀−1)/κ ≤ T ≤ "
               "κ(r₀−1)+1 (far from tight at the κ of real kernels; derived here: "
               "⌈r₀−1⌉ ≤ T ≤ ⌈r₀²−1⌉), and T = 0 for r₀ ≤ 1."),
    rule=rules.collapse, figure=figures.collapse)

_USHAPE = dict(noise_sd=NOISE_SD, n_points=40, n_test=201, kernel="laplace", length_scale=0.2,
               eps_over_noise_var=[1 / 18, 1 / 9, 1 / 3, 1 / 2, 1.0],
               overfit_max=1 / 9, not_overfit_min=1 / 2, alpha=0.05)
claim(
    "selfdistill.u_shape", paper=PAPER, kind=HYPOTHESIS, provenance="paper, made precise",
    testbed="K = 40 noisy sinusoids (σ² = 0.09), Laplace kernel ℓ = 0.2, ε = σ²/18 … σ²",
    statement=("Test error against the distillation round is U-shaped (a round after the "
               "teacher is best, before the collapse) when the teacher over-fits (ε ≤ σ²/9, "
               "well below the label-noise variance), and the teacher is best when it does not "
               "(ε ≥ σ²/2)."),
    configs={"quick": dict(_USHAPE, n_seeds=20), "full": dict(_USHAPE, n_seeds=100)},
    run=runs.u_shape, rule=rules.u_shape, figure=figures.u_shape)
