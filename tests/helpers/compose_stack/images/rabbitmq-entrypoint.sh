#!/bin/sh
# TEST STAND-IN for the entrypoint of the official rabbitmq image (tests/helpers/compose_stack):
# create the user RABBITMQ_DEFAULT_USER with RABBITMQ_DEFAULT_PASS on first start, log to
# the console, then run the broker as the rabbitmq user.
set -eu

if [ "$(id -u)" = 0 ]; then
    {
        echo "log.console = true"
        echo "log.file = false"
        if [ -n "${RABBITMQ_DEFAULT_USER:-}" ]; then
            echo "default_user = $RABBITMQ_DEFAULT_USER"
            echo "default_pass = ${RABBITMQ_DEFAULT_PASS:?RABBITMQ_DEFAULT_PASS must be set}"
        fi
    } > /etc/rabbitmq/rabbitmq.conf
    chmod 640 /etc/rabbitmq/rabbitmq.conf
    chown root:rabbitmq /etc/rabbitmq/rabbitmq.conf
    # The named volume arrives owned by root: give it to rabbitmq, then drop to it.
    chown -R rabbitmq:rabbitmq /var/lib/rabbitmq
    exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups "$0" "$@"
fi

export HOME=/var/lib/rabbitmq
cd "$HOME"
exec "$@"
