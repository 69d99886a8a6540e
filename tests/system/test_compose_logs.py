"""The compose test's reading of `docker-compose logs`: what counts as an error."""

from tests.helpers.compose_stack.logs import error_lines

# As `docker-compose logs --no-color` prints RabbitMQ 3.10's report (seen in a compose run
# here, after a clean close of a healthcheck's connection): colour codes and all.
RED, END = "\x1b[38;5;160m", "\x1b[0m"
REPORT = """\
supervisor: {<0.12947.0>,rabbit_channel_sup_sup}
errorContext: shutdown_error
reason: noproc
offender: [{nb_children,1},
           {id,channel_sup},
           {mfargs,{rabbit_channel_sup,start_link,[]}},
           {restart_type,temporary},
           {shutdown,infinity},
           {child_type,supervisor}]"""


def rabbitmq(report: str, pid: str = "0.12947.0",
             time: str = "2026-12-02 20:16:52.545576+00:00") -> str:
    return "\n".join(f"rabbitmq_1       | {RED}{time} [error] <{pid}>     {line}{END}"
                     for line in report.splitlines())


INFO = ("rabbitmq_1       | 2026-12-02 20:16:52.539851+00:00 [info] <0.12945.0> closing AMQP "
        "connection <0.12945.0> (10.89.0.8:53402 -> 10.89.0.3:5672, vhost: '/', user: 'rome')")
WORKER_ERROR = ('caesar_1         | {"time":"2026-12-02T20:16:52.6+00:00","level":"ERROR",'
                '"logger":"celery.worker","message":"lost"}')


def test_only_rabbitmqs_harmless_channel_report_is_let_through():
    for reason in ("noproc", "shutdown"):
        for supervisor in ("rabbit_channel_sup_sup", "rabbit_channel_sup"):
            report = REPORT.replace("reason: noproc", f"reason: {reason}").replace(
                "rabbit_channel_sup_sup}", f"{supervisor}}}")
            assert error_lines("\n".join([INFO, rabbitmq(report), INFO])) == []


def test_every_other_error_still_counts():
    assert error_lines("\n".join([rabbitmq(REPORT), WORKER_ERROR])) == [WORKER_ERROR]
    # Another reason, another supervisor, another context: the whole report counts.
    for changed in (REPORT.replace("reason: noproc", "reason: {badmatch,error}"),
                    REPORT.replace("rabbit_channel_sup_sup", "rabbit_connection_sup"),
                    REPORT.replace("shutdown_error", "child_terminated")):
        assert len(error_lines(rabbitmq(changed))) == len(REPORT.splitlines())
    # A report naming another process's pid than its own is not the harmless one.
    assert error_lines(rabbitmq(REPORT, pid="0.1.0"))
    # Another error of RabbitMQ's, by the same process in the same instant, still counts.
    crash = rabbitmq("crasher:\n  initial call: rabbit_reader:init/3")
    assert len(error_lines("\n".join([rabbitmq(REPORT), crash]))) == 2


def test_postgres_refusing_a_client_while_it_starts_is_let_through_and_nothing_else():
    at = "2026-12-03 08:13:19.829 UTC"
    starting = f"postgresdb_1  | {at} [36] FATAL:  the database system is starting up"
    wrong = f"postgresdb_1  | {at} [37] FATAL:  password authentication failed"
    other = f"nero_1  | {at} FATAL:  the database system is starting up"
    assert error_lines("\n".join([starting, wrong, other])) == [wrong, other]
