"""The demo's Flower login: made once per data folder, owner-only, ROME_FLOWER_AUTH first."""

from __future__ import annotations

import stat

import pytest

from rome.data_files import FLOWER_LOGIN
from rome.ops.flower_login import demo_login
from rome.settings import SettingsError


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_login_is_made_once_owner_only_and_kept(tmp_path):
    first = demo_login(tmp_path, None)
    assert first.user == "admin" and len(first.password) >= 16
    assert mode(tmp_path / FLOWER_LOGIN) == 0o600
    assert first.source == str(tmp_path / FLOWER_LOGIN) and first.warning is None
    assert demo_login(tmp_path, None) == first  # the next run of the same folder
    (tmp_path / "other").mkdir()
    assert demo_login(tmp_path / "other", None).password != first.password


def test_rome_flower_auth_wins_and_leaves_the_folder_alone(tmp_path):
    login = demo_login(tmp_path, "ops:chosen-password")
    assert (login.user, login.password, login.source) == ("ops", "chosen-password",
                                                         "ROME_FLOWER_AUTH")
    assert login.basic_auth == "ops:chosen-password"
    assert not (tmp_path / FLOWER_LOGIN).exists()


def test_a_file_others_can_read_is_tightened_and_said_so(tmp_path):
    path = tmp_path / FLOWER_LOGIN
    path.write_text("admin:kept-password\n")
    path.chmod(0o644)
    login = demo_login(tmp_path, None)
    assert login.password == "kept-password"
    assert mode(path) == 0o600
    assert "readable by others (mode 0644)" in login.warning


@pytest.mark.parametrize("text", ["", "no-colon", ":nouser", "admin:\n", "a:b\nc:d"])
def test_a_garbled_file_is_refused_with_what_to_do(tmp_path, text):
    path = tmp_path / FLOWER_LOGIN
    path.write_text(text)
    path.chmod(0o600)
    with pytest.raises(SettingsError, match="delete it to get a new one"):
        demo_login(tmp_path, None)
