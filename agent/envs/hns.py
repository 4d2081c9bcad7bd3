"""Human-normalised Atari scores and their aggregates (median, mean, IQM with bootstrap CIs).

Reference scores: the random-agent and human (professional game tester) scores of the 57
Atari games used by DQN (Mnih et al. 2015), Dopamine, DQN Zoo and rliable, as tabulated in
Badia et al. 2020, "Agent57: Outperforming the Atari Human Benchmark", appendix H, and in DQN
Zoo's ``dqn_zoo/atari_data.py``. Episodes start after up to 30 no-ops and are capped at
108,000 frames. A human-normalised score (HNS) maps the random score to 0 and the human score
to 1: ``(score - random) / (human - random)``.

Aggregates follow Agarwal et al. 2021, "Deep RL at the Edge of the Statistical Precipice"
(rliable): the median and mean over games of the per-game mean over runs, and the
interquartile mean (IQM, the mean of the middle 50 % of all run × game scores), each with a
stratified bootstrap confidence interval (runs resampled within each game). ``rliable`` (the
``atari`` extra) computes them when it imports; otherwise a numpy implementation of the same
estimators and the same percentile bootstrap is used.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable

import numpy as np

# game: (random score, human score)
REFERENCE_SCORES: dict[str, tuple[float, float]] = {
    "alien": (227.8, 7127.7),
    "amidar": (5.8, 1719.5),
    "assault": (222.4, 742.0),
    "asterix": (210.0, 8503.3),
    "asteroids": (719.1, 47388.7),
    "atlantis": (12850.0, 29028.1),
    "bank_heist": (14.2, 753.1),
    "battle_zone": (2360.0, 37187.5),
    "beam_rider": (363.9, 16926.5),
    "berzerk": (123.7, 2630.4),
    "bowling": (23.1, 160.7),
    "boxing": (0.1, 12.1),
    "breakout": (1.7, 30.5),
    "centipede": (2090.9, 12017.0),
    "chopper_command": (811.0, 7387.8),
    "crazy_climber": (10780.5, 35829.4),
    "defender": (2874.5, 18688.9),
    "demon_attack": (152.1, 1971.0),
    "double_dunk": (-18.6, -16.4),
    "enduro": (0.0, 860.5),
    "fishing_derby": (-91.7, -38.7),
    "freeway": (0.0, 29.6),
    "frostbite": (65.2, 4334.7),
    "gopher": (257.6, 2412.5),
    "gravitar": (173.0, 3351.4),
    "hero": (1027.0, 30826.4),
    "ice_hockey": (-11.2, 0.9),
    "jamesbond": (29.0, 302.8),
    "kangaroo": (52.0, 3035.0),
    "krull": (1598.0, 2665.5),
    "kung_fu_master": (258.5, 22736.3),
    "montezuma_revenge": (0.0, 4753.3),
    "ms_pacman": (307.3, 6951.6),
    "name_this_game": (2292.3, 8049.0),
    "phoenix": (761.4, 7242.6),
    "pitfall": (-229.4, 6463.7),
    "pong": (-20.7, 14.6),
    "private_eye": (24.9, 69571.3),
    "qbert": (163.9, 13455.0),
    "riverraid": (1338.5, 17118.0),
    "road_runner": (11.5, 7845.0),
    "robotank": (2.2, 11.9),
    "seaquest": (68.4, 42054.7),
    "skiing": (-17098.1, -4336.9),
    "solaris": (1236.3, 12326.7),
    "space_invaders": (148.0, 1668.7),
    "star_gunner": (664.0, 10250.0),
    "surround": (-10.0, 6.5),
    "tennis": (-23.8, -8.3),
    "time_pilot": (3568.0, 5229.2),
    "tutankham": (11.4, 167.6),
    "up_n_down": (533.4, 11693.2),
    "venture": (0.0, 1187.5),
    "video_pinball": (16256.9, 17667.9),
    "wizard_of_wor": (563.5, 4756.5),
    "yars_revenge": (3092.9, 54576.9),
    "zaxxon": (32.5, 9173.3),
}

ATARI_57: tuple[str, ...] = tuple(sorted(REFERENCE_SCORES))

METRICS: tuple[str, ...] = ("median", "mean", "iqm")


def squash_game_name(name: str) -> str:
    """A game's name reduced to lower case without underscores, from any of its spellings:
    ``space_invaders``, ``SpaceInvaders``, ``ALE/SpaceInvaders``, ``ALE/SpaceInvaders-v5``,
    ``SpaceInvadersNoFrameskip-v4`` all give ``spaceinvaders``. ALE ROM ids stay unique this
    way, so every spelling maps back to one ROM (the one place game names are normalised)."""
    base = name.strip()
    base = base.removeprefix("ALE/")
    base = re.sub(r"-v\d+$", "", base)
    base = base.removesuffix("NoFrameskip").removesuffix("Deterministic")
    return base.lower().replace("_", "")


def game_key(name: str) -> str | None:
    """The table key for a game or Atari env id, or None if it is not one of the 57."""
    squashed = squash_game_name(name)
    for key in REFERENCE_SCORES:
        if key.replace("_", "") == squashed:
            return key
    return None


def human_normalized_score(game: str, score: float | np.ndarray) -> float | np.ndarray:
    """``(score - random) / (human - random)`` for ``game`` (any spelling ``game_key`` takes).

    Raises ``KeyError`` naming the game when it is not one of the 57 with reference scores.
    """
    key = game_key(game)
    if key is None:
        raise KeyError(f"no human/random reference scores for '{game}'")
    random_score, human_score = REFERENCE_SCORES[key]
    normalised = (np.asarray(score, dtype=np.float64) - random_score) / (human_score - random_score)
    return float(normalised) if normalised.ndim == 0 else normalised


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean of all entries: drop the lowest and highest quarter, average the rest.

    Matches ``scipy.stats.trim_mean(scores, 0.25, axis=None)`` (and so rliable): with ``n``
    entries, ``floor(n / 4)`` are cut from each end.
    """
    flat = np.sort(np.asarray(scores, dtype=np.float64).ravel())
    cut = int(0.25 * flat.size)
    return float(flat[cut : flat.size - cut].mean())


