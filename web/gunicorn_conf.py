"""Gunicorn settings for the web app, the same in the demo, compose and the image.

    gunicorn -c python:web.gunicorn_conf -b 127.0.0.1:8083 'web:create_app()'

Names are gunicorn's settings (https://gunicorn.org/reference/settings/);
the command line overrides any of them.
"""

# Threads, not the sync worker: a thread waits for a connection's first byte
# in gunicorn's poller, not in a thread, and SlowClientWorker (web/serving.py)
# cuts any client slower than 10 s to send its request or 10 s per write of
# the answer. Each worker serves up to `threads` requests at once and holds up
# to worker_connections (gunicorn's default, 1000) connections.
worker_class = "web.serving.SlowClientWorker"
workers = 2
threads = 64
# The arbiter restarts a worker whose main loop stalls this long; with threads
# that is a hung worker, not a slow request.
timeout = 30
graceful_timeout = 20
keepalive = 5
# Rome's URLs and headers are short: refuse anything much larger at once.
limit_request_line = 4094
limit_request_fields = 50
limit_request_field_size = 8190

accesslog = "-"
# The access log, without ?token= and the like (web/serving.py).
logger_class = "web.serving.RedactingLogger"

# Gunicorn would take X-Forwarded-Proto from 127.0.0.1 as proof of HTTPS.
# The app decides instead, from ROME_PROXY_HOPS (werkzeug's ProxyFix).
forwarded_allow_ips = ""
# No runtime control socket ($HOME/.gunicorn/gunicorn.ctl by default): the web
# needs none, and two gunicorns on one machine would fight over that path.
control_socket_disable = True
