"""The rooms' arrows hold: the import contracts pass, and a wrong import breaks one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.helpers.paths import ROOT

LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))


def lint_imports(where: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(where)}
    return subprocess.run([LINT_IMPORTS, "--no-cache"], cwd=where, env=env, capture_output=True,
                          text=True, timeout=120)


def test_every_import_contract_is_kept():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def copy_of_the_code(tmp_path: Path) -> Path:
    for package in ("rome", "workers", "web"):
        shutil.copytree(ROOT / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.json", "*.png"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def add_import(module: Path, line: str) -> None:
    module.write_text(module.read_text() + f"\n{line}\n")


def test_the_store_importing_the_read_side_breaks_the_layers(tmp_path):
    code = copy_of_the_code(tmp_path)
    add_import(code / "rome/store/tally.py", "from rome.read import results  # noqa")
    result = lint_imports(code)
    assert result.returncode == 1
    assert "rome.store.tally -> rome.read.results" in result.stdout


def test_the_core_importing_celery_outside_the_seam_breaks_a_contract(tmp_path):
    code = copy_of_the_code(tmp_path)
    add_import(code / "rome/feeds/replay.py", "from workers.publish import publish_stream  # noqa")
    result = lint_imports(code)
    assert result.returncode == 1
    assert "rome.feeds.replay -> workers.publish" in result.stdout
    assert "rome is not allowed to import celery" in result.stdout


def test_a_circle_among_the_benchmarks_breaks_a_contract(tmp_path):
    code = copy_of_the_code(tmp_path)
    add_import(code / "rome/bench/common.py", "from rome.bench import ingest  # noqa")
    result = lint_imports(code)
    assert result.returncode == 1
    assert ".common -> .ingest" in result.stdout
