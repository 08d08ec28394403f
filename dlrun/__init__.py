"""dlrun: a command-line experiment runner and hyperparameter sweeper for deep learning on JAX."""

__version__ = "0.1.0"
