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

from shared.auth import Principal, TokenValidator
from shared.errors import AlertyardError, UnauthenticatedError
from shared.logging import get_logger

__all__ = ["AuthOutcome", "AuthRetryInterrupted", "authenticate_batch"]

log = get_logger(__name__)

AuthOutcome = Principal | UnauthenticatedError


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
    backoff = 0.05
    while misses:
        results = await asyncio.gather(
            *(validator.authenticate(t) for t in misses), return_exceptions=True
        )
        retry: list[str] = []
        last_error = ""
        for token, result in zip(misses, results, strict=True):
            final_error = isinstance(result, UnauthenticatedError) and not result.retriable
            if isinstance(result, Principal | UnauthenticatedError) and (
                final_error or isinstance(result, Principal)
            ):
                outcomes[token] = result
            elif isinstance(result, asyncio.CancelledError):
                raise result
            else:
                retry.append(token)
                last_error = _describe(result)
        misses = retry
        if misses:
            log.warning(
                "auth_retry", tokens=len(misses), error=last_error, backoff_s=round(backoff, 3)
            )
            if interrupted is None:
                await asyncio.sleep(backoff)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(interrupted.wait(), timeout=backoff)
                if interrupted.is_set():
                    raise AuthRetryInterrupted(f"{len(misses)} token(s) still unchecked")
            backoff = min(backoff * 2, max_backoff_s)
    return outcomes


def _describe(error: BaseException) -> str:
    if isinstance(error, AlertyardError):
        return error.code
    return type(error).__name__
