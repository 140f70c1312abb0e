"""Authenticating a batch: every distinct token once, cache misses concurrently.

A token the validator rejects (expired, revoked, unknown, ...) becomes a rejection with the
validator's stable code. A failure that is not the producer's fault (Redis unreachable: the
``auth_unavailable`` code, or any unexpected error) is retried with backoff, because rejecting a
good alert during an outage would lose it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import replace
from typing import Final

from shared.auth import Principal, TokenValidator
from shared.errors import AlertyardError, UnauthenticatedError
from shared.logging import get_logger
from shared.retries import RetryLater, RetryPolicy

__all__ = ["AuthOutcome", "authenticate_batch"]

log = get_logger(__name__)

AuthOutcome = Principal | UnauthenticatedError

AUTH_LOOKUP_RETRY: Final = RetryPolicy(
    name="token checks the validator could not answer (Redis down)",
    on=RetryLater,
    wait_initial=0.05,
    wait_max=5.0,  # the caller's max_backoff_s replaces it
    wait_jitter=0.05,
)


async def authenticate_batch(
    validator: TokenValidator,
    tokens: Iterable[str],
    *,
    max_backoff_s: float = 5.0,
) -> dict[str, AuthOutcome]:
    """Principal or final error for each distinct token; retries retriable failures forever
    (the caller bounds the wait, e.g. at shutdown, by cancelling)."""
    outcomes: dict[str, AuthOutcome] = {}
    misses: list[str] = []
    for token in dict.fromkeys(tokens):
        principal = validator.authenticate_cached(token)
        if principal is None:
            misses.append(token)
        else:
            outcomes[token] = principal
    if not misses:
        return outcomes  # the common case: every token cached, no retry machinery at all
    async for attempt in replace(AUTH_LOOKUP_RETRY, wait_max=max_backoff_s).retrying():
        with attempt:
            misses = await _look_up(validator, misses, outcomes)
            if misses:
                raise RetryLater
    return outcomes


async def _look_up(
    validator: TokenValidator, misses: list[str], outcomes: dict[str, AuthOutcome]
) -> list[str]:
    """One concurrent round of checks; records final outcomes, returns the tokens to retry."""
    results = await asyncio.gather(
        *(validator.authenticate(t) for t in misses), return_exceptions=True
    )
    retry: list[str] = []
    last_error = ""
    for token, result in zip(misses, results, strict=True):
        if isinstance(result, Principal) or (
            isinstance(result, UnauthenticatedError) and not result.retriable
        ):
            outcomes[token] = result
        elif isinstance(result, asyncio.CancelledError):
            raise result
        else:
            retry.append(token)
            last_error = _describe(result)
    if retry:
        log.warning("auth_retry", tokens=len(retry), error=last_error)
    return retry


def _describe(error: BaseException) -> str:
    if isinstance(error, AlertyardError):
        return error.code
    return type(error).__name__
