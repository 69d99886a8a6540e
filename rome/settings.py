"""Build Rome's settings once from the environment, rejecting bad values early."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from rome.data_files import ARCHIVE, BROKER, MESSAGE_KEYS, PUBLIC, SQLITE

LOG_LEVELS = ("debug", "info", "warning", "error")
AMQP_SCHEMES = ("amqp://", "pyamqp://", "amqps://")
BROKER_SCHEMES = ("filesystem://", *AMQP_SCHEMES, "memory://")


class SettingsError(ValueError):
    """A setting has a value Rome cannot use; the message names the variable."""


# The secrets of .env.example, which docker-compose.yml takes as its defaults:
# public, so refused unless the deployment declares itself a development one.
DEVELOPMENT_SECRETS = {
    "POSTGRES_PASSWORD": "rome-dev-postgres",
    "RABBITMQ_PASSWORD": "rome-dev-rabbitmq",
    "ROME_ADMIN_TOKEN": "rome-dev-admin-token",
    "ROME_FLOWER_AUTH": "admin:rome-dev-flower",
}
# The cluster's Erlang cookie (.env.example, docker-compose.cluster.yml): checked where a
# Rome process is given it (compose gives it to the one-shot migrate, which every service
# waits for), so a production .env that kept it stops the stack.
DEVELOPMENT_COOKIE = {"RABBITMQ_ERLANG_COOKIE": "rome-dev-erlang-cookie"}
# Where those values would reach Rome: the passwords inside the two URLs, Flower's
# login under either of its names, and the cookie.
_SECRET_CARRIERS = ("ROME_DATABASE_URL", "ROME_BROKER_URL", "ROME_ADMIN_TOKEN",
                    "ROME_FLOWER_AUTH", "FLOWER_BASIC_AUTH", "ROME_SECRET_KEY",
                    "RABBITMQ_ERLANG_COOKIE")
_URLS = ("ROME_DATABASE_URL", "ROME_BROKER_URL")
ENVIRONMENTS = ("development", "production")

# Outside development, a login or token must be at least this long and none of these
# (compared in lower case): the first guesses of anyone trying.
MIN_SECRET = 12
WEAK_SECRETS = frozenset({
    "password", "password1", "password123", "passw0rd", "changeme", "change-me",
    "secret", "letmein", "welcome", "qwerty", "admin", "administrator", "root", "guest",
    "flower", "rabbitmq", "postgres", "rome", "token", "admin-token", "test", "default",
    "iloveyou", "trustno1", "123456", "12345678", "123456789", "1234567890",
    "123456789012", "qwertyuiop", "qwertyuiopasdf", "adminadminadmin",
})
# A run along one of these (either way) is as weak as a listed value.
_RUNS = ("0123456789" * 4, "abcdefghijklmnopqrstuvwxyz", "qwertyuiopasdfghjklzxcvbnm")


def weakness(secret: str) -> str | None:
    """Why secret is too weak to guard Rome outside development, or None if it is not."""
    lowered = secret.lower()
    if lowered in WEAK_SECRETS:
        return "is a well-known weak value"
    if len(secret) < MIN_SECRET:
        return f"is shorter than {MIN_SECRET} characters"
    if len(set(lowered)) < 4:
        return "has fewer than 4 different characters"
    if any(lowered in run or lowered in run[::-1] for run in _RUNS):
        return "is a run of keys or digits"
    return None


def _carried(env: Mapping[str, str], name: str) -> str:
    """The variable's value, and for a URL its percent-decoded form too (as drivers read it)."""
    value = env.get(name) or ""
    return f"{value}\n{unquote(value)}" if name in _URLS else value


def refuse_development_secrets(env: Mapping[str, str]) -> None:
    """Raise SettingsError naming every variable that carries a development secret."""
    development = {**DEVELOPMENT_SECRETS, **DEVELOPMENT_COOKIE}.values()
    public = [value.rpartition(":")[2] for value in development]
    found = [name for name in _SECRET_CARRIERS
             if any(secret in _carried(env, name) for secret in public)]
    if found:
        raise SettingsError(
            f"{', '.join(found)}: public development secrets from .env.example. Set secrets "
            "of your own, or ROME_ENV=development where nobody else can reach Rome"
        )


