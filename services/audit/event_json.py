"""An event's canonical JSON: the ``"event"`` member of its record.

It is the canonical JSON (:func:`services.audit.records.canonical_json`) of the event's
``model_dump(mode="json")`` document. :func:`encode_events` builds it for a whole batch; for
events that were validated from JSON it skips pydantic's dump and writes the fixed members
directly, which is what the consumer's hot path needs. Unit tests hold every path to the
reference, and to logs written before this module existed, byte for byte.
"""

from __future__ import annotations

import json.encoder
from collections.abc import Callable, Sequence
from datetime import datetime
from json.encoder import encode_basestring
from typing import Any, Final

from pydantic import TypeAdapter

from services.audit.records import CANONICAL_ENCODER
from shared.events import Actor, Event

__all__ = ["encode_events"]

_EVENTS: Final = TypeAdapter(list[Event])
_TIMES: Final = TypeAdapter(list[datetime])

_EVENT_FIELDS: Final = ("actor", "data", "id", "sequence", "source", "subject", "time", "type")
_ACTOR_FIELDS: Final = ("kind", "token_id", "user_id")
_DIRECT: Final = (
    tuple(sorted(Event.model_fields)) == _EVENT_FIELDS
    and tuple(sorted(Actor.model_fields)) == _ACTOR_FIELDS
)
"""The direct writer knows exactly these members (sorted); if the envelope ever gains or loses
one, every event takes pydantic's dump instead, so nothing is silently left out."""


def _bare_encoder() -> Callable[[Any], str]:
    """``CANONICAL_ENCODER.encode`` minus its per-call set-up: the C encoder it builds on every
    call, built once (without the circular-reference check: these documents come from JSON or
    from pydantic's dump, which cannot hold cycles). Half the cost on a small document."""
    make: Callable[..., Callable[[Any, int], list[str]]] | None
    make = getattr(json.encoder, "c_make_encoder", None)  # CPython's accelerator, if present
    if make is None:
        return CANONICAL_ENCODER.encode
    chunks = make(
        None, CANONICAL_ENCODER.default, encode_basestring, None, ":", ",", True, False, False
    )  # markers, default, string encoder, indent, separators, sort_keys, skipkeys, allow_nan
    return lambda value: "".join(chunks(value, 0))


_ENCODE: Final = _bare_encoder()
_TEMPLATE: Final = (
    '{"actor":{"kind":%s,"token_id":%s,"user_id":%s},"data":%s,"id":%s,"sequence":%d,'
    '"source":%s,"subject":%s,"time":"%s","type":%s}'
)


def encode_events(events: Sequence[Event], *, from_json: bool = False) -> list[bytes]:
    """The canonical JSON of each event, in order.

    ``from_json`` promises that the events were validated from JSON, so ``data`` holds only
    JSON types (str keys, no tuples or datetimes; NaN or infinity may still appear and take
    the general path). Without it, the whole batch goes through one ``dump_python`` call.
    """
    if not (from_json and _DIRECT):
        encode = _ENCODE
        return [encode(doc).encode() for doc in _EVENTS.dump_python(list(events), mode="json")]
    return _encode_direct(events)


def _encode_direct(events: Sequence[Event]) -> list[bytes]:
    # Same string escaping as the canonical encoder (it calls this very function), and the
    # times in pydantic's own JSON form, formatted for the batch in one call.
    text = encode_basestring
    encode = _ENCODE
    times = _TIMES.dump_python([event.time for event in events], mode="json")
    out = []
    for event, time_text in zip(events, times, strict=True):
        actor = event.actor
        try:
            data = encode(event.data)
        except ValueError:  # NaN or infinity, which pydantic's dump turns into null
            (body,) = encode_events([event])
            out.append(body)
            continue
        out.append(
            (
                _TEMPLATE
                % (
                    text(actor.kind),
                    "null" if actor.token_id is None else text(actor.token_id),
                    "null" if actor.user_id is None else text(actor.user_id),
                    data,
                    text(event.id),
                    event.sequence,
                    text(event.source),
                    text(event.subject),
                    time_text,
                    text(event.type),
                )
            ).encode()
        )
    return out
