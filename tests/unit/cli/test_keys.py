"""`rome keys`: show makes the file once, rotate adds a signing key, retire removes an old one."""

from __future__ import annotations

import rome.cli as cli
from rome.data_files import MESSAGE_KEYS
from rome.ops.message_keys import read


def test_show_rotate_retire(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("ROME_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("ROME_MESSAGE_KEYS", raising=False)
    assert cli.main(["keys"]) == 0
    first = read(tmp_path / MESSAGE_KEYS).signing_id
    assert f"{first}  signs and verifies" in capsys.readouterr().out
    assert cli.main(["keys", "rotate"]) == 0
    ring = read(tmp_path / MESSAGE_KEYS)
    assert ring.keys[1][0] == first != ring.signing_id
    assert cli.main(["keys", "show"]) == 0
    out = capsys.readouterr().out
    assert f"{ring.signing_id}  signs and verifies" in out and f"{first}  verifies" in out
    assert ring.keys[0][1].hex() not in out  # never the secrets
    assert cli.main(["keys", "retire", ring.signing_id]) == 2  # not the one that signs
    assert "the key that signs" in capsys.readouterr().err
    assert cli.main(["keys", "retire", first]) == 0
    assert [kid for kid, _ in read(tmp_path / MESSAGE_KEYS).keys] == [ring.signing_id]
