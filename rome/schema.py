"""Say what a JSON field means and how it is bounded, beyond its Python type.

The JSON Rome answers is declared as TypedDicts whose fields carry a ``Meta``
in ``Annotated[...]``: the words and bounds a client reads, beside the type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated


@dataclass(frozen=True, slots=True)
class Meta:
    """What a field's type cannot say: its meaning, bounds, format or allowed values."""

    description: str | None = None
    minimum: int | None = None
    maximum: int | None = None
    pattern: str | None = None
    format: str | None = None
    enum: tuple[str, ...] | None = None
    max_items: int | None = None


Count = Annotated[int, Meta(minimum=0)]
Moment = Annotated[str, Meta(format="date-time")]  # RFC 3339, as datetime.isoformat writes it
