import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_ruff_clean():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_bandit_clean():
    """Every finding is fixed or carries `# nosec BXXX` with its reason on the line above."""
    result = subprocess.run([sys.executable, "-m", "bandit", "-q", "-c", "pyproject.toml", "-r", "."], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
