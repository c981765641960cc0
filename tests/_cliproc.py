"""The ``ue-bench`` command line in a child process, cheaply.

Each call is a separate process with its own working folder, environment, stdout and stderr, exit code
and, for the fault tests, its own pid to SIGKILL. The children are forked from a ``forkserver`` that
imported ue-bench, torch, open_clip and pandas once (and never ran torch), so a case costs a fraction
of a second instead of the ~4 s of CPU an interpreter needs to import them. A child runs exactly what
the ``ue-bench`` console script runs: ``sys.exit(ue_bench.cli.main(argv))``, an uncaught exception
printing its traceback on stderr and exiting 1.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

_ctx = None


def context():
    global _ctx
    if _ctx is None:
        _ctx = mp.get_context("forkserver")
        _ctx.set_forkserver_preload(["ue_bench.cli", "ue_bench.bench.runner", "ue_bench.bench.render",
                                     "ue_bench.cli.protect", "open_clip", "pandas", "matplotlib.pyplot"])
    return _ctx


def _child(argv: list[str], cwd: str, env: dict, log: str) -> None:
    os.chdir(cwd)
    for k, v in env.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    for fd, name in ((1, "stdout"), (2, "stderr")):
        target = os.open(f"{log}.{name}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(target, fd)
        os.close(target)
    sys.argv = ["ue-bench", *argv]
    code = 1
    try:
        from ue_bench.cli import main
        code = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code or 0)


@dataclass
class Done:
    code: int
    stdout: str
    stderr: str


def start(argv: list[str], cwd: Path, env: dict, log: Path):
    """Start ``ue-bench argv`` in a child process; its output goes to ``log``.stdout/.stderr."""
    proc = context().Process(target=_child, args=(list(argv), str(cwd), dict(env), str(log)), daemon=True)
    proc.start()
    return proc


def finish(proc, log: Path, timeout: float = 600) -> Done:
    proc.join(timeout)
    if proc.is_alive():
        proc.kill()
        proc.join()
        raise AssertionError(f"ue-bench did not finish within {timeout} s")
    read = lambda name: Path(f"{log}.{name}").read_text(errors="replace")  # noqa: E731
    return Done(proc.exitcode, read("stdout"), read("stderr"))


def run(argv: list[str], cwd: Path, env: dict, log: Path, timeout: float = 600) -> Done:
    return finish(start(argv, cwd, env, log), log, timeout)


def wait_for(condition, proc, timeout: float = 300, step: float = 0.05) -> bool:
    """Poll ``condition()`` until it holds (True), the process ends or ``timeout`` passes (False)."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.is_alive():
        if condition():
            return True
        time.sleep(step)
    return bool(condition())
