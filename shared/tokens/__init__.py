"""The token library: format and checksum, stored records, principals and the validator.

The token service writes what this package reads; every other service (router, rules API,
ingest, console) checks tokens through :class:`RedisTokenValidator`, which implements
:class:`shared.auth.TokenValidator`, and never imports ``services.tokens``.
"""

from shared.tokens.validator import Inspection, RedisTokenValidator, build_validator

__all__ = ["Inspection", "RedisTokenValidator", "build_validator"]
