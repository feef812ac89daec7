"""The library's error types.

Every failure a user can cause (bad data, bad config, a file from elsewhere) is raised as
one of these, with a message that names the file, column, key or value and says what to
do. The CLI prints them as one line and exits non-zero instead of showing a traceback.
"""

from __future__ import annotations


class AdaptiveLoopError(Exception):
    """Base class: a problem the user can fix, reported without a traceback by the CLI."""


class DataError(AdaptiveLoopError, ValueError):
    """Input data is missing, malformed or inconsistent with its schema."""


class ConfigError(AdaptiveLoopError, ValueError):
    """A configuration file or option is invalid (unknown key, wrong type, bad value)."""


class CheckpointError(AdaptiveLoopError, ValueError):
    """A checkpoint cannot be loaded: missing, truncated, unsafe, or from another config."""


class TraceError(AdaptiveLoopError, ValueError):
    """A depth trace is missing, corrupted, or does not match what consumes it."""


class NotFittedError(AdaptiveLoopError, RuntimeError):
    """An estimator (encoder, controller) was used before `fit`."""


class BudgetError(AdaptiveLoopError, ValueError):
    """A compute budget lies outside what a controller can reach on the given trace."""


class DownloadError(AdaptiveLoopError):
    """A public dataset could not be downloaded: offline, refused, interrupted or an HTTP error."""
