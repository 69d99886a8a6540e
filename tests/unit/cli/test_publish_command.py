"""`rome publish --all` rebuilds the published folder; the demo runs a publish worker."""

from __future__ import annotations

import json

from rome.cli import main
from tests.helpers.builders import national_snapshot
from tests.helpers.webapp import record


def test_rome_publish_all_rebuilds_the_folder_and_keeps_unchanged_files(
        tmp_path, monkeypatch, capsys):
    for name in ("ROME_DATABASE_URL", "ROME_BROKER_URL", "ROME_PUBLISH_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ROME_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ROME_PUBLISH_DIR", str(tmp_path / "www"))
    monkeypatch.setenv("ROME_SOURCE_INTERVAL", "3600")  # nothing turns stale between runs
    assert main(["db", "upgrade"]) == 0
    record(f"sqlite:///{tmp_path / 'data' / 'rome.sqlite3'}", national_snapshot(20))
    capsys.readouterr()
    assert main(["publish", "--all"]) == 0
    out = capsys.readouterr().out
    index = json.loads((tmp_path / "www" / "index.json").read_bytes())
    assert f"published {index['races']} races into {tmp_path / 'www'}" in out
    (tmp_path / "www" / "races" / "1.json").unlink()  # lost, say, in a restore
    assert main(["publish", "--all"]) == 0
    assert "1 files written, 0 removed" in capsys.readouterr().out
    assert (tmp_path / "www" / "races" / "1.json").exists()
    assert main(["publish"]) == 2
    assert "say --all" in capsys.readouterr().err


def test_the_demo_runs_a_publish_worker_on_threads_in_either_mode(tmp_path):
    from rome.ops.demo import plan, worker_nodes
    from rome.settings import load_settings

    settings = load_settings({"ROME_DATA_DIR": str(tmp_path)})
    for single in (False, True):
        services = {s.name: s.argv for s in plan(settings, web_port=1, flower_port=2,
                                                 single_worker=single)}
        publish = services["publish"]
        assert publish[publish.index("-Q") + 1] == "publish"
        assert publish[publish.index("-P") + 1] == "threads"
        assert "publish" in worker_nodes(single)
        others = [argv for name, argv in services.items() if name != "publish"
                  and "-Q" in argv]
        assert all("publish" not in argv[argv.index("-Q") + 1].split(",") for argv in others)
