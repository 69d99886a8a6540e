"""The rooms' arrows hold: the import contracts pass, and a wrong import breaks one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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


BREACHES = {
    "the store importing the read side": (
        "rome/store/tally.py", "from rome.read import results",
        ["rome.store.tally -> rome.read.results"]),
    "the core importing the Celery side outside the seam": (
        "rome/feeds/replay.py", "from workers.publish import publish_stream",
        ["rome.feeds.replay -> workers.publish", "rome is not allowed to import celery"]),
    "a circle among the benchmarks": (
        "rome/bench/common.py", "from rome.bench import ingest",
        [".common -> .ingest"]),
}


@pytest.mark.parametrize("breach", BREACHES)
def test_a_wrong_import_breaks_a_contract(tmp_path, breach):
    module, line, said = BREACHES[breach]
    code = copy_of_the_code(tmp_path)
    add_import(code / module, f"{line}  # noqa")
    result = lint_imports(code)
    assert result.returncode == 1
    for words in said:
        assert words in result.stdout
