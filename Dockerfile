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
# changes, not on every source edit. Every dependency ships a wheel for this
# base (psycopg2-binary included), so no compiler is needed.
COPY requirements.txt .
RUN pip install -r requirements.txt

# The source, then Rome itself (its dependencies are already in place).
COPY pyproject.toml README.md ./
COPY rome ./rome
COPY workers ./workers
COPY web ./web
RUN pip install --no-deps . \
    && rm -rf build ./*.egg-info

# Run as an unprivileged user that owns only the data folder (beat's schedule,
# the embedded broker and database when those are used).
RUN groupadd --system rome \
    && useradd --system --gid rome --home-dir /app --no-create-home --shell /usr/sbin/nologin rome \
    && mkdir -p "$ROME_DATA_DIR" \
    && chown rome:rome "$ROME_DATA_DIR"
USER rome

# 8083: nero (the Flask app under gunicorn); 5555: Flower.
EXPOSE 8083 5555

# Without a command from compose, serve the web app (no control socket: gunicorn would
# make it under $HOME, /app, which the rome user cannot write).
CMD ["gunicorn", "-b", "0.0.0.0:8083", "--no-control-socket", "web:create_app()"]
