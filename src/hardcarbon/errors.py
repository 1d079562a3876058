"""Errors that the CLI reports as one line with exit status 2."""


class InputError(ValueError):
    """Bad user input: the message names the problem and what to do about it."""