def refuse_weak_secrets(env: Mapping[str, str]) -> None:
    """Raise SettingsError if the admin token or a Flower login is short or well known."""
    token = env.get("ROME_ADMIN_TOKEN")
    if token and (why := weakness(token)):
        raise SettingsError(f"ROME_ADMIN_TOKEN {why}: outside development it must be at "
                            f"least {MIN_SECRET} characters and not a common value")
    for name in ("ROME_FLOWER_AUTH", "FLOWER_BASIC_AUTH"):
        user, _, password = (env.get(name) or "").partition(":")
        if not password:
            continue  # unset, or refused as malformed below
        why = "repeats the user name" if password.lower() == user.lower() else weakness(password)
        if why:
            raise SettingsError(f"{name}: the password {why}: outside development it must be "
                                f"at least {MIN_SECRET} characters and not a common value")


def refuse_default_broker_login(broker_url: str) -> None:
    """Raise SettingsError if a RabbitMQ node would be logged into as guest:guest."""
    for node in broker_url.split(";"):
        if not node.startswith(AMQP_SCHEMES):
            continue
        parts = urlsplit(node)
        # kombu fills in a missing user or password with RabbitMQ's default, guest.
        user = unquote(parts.username or "") or "guest"
        password = unquote(parts.password or "") or "guest"
        if user == "guest" and password == "guest":
            raise SettingsError(
                f"ROME_BROKER_URL: {_without_password(node)!r} logs in as RabbitMQ's default "
                "guest:guest (a URL without a login means that too). Give Rome a user and "
                "password of its own, or set ROME_ENV=development where nobody else can "
                "reach the broker"
            )


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    broker_url: str
    admin_token: str | None
    source_interval: float
    update_chance: float
    seed: str
    reporting_units: int
    night_seconds: float
    flower_auth: str | None
    log_format: str
    broker_transport_options: dict = field(default_factory=dict)
    secret_key: str | None = None
    log_level: str | None = None
    environment: str = "production"
    # Host names the web answers to (a leading dot: any subdomain); None: any.
    allowed_hosts: tuple[str, ...] | None = ("localhost", "127.0.0.1")
    # Reverse proxies in front of the web whose X-Forwarded-* headers to trust.
    proxy_hops: int = 0
    # Seconds a feed's own time may be ahead of the clock before it is refused.
    max_feed_ahead: float = 86_400.0
    # ROME_MAX_FEED_BYTES: a feed body larger than this is refused unread, with the reason.
    max_feed_bytes: int = 256_000_000
    # ROME_SOURCES: the TOML file of live endpoints to poll; None runs the simulated night.
    sources_file: Path | None = None
    # Where every fetched body is kept, content-addressed (ROME_ARCHIVE_DIR).
    archive_dir: Path | None = None
    # ROME_ARCHIVE_RETENTION: keep fetches younger than this many days ("30d"), or
    # the newest within this many bytes ("500MB"); None keeps everything.
    archive_retention_days: float | None = None
    archive_retention_bytes: int | None = None
    # ROME_PUBLISH_DIR: the static files readers read (rome/publish/); ROME_PUBLISH_INTERVAL:
    # the fewest seconds between two publishes of a race.
    publish_dir: Path | None = None
    publish_interval: float = 2.0
    # Task messages signed and checked with the keys of message_keys_file
    # (rome/ops/message_keys.py); ROME_MESSAGE_SIGNING=off only in development.
    message_signing: bool = True
    message_keys_file: Path = Path("data") / MESSAGE_KEYS

    @property
    def development(self) -> bool:
        return self.environment == "development"

    @property
    def embedded_broker(self) -> bool:
        return self.broker_url.startswith("filesystem://")

    @property
    def broker_nodes(self) -> tuple[str, ...]:
        """The broker's URLs: one, or every node of a RabbitMQ cluster in failover order."""
        return tuple(self.broker_url.split(";"))

    @property
    def amqp_broker(self) -> bool:
        return all(url.startswith(AMQP_SCHEMES) for url in self.broker_nodes)


def _number(env: Mapping[str, str], name: str, default: float, kind, low, high):
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a valid {kind.__name__}") from None
    if not (low <= value <= high):
        raise SettingsError(f"{name}={raw!r} must be between {low} and {high}")
    return value


