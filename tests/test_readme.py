"""The README's walk-through runs as written: its Python and shell blocks, in order, in one fresh folder.

Each block runs in its own process (``python -c`` or ``bash -e -c``, with this interpreter's ``bin``
first on ``PATH`` so ``trajarena`` is this checkout's command), so a later block finds the files an
earlier one wrote, as a reader following the README top to bottom would.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
# a block preceded by this HTML comment is not run (e.g. it opens a window, or records for minutes)
SKIP = "<!-- no-test -->"


def blocks() -> list[tuple[int, str, str]]:
    """``(line, language, code)`` of every ``python`` and ``bash`` block not marked no-test, in order."""
    text = README.read_text(encoding="utf-8")
    out = []
    for match in re.finditer(r"(<!-- no-test -->\s*)?```(python|bash)\n(.*?)```", text, re.S):
        if not match.group(1):
            out.append((text.count("\n", 0, match.start()) + 1, match.group(2), match.group(3)))
    return out


def python_blocks() -> list[tuple[int, str]]:
    return [(line, code) for line, language, code in blocks() if language == "python"]


def test_readme_has_python_and_shell_examples():
    languages = [language for _, language, _ in blocks()]
    assert languages.count("python") >= 1 and languages.count("bash") >= 1


@pytest.mark.slow
def test_readme_examples_run_in_order(tmp_path):
    """Each block runs in its own process, in order, in one folder: later blocks use earlier blocks' files."""
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "PYTHONPATH": str(README.parent / "src"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}", "COLUMNS": "200"}
    for line, language, code in blocks():
        cmd = [sys.executable, "-c", code] if language == "python" else ["bash", "-e", "-c", code]
        result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, (f"README {language} example at line {line} failed:\n"
                                        f"{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
