import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_ruff_clean():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_contracts_kept():
    """The layers and forbidden imports in pyproject.toml ([tool.importlinter])."""
    result = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--no-cache"], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr


def test_lambda_handlers_import_only_checked_core_modules():
    """lambda/ is no package, so import-linter cannot read it: every parking_core module a handler
    imports must be a source of the contract that bans torch, dagster and sagemaker."""
    import ast
    import tomllib

    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    (light,) = [c for c in contracts if c["name"].startswith("Lambda and serving paths")]
    allowed = set(light["source_modules"])
    handlers = sorted((REPO / "lambda").glob("*/handler.py"))
    assert handlers
    for handler in handlers:
        for node in ast.walk(ast.parse(handler.read_text())):
            names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else (
                [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            for name in names:
                if name == "parking_core":  # `from parking_core import service`
                    names += [f"parking_core.{a.name}" for a in node.names]
                    continue
                if name.startswith("parking_core."):
                    assert any(name == m or name.startswith(m + ".") for m in allowed), (
                        f"{handler.relative_to(REPO)} imports {name}, which no import contract checks")


def test_bandit_clean():
    """Every finding is fixed or carries `# nosec BXXX` with its reason on the line above."""
    result = subprocess.run([sys.executable, "-m", "bandit", "-q", "-c", "pyproject.toml", "-r", "."], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
