"""The permission catalogue: what each role and token kind may do.

| permission       | lets a principal …                                        |
|------------------|-----------------------------------------------------------|
| ``alerts:publish`` | publish alerts to the alerts topic                      |
| ``alerts:read``    | look up alerts and routing decisions                    |
| ``rules:read``     | read routing rules                                      |
| ``rules:write``    | change routing rules (of its own teams unless org-wide) |
| ``tokens:read``    | list / show / introspect tokens it may see              |
| ``tokens:write``   | create / rotate / revoke tokens it may manage           |
| ``users:write``    | create users, deactivate them, change their role        |
| ``teams:write``    | create teams                                            |
| ``audit:read``     | read and verify the audit log                           |

Roles: ``owner`` and ``admin`` hold everything and act org-wide (only an owner may grant or
take away the owner role); ``member`` works on its own teams' alerts and rules and manages its
own tokens; ``viewer`` reads alerts and rules. A team token holds the team-resource
permissions on its one team; a global token holds the subset chosen at creation, org-wide.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from shared.auth import Permission

__all__ = ["ALL_PERMISSIONS", "ROLE_PERMISSIONS", "TEAM_TOKEN_PERMISSIONS", "Role"]


class Role(StrEnum):
    owner = "owner"
    admin = "admin"
    member = "member"
    viewer = "viewer"

    @property
    def is_admin(self) -> bool:
        """Org-wide rights over every team's resources."""
        return self in (Role.owner, Role.admin)


ALL_PERMISSIONS: Final = frozenset(Permission)

TEAM_TOKEN_PERMISSIONS: Final = frozenset(
    {
        Permission.alerts_publish,
        Permission.alerts_read,
        Permission.rules_read,
        Permission.rules_write,
    }
)
"""Full rights on the team's own resources (alerts and rules), nothing org-wide."""

ROLE_PERMISSIONS: Final[dict[Role, frozenset[Permission]]] = {
    Role.owner: ALL_PERMISSIONS,
    Role.admin: ALL_PERMISSIONS,
    Role.member: frozenset(
        {
            Permission.alerts_publish,
            Permission.alerts_read,
            Permission.rules_read,
            Permission.rules_write,
            Permission.tokens_read,
            Permission.tokens_write,
        }
    ),
    Role.viewer: frozenset({Permission.alerts_read, Permission.rules_read}),
}
