"""Log events one per line: key=value text, or JSON objects with ROME_LOG_FORMAT=json."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

# Attributes a filter may set on a record (workers/ adds the current task's).
CONTEXT = ("task_id", "task_name", "parent_id", "root_id")


def event(name: str, **fields: object) -> str:
    """Render one event with its fields as key=value text."""
    parts = [f"event={name}"]
    for key, value in fields.items():
        text = str(value)
        if not text or any(ch in text for ch in ' ="'):
            text = json.dumps(text)
        parts.append(f"{key}={text}")
    return " ".join(parts)


def log(logger: logging.Logger, name: str, level: int = logging.INFO, **fields: object) -> None:
    """Log event name with fields; JsonFormatter turns the fields into JSON keys."""
    logger.log(level, event(name, **fields), extra={"rome_event": name, "rome_fields": fields})


class JsonFormatter(logging.Formatter):
    """Format every record, Rome's events and libraries' lines alike, as one JSON object."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "process": record.processName,
        }
        for key in CONTEXT:
            value = getattr(record, key, None)
            if value not in (None, "???"):
                data[key] = value
        name = getattr(record, "rome_event", None)
        if name is not None:
            data["event"] = name
            data.update(getattr(record, "rome_fields", {}))
        else:
            data["message"] = record.getMessage()
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str, separators=(",", ":"))
