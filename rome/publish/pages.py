"""The static race page and its script: a shell that reads the race's JSON beside it.

The page holds only what never changes (the race's id and name), so a new count
rewrites the race's JSON alone. Its script polls that JSON with If-None-Match: an
unchanged race costs a 304 and no body.
"""

from __future__ import annotations

import html

ASSETS = {
    "assets/race.js": """\
// Poll the race's JSON beside this page; re-render only when its ETag changes.
(function () {
  "use strict";
  const page = document.querySelector("[data-race-json]");
  const every = 2000;
  let tag = null;
  const number = new Intl.NumberFormat("en-US");
  function render(race) {
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
  }
  async function poll() {
    try {
      // "no-cache": the browser revalidates its copy with If-None-Match; an unchanged
      // file costs a 304 and no body, and comes back here with the same ETag.
      const response = await fetch(page.dataset.raceJson, {cache: "no-cache"});
      const etag = response.headers.get("ETag");
      if (response.ok && (etag === null || etag !== tag)) {
        render(await response.json());
        tag = etag;
      }
    } catch (error) {
      // The next poll tries again.
    }
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
<body data-race-json="{race_id}.json">
<h1>{title}</h1>
<p>Total votes: <strong data-total>…</strong>; last update: <span data-updated>…</span></p>
<table><thead><tr><th>Candidate</th><th>Party</th><th>Votes</th></tr></thead>
<tbody data-candidates></tbody></table>
<noscript><p>The figures are in <a href="{race_id}.json">{race_id}.json</a>.</p></noscript>
<script src="../assets/race.js" defer></script>
</body>
</html>
""".encode()
