"""Write JSON Schemas from the TypedDicts Rome's JSON is declared as.

A field says what its type cannot (meaning, bounds, format) with a ``Meta`` in
``Annotated[...]``; ``Schemas`` reads both, so the words and bounds a client
reads are declared once, beside the type (web/openapi.py builds the API's
document with it). Written for OpenAPI 3.0: ``X | None`` is ``nullable``.
"""

from __future__ import annotations

import dataclasses
import types
from dataclasses import dataclass
from typing import Annotated, Union, get_args, get_origin, get_type_hints, is_typeddict


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

# Bare Python types and the JSON Schema types they are written as.
SCALARS = {int: "integer", float: "number", str: "string", bool: "boolean"}
META_KEYS = {"max_items": "maxItems"}  # the rest are spelled alike


class Schemas:
    """Write JSON Schemas of Python types, collecting each TypedDict once as a component."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix  # where a $ref finds the components
        self.components: dict[str, dict] = {}

    def of(self, tp) -> dict:
        """Return tp's schema: a $ref for a TypedDict, else the schema itself."""
        metas: list[Meta] = []
        if get_origin(tp) is Annotated:
            tp, *extras = get_args(tp)
            metas = [m for m in extras if isinstance(m, Meta)]
        schema = self._bare(tp)
        for meta in metas:
            for field in dataclasses.fields(meta):
                value = getattr(meta, field.name)
                if value is not None:
                    key = META_KEYS.get(field.name, field.name)
                    schema[key] = list(value) if field.name == "enum" else value
        if schema.get("nullable") and "enum" in schema and None not in schema["enum"]:
            schema["enum"].append(None)
        if "$ref" in schema and len(schema) > 1:
            # OpenAPI 3.0 ignores whatever stands beside a $ref.
            raise TypeError(f"say it in {schema['$ref']}'s docstring, not beside it: {metas}")
        return schema

    def _bare(self, tp) -> dict:
        origin, args = get_origin(tp), get_args(tp)
        if origin in (Union, types.UnionType):
            present = [a for a in args if a is not type(None)]
            if len(present) != 1:
                raise TypeError(f"only X | None is written as a schema, not {tp}")
            return {**self.of(present[0]), "nullable": True}
        if origin is list:
            return {"type": "array", "items": self.of(args[0])}
        if origin is dict:
            if args[0] is not str:
                raise TypeError(f"JSON object keys are strings, not {args[0]}")
            return {"type": "object", "additionalProperties": self.of(args[1])}
        if is_typeddict(tp):
            return {"$ref": self.prefix + self.component(tp)}
        if tp in SCALARS:
            return {"type": SCALARS[tp]}
        raise TypeError(f"no JSON Schema for {tp!r}")

    def component(self, shape) -> str:
        """Add shape, a TypedDict, to the components once; return its name."""
        name = shape.__name__.removesuffix("Json")
        if name not in self.components:
            self.components[name] = {}  # taken before its fields, which may refer back
            fields = get_type_hints(shape, include_extras=True)
            schema = {"type": "object", "additionalProperties": False}
            if shape.__doc__:
                schema["description"] = " ".join(shape.__doc__.split())
            schema["required"] = [f for f in fields if f in shape.__required_keys__]
            schema["properties"] = {f: self.of(tp) for f, tp in fields.items()}
            self.components[name] = schema
        return name
