"""Test-wide setup: subprocesses run the code under test.

Tests start `python -m xmd_cli ...` in subprocesses (the real CLI, torchrun). The
venv is shared by every clone with the same requirements, so its editable install
may point at another checkout; PYTHONPATH makes the subprocesses import this one.
"""

import os
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent.parent)
os.environ["PYTHONPATH"] = os.pathsep.join([ROOT, *filter(None, [os.environ.get("PYTHONPATH")])])
