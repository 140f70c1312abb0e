from __future__ import annotations

from services.router.authn import authenticate_batch
from tests.unit.router._doubles import ScriptedValidator, TokenInvalidError, principal


async def test_each_distinct_uncached_token_is_looked_up_once_concurrently() -> None:
    validator = ScriptedValidator(
        {"a": principal("ta"), "b": principal("tb"), "c": principal("tc")},
        cached={"z": principal("tz")},
    )
    tokens = ["a", "b", "a", "c", "z", "b", "a", "z"]
    outcomes = await authenticate_batch(validator, tokens)
    assert sorted(validator.calls) == ["a", "b", "c"]
    assert validator.max_in_flight == 3
    assert {t: getattr(p, "token_id", None) for t, p in outcomes.items()} == {
        "a": "ta",
        "b": "tb",
        "c": "tc",
        "z": "tz",
    }


async def test_final_errors_are_returned_not_raised() -> None:
    validator = ScriptedValidator({"bad": TokenInvalidError("revoked")})
    outcomes = await authenticate_batch(validator, ["bad"])
    error = outcomes["bad"]
    assert isinstance(error, TokenInvalidError)
    assert error.code == "token_revoked"


async def test_retriable_failures_are_retried_until_they_succeed() -> None:
    validator = ScriptedValidator({"a": principal("ta")}, fail_first=3)
    outcomes = await authenticate_batch(validator, ["a"], max_backoff_s=0.05)
    assert outcomes["a"] == principal("ta")
    assert validator.calls == ["a"] * 4
