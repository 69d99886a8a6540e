"""`rome feedserver`: it prints where it serves, writes a sources file, serves, and stops
cleanly on SIGTERM."""

import json
import os
import signal
import subprocess
import sys
import tomllib
import urllib.request

from tests.helpers.paths import FIXTURES

AP_CO = FIXTURES / "ap" / "20151103_national-co.json"


def test_command_prints_its_url_and_serves(tmp_path):
    sources = tmp_path / "sources.toml"
    process = subprocess.Popen(
        [sys.executable, "-m", "rome", "feedserver", "--port", "0", "--ap", str(AP_CO),
         "--write-sources", str(sources), "--interval", "5"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = process.stdout.readline()
        assert line.startswith("serving feeds at http://127.0.0.1:")
        base = line.split()[-1]
        assert process.stdout.readline().split() == [
            "ap", f"{base}/ap/v2/elections/2015-11-03?format=json&level=ru"]
        assert process.stdout.readline().strip() == f"sources file (ROME_SOURCES): {sources}"
        (source,) = tomllib.loads(sources.read_text())["source"]
        assert source == {"id": "ap_20151103", "format": "ap", "name": "AP, 2015-11-03",
                          "url": f"{base}/ap/v2/elections/2015-11-03?format=json&level=ru",
                          "interval": 5}
        with urllib.request.urlopen(f"{base}/ap/v2/elections/2015-11-03?format=json",
                                    timeout=5) as answer:
            assert len(json.load(answer)["races"]) == 4
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
        assert process.stdout.read().strip() == "stopped"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
