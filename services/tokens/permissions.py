"""Deprecated alias of :mod:`shared.tokens.permissions` (moved in #9).

Kept so the wave's branches merge; import from ``shared.tokens.permissions`` and delete this module
once nothing uses it."""

from shared.tokens.permissions import *  # noqa: F403  # a re-export, not a second declaration
from shared.tokens.permissions import __all__ as __all__
