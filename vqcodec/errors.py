"""The one exception type users see. The CLI turns it into a single stderr line and exit 1."""


class VqcodecError(Exception):
    """A problem with the user's input or environment, explained in one line."""


class AudioError(VqcodecError):
    """Missing, unreadable, empty or non-finite audio."""


class FormatError(VqcodecError):
    """A .vqc token file that is corrupt, truncated, of another version or another model."""


class ConfigError(VqcodecError):
    """A configuration file or value that cannot be used."""


class MissingToolError(VqcodecError):
    """A system tool (espeak-ng, mbrola, codec2, ...) or optional package is not installed."""
