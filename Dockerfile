# One image for every Python service of Rome: the Celery workers, beat, the
# Flask app (nero) under gunicorn, Flower and the one-shot migration.
# docker-compose.yml picks what each container runs with its `command`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    ROME_DATA_DIR=/app/data

WORKDIR /app

# Dependencies in their own layer: it is rebuilt only when requirements.txt
# changes, not on every source edit. Runtime only: no test or benchmark tools.
# Every dependency ships a wheel for this base (psycopg2-binary included), so
# no compiler is needed.
COPY requirements.txt .
RUN pip install -r requirements.txt

# The source, then Rome itself (its dependencies are already in place; the
# test and bench requirement files only name its extras, which stay uninstalled).
COPY pyproject.toml README.md requirements-test.txt requirements-bench.txt ./
COPY rome ./rome
COPY workers ./workers
COPY web ./web
RUN pip install --no-deps . \
    && rm -rf build ./*.egg-info

# Run as an unprivileged user that owns only the data folder (beat's schedule,
# the embedded broker and database when those are used, and the archive of polled
# bodies: made here, owned by rome, so that the volume compose mounts on it is too).
RUN groupadd --system rome \
    && useradd --system --gid rome --home-dir /app --no-create-home --shell /usr/sbin/nologin rome \
    && mkdir -p "$ROME_DATA_DIR/archive" "$ROME_DATA_DIR/public" \
    && chown -R rome:rome "$ROME_DATA_DIR"
USER rome

# 8083: nero (the Flask app under gunicorn); 5555: Flower.
EXPOSE 8083 5555

# Without a command from compose, serve the web app (web/gunicorn_conf.py: threads that
# take whole requests, no control socket, which gunicorn would make under /app).
CMD ["gunicorn", "-c", "python:web.gunicorn_conf", "-b", "0.0.0.0:8083", "web:create_app()"]
