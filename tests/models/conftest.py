"""What the ML engineers' CLI tests share: the `parley` command run as a process in a clean environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PARLEY = str(Path(sys.executable).with_name("parley"))


@pytest.fixture
def env(tmp_path, models_dir) -> dict[str, str]:
    """No PARLEY_* of the developer's, a data directory of the test's own, the session's built models."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    return clean | {"PARLEY_DATA_DIR": str(tmp_path / "data"), "PARLEY_MODELS_DIR": str(models_dir)}


def parley(*args, env, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([PARLEY, *args], env=env, capture_output=True, text=True, timeout=timeout)
