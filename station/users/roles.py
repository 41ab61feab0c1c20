"""Roles, what each may do, and which acts need an electronic signature (no Qt, no storage).

A technician captures, accepts a confident call and holds a chip; an expert also overrides,
accepts an uncertain call and releases a held chip; an admin also manages users, recipes,
models and settings. Each role includes the one below it.

Acts that decide a chip's fate against (or without) the models' confident answer, and changes
to what the models are, need the signer's password at that moment (21 CFR 11.200(a)(1)): the
record then carries a :class:`station.users.signatures.Signature` with the meaning below.
"""

from __future__ import annotations

from enum import Enum


class Role(str, Enum):
    TECHNICIAN = "technician"
    EXPERT = "expert"
    ADMIN = "admin"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, value: str | Role) -> Role:
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            raise ValueError(f"unknown role {value!r}; one of {', '.join(r.value for r in cls)}") from None

    @property
    def rank(self) -> int:
        return _RANK[self]

    def includes(self, other: Role) -> bool:
        return self.rank >= other.rank


_RANK = {Role.TECHNICIAN: 0, Role.EXPERT: 1, Role.ADMIN: 2}


class Permission(str, Enum):
    CAPTURE = "capture"
    ACCEPT = "accept"  # a confident call
    HOLD = "hold"
    RELEASE = "release"  # an accepted or overridden chip
    OVERRIDE = "override"
    ACCEPT_UNCERTAIN = "accept_uncertain"
    RELEASE_HELD = "release_held"
    CHANGE_RECIPE = "change_recipe"  # choosing the station's recipe, or its thresholds
    MANAGE_USERS = "manage_users"
    APPROVE_MODEL = "approve_model"
    CHANGE_SETTINGS = "change_settings"

    def __str__(self) -> str:
        return self.value


# the least role that holds each permission
MINIMUM_ROLE: dict[Permission, Role] = {
    Permission.CAPTURE: Role.TECHNICIAN,
    Permission.ACCEPT: Role.TECHNICIAN,
    Permission.HOLD: Role.TECHNICIAN,
    Permission.RELEASE: Role.TECHNICIAN,
    Permission.OVERRIDE: Role.EXPERT,
    Permission.ACCEPT_UNCERTAIN: Role.EXPERT,
    Permission.RELEASE_HELD: Role.EXPERT,
    Permission.CHANGE_RECIPE: Role.EXPERT,
    Permission.MANAGE_USERS: Role.ADMIN,
    Permission.APPROVE_MODEL: Role.ADMIN,
    Permission.CHANGE_SETTINGS: Role.ADMIN,
}

# permissions exercised only with the signer's password re-entered, and what the signature means
SIGNATURE_MEANING: dict[Permission, str] = {
    Permission.OVERRIDE: "override approved",
    Permission.ACCEPT_UNCERTAIN: "uncertain call accepted",
    Permission.RELEASE_HELD: "release approved",
    Permission.CHANGE_RECIPE: "recipe change approved",
    Permission.APPROVE_MODEL: "model approved",
    Permission.MANAGE_USERS: "user change approved",
    Permission.CHANGE_SETTINGS: "settings change approved",
}


class PermissionDenied(Exception):
    """The user's role does not allow the act, or its signature is missing; the message says which."""


def allows(role: Role | str, permission: Permission) -> bool:
    return Role.parse(role).includes(MINIMUM_ROLE[permission])


def require(role: Role | str, permission: Permission, who: str = "this user") -> None:
    """Raise :class:`PermissionDenied` unless ``role`` holds ``permission``."""
    role = Role.parse(role)
    if not allows(role, permission):
        needed = MINIMUM_ROLE[permission]
        raise PermissionDenied(
            f"{who} is {_article(role)}: '{permission.value.replace('_', ' ')}' needs {_article(needed)}"
            + (" or an admin" if needed is Role.EXPERT else "")
        )


_UNSIGNED = {
    Permission.OVERRIDE: "a call cannot be overridden",
    Permission.ACCEPT_UNCERTAIN: "an uncertain result cannot be accepted",
    Permission.RELEASE_HELD: "a held chip cannot be released",
    Permission.CHANGE_RECIPE: "the recipe cannot be changed",
    Permission.APPROVE_MODEL: "a model cannot be approved",
    Permission.MANAGE_USERS: "users cannot be changed",
    Permission.CHANGE_SETTINGS: "a station setting cannot be changed",
}


def _article(role: Role) -> str:
    return f"{'an' if role.value[0] in 'aeiou' else 'a'} {role.value}"


def needs_signature(permission: Permission) -> bool:
    return permission in SIGNATURE_MEANING


def check_signature(signature, permission: Permission) -> None:
    """Raise :class:`PermissionDenied` unless ``signature`` (a ``Signature``) was given for
    ``permission`` by someone whose role holds it."""
    meaning = SIGNATURE_MEANING[permission]
    if signature is None:
        raise PermissionDenied(f"{_UNSIGNED[permission]} without the electronic signature of "
                               f"{_article(MINIMUM_ROLE[permission])} ({meaning})")
    if signature.meaning != meaning:
        raise PermissionDenied(f"a signature for '{signature.meaning}' does not approve '{meaning}'")
    require(signature.role, permission, f"{signature.name} ({signature.signer_id})")
