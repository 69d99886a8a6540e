"""The simulated feeds: deterministic, cumulative, progressive, overlapping, now and then wrong."""

from rome.feeds.catalog import default_catalog
from rome.feeds.simulator import (
    CORRECTION_WINDOW,
    RESYNC_TICKS,
    Night,
    answers_in_full,
    current_tick,
    layouts,
    race_snapshot_counts,
    simulate,
)
from rome.feeds.snapshot import TOTAL

NIGHT = Night("test", 0.5, 2.0, started_at=0.0, length=600.0)  # 300 ticks long
END = 400


def figures(snapshot):
    return {(n.race, n.unit, n.candidate, n.vote_type): n.votes for n in snapshot.counts}


def test_a_tick_is_the_same_whoever_simulates_it():
    assert simulate("sos", 120, NIGHT) == simulate("sos", 120, NIGHT)
    assert simulate("sos", 120, NIGHT) != simulate("sos", 121, NIGHT)


def test_nothing_reports_before_the_night_or_when_no_unit_ever_reports():
    assert simulate("ap", -5, NIGHT) is None
    silent = Night("test", 0.0, 2.0, started_at=0.0, length=600.0)
    assert all(simulate("mc", tick, silent) is None for tick in range(0, END, 37))


def test_figures_are_cumulative_and_only_corrections_go_down():
    last: dict = {}
    downs = []
    for tick in range(0, END):
        snapshot = simulate("mc", tick, NIGHT)
        if snapshot is None:
            continue
        for key, votes in figures(snapshot).items():
            if votes < last.get(key, 0):
                downs.append((tick, key))
            last[key] = votes
    # Every fall is an overstated figure put right, at a correction window's edge.
    assert downs, "the simulated night should hold at least one correction"
    assert all(tick % CORRECTION_WINDOW >= 5 for tick, _ in downs)
    assert len(downs) < len(last)


def test_units_start_reporting_progressively_and_ap_calls_the_race_at_the_end():
    president = layouts(default_catalog(), "sos", 15)[0]
    reporting = [race_snapshot_counts(NIGHT, "sos", president, tick)[1]
                 for tick in (10, 100, 200, END)]
    assert reporting == sorted(reporting) and reporting[0] < reporting[-1] == 15
    # AP calls it with its last change, once every unit has finished counting.
    last = max(t for t in range(END) if simulate("ap", t, NIGHT))
    calls = {s.race: s.winner for s in simulate("ap", last, NIGHT).statuses}
    assert calls.get("AZ-0") or calls.get("AZ-1")
    assert all(s.winner is None for s in simulate("ap", 100, NIGHT).statuses)


def test_ap_answers_in_full_first_and_every_resync_then_only_the_races_that_changed():
    president, senator = layouts(default_catalog(), "ap", 15)
    sizes = set()
    for tick in range(0, END):
        snapshot = simulate("ap", tick, NIGHT)
        if answers_in_full(NIGHT, tick):
            assert tick % RESYNC_TICKS == 0  # NIGHT starts at 0: its first tick is tick 0
            assert len(snapshot.races) == 2, tick
            continue
        changed = {layout.feed_key for layout in (president, senator)
                   if race_snapshot_counts(NIGHT, "ap", layout, tick)[0]
                   != race_snapshot_counts(NIGHT, "ap", layout, tick - 1)[0]}
        assert {r.key for r in snapshot.races} == changed if snapshot else not changed, tick
        sizes.add(len(changed))
    assert sizes == {0, 1, 2}


def test_ap_answers_the_first_tick_of_the_night_in_full_before_anything_is_counted():
    # A night that begins mid-slot (its first tick is the first slot starting after it),
    # and in which no unit is ever seen: AP still lists its races, at zero, in full.
    silent = Night("test", 0.0, 2.0, started_at=7.3, length=600.0)
    full = [4, 4 + RESYNC_TICKS, 4 + 2 * RESYNC_TICKS]
    assert [t for t in range(0, 70) if answers_in_full(silent, t)] == full
    for tick in full:
        answer = simulate("ap", tick, silent)
        assert len(answer.races) == 2 and {n.votes for n in answer.counts} == {0}
    # In between nothing changes, so AP has nothing to say; a whole file (NIST,
    # Clarity) is published only when something in it changed.
    assert all(simulate("ap", t, silent) is None for f in full for t in (f - 1, f + 1))
    assert simulate("sos", 4, silent) is None


def test_the_top_row_sums_its_units_except_when_ap_disagrees_with_itself():
    disagreed = 0
    for tick in range(0, END, 3):
        for source in ("ap", "sos"):
            snapshot = simulate(source, tick, NIGHT)
            if snapshot is None:
                continue
            tops = {u.key for u in snapshot.units if u.parent is None}
            for race in snapshot.races:
                top = {(n.candidate, n.vote_type): n.votes for n in snapshot.counts
                       if n.race == race.key and n.unit in tops}
                below: dict = {}
                for n in snapshot.counts:
                    if n.race == race.key and n.unit not in tops:
                        key = (n.candidate, n.vote_type)
                        below[key] = below.get(key, 0) + n.votes
                if top != below:
                    assert source == "ap"
                    disagreed += 1
    assert disagreed


def test_ap_and_the_secretary_of_state_agree_on_the_president_once_all_is_counted():
    catalog = default_catalog()
    president = catalog.races[1]
    done = Night("test", 0.5, 2.0, 0.0, 600.0)

    def state_totals(source):
        layout = next(x for x in layouts(catalog, source, 15) if x.race.id == 1)
        counts = race_snapshot_counts(done, source, layout, END)[0]
        by_key = {c.keys[source]: c.id for c in president.candidates}
        return {by_key[n.candidate]: n.votes for n in counts
                if n.unit == layout.top.key and n.vote_type == TOTAL}

    assert state_totals("ap") == state_totals("sos")
    assert sum(state_totals("ap").values()) > 0


def test_vote_types_add_up_to_the_total_where_the_format_has_them():
    snapshot = simulate("sos", 250, NIGHT)
    by_type: dict = {}
    for n in snapshot.counts:
        by_type.setdefault((n.race, n.unit, n.candidate), {})[n.vote_type] = n.votes
    assert all(types.pop(TOTAL) == sum(types.values()) for types in by_type.values())
    assert {n.vote_type for n in simulate("ap", 250, NIGHT).counts} == {TOTAL}


def test_current_tick_is_the_wall_clock_slot():
    assert current_tick(2.0, now=1001.9) == 500
    assert current_tick(0.5, now=10.0) == 20
