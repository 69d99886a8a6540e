"""Provider answers shaped as recorded ones and a fake clock, for the pollers' tests."""

from __future__ import annotations

import io
import json
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

AP_BASE = "https://api.ap.example/v2/elections/2024-11-05"
STATE_BASE = "https://results.example/GA/105369/"
CLARITY = Path(__file__).parents[1] / "fixtures" / "clarity"
ATKINSON = (CLARITY / "ga_atkinson_precincts_11-3-trim.xml").read_bytes()
BACON = (CLARITY / "ga_bacon_precincts_11-3-trim.xml").read_bytes()


class FakeClock:
    """time.time and time.sleep on a clock only sleeps move."""

    def __init__(self, start: float = 1_730_000_000.0):
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def ap_race(race_id: str, state: str, votes: dict[str, int], name: str = "President") -> dict:
    """One AP v2 race with a state row; votes: candidateID -> voteCount."""
    return {
        "test": False, "raceID": race_id, "raceType": "General", "raceTypeID": "G",
        "officeName": name,
        "reportingUnits": [{
            "statePostal": state, "stateName": state, "level": "state",
            "lastUpdated": "2024-11-06T03:00:00Z",
            "candidates": [{"first": "F", "last": f"L{cid}", "party": "Dem", "candidateID": cid,
                            "voteCount": n} for cid, n in votes.items()],
        }],
    }


def ap_answer(races: list[dict], stamp: str, nextrequest: str | None,
              truncated: bool = False) -> bytes:
    doc = {"electionDate": "2024-11-05", "timestamp": stamp, "races": races,
           "nextrequest": nextrequest}
    if truncated:
        doc["isTruncated"] = True
    return json.dumps(doc).encode()


QUOTA_XML = (b'<?xml version="1.0" encoding="utf-8"?><Error><Code>403</Code>'
             b"<Message>Over Rate Limit</Message></Error>")


def zipped(body: bytes, name: str = "detail.xml", extra: int = 0) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(name, body)
        for i in range(extra):
            z.writestr(f"other{i}.xml", body)
    return buffer.getvalue()


def election_settings(counties: dict[str, tuple[str, str]]) -> bytes:
    entries = [f"{name}|{cid}|{ver}|11/4/2020 1:00:00 AM EST|1" for name, (cid, ver)
               in counties.items()]
    return json.dumps({"settings": {"electiondetails": {"participatingcounties": entries}}}
                      ).encode()


class LoopbackServer:
    """A real HTTP endpoint on 127.0.0.1: answers in order (then the last again), or from
    answer(path) when given; can stall every answer by `stall` seconds."""

    def __init__(self, answers: list[bytes], answer=None):
        self.answers, self.answer, self.seen, self.stall = answers, answer, [], 0.0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                outer.seen.append((self.path, dict(self.headers)))
                if outer.stall:
                    time.sleep(outer.stall)
                if outer.answer is not None:
                    body = outer.answer(self.path)
                else:
                    body = outer.answers[min(len(outer.seen), len(outer.answers)) - 1]
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