def _allowed_hosts(raw: str) -> tuple[str, ...] | None:
    if raw.strip() == "*":
        return None
    hosts = tuple(h.strip().lower() for h in raw.split(",") if h.strip())
    for host in hosts:
        # What werkzeug's trusted-host check can match: names and IPv4, no port.
        if not re.fullmatch(r"\.?[a-z0-9-]+(\.[a-z0-9-]+)*", host):
            raise SettingsError(
                f"ROME_ALLOWED_HOSTS: {host!r} is not a host name or IPv4 address "
                "(no port, no scheme; a leading dot allows every subdomain; * allows any host)"
            )
    if not hosts:
        raise SettingsError("ROME_ALLOWED_HOSTS is empty: name the hosts, or * for any")
    return hosts
_SIZES = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}


def _retention(raw: str | None) -> tuple[float | None, int | None]:
    """Read ROME_ARCHIVE_RETENTION: "30d" (days) or "500MB" / "2000000" (bytes)."""
    if raw is None or not raw.strip():
        return None, None
    text = raw.strip().upper().replace(" ", "")
    days = re.fullmatch(r"(\d+(?:\.\d+)?)D(?:AYS?)?", text)
    if days:
        value = float(days[1])
        if not 0 < value <= 36_500:
            raise SettingsError(f"ROME_ARCHIVE_RETENTION={raw!r}: days must be above 0")
        return value, None
    size = re.fullmatch(r"(\d+)(B|KB|MB|GB|TB)?", text)
    if size is None or int(size[1]) == 0:
        raise SettingsError(f"ROME_ARCHIVE_RETENTION={raw!r} must be days (\"30d\") or a "
                            "size in bytes (\"500MB\", \"2000000\")")
    return None, int(size[1]) * _SIZES[size[2] or ""]


def _without_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    return f"{scheme}{sep}{credentials.partition(':')[0]}:***@{host}" if at else url


