"""Claims of Kou, You, Long & Wang (NeurIPS 2020): Stochastic Normalization.

Theorem ``stochnorm.layer`` (the layer's identities: p = 1 is batch normalization, the
exact moments over the mask, one draw per channel per forward pass); hypothesis
``stochnorm.few_shot`` (few-shot fine-tuning on scikit-learn's digits, behind a transfer
gate). The layer: :mod:`simulations.layers`; formulas: :mod:`theory.stochnorm`; the
fine-tuning testbed: :mod:`simulations.testbeds.digits_finetune`.
"""
from simulations.claims.stochnorm import figures, rules, runs
from simulations.registry import HYPOTHESIS, THEOREM, claim

PAPER = "Kou, You, Long & Wang, Stochastic Normalization, NeurIPS 2020"

_LAYER = dict(batch=8, channels=6, readout=3, ps=[0.25, 0.5, 0.9], draw_p=0.5)
claim(
    "stochnorm.layer", paper=PAPER, kind=THEOREM, provenance="derived",
    testbed="one random batch (m = 8, C = 6) with moving statistics unlike its own, float32 "
            "layer against float64 equations",
    statement=("StochNorm with p = 1 is batch normalization in training mode, running-statistics "
               "update included (momentum 0.1, unbiased variance); evaluation is batch-norm "
               "evaluation; the running statistics do not depend on the mask; over the mask "
               "s_c ~ Bernoulli(p), E y = γ[(1−p)x̂_moving + p x̂_batch] + β and Var y = "
               "p(1−p)γ²(x̂_batch − x̂_moving)², and a linear readout z = yW has Cov(z_ij, z_kj') = "
               "p(1−p)Σ_c γ_c² W_cj W_cj' d_ic d_kc (all 2^C masks enumerated); s is drawn once per "
               "channel per forward pass, shared by the batch."),
    configs={"quick": dict(_LAYER, n_draws=2000), "full": dict(_LAYER, n_draws=20000)},
    run=runs.layer, rule=rules.layer, figure=figures.layer)

_FEW = dict(widths=[64], gamma=2.0, n_max=50, n_val=15, batch_size=20, pretrain_eta=0.05,
            head_multiplier=10.0, weight_decay=5e-4, momentum=0.9, p_main=0.5,
            small_max=5, large_min=20, threshold=0.01, confidence=0.95)
claim(
    "stochnorm.few_shot", paper=PAPER, kind=HYPOTHESIS, provenance="paper, made precise",
    testbed=("scikit-learn's digits: a 64-64-10 network with (stochastic) batch normalization, "
             "pretrained with BN on 50 images per digit from one half of the images, fine-tuned "
             "(new head) on the other half with intensities x ↦ x², from n labelled images per "
             "class; per seed its own pretrained network, training subset, validation/test split "
             "and head"),
    statement=("Fine-tuning a pretrained network from few labelled target examples, StochNorm(0.5) "
               "reaches a higher test accuracy than BN fine-tuning at small n (by more than 1 pp, "
               "n <= 5), the gain shrinking as n grows (n >= 20), and the gain vanishes (at most "
               "1 pp) when the pretrained moving statistics are re-initialized; premise: "
               "fine-tuning beats training from scratch at small n."),
    # η: the body's learning rate (the head's is 10η); pretrained arms prefer small η at
    # small n, so the full grid reaches down to 3e-4
    configs={"quick": dict(_FEW, shots=[1, 5, 20], etas=[1e-3, 1e-2], p_grid=[0.5],
                           n_tune_seeds=4, n_eval_seeds=16, n_steps=60),
             # full: 6 n × 5 η × 7 arms × 32 seeds; the p grid stops at 3 values for time
             "full": dict(_FEW, shots=[1, 2, 5, 10, 20, 50], etas=[3e-4, 1e-3, 3e-3, 1e-2, 3e-2],
                          p_grid=[0.25, 0.5, 0.75], n_tune_seeds=8, n_eval_seeds=24, n_steps=100)},
    run=runs.few_shot, rule=rules.few_shot, figure=figures.few_shot)
