"""The error pyattrib raises for a bad argument."""


class ArgumentError(ValueError, AssertionError):
    """A bad argument: the message names it and says how to fix it.

    A ``ValueError``; also an ``AssertionError``, the type Captum raises for bad arguments,
    so code (and tests) written against Captum catch it too.
    """
