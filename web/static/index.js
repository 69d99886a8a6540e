// Find races as you type: filter the small national index (/api/index) in the browser,
// the way the server does for ?q= (rome.read.listing.search_index): every word of the
// search in the race's name, state, office or leader, in any case.
(() => {
  "use strict";
  const input = document.querySelector("[data-search]");
  const box = document.querySelector("[data-matches]");
  if (!input || !box) return;
  const api = document.body.dataset.api;
  const shown = Number(input.dataset.shown) || 50;
  const every = Number(document.body.dataset.pollMs) || 2000;
  const number = new Intl.NumberFormat("en-US");
  const raceUrl = (id) => `/race/${id}`;
  let index = null;
  let fetchedAt = 0;
  let pending = null;
  let timer = null;

  // The index changes with the results: ask again once it is older than an interval
  // (a 304 when nothing changed).
  function load() {
    if (index && Date.now() - fetchedAt < every) return Promise.resolve(index);
    if (!pending) {
      pending = fetch(api, { headers: { Accept: "application/json" } })
        .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`HTTP ${r.status}`))))
        .then((data) => { index = data; fetchedAt = Date.now(); return data; })
        .finally(() => { pending = null; });
    }
    return pending;
  }

  // A feed-given name, isolated (<bdi>) so a right-to-left override in it cannot
  // reverse what follows, clipped with its whole text in the title.
  function name(text, clip) {
    const element = document.createElement("bdi");
    element.textContent = text;
    if (clip) { element.className = "clip"; element.title = text; }
    return element;
  }

  function matches(data, words) {
    const found = [];
    for (const state of data.states) {
      for (const office of state.offices) {
        for (const race of office.races) {
          const text = [race.name, state.state, office.office, race.leader || ""].join(" ").toLowerCase();
          if (words.every((w) => text.includes(w))) found.push([state.state, office.office, race]);
        }
      }
    }
    return found;
  }

  function render(query, found) {
    box.replaceChildren();
    box.hidden = !query;
    if (!query) return;
    const count = document.createElement("p");
    count.className = "match-count";
    const q = document.createElement("q");
    q.append(name(query, false));
    count.append(`${number.format(found.length)} race${found.length === 1 ? "" : "s"} match${found.length === 1 ? "es" : ""} `, q,
      found.length > shown ? `; the first ${shown} are listed.` : ".");
    const list = document.createElement("ol");
    list.className = "match-list";
    for (const [state, office, race] of found.slice(0, shown)) {
      const item = document.createElement("li");
      const link = document.createElement("a");
      link.href = raceUrl(race.id);
      link.append(name(race.name, true));
      const where = document.createElement("span");
      where.className = "where";
      where.append(name(state, false));
      if (office) where.append(" · ", name(office, false));
      const standing = document.createElement("span");
      standing.className = "standing";
      if (race.leader) standing.append(name(race.leader, true), " leads");
      else standing.append("No leader yet");
      if (race.reporting !== null) standing.append(` · ${race.reporting}% reporting`);
      item.append(link, where, standing);
      if (race.called) {
        const badge = document.createElement("span");
        badge.className = "badge called";
        badge.textContent = "Called";
        item.append(badge);
      }
      list.append(item);
    }
    box.append(count, list);
  }

  function search() {
    const query = input.value.trim();
    const words = query.toLowerCase().split(/\s+/).filter(Boolean);
    // The address says what was searched: a reload or a shared link shows the same.
    const url = new URL(window.location.href);
    if (query) url.searchParams.set("q", query); else url.searchParams.delete("q");
    window.history.replaceState(null, "", url);
    if (!words.length) { render("", []); return; }
    load().then((data) => { if (input.value.trim() === query) render(query, matches(data, words)); })
      .catch(() => { box.hidden = false; box.replaceChildren(Object.assign(document.createElement("p"), {
        className: "match-count", textContent: "The index could not be loaded; press Search to ask the server." })); });
  }

  input.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(search, 120); });
  input.form.addEventListener("submit", (event) => { event.preventDefault(); search(); });
})();
