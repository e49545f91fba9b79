"""Bad input that the user fixes: the CLIs print the message alone (no traceback) and exit with 2."""

import os
import sys


class ConfigurationError(ValueError):
    """A wrong option, path or checkpoint, found before any compute; the message names the option,
    the values that disagree and the fix."""


class ConstructorFailed(BaseException):
    """A module's or data module's constructor raised ``error`` while a CLI built it.

    jsonargparse catches every ``Exception`` of a constructor to try a Union's other alternatives and
    reports them all in a traceback of its own, the constructor's message buried among them; a
    ``BaseException`` passes through it to the CLI, which prints the message alone.
    """

    def __init__(self, error: Exception):
        super().__init__(str(error))
        self.error = error


def report_constructor_errors(class_type, *args, **kwargs):
    """jsonargparse instantiator for the CLI's modules and data modules: build the class, and turn any
    error of its constructor (missing root, missing weights, unreadable checkpoint, wrong layout) into
    :class:`ConstructorFailed`."""
    try:
        return class_type(*args, **kwargs)
    except Exception as error:
        raise ConstructorFailed(error) from error


DEBUG_VARIABLE = "SHAPVISION_DEBUG"


def exit_with_message(error: BaseException) -> None:
    """``error: <message>`` on stderr and exit status 2; ``SHAPVISION_DEBUG=1`` re-raises for the
    traceback instead."""
    cause = error.error if isinstance(error, ConstructorFailed) else error
    if os.environ.get(DEBUG_VARIABLE):
        raise cause
    message = " ".join(str(cause).split()) or type(cause).__name__
    print(f"error: {message} (set {DEBUG_VARIABLE}=1 for the traceback)", file=sys.stderr)
    raise SystemExit(2) from None
