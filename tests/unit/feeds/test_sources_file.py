"""ROME_SOURCES: a TOML file of [[source]] tables, every mistake named by line and key."""

from __future__ import annotations

import pytest

from rome.feeds.sources_file import (
    DEFAULT_USER_AGENT,
    SourcesError,
    load_sources,
    parse_sources,
)
from rome.settings import SettingsError, load_settings

GOOD = """\
# Live sources for the night
[[source]]
id = "ap"
format = "ap"
url = "https://api.ap.org/v2/elections/2024-11-05?format=json&level=state"
interval = 10
api_key_env = "AP_API_KEY"
requests_per_minute = 6
name = "Associated Press"

[[source]]
id = "ga"
format = "clarity"
url = "https://results.enr.clarityelections.com/GA/105369/"
interval = 15
user_agent = "Desk/1 (desk@example.org)"
"""


def test_a_good_file_reads_into_sources():
    ap, ga = parse_sources(GOOD)
    assert (ap.id, ap.format, ap.interval, ap.requests_per_minute) == ("ap", "ap", 10.0, 6)
    assert ap.api_key({"AP_API_KEY": "k"}) == "k" and ap.api_key({}) is None
    assert ap.user_agent == DEFAULT_USER_AGENT and ap.line == 2
    assert (ga.name, ga.user_agent, ga.line, ga.requests_per_minute) == (
        "ga", "Desk/1 (desk@example.org)", 11, 60)
    assert "api_key" not in str(ap.public())


@pytest.mark.parametrize("change, where", [
    (('format = "clarity"', 'format = "scytl"'), "x:13: key 'format': 'scytl' must be one of"),
    (("interval = 15", "interval = 0"), "x:15: key 'interval': 0 must be a number"),
    (("interval = 10", 'interval = "10"'), "x:6: key 'interval'"),
    (('id = "ga"', 'id = "GA"'), "x:12: key 'id': 'GA' must be a short lowercase id"),
    (('id = "ga"', 'id = "ap"'), "x:12: key 'id': 'ap' is already the id of the source on "
                                 "line 2"),
    (("105369/", "105369"), "x:14: key 'url'"),
    (("/GA/105369/", "/results/105369/"), "x:14: key 'url'"),
    (('"https://api', '"ftp://api'), "x:5: key 'url'"),
    (("level=state", "level=state&apiKey=abc"), "x:5: key 'url': carries an API key"),
    (("requests_per_minute = 6", "requests_per_minute = 0"), "x:8: key 'requests_per_minute'"),
    (('api_key_env = "AP_API_KEY"', 'api_key_env = "abc-123 key"'), "x:7: key 'api_key_env'"),
    (('name = "Associated Press"', 'nmae = "AP"'), "x:9: key 'nmae': unknown key"),
    (('interval = 15\n', ''), "x:11: [[source]] has no 'interval'"),
])
def test_a_bad_file_names_its_line_and_key(change, where):
    with pytest.raises(SourcesError) as caught:
        parse_sources(GOOD.replace(*change), "x")
    assert where in str(caught.value)


def test_broken_toml_and_missing_files_say_so(tmp_path):
    with pytest.raises(SourcesError, match=r"x: not valid TOML: .*line 3"):
        parse_sources(GOOD.replace('id = "ap"', 'id = ap'), "x")
    with pytest.raises(SourcesError, match="no \\[\\[source\\]\\] table"):
        parse_sources("", "x")
    with pytest.raises(SourcesError, match="cannot be read"):
        load_sources(tmp_path / "missing.toml")
    (tmp_path / "s.toml").write_text(GOOD)
    assert [s.id for s in load_sources(tmp_path / "s.toml")] == ["ap", "ga"]


def test_settings_read_the_sources_path_archive_and_retention(tmp_path):
    settings = load_settings({"ROME_DATA_DIR": str(tmp_path), "ROME_SOURCES": "s.toml",
                              "ROME_ARCHIVE_RETENTION": "30d"})
    assert settings.sources_file.name == "s.toml"
    assert settings.archive_dir == tmp_path.resolve() / "archive"
    assert settings.archive_retention_days == 30 and settings.archive_retention_bytes is None
    sized = load_settings({"ROME_ARCHIVE_RETENTION": "500MB", "ROME_ARCHIVE_DIR": str(tmp_path)})
    assert sized.archive_retention_bytes == 500_000_000 and sized.archive_dir == tmp_path
    assert load_settings({}).sources_file is None
    with pytest.raises(SettingsError, match="ROME_ARCHIVE_RETENTION"):
        load_settings({"ROME_ARCHIVE_RETENTION": "forever"})
