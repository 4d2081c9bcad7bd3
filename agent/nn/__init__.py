"""Torsos, heads, the distributional losses and ER-DQN's imputation."""
