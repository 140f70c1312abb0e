"""Authenticating a batch: every distinct token once, cache misses concurrently.

A token the validator rejects (expired, revoked, unknown, ...) becomes a rejection with the
validator's stable code. A failure that is not the producer's fault (Redis unreachable: the
``auth_unavailable`` code, or any unexpected error) is retried with backoff, because rejecting a
good alert during an outage would lose it.

Control comes first: while a retry waits, a rebalance or a shutdown sets ``interrupted`` and the
retry gives up at once with :class:`AuthRetryInterrupted`; the router replays the batch later
(nothing was published or committed for it), so neither waits for Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from dataclasses import replace
from typing import Final

from shared.auth import Principal, TokenValidator
from shared.errors import AlertyardError, UnauthenticatedError
from shared.logging import get_logger
from shared.retries import RetryLater, RetryPolicy

__all__ = ["AuthOutcome", "AuthRetryInterrupted", "authenticate_batch"]

log = get_logger(__name__)

AuthOutcome = Principal | UnauthenticatedError

AUTH_LOOKUP_RETRY: Final = RetryPolicy(
    name="token checks the validator could not answer (Redis down)",
    on=RetryLater,
    wait_initial=0.05,
    wait_max=5.0,  # the caller's max_backoff_s replaces it
    wait_jitter=0.05,
)


class AuthRetryInterrupted(Exception):  # noqa: N818  # not an error: control took precedence
    """A rebalance or shutdown cut an authentication retry short; replay the batch."""


async def authenticate_batch(
    validator: TokenValidator,
    tokens: Iterable[str],
    *,
    max_backoff_s: float = 5.0,
    interrupted: asyncio.Event | None = None,
) -> dict[str, AuthOutcome]:
    """Principal or final error for each distinct token; retries retriable failures until
    they succeed or ``interrupted`` is set (then raises :class:`AuthRetryInterrupted`)."""
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
    retrying = asyncio.ensure_future(
        _retry_until_answered(validator, misses, outcomes, max_backoff_s)
    )
    if interrupted is None:
        await retrying
        return outcomes
    control = asyncio.ensure_future(interrupted.wait())
    try:
        await asyncio.wait({retrying, control}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        control.cancel()
    if not retrying.done():  # control came first: stop retrying, the batch is replayed later
        retrying.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await retrying
        raise AuthRetryInterrupted(f"{len(misses)} token(s) still unchecked")
    retrying.result()  # re-raise what the retry loop raised, if anything
    return outcomes


async def _retry_until_answered(
    validator: TokenValidator,
    misses: list[str],
    outcomes: dict[str, AuthOutcome],
    max_backoff_s: float,
) -> None:
    async for attempt in replace(AUTH_LOOKUP_RETRY, wait_max=max_backoff_s).retrying():
        with attempt:
            misses = await _look_up(validator, misses, outcomes)
            if misses:
                raise RetryLater


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
