"""The static race page and its script: a shell that reads the race's JSON beside it.

The page holds only what never changes (the race's id and name), so a new count
rewrites the race's JSON alone. Its script polls that JSON and the folder's
sources.json with If-None-Match: an unchanged file costs a 304 and no body. Each
source of the race is Live, Stale or Waiting as the API would say now, judged in
the browser from sources.json's heard_at by the server's clock (the Date header's),
at every poll: a source that falls silent changes no file.
"""

from __future__ import annotations

import html

ASSETS = {
    "assets/race.js": """\
// Poll the race's JSON beside this page, and ../sources.json; re-render the race only when
// its ETag changes, and judge each source's freshness at every poll, by the server's clock.
(function () {
  "use strict";
  const page = document.querySelector("[data-race-json]");
  const every = 2000;
  const tags = {};
  const number = new Intl.NumberFormat("en-US");
  let race = null;
  // When each source was last heard from, in any race (sources.json, rewritten at every
  // publish): the race's own file says so only as of the race's last change.
  let heard = new Map();
  let skew = 0; // the server's clock minus ours, from each answer's Date header

  const pad = (n) => String(n).padStart(2, "0");
  const clock = (d) =>
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} UTC`;

  // A number as Python writes it with format(x, "g"), as rome/read/freshness.py does.
  function g(x) {
    const [mantissa, exponent] = x.toExponential(5).split("e");
    const e = Number(exponent);
    if (e < -4 || e >= 6) {
      const sign = e < 0 ? "-" : "+";
      return `${mantissa.replace(/\\.?0+$/, "")}e${sign}${pad(Math.abs(e))}`;
    }
    return String(Number(x.toPrecision(6)));
  }

  // Stale, Live or Waiting, and why, as rome/read/freshness.py judges and words it.
  function freshness(source) {
    const known = heard.get(source.id) || source;
    const at = known.heard_at;
    const after = known.stale_after_seconds;
    const age = at === null ? null : Math.max(0, (Date.now() + skew - Date.parse(at)) / 1000);
    if (age !== null && after !== null && age > after) {
      return {state: "Stale",
              reason: `No report since ${clock(new Date(at))}; a source is stale after ` +
                      `${g(after)} s without one.`};
    }
    return {state: source.last_update_at ? "Live" : "Waiting", reason: null};
  }

  function span(field, text) {
    const element = document.createElement("span");
    element.dataset[field] = "";
    element.textContent = text;
    return element;
  }

  function render() {
    document.querySelector("[data-total]").textContent = number.format(race.total_votes);
    document.querySelector("[data-updated]").textContent = race.last_update_at || "no votes yet";
    const rows = document.querySelector("[data-candidates]");
    rows.replaceChildren(...race.candidates.map(function (c) {
      const row = document.createElement("tr");
      row.dataset.candidate = c.id;
      const name = document.createElement("th");
      name.textContent = (c.first + " " + c.last).trim() + (race.winner === c.id ? " ✓" : "");
      const party = document.createElement("td");
      party.textContent = c.party;
      const votes = document.createElement("td");
      votes.className = "votes";
      votes.textContent = number.format(c.votes);
      row.append(name, party, votes);
      return row;
    }));
    const sources = document.querySelector("[data-sources]");
    sources.replaceChildren(...race.sources.map(function (s) {
      const item = document.createElement("li");
      item.dataset.source = s.id;
      const name = document.createElement("span");
      name.className = "source-name";
      name.textContent = s.name;
      name.title = s.code;
      const reason = span("staleReason", "");
      reason.hidden = true;
      item.append(name, " ", span("state", ""), " ",
                  span("votes", number.format(s.votes) + " votes"), " ", reason);
      return item;
    }));
  }

  // Judged again at every poll, whether or not a file changed: silence needs no file.
  function judge() {
    for (const s of race.sources) {
      const item = document.querySelector(`[data-sources] [data-source="${CSS.escape(s.id)}"]`);
      if (!item) continue;
      const {state, reason} = freshness(s);
      item.classList.toggle("stale", state === "Stale");
      const label = item.querySelector("[data-state]");
      label.textContent = state;
      if (reason) label.title = reason;
      else label.removeAttribute("title");
      const why = item.querySelector("[data-stale-reason]");
      why.hidden = !reason;
      why.textContent = reason || "";
    }
  }

  // Fetch url and hand its JSON to use, unless its ETag is the one used last.
  async function follow(url, use) {
    // "no-cache": the browser revalidates its copy with If-None-Match; an unchanged
    // file costs a 304 and no body, and comes back here with the same ETag.
    const response = await fetch(url, {cache: "no-cache"});
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const date = Date.parse(response.headers.get("Date"));
    if (!Number.isNaN(date)) skew = date - Date.now();
    const etag = response.headers.get("ETag");
    if (etag === null || etag !== tags[url]) {
      use(await response.json());
      tags[url] = etag;
    }
  }

  async function poll() {
    // Either may fail alone (the next poll tries again): a folder published before
    // sources.json existed still shows its race, judged by the race file's heard_at.
    await Promise.allSettled([
      follow(page.dataset.sourcesJson, function (data) {
        heard = new Map(data.sources.map((s) => [s.id, s]));
      }),
      follow(page.dataset.raceJson, function (data) {
        race = data;
        render();
      }),
    ]);
    if (race) judge();
    setTimeout(poll, every);
  }
  poll();
})();
""",
    "assets/race.css": """\
body { font: 16px/1.4 system-ui, sans-serif; margin: 2rem auto; max-width: 40rem; padding: 0 1rem; }
table { border-collapse: collapse; width: 100%; }
th, td { border-bottom: 1px solid #ddd; padding: .3rem .5rem; text-align: left; }
td.votes { text-align: right; font-variant-numeric: tabular-nums; }
ul.sources { list-style: none; padding: 0; }
ul.sources li { border-bottom: 1px solid #ddd; padding: .3rem .5rem; }
.source-name { font-weight: 600; }
[data-state] { border-radius: .2rem; padding: 0 .3rem; background: #e6f4ea; color: #1e6b34; }
li.stale [data-state] { background: #fdecea; color: #a4281f; }
[data-votes] { font-variant-numeric: tabular-nums; }
[data-stale-reason] { display: block; color: #a4281f; font-size: .9em; }
[data-stale-reason][hidden] { display: none; }
""",
}


def race_page(race_id: int, name: str) -> bytes:
    """The static page of one race: it loads {race_id}.json from beside itself."""
    title = html.escape(name)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="../assets/race.css">
</head>
<body data-race-json="{race_id}.json" data-sources-json="../sources.json">
<h1>{title}</h1>
<p>Total votes: <strong data-total>…</strong>; last update: <span data-updated>…</span></p>
<table><thead><tr><th>Candidate</th><th>Party</th><th>Votes</th></tr></thead>
<tbody data-candidates></tbody></table>
<h2>Reported by</h2>
<ul class="sources" data-sources></ul>
<noscript><p>The figures are in <a href="{race_id}.json">{race_id}.json</a>.</p></noscript>
<script src="../assets/race.js" defer></script>
</body>
</html>
""".encode()
