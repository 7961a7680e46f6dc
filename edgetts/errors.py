"""The one exception type the CLI turns into a one-line message (no traceback)."""


class EdgeTTSError(Exception):
    """A problem with the user's input: a bad file, a wrong model, an unknown speaker, ...

    The message is a single line that names the problem and, where it helps, the fix.
    """


class WeightsError(EdgeTTSError):
    """A weight file or checkpoint directory that cannot be read."""
