"""`rome reset`: it deletes only what Rome made, asks first, and refuses when it would mislead."""

from __future__ import annotations

import os

import pytest

from rome.cli import main
from rome.ops import data_folder

MADE_BY_ROME = ["rome.sqlite3", "rome.sqlite3-wal", "celerybeat-schedule.dat", "flower-login",
                "demo.lock"]


@pytest.fixture
def folder(tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.startswith("ROME_"):
            monkeypatch.delenv(name)
    data = tmp_path / "data"
    (data / "broker" / "queue").mkdir(parents=True)
    (data / "broker" / "queue" / "msg").write_text("{}")
    for name in MADE_BY_ROME:
        (data / name).write_text("x")
    monkeypatch.setenv("ROME_DATA_DIR", str(data))
    return data


def test_reset_deletes_the_folder_rome_made(folder, capsys):
    assert main(["reset", "--yes"]) == 0
    assert not folder.exists()
    out = capsys.readouterr().out
    assert "broker/" in out and "rome.sqlite3" in out and "it is empty" in out


def test_reset_deletes_every_file_rome_writes_there(folder, capsys):
    # Made by the code that writes them, not by name: the web's session key (made when
    # ROME_ADMIN_TOKEN is set), the draft a crash can leave of it, and a bench log.
    from web.csrf import stored_secret_key

    stored_secret_key(folder)
    (folder / ".web-session-key.4242.0badcafe").write_text("x")
    (folder / "bench-worker.log").write_text("x")
    assert main(["reset", "--yes"]) == 0
    out = capsys.readouterr().out
    assert "web-session-key" in out and "bench-worker.log" in out and "it is empty" in out
    assert not folder.exists()


def test_reset_leaves_what_rome_did_not_make(folder, capsys):
    (folder / "notes.txt").write_text("mine")
    assert main(["reset", "--yes"]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
    assert "left 1 other entries in place: notes.txt" in capsys.readouterr().out


def test_reset_asks_first_and_refuses_without_a_terminal(folder, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin.isatty", lambda: False, raising=False)
    assert main(["reset"]) == 2
    assert "add --yes" in capsys.readouterr().err
    assert (folder / "rome.sqlite3").exists()


@pytest.mark.parametrize(("answer", "code"), [("n\n", 1), ("y\n", 0)])
def test_reset_does_what_the_user_answers(folder, monkeypatch, capsys, answer, code):
    monkeypatch.setattr("sys.stdin.isatty", lambda: True, raising=False)
    monkeypatch.setattr("builtins.input", lambda prompt: answer)
    assert main(["reset"]) == code
    assert folder.exists() == (code == 1)


def test_reset_refuses_while_a_demo_holds_the_folder(folder, capsys):
    with data_folder.hold(folder):
        assert main(["reset", "--yes"]) == 1
        assert "a rome demo is running on" in capsys.readouterr().err
        assert (folder / "rome.sqlite3").exists()
        # And a second demo on the same folder is refused before it starts anything.
        assert main(["demo"]) == 1
        assert "set ROME_DATA_DIR to another folder" in capsys.readouterr().err


def test_reset_refuses_when_the_data_lives_elsewhere(folder, monkeypatch, capsys):
    monkeypatch.setenv("ROME_DATABASE_URL", "postgresql://root:pw@127.0.0.1:5432/rome")
    monkeypatch.setenv("ROME_BROKER_URL", "amqp://guest:secret@127.0.0.1:5672//")
    assert main(["reset", "--yes"]) == 2
    error = capsys.readouterr().err
    assert "postgresql://root:***@127.0.0.1:5432/rome (ROME_DATABASE_URL)" in error
    assert "amqp://guest:***@127.0.0.1:5672// (ROME_BROKER_URL)" in error
    assert "pw" not in error and "secret" not in error
    assert folder.exists()
    assert main(["reset", "--yes", "--force"]) == 0
    assert not folder.exists()


def test_reset_of_nothing_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ROME_DATA_DIR", str(tmp_path / "never"))
    for name in ("ROME_DATABASE_URL", "ROME_BROKER_URL"):
        monkeypatch.delenv(name, raising=False)
    assert main(["reset", "--yes"]) == 0
    assert "nothing to reset" in capsys.readouterr().out
