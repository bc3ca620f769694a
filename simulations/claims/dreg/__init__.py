"""Claims of Yuan, Hua, Zhou & Yu, "Contrastive Weight Regularization for Large Minibatch
SGD" (arXiv 2011.08968, 2020): DReg replicates a layer and pushes the two copies apart.

Theorems (derived): ``dreg.reparametrization``, ``dreg.inert_at_copy``; hypothesis:
``dreg.large_batch`` with its map over λ, layer, regularizer, momentum and batch size.
The family and its exact facts: :mod:`theory.dreg`; the replicated network:
:mod:`simulations.testbeds.dreg`; the regularizer and the per-layer learning-rate
factor: the DReg section of :mod:`simulations.optimizers`; the runs in this package.
"""
from simulations.claims.dreg import figures, rules, runs, runs_sweep
from simulations.registry import HYPOTHESIS, THEOREM, claim

PAPER = "Yuan, Hua, Zhou, Yu (2020), Contrastive Weight Regularization for Large Minibatch SGD, arXiv 2011.08968"
FAMILY = ("W_eff = (W + W′)/κ, loss L_task + λR(W, W′), R = cosine (default), unit-wise cosine or "
          "−min(‖W − W′‖², m); copies start at (κ/2)(W₀ ± ρD)")
DIGITS = "digits two-layer ReLU network (64-64-10), both weight layers replicated, a digits split from the key"

# η = 0.25 (η/(1 − β) = 2.5 with momentum): the training map barely amplifies round-off over
# 48 steps, the regime of the float rule (at η = 0.5, β = 0.9 differences of a few ulps grow
# exponentially after ~30 steps: chaos of the trajectory, not a property of DReg)
_EXACT = dict(batch_size=64, learning_rate=0.25, momenta=[0.0, 0.9], kappas=[1.0, 2.0],
              offsets=[0.0, 0.01, 1.0], lam=1.0, margin_lam=0.1, margin=1e4, ulps=16.0)
_EXACT_CFG = {"quick": {"exact": dict(_EXACT, n_steps=32, n_seeds=2)},
              "full": {"exact": dict(_EXACT, n_steps=48, n_seeds=4)}}

claim(
    "dreg.reparametrization", paper=PAPER, kind=THEOREM, provenance="derived", testbed=DIGITS,
    statement=("In the DReg family (" + FAMILY + "), ∂L_task/∂W = ∂L_task/∂W′ = G/κ, so with λ = 0 "
               "SGD (plain or heavy-ball) on (W, W′) moves W_eff exactly as SGD on the plain network "
               "with that layer's learning rate multiplied by 2/κ² (the sum form doubles it); a factor "
               "κ²/2 on the copies gives back the plain network; W − W′ never moves at λ = 0 (only the "
               "regularizer separates the copies); and a regularizer of W − W′ alone (the margin form) "
               "leaves W_eff on the learning-rate control's trajectory for every λ."),
    configs=_EXACT_CFG, uses={"exact": runs.exact},
    rule=rules.reparametrization, figure=figures.reparametrization)

claim(
    "dreg.inert_at_copy", paper=PAPER, kind=THEOREM, provenance="derived", testbed=DIGITS,
    statement=("At an exact copy W′ = W the gradient of each R of the family vanishes (the cosine forms "
               "are at their maximum, the margin form at zero distance) and every step treats the two "
               "copies alike, so they stay equal and DReg with any λ trains exactly as λ = 0; a perturbed "
               "(ρ = 0.01) or independently drawn (ρ = 1) copy makes the first step move W − W′ by "
               "−ηλ(∇_W R − ∇_W′ R)."),
    configs=_EXACT_CFG, uses={"exact": runs.exact},
    rule=rules.inert_at_copy, figure=figures.inert_at_copy)


def _arm(kind, layer=None, reg=None, lam=0.0, beta=0.0):
    return dict(kind=kind, layer=layer, reg=reg, lam=lam, beta=beta)


# the primary cell and its two comparators run at every batch size
_ARMS = [_arm("baseline"), _arm("control", "w1"), _arm("dreg", "w1", "cosine", 1.0)]
# the map at the large batch: λ, regularizer, layer, momentum
_MAP = [_arm("control", "w2"), _arm("dreg", "w1", "cosine", 0.1), _arm("dreg", "w1", "cosine", 10.0),
        _arm("dreg", "w1", "unitwise", 1.0), _arm("dreg", "w1", "margin", 1.0),
        _arm("dreg", "w2", "cosine", 1.0),
        _arm("baseline", beta=0.9), _arm("control", "w1", beta=0.9),
        _arm("dreg", "w1", "cosine", 1.0, beta=0.9)]
# the Gaussian mixture: 16 clusters per class, no label noise (with 10% flipped labels a
# baseline pilot showed no large-batch gap at this budget: small batches over-fit them)
_MIXTURE = dict(clusters=16, separation=3.3, noise=2.2, label_noise=0.0)
_SWEEP = dict(testbeds=["digits", "mixture"], mixture=_MIXTURE, kappa=1.0, offset=1.0, margin=1000.0,
              epochs=20, records=20, seeds_per_split=2, arms=_ARMS, large_batch=256)

claim(
    "dreg.large_batch", paper=PAPER, kind=HYPOTHESIS, provenance="paper, made precise",
    testbed=("digits two-layer network (real data) and the same network on a 10-class Gaussian "
             "mixture with the digits sizes; B from 16 to the full batch 1079 at 20 epochs"),
    statement=("At a large batch (B = 256 ≈ n/4, a fixed budget of 20 epochs, η tuned per arm by the "
               "same rule), DReg (first layer replicated, κ = 1, independent copies, cosine "
               "regularizer, λ = 1) reaches a target training loss in at most 0.9× the steps of the "
               "baseline AND of the learning-rate control (the plain network with that layer's "
               "learning rate doubled, which λ = 0 DReg equals), and beats both in test accuracy by "
               "more than 0.5 points where the baseline shows a large-batch gap; the map over λ, "
               "layer, regularizer, momentum and B says where it holds."),
    configs={"quick": {"sweep": dict(_SWEEP, batch_sizes=[256], small_batch=None, n_splits=3, epochs=10,
                                     eta_exponents=[0, 1, 2, 3, 4], map_arms=[_MAP[4]]),
                       "primary": dict(layer="w1", reg="cosine", lam=1.0)},
             "full": {"sweep": dict(_SWEEP, batch_sizes=[16, 64, 256, 1079], small_batch=16, n_splits=5,
                                    eta_exponents=[-3, -2, -1, 0, 1, 2, 3, 4], map_arms=_MAP),
                      "primary": dict(layer="w1", reg="cosine", lam=1.0)}},
    uses={"sweep": runs_sweep.sweep}, rule=rules.large_batch, figure=figures.large_batch)
