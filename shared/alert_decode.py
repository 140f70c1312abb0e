"""A fast decoder for native alerts, derived from :class:`~shared.alert.Alert`.

``Alert.model_validate_json`` costs ~7 us per small alert, the largest single cost on the
router's hot path. msgspec checks the same types and limits in a fraction of that. The
msgspec struct here is *derived* from the pydantic model's fields, constraints, defaults and
validators (``Alert`` stays the contract), and the result is built the way pydantic's own
``model_construct`` builds one, so the rest of the router sees an ordinary ``Alert``.

The fast path only ever accepts: anything msgspec refuses, and anything it cannot judge exactly
as pydantic would (numbers as times, ``NaN``, out-of-range floats, ...), yields ``None`` and the
caller runs pydantic, so rejection reasons and messages stay pydantic's. A model feature this
module does not understand fails at import, not silently at run time.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Final, Union, get_args, get_origin

import msgspec
from annotated_types import MaxLen, MinLen
from pydantic import StringConstraints, TypeAdapter, WithJsonSchema
from pydantic_core import PydanticUndefined

from shared.alert import Alert

__all__ = ["decode_alert"]

_KNOWN_CONFIG: Final = {"extra", "frozen", "str_max_length"}
_UNSET: Final = msgspec.UNSET


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


def _msgspec_type(tp: Any, constraints: list[Any], str_max: int | None) -> Any:
    """The msgspec type that accepts what pydantic accepts for ``tp`` (or less, never more)."""
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
        return Any
    if origin is dict:
        key, value = get_args(tp)
        high = None
        for c in constraints:
            if not isinstance(c, MaxLen):
                raise TypeError(f"constraint {c!r} on {tp!r} has no fast path")
            high = c.max_length
        keys, values = _msgspec_type(key, [], str_max), _msgspec_type(value, [], str_max)
        mapping: Any = dict[keys, values]  # type: ignore[valid-type]  # built at run time
        return Annotated[mapping, msgspec.Meta(max_length=high)] if high else mapping
    raise TypeError(f"field type {tp!r} has no fast path")


def _is_time(tp: Any) -> bool:
    if get_origin(tp) is Annotated:
        return _is_time(get_args(tp)[0])
    if get_origin(tp) in (Union, types.UnionType):
        return any(_is_time(a) for a in get_args(tp))
    return tp is datetime


class _Info:
    """What an ``info``-taking field validator reads (``info.data``: the fields before it)."""

    __slots__ = ("data",)

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    default: Any
    factory: Callable[[], Any] | None
    validators: tuple[tuple[Callable[..., Any], bool], ...]
    """Each validator and whether it takes ``info``."""
    validate_default: bool
    time: TypeAdapter[Any] | None
    """pydantic's own parser for a time field: its lax RFC 3339 reading is its own."""


def _fields() -> tuple[_Field, ...]:
    config = Alert.model_config
    if set(config) - _KNOWN_CONFIG or config.get("extra") != "forbid":
        raise TypeError(f"Alert config {dict(config)} has no fast path")
    decorators = Alert.__pydantic_decorators__
    if decorators.model_validators or decorators.root_validators or decorators.validators:
        raise TypeError("Alert has model validators: no fast path")
    if Alert.__pydantic_post_init__ or Alert.__private_attributes__:
        raise TypeError("Alert has post-init or private state: no fast path")
    validators: dict[str, list[tuple[Callable[..., Any], bool]]] = {}
    for dec in decorators.field_validators.values():
        if dec.info.mode != "after":
            raise TypeError(f"validator {dec.cls_var_name} ({dec.info.mode}) has no fast path")
        takes_info = len(inspect.signature(dec.func).parameters) == 2
        for name in dec.info.fields:
            validators.setdefault(name, []).append((dec.func, takes_info))
    out: list[_Field] = []
    for name, info in Alert.model_fields.items():
        if info.alias or info.validation_alias:
            raise TypeError(f"field {name} has an alias: no fast path")
        out.append(
            _Field(
                name=name,
                default=info.default,
                factory=info.default_factory,  # type: ignore[arg-type]  # none takes data
                validators=tuple(validators.get(name, ())),
                validate_default=bool(info.validate_default),
                time=TypeAdapter(info.annotation) if _is_time(info.annotation) else None,
            )
        )
    return tuple(out)


_FIELDS: Final = _fields()
_STRUCT: Final = msgspec.defstruct(
    "AlertDocument",
    [
        (
            name,
            Union[  # noqa: UP007  # built at run time
                _msgspec_type(
                    info.annotation, list(info.metadata), Alert.model_config.get("str_max_length")
                ),
                msgspec.UnsetType,
            ],
            _UNSET,  # tells a field left out from one set to its default
        )
        for name, info in Alert.model_fields.items()
    ],
    forbid_unknown_fields=True,
)
_DECODER: Final = msgspec.json.Decoder(_STRUCT)
_PLAN: Final = tuple(
    (
        f.name,
        f.default,
        f.factory,
        f if f.validators or f.validate_default or f.time is not None else None,
    )
    for f in _FIELDS
)
"""Per field: name, default, default factory, and the field itself when more than copying
the value is needed (validators, a time to parse)."""
_new: Final = object.__new__
_setattr: Final = object.__setattr__


def decode_alert(body: bytes) -> Alert | None:
    """The alert ``Alert.model_validate_json(body)`` would return, or ``None`` when the fast
    path cannot say (the caller then asks pydantic, which also words the refusal).

    Returns ``None`` for ``body`` that is not valid UTF-8: msgspec checks every string it
    reads, and valid JSON has non-ASCII bytes nowhere else.
    """
    try:
        doc = _DECODER.decode(body)
    except (msgspec.MsgspecError, RecursionError):  # deep nesting: pydantic words it
        return None
    values: dict[str, Any] = {}
    fields_set = set()
    try:
        for name, default, factory, special in _PLAN:
            value = getattr(doc, name)
            if value is _UNSET:
                if factory is not None:
                    value = factory()
                elif default is PydanticUndefined:
                    return None  # a required field is missing
                else:
                    value = default
                if special is None or not special.validate_default:
                    values[name] = value
                    continue
            else:
                fields_set.add(name)
                if special is None:
                    values[name] = value
                    continue
                if special.time is not None and value is not None:
                    value = special.time.validate_python(value)
            for validator, takes_info in special.validators:
                # ``info.data``: the fields so far, in order, as pydantic passes them
                value = validator(value, _Info(values)) if takes_info else validator(value)
            values[name] = value
    except (ValueError, AssertionError):  # pydantic's ValidationError is a ValueError
        return None
    alert = _new(Alert)
    _setattr(alert, "__dict__", values)
    _setattr(alert, "__pydantic_fields_set__", fields_set)
    _setattr(alert, "__pydantic_extra__", None)
    _setattr(alert, "__pydantic_private__", None)
    return alert
