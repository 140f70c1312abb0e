"""Deprecated alias of :mod:`shared.tokens.validator` (moved in #9).

Kept so the wave's branches merge; import from ``shared.tokens.validator`` and delete this module
once nothing uses it."""

from shared.tokens.validator import *  # noqa: F403  # a re-export, not a second declaration
from shared.tokens.validator import __all__ as __all__
