"""Which lines of `docker-compose logs` are errors: Rome's JSON levels and the servers' own."""

from __future__ import annotations

import re

MARKERS = ('"level":"ERROR"', '"level":"CRITICAL"', "[ERROR]", "[error]", "Traceback",
           "FATAL:", "PANIC:")

# One exception, exactly. RabbitMQ 3.10 logs this supervisor report at error level when a
# connection ends while one of its channels is still ending. Its maintainers call it
# harmless (rabbitmq-server #1552, #3899), and it comes after a clean AMQP close too: once
# in about 80 of the workers' healthchecks in one compose run (python -m workers.ping,
# which closes its channel, then its connection). Only the whole report is let through: each
# of its lines carries the report's time and the supervisor's pid, the supervisor is the
# connection's channel supervisor, the context shutdown_error, the reason noproc or
# shutdown; anything else at error level, from RabbitMQ or anyone, still counts.
RABBITMQ_LINE = re.compile(
    r"(?P<time>\d{4}-\d\d-\d\d \S+) \[error\] <(?P<pid>[\d.]+)> +(?P<text>.*)"
)
ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*m")  # RabbitMQ colours its console lines


def harmless_report(pid: str) -> tuple[re.Pattern, ...]:
    """The first lines of the harmless report by the supervisor with this pid."""
    return (
        re.compile(rf"supervisor: \{{<{re.escape(pid)}>,rabbit_channel_sup(_sup)?\}}"),
        re.compile(r"errorContext: shutdown_error"),
        re.compile(r"reason: (noproc|shutdown)"),
        re.compile(r"offender: \[.*"),
    )


def _reports(lines: list[str]) -> dict[tuple[str, str], list[str]]:
    """RabbitMQ's error lines by report: (time, pid) -> the lines' texts, in order."""
    reports: dict[tuple[str, str], list[str]] = {}
    for line in lines:
        match = RABBITMQ_LINE.search(line)
        if match:
            reports.setdefault((match["time"], match["pid"]), []).append(match["text"].strip())
    return reports


def _harmless_length(pid: str, texts: list[str]) -> int:
    """How many of a report's lines are the harmless report, from its first: 0 if it is not."""
    patterns = harmless_report(pid)
    head = texts[: len(patterns)]
    if len(head) < len(patterns) or not all(
        pattern.fullmatch(text) for pattern, text in zip(patterns, head, strict=True)
    ):
        return 0
    # The report ends where the offender's list closes.
    depth = 0
    for index, text in enumerate(texts[len(patterns) - 1:], start=len(patterns) - 1):
        depth += text.count("[") - text.count("]")
        if depth <= 0:
            return index + 1
    return 0


POSTGRES_NOT_READY = "FATAL:  the database system is starting up"


def error_lines(text: str) -> list[str]:
    """The lines of text at error level or worse, but for RabbitMQ's harmless report."""
    lines = [ANSI_COLOUR.sub("", line) for line in text.splitlines()]
    excused = {key: _harmless_length(key[1], texts) for key, texts in _reports(lines).items()}
    errors = []
    for line in lines:
        if not any(marker in line for marker in MARKERS):
            continue
        if line.startswith("postgresdb") and line.endswith(POSTGRES_NOT_READY):
            # A client asking before the server accepts any (its own healthcheck's
            # pg_isready, a second after start): PostgreSQL refuses it at FATAL, by design.
            continue
        match = RABBITMQ_LINE.search(line)
        if match and excused.get((match["time"], match["pid"]), 0) > 0:
            excused[(match["time"], match["pid"])] -= 1
            continue
        errors.append(line)
    return errors
