"""Users, roles and electronic signatures (no Qt).

``station.users.roles``: roles and permissions, the policy the workflow checks;
``station.users.directory``: users, sign-in, lockout and signatures, all recorded on the audit log;
``station.users.approvals``: which models an admin approved for use; ``station users ...`` is the CLI.
"""

from station.users.directory import AccountLocked, AuthenticationError, User, UserDirectory
from station.users.roles import Permission, PermissionDenied, Role, allows, require
from station.users.signatures import Signature

__all__ = [
    "AccountLocked",
    "AuthenticationError",
    "Permission",
    "PermissionDenied",
    "Role",
    "Signature",
    "User",
    "UserDirectory",
    "allows",
    "require",
]
