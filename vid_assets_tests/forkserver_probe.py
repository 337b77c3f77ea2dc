"""A forkserver child's target for ``test_launcher.py``: it imports nothing itself, so what it
finds in ``sys.modules`` is what the forkserver had imported."""

import sys


def exit_code_of_imports(modules: list[str]) -> None:
    sys.exit(0 if all(m in sys.modules for m in modules) else 3)
