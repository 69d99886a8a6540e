"""What each README command installs and runs: running needs the runtime only, tests add the
rest, and run fast tests first."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
from pathlib import Path

import rome.cli as cli
from tests.helpers.paths import ROOT
from tests.helpers.services import fast_first

TOOLS = {"pytest", "pytest-timeout", "hypothesis", "playwright", "schemathesis", "ruff",
         "pyyaml", "matplotlib", "requests", "import-linter"}


def names(path: Path) -> set[str]:
    lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
    return {re.split(r"[=<>!~\[ ]", line)[0].lower() for line in lines if line}


def readme_command(section: str) -> str:
    """Return the shell block under the README heading section."""
    text = (ROOT / "README.md").read_text()
    after = text.split(f"## {section}\n", 1)[1]
    return after.split("```sh\n", 1)[1].split("\n```", 1)[0]


def test_running_installs_no_test_or_bench_tool():
    assert names(ROOT / "requirements.txt") & TOOLS == set()
    assert readme_command("Run it") == (
        "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/rome demo"
    )


def test_every_requirement_is_pinned():
    for name in ("requirements.txt", "requirements-test.txt", "requirements-bench.txt"):
        for line in (ROOT / name).read_text().splitlines():
            line = line.split("#")[0].strip()
            assert not line or re.fullmatch(r"[A-Za-z0-9_.\-]+==[0-9][0-9A-Za-z.]*", line), line


def test_the_test_extra_holds_the_tools_and_the_ci_runs_the_readme_test_command():
    extras: dict[str, set[str]] = {}
    for requirement in importlib.metadata.requires("rome"):
        name = re.split(r"[=<>!~ ;]", requirement)[0].lower()
        extra = re.search(r'extra == "(\w+)"', requirement)
        extras.setdefault(extra.group(1) if extra else "", set()).add(name)
    assert extras[""] == names(ROOT / "requirements.txt")
    assert extras["test"] == TOOLS
    assert extras["bench"] == {"matplotlib", "requests"}
    command = readme_command("Test it")
    assert ".venv/bin/pip install -e '.[test]'" in command
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    # Exactly the README's command; .ci/run hands its own arguments on to pytest.
    assert f'{command} "$@"' in ci


def test_the_image_has_every_file_its_metadata_reads():
    dockerfile = (ROOT / "Dockerfile").read_text()
    before_install = dockerfile.split("RUN pip install --no-deps .")[0]
    for name in ("requirements.txt", "requirements-test.txt", "requirements-bench.txt"):
        assert re.search(rf"^COPY .*\b{re.escape(name)}\b", before_install, re.M), name


def test_bench_without_its_extra_says_how_to_install_it(monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "matplotlib" else real(name, *a))
    assert cli.main(["bench", "--plots", "out"]) == 2
    error = capsys.readouterr().err
    assert "needs matplotlib" in error and "pip install -e '.[bench]'" in error


class Item:
    def __init__(self, name: str, *marks: str):
        self.name, self.marks = name, marks

    def get_closest_marker(self, mark: str):
        return mark if mark in self.marks else None


def test_fast_tests_run_first_and_fault_tests_last():
    items = [Item("faults", "faults", "slow"), Item("slow1", "slow"), Item("unit1"),
             Item("slow2", "slow"), Item("unit2")]
    fast_first(items)
    assert [item.name for item in items] == ["unit1", "unit2", "slow1", "slow2", "faults"]


def test_the_readme_shows_the_page_before_the_first_command():
    text = (ROOT / "README.md").read_text()
    image = re.search(r"!\[[^\]]+\]\((docs/[\w-]+\.png)\)", text)
    assert image and image.start() < text.index("## Run it")
    assert (ROOT / image.group(1)).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
