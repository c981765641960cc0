"""Errors that reach the user as one line and exit code 2."""


class UsageError(Exception):
    """Bad input from the user (a flag, a parameter, a file): printed as one line, exit code 2."""


class ProtectionRejected(Exception):
    """The harness refused a protection an attack returned (budget, shape, NaN, trigger round-trip)."""


#: errno values that mean the disk, not the cell, is at fault: the run stops instead of failing every cell.
DISK_ERRNOS = (28, 122, 30)  # ENOSPC, EDQUOT, EROFS


def disk_error(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in DISK_ERRNOS
