"""dopa-rl: deep distributional RL with dopamine-cell probes (Dabney et al. 2020)."""

__version__ = "0.1.0"
