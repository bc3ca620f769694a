"""Testbeds: immutable pytrees holding data and constants, with pure functions.

The protocol the engine relies on (duck-typed; every testbed is registered with
``jax.tree_util.register_dataclass`` so arrays are leaves and sizes are static):

    init(*, key) -> params                 # the starting point (may ignore key)
    gradient(params, *, key) -> grads      # the stochastic gradient oracle of one step
    loss(params) -> scalar                 # the full objective

A testbed whose oracle depends on a swept hyperparameter (label-noise strength, an
annealed pre-activation noise) sets the class attribute ``gradient_uses_hyperparams =
True``; the engine then calls ``gradient(params, *, key, hparams, step)`` with the
configuration's (traced) hyperparameters and the (traced) step index, so sweeping them
never recompiles.

Exact quantities that theory needs (Hessian, gradient covariance, optimum) are NumPy
float64 methods or properties on the testbed. The engine casts floating leaves to the
simulation dtype, so a testbed may hold float64 NumPy arrays.
"""
from simulations.testbeds.linear_regression import LinearRegression, make_linear_regression
from simulations.testbeds.quadratic import NoisyQuadratic, make_noisy_quadratic

__all__ = ["NoisyQuadratic", "make_noisy_quadratic", "LinearRegression", "make_linear_regression"]
