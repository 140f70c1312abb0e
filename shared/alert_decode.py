"""A fast decoder for native alerts, derived from :class:`~shared.alert.Alert`.

``Alert.model_validate_json`` costs ~7 us per small alert, the largest single cost on the
router's hot path. msgspec checks the same types and limits in a fraction of that. The msgspec
struct here is *derived* from the pydantic model's fields, constraints and defaults (``Alert``
stays the contract), and the router routes the struct itself: it satisfies
:class:`~shared.alert.AlertView`, the same attribute names and value types (``severity`` and
``status`` as the StrEnums). Whatever needs a real ``Alert`` gets one from :func:`as_model`.

The fast path only ever accepts: anything msgspec refuses, and anything it cannot judge exactly
as pydantic would (no ``id``, which intake derives from the record; numbers as times, ``NaN``,
out-of-range floats, nested payloads, ...), yields ``None`` and the caller runs pydantic, so
rejection reasons and messages stay pydantic's. A model feature this module does not understand
fails at import, not silently at run time.
"""

from __future__ import annotations

import types
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Final, Union, cast, get_args, get_origin

import msgspec
from annotated_types import MaxLen, MinLen
from pydantic import StringConstraints, TypeAdapter, WithJsonSchema
from pydantic_core import PydanticUndefined

from shared.alert import Alert, AlertView

__all__ = ["as_model", "decode_alert"]

_KNOWN_CONFIG: Final = {"extra", "frozen", "str_max_length"}


def _string(constraints: list[Any], str_max: int | None) -> Any:
    low: int | None = None
    high: int | None = None
    for c in constraints:
        if isinstance(c, MinLen):
            low = c.min_length
        elif isinstance(c, MaxLen):
            high = c.max_length
        elif isinstance(c, StringConstraints):
            extra = {k for k, v in vars(c).items() if v is not None} - {"min_length", "max_length"}
            if extra:
                raise TypeError(f"string constraints {sorted(extra)} have no fast path")
            low = c.min_length if c.min_length is not None else low
            high = c.max_length if c.max_length is not None else high
        else:
            raise TypeError(f"constraint {c!r} has no fast path")
    # pydantic's config-wide ``str_max_length`` applies where a string sets no limit of its own
    # (dict keys included); pydantic counts code points, and so does msgspec.
    return Annotated[str, msgspec.Meta(min_length=low, max_length=high if high else str_max)]


_FLAT: Final = str | int | float | bool | None
"""A value of a container the fast path takes: a nested one is pydantic's, which checks the
nesting limit (the containers' validator has no work on flat ones); plain ``str``, as pydantic
puts no limit on strings inside ``Any``."""


def _msgspec_type(
    tp: Any, constraints: list[Any], str_max: int | None, *, flat: bool = False
) -> Any:
    """The msgspec type that accepts what pydantic accepts for ``tp`` (or less, never more);
    ``flat``: ``Any`` values are scalars (:data:`_FLAT`)."""
    constraints = [c for c in constraints if not isinstance(c, WithJsonSchema)]  # schema only
    origin = get_origin(tp)
    if origin is Annotated:
        base, *meta = get_args(tp)
        return _msgspec_type(base, [*meta, *constraints], str_max)
    if tp is str:
        return _string(constraints, str_max)
    if origin in (Union, types.UnionType):
        parts = [
            type(None) if a is type(None) else _msgspec_type(a, constraints, str_max)
            for a in get_args(tp)
        ]
        return Union[tuple(parts)]  # noqa: UP007  # built at run time from a tuple
    if constraints and origin is not dict:
        raise TypeError(f"constraints {constraints!r} on {tp!r} have no fast path")
    if isinstance(tp, type) and issubclass(tp, StrEnum):
        return tp  # by value, as pydantic reads an enum from JSON
    if tp is datetime:
        return str  # pydantic parses it (below); a number as a time takes the pydantic path
    if tp is Any:
        return _FLAT if flat else Any
    if origin is dict:
        key, value = get_args(tp)
        high = None
        for c in constraints:
            if not isinstance(c, MaxLen):
                raise TypeError(f"constraint {c!r} on {tp!r} has no fast path")
            high = c.max_length
        keys = _msgspec_type(key, [], str_max)
        values = _msgspec_type(value, [], str_max, flat=flat)
        mapping: Any = dict[keys, values]  # type: ignore[valid-type]  # built at run time
        return Annotated[mapping, msgspec.Meta(max_length=high)] if high else mapping
    raise TypeError(f"field type {tp!r} has no fast path")


def _is_time(tp: Any) -> bool:
    if get_origin(tp) is Annotated:
        return _is_time(get_args(tp)[0])
    if get_origin(tp) in (Union, types.UnionType):
        return any(_is_time(a) for a in get_args(tp))
    return tp is datetime


