"""The README's Python examples run as written (in a fresh folder, in a subprocess each)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
# a block preceded by this HTML comment is not run (e.g. it opens a window or needs a real gamepad)
SKIP = "<!-- no-test -->"


def python_blocks() -> list[tuple[int, str]]:
    text = README.read_text(encoding="utf-8")
    out = []
    for match in re.finditer(r"(<!-- no-test -->\s*)?```python\n(.*?)```", text, re.S):
        if not match.group(1):
            out.append((text.count("\n", 0, match.start()) + 1, match.group(2)))
    return out


def test_readme_has_python_examples():
    assert len(python_blocks()) >= 1


@pytest.mark.slow
def test_readme_examples_run_in_order(tmp_path):
    """Each block runs in its own process, in order, in one folder: later blocks use earlier blocks' files."""
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "PYTHONPATH": str(README.parent / "src")}
    for line, code in python_blocks():
        result = subprocess.run(
            [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, f"README example at line {line} failed:\n{result.stderr[-3000:]}"
