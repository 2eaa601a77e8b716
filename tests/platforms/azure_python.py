"""The Python 3.13 interpreter the Azure worker checks run under (.venv-azure313)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
AZURE_VENV_PYTHON = REPO_ROOT / ".venv-azure313" / "bin" / "python"


def _python313() -> str | None:
    for candidate in ("python3.13", "/root/.pyenv/versions/3.13.0/bin/python3.13"):
        found = shutil.which(candidate, path=os.environ.get("PATH")) or (
            candidate if os.path.isabs(candidate) and os.access(candidate, os.X_OK) else None
        )
        if found:
            return found
    return None


def azure_python() -> str:
    """The 3.13 environment's interpreter, or skip (fail on CI) saying why it is missing."""
    explicit = os.environ.get("FAASPOOL_AZURE_PYTHON")
    python = explicit or (str(AZURE_VENV_PYTHON) if AZURE_VENV_PYTHON.exists() else None)
    if python is None:
        interpreter = _python313()
        if interpreter is None:
            pytest.skip(
                "the Azure worker checks need Python >= 3.13 (azure-functions-runtime requires "
                "it) and no python3.13 interpreter was found"
            )
        reason = (
            f"Python 3.13 is at {interpreter} but .venv-azure313 is not built: run "
            f"`make azure-venv`"
        )
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    probe = subprocess.run(
        [python, "-c", "import azure_functions_runtime, azure.functions, redis"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if probe.returncode != 0:
        reason = f"{python} lacks the worker packages: {probe.stderr.strip()[-500:]}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return python
