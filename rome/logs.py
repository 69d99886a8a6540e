"""Format log events as one line each: key=value text or a JSON object."""

from __future__ import annotations

import json
import logging
import os


def event(name: str, **fields: object) -> str:
    """Render one event with its fields in the format ROME_LOG_FORMAT asks for."""
    if os.environ.get("ROME_LOG_FORMAT", "text").lower() == "json":
        return json.dumps({"event": name, **fields}, default=str, separators=(",", ":"))
    parts = [f"event={name}"]
    for key, value in fields.items():
        text = str(value)
        if not text or any(ch in text for ch in ' ="'):
            text = json.dumps(text)
        parts.append(f"{key}={text}")
    return " ".join(parts)


def log(logger: logging.Logger, name: str, level: int = logging.INFO, **fields: object) -> None:
    logger.log(level, event(name, **fields))
