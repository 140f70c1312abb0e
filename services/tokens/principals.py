"""Deprecated alias of :mod:`shared.tokens.principals` (moved in #9).

Kept so the wave's branches merge; import from ``shared.tokens.principals`` and delete this module
once nothing uses it."""

from shared.tokens.principals import *  # noqa: F403  # a re-export, not a second declaration
from shared.tokens.principals import __all__ as __all__
