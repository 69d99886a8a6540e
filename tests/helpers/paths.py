"""Where the repository, the tests and their recorded feed files are, from any test module."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
FIXTURES = TESTS / "fixtures"
HELPERS = TESTS / "helpers"
