"""Deprecated alias of :mod:`shared.tokens.keys` (moved in #9).

Kept so the wave's branches merge; import from ``shared.tokens.keys`` and delete this module
once nothing uses it."""

from shared.tokens.keys import *  # noqa: F403  # a re-export, not a second declaration
from shared.tokens.keys import __all__ as __all__