def _broker_url(raw: str) -> str:
    """Check ROME_BROKER_URL: one URL, or RabbitMQ nodes separated by ';' as kombu takes them."""
    nodes = [node.strip() for node in raw.split(";")]
    if len(nodes) == 1:
        if not raw.startswith(BROKER_SCHEMES):
            raise SettingsError(
                f"ROME_BROKER_URL={_without_password(raw)!r} must be an amqp:// or "
                "filesystem:// URL"
            )
        return raw
    for node in nodes:
        if not node:
            raise SettingsError("ROME_BROKER_URL has an empty node between its ';' separators")
        if not node.startswith(AMQP_SCHEMES):
            raise SettingsError(
                f"ROME_BROKER_URL: {_without_password(node)!r} is not an amqp:// URL; only "
                "RabbitMQ nodes can be listed, separated by ';'"
            )
    if len(set(nodes)) < len(nodes):
        raise SettingsError("ROME_BROKER_URL lists the same node twice")
    return ";".join(nodes)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read every ROME_* variable, apply defaults, and validate them."""
    env = os.environ if env is None else env
    environment = (env.get("ROME_ENV") or "production").lower()
    if environment not in ENVIRONMENTS:
        raise SettingsError(f"ROME_ENV={environment!r} must be development or production")
    if environment != "development":
        refuse_development_secrets(env)
        refuse_weak_secrets(env)
    data_dir = Path(env.get("ROME_DATA_DIR") or "data").resolve()

    database_url = env.get("ROME_DATABASE_URL") or f"sqlite:///{data_dir / SQLITE}"
    if not database_url.startswith(("sqlite://", "postgresql://", "postgresql+psycopg2://")):
        raise SettingsError(
            f"ROME_DATABASE_URL={database_url!r} must be a sqlite:// or postgresql:// URL"
        )

    broker_url = _broker_url(env.get("ROME_BROKER_URL") or "filesystem://localhost/")
    if environment != "development":
        refuse_default_broker_login(broker_url)
    transport_options: dict = {}
    if broker_url.startswith("filesystem://"):
        queue_dir = data_dir / BROKER
        transport_options = {
            "data_folder_in": str(queue_dir / "queue"),
            "data_folder_out": str(queue_dir / "queue"),
            "control_folder": str(queue_dir / "control"),
            # The transport polls its folder; kombu's default of 1 s would add
            # up to a second per hop to the demo's freshness.
            "polling_interval": 0.1,
        }

    admin_token = env.get("ROME_ADMIN_TOKEN") or None
    if admin_token is not None and len(admin_token) < 8:
        raise SettingsError("ROME_ADMIN_TOKEN must be at least 8 characters long")

    secret_key = env.get("ROME_SECRET_KEY") or None
    if secret_key is not None and len(secret_key) < 16:
        raise SettingsError("ROME_SECRET_KEY must be at least 16 characters long")

    flower_auth = env.get("ROME_FLOWER_AUTH") or None
    if flower_auth is not None:
        user, _, password = flower_auth.partition(":")
        if not user or not password:
            raise SettingsError("ROME_FLOWER_AUTH must look like user:password")

    allowed_hosts = _allowed_hosts(env.get("ROME_ALLOWED_HOSTS") or "localhost,127.0.0.1")

    log_format = (env.get("ROME_LOG_FORMAT") or "text").lower()
    if log_format not in ("text", "json"):
        raise SettingsError(f"ROME_LOG_FORMAT={log_format!r} must be text or json")

    log_level = (env.get("ROME_LOG_LEVEL") or "").lower() or None
    if log_level not in (None, *LOG_LEVELS):
        raise SettingsError(f"ROME_LOG_LEVEL={log_level!r} must be one of {', '.join(LOG_LEVELS)}")

    sources_file = env.get("ROME_SOURCES") or None
    retention_days, retention_bytes = _retention(env.get("ROME_ARCHIVE_RETENTION"))

    signing = (env.get("ROME_MESSAGE_SIGNING") or "on").strip().lower()
    if signing not in ("on", "off"):
        raise SettingsError(f"ROME_MESSAGE_SIGNING={signing!r} must be on or off")
    if signing == "off" and environment != "development":
        raise SettingsError(
            "ROME_MESSAGE_SIGNING=off lets anyone holding the broker password enqueue work: "
            "allowed only with ROME_ENV=development"
        )
    keys_file = env.get("ROME_MESSAGE_KEYS") or data_dir / MESSAGE_KEYS

    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        broker_url=broker_url,
        admin_token=admin_token,
        source_interval=_number(env, "ROME_SOURCE_INTERVAL", 2.0, float, 0.05, 3600.0),
        update_chance=_number(env, "ROME_UPDATE_CHANCE", 0.3, float, 0.0, 1.0),
        seed=env.get("ROME_SEED") or "rome",
        reporting_units=_number(env, "ROME_REPORTING_UNITS", 15, int, 1, 100_000),
        night_seconds=_number(env, "ROME_NIGHT_SECONDS", 10_800.0, float, 1.0, 10**7),
        flower_auth=flower_auth,
        log_format=log_format,
        broker_transport_options=transport_options,
        secret_key=secret_key,
        log_level=log_level,
        environment=environment,
        allowed_hosts=allowed_hosts,
        proxy_hops=_number(env, "ROME_PROXY_HOPS", 0, int, 0, 10),
        max_feed_ahead=_number(env, "ROME_MAX_FEED_AHEAD", 86_400.0, float, 0.0, 10**8),
        max_feed_bytes=_number(env, "ROME_MAX_FEED_BYTES", 256_000_000, int, 1_000, 4 * 10**9),
        sources_file=Path(sources_file).resolve() if sources_file else None,
        archive_dir=Path(env.get("ROME_ARCHIVE_DIR") or data_dir / ARCHIVE).resolve(),
        archive_retention_days=retention_days,
        archive_retention_bytes=retention_bytes,
        publish_dir=Path(env.get("ROME_PUBLISH_DIR") or data_dir / PUBLIC).resolve(),
        publish_interval=_number(env, "ROME_PUBLISH_INTERVAL", 2.0, float, 0.0, 3600.0),
        message_signing=signing == "on",
        message_keys_file=Path(keys_file).resolve(),
    )


def prepare_data_dir(settings: Settings) -> None:
    """Create the folders the embedded database and broker write into."""
    if settings.database_url.startswith("sqlite:///"):
        Path(settings.database_url.removeprefix("sqlite:///")).parent.mkdir(
            parents=True, exist_ok=True
        )
    for key in ("data_folder_in", "data_folder_out", "control_folder"):
        if key in settings.broker_transport_options:
            Path(settings.broker_transport_options[key]).mkdir(parents=True, exist_ok=True)
