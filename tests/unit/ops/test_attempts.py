"""Clients, and the per-client limit on logged refusals."""

from __future__ import annotations

from rome.ops.attempts import AttemptLimiter, Summary, client_key


def test_clients_are_addresses_and_ipv6_hosts_their_64():
    assert client_key("203.0.113.9") == "203.0.113.9"
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::9")
    assert client_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:203.0.113.9") == "203.0.113.9"
    assert client_key(None) == "unknown"


def test_attempts_refused_unchecked_are_counted_and_summed_up_when_the_window_ends():
    now = [0.0]
    limiter = AttemptLimiter(limit=3, window=60, clock=lambda: now[0])
    assert [limiter.refused("a", guess=True) for _ in range(3)] == [True] * 3
    now[0] = 20
    limiter.stopped("a")
    assert limiter.finished() == []
    now[0] = 60
    assert limiter.finished() == [Summary("a", refusals=4, logged=3, seconds=60)]
    assert limiter.finished() == []


def test_refusals_without_a_guess_are_logged_within_limits():
    limiter = AttemptLimiter(limit=2, window=60, clock=lambda: 0.0)
    assert [limiter.refused("a", guess=False) for _ in range(5)] == [
        True, True, False, False, False]


def test_every_guess_is_logged_whatever_refusals_came_before():
    limiter = AttemptLimiter(limit=3, window=60, clock=lambda: 0.0)
    assert [limiter.refused("a", guess=False) for _ in range(40)] == [True] * 3 + [False] * 37
    assert [limiter.refused("a", guess=True) for _ in range(5)] == [True] * 5
    assert limiter.refused("a", guess=False) is False


def test_a_granted_attempt_starts_afresh_and_memory_is_bounded():
    limiter = AttemptLimiter(limit=2, window=60, max_clients=3, clock=lambda: 0.0)
    limiter.refused("a", guess=False)
    limiter.refused("a", guess=False)
    limiter.granted("a")
    assert limiter.refused("a", guess=False) is True
    for client in "bcde":
        limiter.refused(client, guess=True)
    assert len(limiter._windows) == 3  # the oldest went first