_REQUIRED_HERE: Final = frozenset({"id"})
"""Defaulted in the model but required by the fast path: intake derives a missing ``id`` from
the record (``_fill_defaults``), on pydantic's path."""
_DEDUP_KEY_VALIDATOR: Final = "_empty_dedup_key_is_the_id"
"""The one ``info``-taking validator, done inline below: an empty ``dedup_key`` is the id."""
_CONTAINERS: Final = ("annotations", "payload")
"""The fields whose validator (the nesting limit) only has work on nested values: the fast path
decodes flat ones only (:data:`_FLAT`)."""


def _check_model() -> None:
    """Refuse at import a model this module would decode differently from pydantic."""
    config = Alert.model_config
    if set(config) - _KNOWN_CONFIG or config.get("extra") != "forbid":
        raise TypeError(f"Alert config {dict(config)} has no fast path")
    decorators = Alert.__pydantic_decorators__
    if decorators.model_validators or decorators.root_validators or decorators.validators:
        raise TypeError("Alert has model validators: no fast path")
    if Alert.__pydantic_post_init__ or Alert.__private_attributes__:
        raise TypeError("Alert has post-init or private state: no fast path")
    seen = {
        (name, field)
        for name, dec in decorators.field_validators.items()
        for field in dec.info.fields
        if dec.info.mode == "after"
    }
    expected = {(_DEDUP_KEY_VALIDATOR, "dedup_key")} | {
        ("_limit_nesting", field) for field in _CONTAINERS
    }
    if seen != expected or len(decorators.field_validators) != 2:
        raise TypeError(f"Alert validators {sorted(seen)} have no fast path")
    for name, info in Alert.model_fields.items():
        if info.alias or info.validation_alias:
            raise TypeError(f"field {name} has an alias: no fast path")


def _field(name: str) -> tuple[str, Any, Any]:
    info = Alert.model_fields[name]
    str_max = Alert.model_config.get("str_max_length")
    tp = _msgspec_type(info.annotation, list(info.metadata), str_max, flat=name in _CONTAINERS)
    if name in _REQUIRED_HERE or (
        info.default is PydanticUndefined and info.default_factory is None
    ):
        return name, tp, msgspec.NODEFAULT
    if info.default_factory is not None:
        return name, tp, msgspec.field(default_factory=info.default_factory)  # type: ignore[arg-type]
    return name, tp, info.default


def _kafka_key(self: AlertView) -> bytes:
    return self.dedup_key.encode()


_check_model()
_STRUCT: Final = msgspec.defstruct(
    "NativeAlert",
    [_field(name) for name in Alert.model_fields],
    namespace={"kafka_key": _kafka_key, "__module__": __name__},
    kw_only=True,
    forbid_unknown_fields=True,
    gc=False,  # decoded JSON cannot refer back to the struct: no cycle, nothing for GC to scan
)
_DECODER: Final = msgspec.json.Decoder(_STRUCT)
_TIMES: Final[tuple[tuple[str, TypeAdapter[Any]], ...]] = tuple(
    (name, TypeAdapter(info.annotation))
    for name, info in Alert.model_fields.items()
    if _is_time(info.annotation)
)
"""pydantic's own parser for each time field: its lax RFC 3339 reading is its own."""
_FIELD_NAMES: Final = tuple(Alert.model_fields)


def decode_alert(body: bytes) -> AlertView | None:
    """The alert ``Alert.model_validate_json(body)`` would return, as a msgspec struct with the
    same attribute values, or ``None`` when the fast path cannot say (the caller then asks
    pydantic, which also words the refusal).

    Returns ``None`` for ``body`` that is not valid UTF-8: msgspec checks every string it
    reads, and valid JSON has non-ASCII bytes nowhere else.
    """
    try:
        doc: Any = _DECODER.decode(body)
    except (msgspec.MsgspecError, RecursionError):  # deep nesting: pydantic words it
        return None
    if not doc.dedup_key:  # the model's _empty_dedup_key_is_the_id
        doc.dedup_key = doc.id
    for name, parse in _TIMES:
        value = getattr(doc, name)
        if value.__class__ is str:  # a default is already a datetime (or None)
            try:
                setattr(doc, name, parse.validate_python(value))
            except ValueError:  # pydantic's ValidationError is a ValueError
                return None
    return cast(AlertView, doc)


def as_model(alert: AlertView) -> Alert:
    """``alert`` as a pydantic ``Alert``, for what needs one (stamping a field, re-serialising).

    A struct from :func:`decode_alert` holds exactly the values pydantic would have parsed
    (``id`` included), so validating them again yields the same alert.
    """
    if isinstance(alert, Alert):
        return alert
    return Alert.model_validate({name: getattr(alert, name) for name in _FIELD_NAMES})
