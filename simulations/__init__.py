"""Monte-Carlo side of the toolkit: engine, optimizers, testbeds, claims, report, CLI."""
__version__ = "0.1.0"
