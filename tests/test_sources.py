import json

from rome.normalize import normalize
from rome.sources import current_tick, emit_tick


def test_a_tick_is_the_same_whoever_emits_it():
    # Two beat schedulers firing tick 42 must produce identical updates.
    first, _ = emit_tick("ap", 42, seed="s", chance=1.0, units=5, now=1.0)
    second, _ = emit_tick("ap", 42, seed="s", chance=1.0, units=5, now=1.0)
    assert first == second
    other, _ = emit_tick("ap", 43, seed="s", chance=1.0, units=5, now=1.0)
    assert other != first


def test_chance_zero_emits_nothing():
    assert emit_tick("mc", 7, seed="s", chance=0.0) == (None, 0)


def test_chance_rolls_about_three_in_ten():
    emitted = sum(emit_tick("sos", t, seed="s", chance=0.3)[0] is not None for t in range(2000))
    assert 500 < emitted < 700


def test_votes_are_between_0_and_999_and_ids_distinct_per_unit():
    body, rows = emit_tick("mc", 9, seed="s", chance=1.0, units=50)
    updates = normalize("mc", body)
    assert rows == len(updates) == 50
    assert all(0 <= u.votes <= 999 for u in updates)
    assert len({u.id for u in updates}) == 50


def test_each_source_has_its_own_shape():
    ap = json.loads(emit_tick("ap", 1, seed="s", chance=1.0)[0])
    mc = json.loads(emit_tick("mc", 1, seed="s", chance=1.0)[0])
    sos = json.loads(emit_tick("sos", 1, seed="s", chance=1.0)[0])
    assert isinstance(ap, list) and {"raceID", "candidateID", "voteCount"} <= ap[0].keys()
    assert {"contest", "report", "choices"} <= mc.keys()
    assert {"office", "sequence", "results"} <= sos.keys()


def test_current_tick_is_the_wall_clock_slot():
    assert current_tick(2.0, now=10.0) == 5
    assert current_tick(2.0, now=11.999) == 5
    assert current_tick(0.5, now=10.25) == 20
