"""Build the test stand-ins for the images docker-compose.yml names, and Rome's own image.

No image registry is reachable from our machines, so `python:3.11-slim`, `postgres:16`,
`rabbitmq:3.13-management` and `nginx:1.27` are made here from a Debian bookworm root
filesystem (debootstrap, then `podman import`) under those exact names. They are TEST
STAND-INS: they honour only what the compose file relies on, run Debian's versions (Python
3.11, PostgreSQL 15, RabbitMQ 3.10, nginx-light 1.22), and are never the images users get.
Each carries a label with the hash of its own recipe (its entry below and its files in
images/), so a machine builds each once per recipe.

Rome's image is built from the unchanged Dockerfile and build context with `podman build`.
Its `pip install` gets the pinned packages from a wheelhouse downloaded on the host and
mounted, with a pip config that points at it, as the build's home folder (/root) for the
RUN steps only: the build has no network, and nothing of the mount stays in the image.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers.paths import ROOT

HERE = Path(__file__).resolve().parent
IMAGES = HERE / "images"
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
RECIPE_LABEL = "org.rome.test-standin.recipe"
RECIPE_VERSION = 1
ROME_IMAGE = "rome:local"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Standin:
    """A stand-in image: Debian packages, files, setup commands and image settings."""

    name: str
    packages: list[str]
    setup: str = ""
    files: dict[str, str] = field(default_factory=dict)  # image path -> file in images/
    changes: list[str] = field(default_factory=list)  # Dockerfile instructions


STANDINS = [
    # The Dockerfile needs `python` and `pip` on the path, and a Python whose pip installs
    # freely (Debian's own is "externally managed"): a virtual environment first on PATH.
    Standin(
        "docker.io/library/python:3.11-slim",
        ["python3", "python3-venv", "ca-certificates", "netbase"],
        setup="python3 -m venv /opt/python",
        changes=[f"ENV PATH=/opt/python/bin:{PATH}", "ENV LANG=C.UTF-8", 'CMD ["python3"]'],
    ),
    # POSTGRES_USER/PASSWORD/DB on first start, pg_isready, the data volume.
    Standin(
        "docker.io/library/postgres:16",
        ["postgresql-15", "netbase"],
        # Debian's package makes a cluster of its own at install: the image uses PGDATA.
        setup="rm -rf /var/lib/postgresql/15 /etc/postgresql/15"
              " && mkdir -p /var/lib/postgresql/data && chown postgres: /var/lib/postgresql/data",
        files={"/usr/local/bin/docker-entrypoint.sh": "postgres-entrypoint.sh"},
        changes=[
            f"ENV PATH=/usr/lib/postgresql/15/bin:{PATH}",
            "ENV PGDATA=/var/lib/postgresql/data",
            "ENV LANG=C.UTF-8",
            "VOLUME /var/lib/postgresql/data",
            "EXPOSE 5432",
            "STOPSIGNAL SIGINT",
            'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]',
            'CMD ["postgres"]',
        ],
    ),
    # RABBITMQ_DEFAULT_USER/PASS, rabbitmq-diagnostics, the management UI, the data volume.
    Standin(
        "docker.io/library/rabbitmq:3.13-management",
        ["rabbitmq-server", "netbase"],
        setup="echo '[rabbitmq_management].' > /etc/rabbitmq/enabled_plugins",
        files={"/usr/local/bin/docker-entrypoint.sh": "rabbitmq-entrypoint.sh"},
        changes=[
            "ENV LANG=C.UTF-8",
            "VOLUME /var/lib/rabbitmq",
            "EXPOSE 5672",
            "EXPOSE 15672",
            'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]',
            'CMD ["/usr/lib/rabbitmq/bin/rabbitmq-server"]',
        ],
    ),
    # nginx with Debian's nginx-light: conf.d/*.conf included (compose mounts
    # docker/nginx.conf there), logs to the container's output, in the foreground.
    Standin(
        "docker.io/library/nginx:1.27",
        ["nginx-light", "netbase"],
        # Debian's default site would answer every request as the default server.
        setup="rm -f /etc/nginx/sites-enabled/default"
              " && ln -sf /dev/stdout /var/log/nginx/access.log"
              " && ln -sf /dev/stderr /var/log/nginx/error.log",
        changes=[
            "EXPOSE 80",
            "STOPSIGNAL SIGQUIT",
            'CMD ["nginx", "-g", "daemon off;"]',
        ],
    ),
]


def recipe_hash(standin: Standin) -> str:
    """Hash what one stand-in is made from: its recipe, the suite and its files in images/,
    so that adding or changing one stand-in rebuilds that one alone.

    Bump RECIPE_VERSION when a change to how they are built (below) changes the images.
    """
    digest = hashlib.sha256(f"{RECIPE_VERSION} {SUITE} {standin!r}".encode())
    for source in sorted(standin.files.values()):
        digest.update(source.encode() + b"\0" + (IMAGES / source).read_bytes())
    return digest.hexdigest()[:16]


def _run(argv: list[str], env: dict[str, str], log: Path, **kwargs) -> None:
    with open(log, "ab") as out:
        out.write(f"$ {' '.join(argv)}\n".encode())
        out.flush()
        result = subprocess.run(argv, env=env, stdout=out, stderr=subprocess.STDOUT, **kwargs)
    if result.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{argv[0]} exited with {result.returncode} (log {log}):\n{tail}")


def _label(name: str, env: dict[str, str]) -> str | None:
    result = subprocess.run(
        ["podman", "image", "inspect", "--format", f'{{{{index .Labels "{RECIPE_LABEL}"}}}}',
         name],
        env=env, capture_output=True, text=True,
    )
    return result.stdout.strip() if result.returncode == 0 else None


def _build_standin(standin: Standin, recipe: str, env: dict[str, str], work: Path) -> float:
    """Debootstrap, set up and import one stand-in; return the seconds it took."""
    started = time.monotonic()
    slug = standin.name.rsplit("/", 1)[-1].replace(":", "-")
    rootfs = work / slug
    log = work / f"{slug}.log"
    shutil.rmtree(rootfs, ignore_errors=True)
    try:
        _make_rootfs(standin, rootfs, env, log)
        replaced = _image_id(standin.name, env)
        _import(standin, rootfs, recipe, env, log)
        if replaced and replaced != _image_id(standin.name, env):
            # The old stand-in is now untagged: drop it unless a container still uses it.
            subprocess.run(["podman", "rmi", replaced], env=env, capture_output=True)
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)
    return time.monotonic() - started


def _image_id(name: str, env: dict[str, str]) -> str | None:
    result = subprocess.run(["podman", "image", "inspect", "--format", "{{.Id}}", name],
                            env=env, capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else None


def _make_rootfs(standin: Standin, rootfs: Path, env: dict[str, str], log: Path) -> None:
    _run(["debootstrap", "--variant=minbase", f"--include={','.join(standin.packages)}",
          SUITE, str(rootfs), MIRROR], env, log)
    for target, source in standin.files.items():
        destination = rootfs / target.lstrip("/")
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(IMAGES / source, destination)
    if standin.setup:
        _run(["chroot", str(rootfs), "/bin/sh", "-c", standin.setup], env, log)
    for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for path in (rootfs / leftover).glob("*"):
            if path.is_file():
                path.unlink()


def _import(standin: Standin, rootfs: Path, recipe: str, env: dict[str, str], log: Path):
    changes = [
        *standin.changes,
        f"LABEL {RECIPE_LABEL}={recipe}",
        "LABEL org.rome.test-standin=this is a test stand-in made by tests/helpers/compose_stack,"
        " not the official image",
    ]
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."],
                           stdout=subprocess.PIPE)
    try:
        argv = ["podman", "import"]
        for change in changes:
            argv += ["--change", change]
        _run([*argv, "-", standin.name], env, log, stdin=tar.stdout)
    finally:
        tar.stdout.close()
        tar.wait()


def ensure_standins(env: dict[str, str], work: Path) -> dict[str, float]:
    """Build each stand-in whose recipe changed; return seconds per image built."""
    stale = [s for s in STANDINS if _label(s.name, env) != recipe_hash(s)]
    if not stale:
        return {}
    # Two at a time: debootstrap is mostly unpacking, and the machine has two cores.
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {s.name: pool.submit(_build_standin, s, recipe_hash(s), env, work)
                   for s in stale}
        return {name: future.result() for name, future in futures.items()}


def wheelhouse(cache: Path) -> Path:
    """Download the pinned requirements (and the build backend) as wheels, once per pin set.

    The folder is laid out as the home of the image build: `wheels/` and the pip config
    `.config/pip/pip.conf` that tells pip to install from it and nothing else.
    """
    requirements = ROOT / "requirements.txt"
    pyproject = ROOT / "pyproject.toml"
    key = hashlib.sha256(requirements.read_bytes() + pyproject.read_bytes()).hexdigest()[:16]
    home = cache / f"build-home-{key}"
    if (home / ".config" / "pip" / "pip.conf").exists():
        return home
    cache.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix="build-home-", dir=cache))
    # pip builds Rome itself (`pip install --no-deps .`) with the backend pyproject.toml names.
    backend = _build_requires(pyproject)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:",
         "--dest", str(partial / "wheels"), "-r", str(requirements), *backend],
        check=True, capture_output=True, text=True,
    )
    config = partial / ".config" / "pip"
    config.mkdir(parents=True)
    (config / "pip.conf").write_text("[global]\nno-index = true\nfind-links = /root/wheels\n")
    partial.chmod(0o755)
    partial.rename(home)
    return home


def _build_requires(pyproject: Path) -> list[str]:
    import tomllib

    return tomllib.loads(pyproject.read_text())["build-system"]["requires"]


def build_rome_image(env: dict[str, str], cache: Path, log: Path) -> float:
    """Build rome:local from the Dockerfile and context, as `docker compose build` would."""
    started = time.monotonic()
    home = wheelhouse(cache)
    _run(["podman", "build", "--pull=never", "--network=none", "--volume", f"{home}:/root:ro",
          "--file", str(ROOT / "Dockerfile"), "--tag", ROME_IMAGE, str(ROOT)], env, log)
    # Drop the layers of earlier builds (an old dependency layer is 500 MB); this build's
    # own stay, as the cache of the next.
    _run(["podman", "image", "prune", "--force"], env, log)
    return time.monotonic() - started
