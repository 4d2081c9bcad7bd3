"""Errors a user can cause. Scripts print them as one line and exit non-zero."""


class UserError(ValueError):
    """Base class: a bad value from the user (config, path, data file). Message is one line."""


class ConfigError(UserError):
    """A config value is unknown, of the wrong type, or out of range."""


class CheckpointError(UserError):
    """A checkpoint is missing, corrupt, truncated, or does not match the config."""


class DataError(UserError):
    """A recorded-cell file or tidy cell table is malformed."""


class TrainingDiverged(RuntimeError):
    """A loss or parameter became non-finite; the last good checkpoint is kept."""


class Preempted(SystemExit):
    """Raised after a SIGTERM/SIGUSR1 checkpoint so the process exits with EXIT_PREEMPTED."""


class StopRequested(Exception):
    """A long step (an evaluation, gradient steps, probe rollouts) saw a pre-emption signal
    and stopped early; the trainer then checkpoints and raises ``Preempted``."""


EXIT_PREEMPTED = 3  # "checkpoint written, run again (or requeue) to resume"


class RunDirLocked(UserError):
    """Another live process is training in this run dir."""
