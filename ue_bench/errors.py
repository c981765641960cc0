"""Errors that reach the user as one line and exit code 2."""


class UsageError(Exception):
    """Bad input from the user (a flag, a parameter, a file): printed as one line, exit code 2."""


class ProtectionRejected(Exception):
    """The harness refused a protection an attack returned (budget, shape, NaN, trigger round-trip)."""
