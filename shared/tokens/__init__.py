"""The token library: format and checksum (``token_format``), stored records (``records``),
Redis keys (``keys``), principals and the validator (``validator``).

The token service writes what this package reads; every other service (router, rules API,
ingest, console) checks tokens through :class:`shared.tokens.validator.RedisTokenValidator`,
which implements :class:`shared.auth.TokenValidator`, and never imports ``services.tokens``.
Submodules are imported by name (nothing here), so the CLI loading a record model does not
pull in Redis.
"""
