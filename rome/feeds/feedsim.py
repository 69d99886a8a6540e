"""Feed the feed server from the simulated night, moving with the clock (``--simulated``).

The three simulated sources are served where their providers would serve
them: ``ap`` as AP's API for the night's date, ``mc`` as Maricopa County's
Clarity election in AZ, ``sos`` as the NIST report ``/nist/sos.json``. On each
request, the feeds are brought to the clock's tick: every race's full figures
at that tick (rome/feeds/simulator.py), so two servers on one clock serve the
same figures.
"""

from __future__ import annotations

import json
import time

from rome.feeds.catalog import default_catalog
from rome.feeds.feedserver import APFeed, ClarityFeed, FeedServer, NISTFeed
from rome.feeds.formats import render_feed
from rome.feeds.simulator import Night, current_tick, simulate

MARICOPA_ELECTION = 110000  # the simulated county election's id in Clarity's URLs


class Simulation:
    """The simulated night's three feeds, kept at the clock's tick."""

    def __init__(self, server: FeedServer, *, seed: str, chance: float, interval: float,
                 started_at: float, length: float = 10_800.0):
        self.server = server
        self.catalog = default_catalog()
        # length: seconds until every unit has counted (the simulator's night is 3 hours).
        self.night = Night(seed, chance, interval, started_at=started_at, length=length)
        self.interval = interval
        self.tick: int | None = None
        self.date = time.strftime("%Y-%m-%d", time.gmtime(started_at))
        self.ap = server.ap[self.date] = APFeed(self.date, [])
        self.mc = ClarityFeed("AZ", MARICOPA_ELECTION, [], "Maricopa")
        server.clarity[self.mc.path] = self.mc
        self.sos = server.nist["sos"] = NISTFeed("sos", [])
        self.catch_up()

    def catch_up(self) -> None:
        """Bring the feeds to the clock's tick, if it moved since the last request."""
        with self.server._lock:
            now = self.server.clock()
            tick = current_tick(self.interval, now)
            if tick == self.tick:
                return
            self.tick = tick
            for source in ("ap", "mc", "sos"):
                snapshot = simulate(source, tick, self.night, catalog=self.catalog, full=True)
                body = render_feed(snapshot.format, snapshot)
                if source == "ap":
                    self.ap.show(json.loads(body), self.server._change_stamp(now))
                elif source == "mc":
                    self.mc.publish(body, now)
                else:
                    self.sos.publish(body, now)
