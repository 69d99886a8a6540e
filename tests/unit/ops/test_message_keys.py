"""The message keys: made once owner-only, rotated without losing what the old key signed."""

from __future__ import annotations

import stat
import time

import pytest

from rome.data_files import MESSAGE_KEYS
from rome.ops import message_keys
from rome.ops.message_keys import KeyFile, SignatureError, open_signed
from rome.settings import SettingsError, load_settings


def test_the_key_file_is_made_once_owner_only_and_kept(tmp_path):
    path = tmp_path / MESSAGE_KEYS
    first = message_keys.read(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first.keys) == 1 and len(first.keys[0][1]) == 32
    assert message_keys.read(path) == first
    assert message_keys.read(tmp_path / "other") != first
    assert sorted(tmp_path.iterdir()) == [path, tmp_path / "other"]  # no temporary file left


def test_a_key_file_others_can_read_is_refused(tmp_path):
    path = tmp_path / MESSAGE_KEYS
    message_keys.read(path)
    path.chmod(0o644)
    with pytest.raises(SettingsError, match="readable by others"):
        message_keys.read(path)


def test_a_signed_body_opens_only_unchanged_and_with_a_known_key(tmp_path):
    ring = message_keys.read(tmp_path / MESSAGE_KEYS)
    signed = ring.sign(b'[["ap"], {}, {}]')
    assert open_signed(signed, ring.secret) == b'[["ap"], {}, {}]'
    with pytest.raises(SignatureError, match="wrong MAC"):
        open_signed(signed.replace(b'"ap"', b'"mc"'), ring.secret)
    with pytest.raises(SignatureError, match="missing"):
        open_signed(b'[["ap"], {}, {}]', ring.secret)
    other = message_keys.read(tmp_path / "other")
    with pytest.raises(SignatureError, match="unknown key id"):
        open_signed(other.sign(b"[]"), ring.secret)
    # The key id is under the MAC: naming another key breaks it.
    kid = ring.signing_id.encode()
    forged = signed.replace(kid, other.signing_id.encode())
    with pytest.raises(SignatureError, match="wrong MAC"):
        open_signed(forged, lambda key_id: ring.keys[0][1])


def test_rotation_keeps_old_messages_valid_until_the_old_key_is_retired(tmp_path, monkeypatch):
    path = tmp_path / MESSAGE_KEYS
    old = message_keys.read(path)
    queued = old.sign(b"[1]")
    running = KeyFile(path)  # a worker that read the file before the rotation
    assert running.open(queued) == b"[1]"
    ring, new_id = message_keys.rotate(path)
    assert ring.signing_id == new_id != old.signing_id
    fresh = KeyFile(path)  # a process started after it
    assert fresh.open(queued) == b"[1]"
    # The running worker verifies the new key's messages at once (unknown id: reread) ...
    assert running.open(fresh.sign(b"[2]")) == b"[2]"
    # ... and signs with it once RECHECK has passed.
    monkeypatch.setattr(message_keys, "RECHECK", 0.0)
    time.sleep(0.01)
    assert running.sign(b"[3]").split(b".")[1].decode() == new_id
    with pytest.raises(SettingsError, match="the key that signs"):
        message_keys.retire(path, new_id)
    message_keys.retire(path, old.signing_id)
    with pytest.raises(SignatureError, match="unknown key id"):
        KeyFile(path).open(queued)


def test_signing_off_is_refused_outside_development(tmp_path):
    env = {"ROME_DATA_DIR": str(tmp_path), "ROME_MESSAGE_SIGNING": "off"}
    with pytest.raises(SettingsError, match="ROME_MESSAGE_SIGNING=off"):
        load_settings(env)
    assert not load_settings({**env, "ROME_ENV": "development"}).message_signing
    settings = load_settings({"ROME_DATA_DIR": str(tmp_path)})
    assert settings.message_signing and settings.message_keys_file == tmp_path / MESSAGE_KEYS
    with pytest.raises(SettingsError, match="must be on or off"):
        load_settings({**env, "ROME_MESSAGE_SIGNING": "maybe"})
