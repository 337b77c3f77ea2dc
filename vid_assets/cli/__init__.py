"""``vid-assets`` command line: one module per concern, each adding its commands to ``app``.

- ``deployment``: demo, register, status, gc, summary (the Dagster deployment's data)
- ``extract``: features for files or URLs on the engine, no Dagster needed
- ``datasets``: feature sets, exports for the old scripts, publishing to the Hub
- ``models``: what an extractor takes and gives, what a video holds
- ``serving``: the prediction service
"""

# isort: off
# the order of these imports is the order of the commands in --help
from vid_assets.cli import deployment, extract, datasets, models, serving  # noqa: F401 - they register the commands
from vid_assets.cli.options import app

# isort: on

__all__ = ["app", "main"]


def main() -> None:
    """The ``vid-assets`` command: the app, then an exit without the interpreter's teardown.

    Why: after a command that loaded torch, Dagster and a model, CPython's finalisation frees
    every module's objects one by one, ~0.34 s of each such command on the 2-core VM (gc is already
    frozen at exit, ``vid_assets/__init__.py``). Everything a command leaves to its end still
    runs first: other threads that are not daemons are joined, the exit handlers run (logging's
    flush, temporary folders' finalizers, multiprocessing's cleanup) and the standard streams are
    flushed. An exception other than ``SystemExit`` takes Python's usual way out, traceback included.
    """
    import atexit
    import contextlib
    import os
    import sys
    import threading

    try:
        app()
        code = 0
    except SystemExit as e:
        code = e.code
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)  # what sys.exit("message") does
        code = 1
    for t in threading.enumerate():
        if t is not threading.main_thread() and not t.daemon:
            t.join()
    atexit._run_exitfuncs()  # the handlers Python would run at exit, in the same order
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing more can be said there
            stream.flush()
    os._exit(code or 0)
