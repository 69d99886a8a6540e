"""The per-client limit on wrong guesses and on logged refusals."""

from __future__ import annotations

from rome.ops.attempts import AttemptLimiter, Summary, client_key


def test_clients_are_addresses_and_ipv6_hosts_their_64():
    assert client_key("203.0.113.9") == "203.0.113.9"
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::9")
    assert client_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:203.0.113.9") == "203.0.113.9"
    assert client_key(None) == "unknown"


def test_guesses_block_for_the_rest_of_the_window_and_refusals_are_summed_up():
    now = [0.0]
    limiter = AttemptLimiter(limit=3, window=60, clock=lambda: now[0])
    assert [limiter.refused("a", guess=True) for _ in range(3)] == [
        (True, False), (True, False), (True, True)]
    now[0] = 20
    assert limiter.blocked_for("a") == 40
    assert limiter.blocked_for("b") is None
    assert limiter.finished() == []
    now[0] = 60
    assert limiter.blocked_for("a") is None
    assert limiter.finished() == [Summary("a", refusals=4, logged=3, seconds=60)]


def test_refusals_without_a_guess_are_logged_within_limits_but_never_block():
    limiter = AttemptLimiter(limit=2, window=60, clock=lambda: 0.0)
    assert [limiter.refused("a", guess=False)[0] for _ in range(5)] == [
        True, True, False, False, False]
    assert limiter.blocked_for("a") is None


def test_every_guess_is_logged_whatever_refusals_came_before():
    limiter = AttemptLimiter(limit=3, window=60, clock=lambda: 0.0)
    assert [limiter.refused("a", guess=False)[0] for _ in range(40)] == [True] * 3 + [False] * 37
    assert [limiter.refused("a", guess=True) for _ in range(3)] == [
        (True, False), (True, False), (True, True)]
    assert limiter.refused("a", guess=False)[0] is False


def test_a_granted_attempt_starts_afresh_and_memory_is_bounded():
    limiter = AttemptLimiter(limit=2, window=60, max_clients=3, clock=lambda: 0.0)
    limiter.refused("a", guess=True)
    limiter.granted("a")
    assert limiter.refused("a", guess=True) == (True, False)
    for client in "bcde":
        limiter.refused(client, guess=True)
    assert len(limiter._windows) == 3  # the oldest went first
    assert limiter.refused("a", guess=True) == (True, False)  # "a" was forgotten
