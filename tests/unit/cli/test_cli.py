"""The command line's feed tools: rome normalize and rome replay --dry-run on real files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from rome.cli import main
from tests.helpers.paths import FIXTURES


def test_normalize_prints_one_json_line_per_count_of_a_real_file(capsys):
    assert main(["normalize", "--format", "ap", str(FIXTURES / "ap/20121106_ak_prez.json")]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    state = {r["last"]: r["votes"] for r in rows if r["unit"] == "AK:state"}
    assert state["Romney"] == 136848 and state["Obama"] == 102138
    romney = next(r for r in rows if r["last"] == "Romney" and r["unit"] == "AK:state")
    assert romney["winner"] is True and romney["level"] == "state"
    assert {r["version"] for r in rows} == {1_472_671_254_730_000}


def test_normalize_says_why_a_file_cannot_be_read(tmp_path, capsys):
    bad = tmp_path / "detail.xml"
    bad.write_text('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><ElectionResult/>')
    assert main(["normalize", "--format", "clarity", str(bad)]) == 1
    err = capsys.readouterr().err
    assert str(bad) in err and "DTD" in err


def test_replay_reads_a_folder_in_version_order(tmp_path, capsys):
    # A recorded Clarity night: version folders, the newest written first.
    for version in (12, 3, 7):
        folder = tmp_path / "night" / str(version)
        folder.mkdir(parents=True)
        shutil.copy(FIXTURES / "clarity/clarify-precinct.xml", folder / "detail.xml")
    (tmp_path / "night" / "notes.txt").write_text("not a feed")
    assert main(["replay", "--source", "greenup", "--dry-run", str(tmp_path / "night")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(": ")[1] for line in lines] == ["version 3", "version 7", "version 12"]


def test_replay_lists_a_file_that_will_be_rejected_with_its_reason(tmp_path, capsys):
    bad = tmp_path / "broken.json"
    bad.write_text('{"races": [')
    assert main(["replay", "--source", "elex", "--dry-run", str(bad)]) == 0
    assert "will be rejected" in capsys.readouterr().out


def test_replay_refuses_a_bad_source_id(capsys):
    assert main(["replay", "--source", "Not Valid", "--dry-run", str(FIXTURES)]) == 2


# A reader that goes away (issue 17, point 5) --------------------------------


@pytest.mark.parametrize("command", [
    ["normalize", "--format", "ap", str(FIXTURES / "ap/20151103_national-co.json")],
    ["replay", "--source", "ap", "--dry-run", str(FIXTURES / "ap")],
])
def test_a_reader_that_goes_away_stops_the_command_quietly(command):
    # `rome ... | head -1`, with head gone before the first line: no traceback, and
    # 141 as a shell reports a writer that SIGPIPE stopped.
    rome = subprocess.Popen([sys.executable, "-m", "rome", *command],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    rome.stdout.close()
    error = rome.stderr.read().decode()
    assert rome.wait(60) == 141, error
    assert error == ""


def test_a_broken_pipe_elsewhere_is_still_an_error(monkeypatch):
    # A broker's socket breaking is not the reader going away: it must not pass silently.
    def broken(*args, **kwargs):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr("rome.feeds.replay.plan_replay", broken)
    reader, writer = os.pipe()
    with os.fdopen(reader, "rb"), os.fdopen(writer, "w") as stdout:
        monkeypatch.setattr(sys, "stdout", stdout)
        with pytest.raises(BrokenPipeError):
            main(["replay", "--source", "ap", "--dry-run", str(FIXTURES / "ap")])
