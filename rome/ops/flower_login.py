"""Keep the demo's Flower login in its data folder, so it stays the same from run to run."""

from __future__ import annotations

import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from rome.data_files import FLOWER_LOGIN
from rome.settings import SettingsError


@dataclass(frozen=True)
class FlowerLogin:
    user: str
    password: str
    source: str  # where it came from: ROME_FLOWER_AUTH or the file's path
    warning: str | None = None

    @property
    def basic_auth(self) -> str:
        return f"{self.user}:{self.password}"


def demo_login(data_dir: Path, chosen: str | None) -> FlowerLogin:
    """Return the login chosen in ROME_FLOWER_AUTH, else the one kept in data_dir (made once)."""
    if chosen:
        user, _, password = chosen.partition(":")
        return FlowerLogin(user, password, "ROME_FLOWER_AUTH")
    path = data_dir / FLOWER_LOGIN
    try:
        # Created readable by its owner only, and only if absent: two demos starting
        # at once on one folder still agree on one password.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read(path)
    with os.fdopen(fd, "w") as file:
        file.write(f"admin:{secrets.token_urlsafe(12)}\n")
    return _read(path)


def _read(path: Path) -> FlowerLogin:
    warning = None
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        os.chmod(path, 0o600)
        warning = (f"{path} was readable by others (mode {mode:04o}); it is 0600 now. "
                   "Delete it to get a new password.")
    user, _, password = path.read_text().strip().partition(":")
    if not user or not password or "\n" in password:
        raise SettingsError(f"{path} must hold one line user:password; delete it to get a new one")
    return FlowerLogin(user, password, str(path), warning)
