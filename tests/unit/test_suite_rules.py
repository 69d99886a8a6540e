"""The suite's own rules (tests/conftest.py): groups that take over the machine run when asked."""



import pytest

from tests.helpers.paths import ROOT, TESTS

DESTRUCTIVE = "ROME_TEST_DESTRUCTIVE"  # the name the README and .ci/run use
GROUPS = """
import pytest

from tests.helpers.paths import ROOT, TESTS

@pytest.mark.faults
def test_stops_the_database(): pass

@pytest.mark.compose
def test_binds_8083(): pass

@pytest.mark.cluster
def test_own_nodes(): pass

def test_plain(): pass
"""


@pytest.fixture
def suite(pytester, monkeypatch):
    """A suite of one test per group, under Rome's own conftest; run it with run(env)."""
    pytester.makeconftest((TESTS / "conftest.py").read_text())
    pytester.makeini("[pytest]\nmarkers =\n    faults\n    compose\n    cluster\n")
    pytester.makepyfile(test_groups=GROUPS)

    def run(**env):
        for name in (DESTRUCTIVE, "CI"):
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        # importlib: the conftest is imported afresh (it reads CI then), beside ours.
        return pytester.runpytest_inprocess("-rs", "-p", "no:randomly", "--import-mode=importlib")

    return run


def test_faults_and_compose_are_skipped_unless_asked_naming_the_variable(suite):
    result = suite()
    result.assert_outcomes(passed=2, skipped=2)  # the cluster's own nodes touch nothing
    result.stdout.fnmatch_lines([
        f"SKIPPED * the compose tests * ports 8083, 5555 and 15672: set {DESTRUCTIVE}=1 *",
        f"SKIPPED * the faults tests * PostgreSQL and RabbitMQ: set {DESTRUCTIVE}=1 *",
    ])


def test_every_group_runs_when_asked(suite):
    suite(**{DESTRUCTIVE: "1"}).assert_outcomes(passed=4)
    suite(**{DESTRUCTIVE: "1", "CI": "true"}).assert_outcomes(passed=4)


def test_under_ci_a_group_left_out_is_a_failure_not_a_skip(suite):
    result = suite(CI="true")
    result.assert_outcomes(passed=2, errors=2)  # pytest.fail in setup is an error
    result.stdout.fnmatch_lines([f"*set {DESTRUCTIVE}=1*CI is set, so this is a failure*"])


def test_ci_asks_for_every_group():
    ci = (ROOT / ".ci" / "run").read_text()
    assert f"export {DESTRUCTIVE}=1" in ci