def _estimates(samples: np.ndarray) -> np.ndarray:
    """[median, mean, IQM] of run × game matrices stacked as [..., runs, games] → [..., 3].

    Median and mean are over games of the per-game mean over runs (rliable's definitions).
    """
    per_game = samples.mean(axis=-2)
    flat = np.sort(samples.reshape(*samples.shape[:-2], -1), axis=-1)
    cut = int(0.25 * flat.shape[-1])
    middle = flat[..., cut : flat.shape[-1] - cut].mean(axis=-1)
    return np.stack([np.median(per_game, axis=-1), per_game.mean(axis=-1), middle], axis=-1)


def _numpy_bootstrap(
    scores: np.ndarray, reps: int, confidence: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Point estimates and percentile CIs from a bootstrap that resamples runs per game."""
    rng = np.random.default_rng(seed)
    runs, games = scores.shape
    columns = np.arange(games)
    # Chunks keep memory bounded at 50k reps × many runs × 57 games.
    chunk = max(1, 2_000_000 // scores.size)
    parts = []
    for start in range(0, reps, chunk):
        n = min(chunk, reps - start)
        rows = rng.integers(0, runs, size=(n, runs, games))
        parts.append(_estimates(scores[rows, columns]))
    samples = np.concatenate(parts)
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(samples, [tail, 100.0 - tail], axis=0)
    return _estimates(scores), np.stack([low, high])


def _rliable_bootstrap() -> Callable[..., tuple[np.ndarray, np.ndarray]] | None:
    """rliable's stratified bootstrap, or None when rliable (or its ``arch`` dependency) fails.

    Any exception counts as missing: arch 7.x does not import under pandas 3, for example.
    """
    try:
        from rliable import library, metrics
    except Exception:
        return None

    def run(
        scores: np.ndarray, reps: int, confidence: float, seed: int
    ) -> tuple[np.ndarray, np.ndarray]:
        def estimate(x: np.ndarray) -> np.ndarray:
            return np.array(
                [metrics.aggregate_median(x), metrics.aggregate_mean(x), metrics.aggregate_iqm(x)]
            )

        with warnings.catch_warnings():
            # arch deprecates the RandomState that rliable passes; the results are unchanged.
            warnings.simplefilter("ignore", FutureWarning)
            points, intervals = library.get_interval_estimates(
                {"scores": scores},
                estimate,
                reps=reps,
                confidence_interval_size=confidence,
                random_state=np.random.RandomState(seed),
            )
        return np.asarray(points["scores"]), np.asarray(intervals["scores"])

    return run


def aggregate_scores(
    score_matrix: np.ndarray,
    *,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    backend: str = "auto",
) -> dict[str, object]:
    """Median, mean and IQM of ``score_matrix`` [runs, games] with bootstrap CIs.

    The layout is rliable's: one row per run (seed), one column per game; every game needs the
    same number of runs. Returns ``{"median": {"value", "ci_low", "ci_high"}, "mean": …,
    "iqm": …, "runs": R, "games": G, "backend": "rliable" | "numpy"}``. ``backend="numpy"``
    forces the fallback; ``"auto"`` uses rliable when it imports and works.
    """
    scores = np.asarray(score_matrix, dtype=np.float64)
    if scores.ndim != 2 or scores.size == 0:
        raise ValueError(
            f"score_matrix must be a non-empty [runs, games] array, got {scores.shape}"
        )
    if not np.isfinite(scores).all():
        raise ValueError("score_matrix holds NaN or infinite scores")
    if backend not in ("auto", "rliable", "numpy"):
        raise ValueError(f"backend must be auto, rliable or numpy, got '{backend}'")
    used = "numpy"
    result = None
    if backend != "numpy":
        rliable_run = _rliable_bootstrap()
        if rliable_run is None and backend == "rliable":
            raise ImportError("rliable is not importable: pip install 'dopa-rl[atari]'")
        if rliable_run is not None:
            try:
                result = rliable_run(scores, reps, confidence, seed)
                used = "rliable"
            except Exception:
                # Version skew inside rliable's arch dependency: same estimators in numpy.
                if backend == "rliable":
                    raise
    if result is None:
        result = _numpy_bootstrap(scores, reps, confidence, seed)
    points, intervals = result
    out: dict[str, object] = {
        name: {
            "value": float(points[i]),
            "ci_low": float(intervals[0][i]),
            "ci_high": float(intervals[1][i]),
        }
        for i, name in enumerate(METRICS)
    }
    out.update(runs=int(scores.shape[0]), games=int(scores.shape[1]), backend=used)
    return out


def is_atari_game(name: str) -> bool:
    """True when ``name`` names one of the 57 games with reference scores."""
    return game_key(name) is not None


__all__ = [
    "ATARI_57",
    "METRICS",
    "REFERENCE_SCORES",
    "aggregate_scores",
    "game_key",
    "human_normalized_score",
    "iqm",
    "is_atari_game",
]
