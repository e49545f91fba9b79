"""Bad input that the user fixes: the CLIs print the message alone (no traceback) and exit with 2."""


class ConfigurationError(Exception):
    """A wrong option, path or checkpoint, found before any compute; the message names the option,
    the values that disagree and the fix.

    jsonargparse turns any error of a class it builds into its own ValueError listing every type it
    tried (the original not chained), so the latest one is kept here for the CLI to find it again.
    """

    latest: "ConfigurationError | None" = None

    def __init__(self, message: str):
        super().__init__(message)
        ConfigurationError.latest = self


def configuration_error_in(error: BaseException) -> ConfigurationError | None:
    """The ConfigurationError that ``error`` is, wraps or quotes (jsonargparse's message)."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, ConfigurationError):
            return error
        latest = ConfigurationError.latest
        if latest is not None and str(latest) in str(error):
            return latest
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None
