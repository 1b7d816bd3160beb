"""The engine's one exception family. Every error a user can trigger is one of these."""


class EngineError(Exception):
    """Base class of every error the engine raises on purpose."""

    exit_code = 1


class ModelFormatError(EngineError):
    """The model file is malformed: truncated, inconsistent, out-of-range indices or parameters."""

    exit_code = 2


class UnsupportedError(EngineError):
    """The model is well formed but uses an op, option or type the engine does not run."""

    exit_code = 3


class InputError(EngineError, ValueError):
    """An input passed to run() has the wrong shape, dtype or values (a ValueError, as in LiteRT)."""

    exit_code = 4


class ImageError(EngineError):
    """An image could not be read or decoded."""

    exit_code = 5


class FetchError(EngineError):
    """A model could not be downloaded, found in the mirror, or failed its sha256 check."""

    exit_code = 6
