// Keep the results current without reloading: poll the JSON API (a 304 when
// nothing changed, thanks to its ETag) and update the numbers in place.
(() => {
  "use strict";
  const body = document.body;
  const api = body.dataset.api;
  const every = Number(body.dataset.pollMs) || 2000;
  const number = new Intl.NumberFormat("en-US");
  const live = document.querySelector("[data-live]");
  const updated = document.querySelector("[data-updated]");
  // The chart's <img> and <source>s, each with the URL it was first given.
  const charts = [...document.querySelectorAll("[data-chart]")].map((element) => ({
    element, url: element.getAttribute(element.tagName === "IMG" ? "src" : "srcset"),
  }));
  let skew = 0; // the server's clock minus ours, so ages match the server's staleness
  let lastTag = null;
  let chartKey = null;

  const plural = (n, word) => `${number.format(n)} ${word}${n === 1 ? "" : "s"}`;
  const pad = (n) => String(n).padStart(2, "0");
  const clock = (d) =>
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} UTC`;

  function ago(iso) {
    const seconds = Math.max(0, Math.floor((Date.now() + skew - Date.parse(iso)) / 1000));
    if (seconds < 60) return `${seconds} s ago`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
    return `${Math.floor(seconds / 3600)} h ago`;
  }

  function timeElement(iso) {
    const time = document.createElement("time");
    const moment = new Date(iso);
    time.dateTime = moment.toISOString().replace(/\.\d{3}Z$/, "+00:00");
    time.title = time.dateTime;
    time.textContent = clock(moment);
    return time;
  }

  // The same words as the page's template (_race.html): progress and disagreement.
  function progress(source) {
    const parts = [];
    if (source.units_total) {
      const units = source.units_total === 1 ? "unit" : "units";
      parts.push(`${number.format(source.units_reporting)} of ${number.format(source.units_total)} ${source.units_level} ${units} reporting`);
    }
    if (source.precincts_total) {
      parts.push(`precincts ${number.format(source.precincts_reporting || 0)} of ${number.format(source.precincts_total)}`);
    }
    if (source.feed_at !== null) parts.push(`as of ${clock(new Date(source.feed_at))}`);
    return parts.join(" · ");
  }

  // The line as _race.html writes it: the candidate's name from the feed in a <bdi>,
  // so a right-to-left override in it cannot reverse the figures after it.
  function disagreement(race, d) {
    const c = race.candidates.find((x) => x.id === d.candidate_id);
    const name = document.createElement("bdi");
    name.textContent = name.title = c ? c.last : String(d.candidate_id);
    return [`Levels disagree: ${d.level} figure for `, name,
      ` is ${number.format(d.votes)}, its ${d.below_level} units sum to ` +
      `${number.format(d.below_votes)}`];
  }

  function renderSource(race, item, source) {
    item.classList.toggle("stale", source.stale);
    const state = item.querySelector("[data-state]");
    state.textContent = source.stale ? "Stale" : source.last_update_at ? "Live" : "Waiting";
    if (source.stale_reason) state.title = source.stale_reason;
    else state.removeAttribute("title");
    const reason = item.querySelector("[data-stale-reason]");
    reason.hidden = !source.stale_reason;
    reason.textContent = source.stale_reason || "";
    const numbers = item.querySelector("[data-numbers]");
    const parts = [`${number.format(source.votes)} votes in ${plural(source.changes, "change")} · `];
    if (source.last_update_at) {
      const age = document.createElement("span");
      age.dataset.age = "";
      age.textContent = ago(source.last_update_at);
      parts.push("last ", timeElement(source.last_update_at), ", ", age);
    } else {
      parts.push("no reports yet");
    }
    numbers.replaceChildren(...parts);
    const line = item.querySelector("[data-progress]");
    line.textContent = progress(source);
    if (source.version === null) line.removeAttribute("title");
    else line.title = `feed version ${source.version}`;
    const corrections = item.querySelector("[data-corrections]");
    corrections.textContent = plural(source.corrections, "correction");
    corrections.classList.toggle("has-corrections", source.corrections > 0);
    const flags = item.querySelector("[data-disagreements]");
    flags.hidden = source.level_disagreements.length === 0;
    flags.replaceChildren(...source.level_disagreements.map((d) => {
      const li = document.createElement("li");
      li.append(...disagreement(race, d));
      return li;
    }));
    const rejected = item.querySelector("[data-rejected]");
    rejected.textContent = `${number.format(source.rejected)} rejected`;
    rejected.classList.toggle("has-rejected", source.rejected > 0);
  }

  // The candidates, sources and vote types a card shows, as _race.html writes its data-shape.
  function shape(race) {
    const types = [...new Set(race.candidates.flatMap((c) => Object.keys(c.vote_types)))].sort();
    return [race.candidates.map((c) => c.id), race.sources.map((s) => s.id), types,
      [race.primary_source ?? ""]].map((ids) => ids.join(",")).join("|");
  }

  // A new race, candidate, source or vote type needs rows the page does not have:
  // reload it, once per new shape (a page that still differs must not loop), and
  // never while someone is filling in the wipeout form.
  function outgrown(races) {
    const cards = new Map([...document.querySelectorAll("[data-race]")]
      .map((card) => [card.dataset.race, card.dataset.shape]));
    const overview = document.querySelector(".races") !== null;
    const drawn = (race) => cards.has(String(race.id)) || !overview;
    const changed = races.some((race) => !drawn(race) ||
      (cards.has(String(race.id)) && cards.get(String(race.id)) !== shape(race)));
    if (!changed || document.querySelector("details[open]")) return false;
    const key = `${window.location.pathname} ${races.map((r) => `${r.id}:${shape(r)}`).join(" ")}`;
    if (window.sessionStorage.getItem("rome-reloaded-for") === key) return false;
    window.sessionStorage.setItem("rome-reloaded-for", key);
    window.location.reload();
    return true;
  }

  function renderRace(race) {
    const card = document.querySelector(`[data-race="${race.id}"]`);
    if (!card) return;
    card.querySelector("[data-total]").textContent = number.format(race.total_votes);
    const primary = race.sources.find((s) => s.id === race.primary_source && s.level !== null);
    const per = card.querySelector("[data-per]");
    per.hidden = !primary;
    per.textContent = primary ? `per ${primary.code}, ${primary.level} level` : "";
    for (const code of card.querySelectorAll("[data-primary-code]")) {
      if (primary) code.textContent = primary.code;
    }
    card.querySelector("[data-tie]").hidden = !(race.total_votes > 0 && race.leader === null);
    card.querySelector("[data-test]").hidden = !race.test;
    card.querySelector("[data-sources-disagree]").hidden = !race.sources_disagree;
    const tbody = card.querySelector("tbody");
    const order = race.candidates.map((c) => c.id);
    const ranked = [...race.candidates].sort(
      (a, b) => b.votes - a.votes || order.indexOf(a.id) - order.indexOf(b.id));
    for (const c of ranked) {
      const row = tbody.querySelector(`[data-candidate="${c.id}"]`);
      if (!row) continue;
      const leading = race.leader === c.id;
      row.classList.toggle("leader", leading);
      row.querySelector("[data-leading]").hidden = !leading;
      row.querySelector("[data-votes]").textContent = number.format(c.votes);
      const called = row.querySelector("[data-called]");
      called.hidden = race.winner !== c.id;
      const caller = race.sources.find((s) => s.id === race.called_by);
      if (called.hidden || !caller) called.removeAttribute("title");
      else called.title = `Called by ${caller.code}`;
      row.querySelector("[data-pct]").textContent = `${(c.share * 100).toFixed(1)}%`;
      row.querySelector("[data-bar]").style.setProperty("--share", `${(c.share * 100).toFixed(2)}%`);
      for (const cell of row.querySelectorAll("[data-by-source]")) {
        const votes = c.by_source[cell.dataset.bySource];
        cell.textContent = votes === undefined ? "–" : number.format(votes);
        cell.classList.toggle("differs", c.sources_differ);
      }
      if (race.sources.length > 1) {
        row.querySelector("[data-votes]").classList.toggle("differs", c.sources_differ);
      }
      for (const cell of card.querySelectorAll(`[data-vote-types] [data-candidate="${c.id}"] [data-vote-type]`)) {
        cell.textContent = number.format(c.vote_types[cell.dataset.voteType] || 0);
      }
      tbody.appendChild(row); // in ranked order: the leader rises to the top
    }
    for (const source of race.sources) {
      const item = card.querySelector(`[data-source="${source.id}"]`);
      if (item) renderSource(race, item, source);
    }
    const key = `${race.total_votes}|${race.last_update_at}`;
    if (charts.length && key !== chartKey) {
      // Only a race's own page has a chart; a new URL makes the browser fetch it anew.
      for (const { element, url } of charts) {
        const next = new URL(url, window.location.href);
        next.searchParams.set("v", key);
        const path = next.pathname + next.search;
        if (element.tagName === "IMG") element.src = path;
        else element.srcset = path;
      }
    }
    chartKey = key;
  }

  function render(data) {
    const races = Array.isArray(data.races) ? data.races : [data];
    if (outgrown(races)) return;
    races.forEach(renderRace);
    const total = document.querySelector("[data-rejected-total]");
    if (total && typeof data.rejected === "number") {
      total.textContent = plural(data.rejected, "rejected payload");
      total.classList.toggle("has-rejected", data.rejected > 0);
    }
  }

  function tick() {
    for (const age of document.querySelectorAll("[data-age]")) {
      const time = age.parentElement.querySelector("time");
      if (time) age.textContent = ago(time.dateTime);
    }
  }

  function setLive(ok) {
    if (!live) return;
    live.classList.toggle("offline", !ok);
    live.textContent = ok ? "Live" : "Reconnecting";
  }

  async function poll() {
    try {
      const response = await fetch(api, { cache: "no-cache", headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const date = Date.parse(response.headers.get("Date"));
      if (!Number.isNaN(date)) skew = date - Date.now();
      const tag = response.headers.get("ETag");
      if (tag === null || tag !== lastTag) {
        render(await response.json());
        lastTag = tag;
      }
      if (updated) {
        const now = new Date(Date.now() + skew);
        updated.dateTime = now.toISOString();
        updated.textContent = clock(now);
      }
      setLive(true);
    } catch (error) {
      setLive(false);
    } finally {
      window.setTimeout(poll, every);
    }
  }

  window.setInterval(tick, 1000);
  window.setTimeout(poll, every);
})();
