"""Small in-process stand-ins for the router's ports (unit tests only; never for Kafka/Redis)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from services.rules.engine.scope import UNKNOWN_SOURCE, AlertSource
from shared.alert import AlertView
from shared.auth import Permission, Principal, TokenKind
from shared.errors import UnauthenticatedError


@dataclass(frozen=True)
class Decision:
    teams: tuple[str, ...]
    rule_ids: tuple[str, ...]
    ruleset_version: int
    fallback: bool


class ByServiceRuleset:
    """Routes ``service`` -> teams from a dict; unknown services are unrouted."""

    def __init__(self, table: dict[str, tuple[str, ...]], version: int = 7) -> None:
        self._table = table
        self.version = version

    def evaluate(self, alert: AlertView, source: AlertSource = UNKNOWN_SOURCE) -> Decision:
        teams = self._table.get(alert.service, ())
        rules = tuple(f"r-{t}" for t in teams)
        return Decision(teams, rules, self.version, False)

    def evaluate_many(
        self, alerts: Iterable[AlertView], sources: Sequence[AlertSource] | None = None
    ) -> list[Decision]:
        return [self.evaluate(alert) for alert in alerts]


class TokenInvalidError(UnauthenticatedError):
    code = "token_revoked"


class UnavailableAuthError(UnauthenticatedError):
    code = "auth_unavailable"
    retriable = True


def principal(
    token_id: str = "tok1",  # noqa: S107 - a token id, not a secret
    *,
    kind: TokenKind = TokenKind.global_,
    team: str | None = None,
    permissions: frozenset[Permission] = frozenset({Permission.alerts_publish}),
) -> Principal:
    return Principal(
        token_id=token_id,
        kind=kind,
        permissions=permissions,
        team=team,
        teams=frozenset({team}) if team else frozenset(),
    )


class ScriptedValidator:
    """Answers from a table; counts lookups; can fail a number of times first."""

    def __init__(
        self,
        table: dict[str, Principal | UnauthenticatedError],
        *,
        cached: dict[str, Principal] | None = None,
        fail_first: int = 0,
        on_call: Callable[[str], None] | None = None,
    ) -> None:
        self.table = table
        self.cached = cached or {}
        self.calls: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._fail_first = fail_first
        self._on_call = on_call

    def authenticate_cached(self, raw_token: str) -> Principal | None:
        return self.cached.get(raw_token)

    async def authenticate(self, raw_token: str) -> Principal:
        self.calls.append(raw_token)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0)  # yield like real I/O, so concurrent checks overlap
            if self._fail_first > 0:
                self._fail_first -= 1
                raise UnavailableAuthError("redis is down")
            result = self.table[raw_token]
            if isinstance(result, UnauthenticatedError):
                raise result
            return result
        finally:
            self.in_flight -= 1
