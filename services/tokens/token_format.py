"""Deprecated alias of :mod:`shared.tokens.token_format` (moved in #9).

Kept so the wave's branches merge; import from ``shared.tokens.token_format`` and delete this module
once nothing uses it."""

from shared.tokens.token_format import *  # noqa: F403  # a re-export, not a second declaration
from shared.tokens.token_format import __all__ as __all__
