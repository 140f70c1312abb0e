"""An event's canonical JSON: the ``"event"`` member of its record.

It is the canonical JSON (:func:`services.audit.records.canonical_json`) of the event's
``model_dump(mode="json")`` document. :func:`encode_events` builds it for a whole batch; for
events that were validated from JSON it skips pydantic's dump and hands orjson the fixed
members directly, which is what the consumer's hot path needs. Unit tests hold every path to
the reference, and to logs written before this module existed, byte for byte.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final

from pydantic import TypeAdapter

from services.audit.records import canonical_json
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
"""The direct writer knows exactly these members; if the envelope ever gains or loses one,
every event takes pydantic's dump instead, so nothing is silently left out."""


def encode_events(events: Sequence[Event], *, from_json: bool = False) -> list[bytes]:
    """The canonical JSON of each event, in order.

    ``from_json`` promises that the events were validated from JSON, so ``data`` holds only
    JSON types (str keys, no tuples or datetimes). Without it, the whole batch goes through one
    ``dump_python`` call.
    """
    if not (from_json and _DIRECT):
        return [canonical_json(doc) for doc in _EVENTS.dump_python(list(events), mode="json")]
    # The times in pydantic's own JSON form, formatted for the batch in one call; NaN and
    # infinity in ``data`` come out as null, as pydantic's dump writes them.
    times = _TIMES.dump_python([event.time for event in events], mode="json")
    out = []
    for event, time_text in zip(events, times, strict=True):
        actor = event.actor
        out.append(
            canonical_json(
                {
                    "actor": {
                        "kind": actor.kind,
                        "token_id": actor.token_id,
                        "user_id": actor.user_id,
                    },
                    "data": event.data,
                    "id": event.id,
                    "sequence": event.sequence,
                    "source": event.source,
                    "subject": event.subject,
                    "time": time_text,
                    "type": event.type,
                }
            )
        )
    return out
