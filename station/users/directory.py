"""The station's users, read from the audit log: who exists, in which role, and who may sign now.

Every user change is an audit entry (``USER_ADD``, ``USER_CHANGE``), signed by an admin, so the
list of users is the fold of those entries, held in the same tamper-evident chain as every
decision. The argon2 hashes sit in the credentials table of the same database
(``station.users.credentials``); the log names which one is current for each user.

Failed tries are entries too (``SIGN_IN_FAILED``). After ``max_failures`` of them in a row
(since the user's last sign-in, lock or password reset) the account is locked for
``lockout_s`` seconds (``ACCOUNT_LOCKED``, with the time it opens again). A wrong ID and a
wrong password get the same answer.

    users = UserDirectory(AuditLog())
    user = users.sign_in("T0421", password)            # AuthenticationError, AccountLocked, ...
    signature = users.sign("E007", password, Permission.OVERRIDE)   # at the moment of the act
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import NoReturn

from station.audit.draft import EntryDraft
from station.audit.entry import Action, AuditEntry
from station.users.credentials import CredentialStore, credentials_for
from station.users.passwords import check_new_password, credential_digest, hash_password, password_matches
from station.users.roles import SIGNATURE_MEANING, Permission, PermissionDenied, Role, require
from station.users.signatures import Signature

MAX_FAILURES = 5
LOCKOUT_S = 15 * 60
USER_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
LOCKED_REASON = "account locked"  # a try while locked: recorded, not counted towards the next lock


class AuthenticationError(Exception):
    """The ID and password do not match an active account (the message never says which part)."""


class AccountLocked(AuthenticationError):
    def __init__(self, user_id: str, until: datetime) -> None:
        local = until.astimezone()
        super().__init__(f"account {user_id} is locked after too many failed tries until {local:%H:%M:%S}")
        self.user_id = user_id
        self.until = until


@dataclass(frozen=True)
class User:
    user_id: str
    name: str
    role: Role
    disabled: bool = False
    demo: bool = False  # one of the documented demo accounts (station --demo on a station without users)
    credential_sha256: str = ""
    changed_entry: int = 0  # the last audit entry that changed this user


class UserDirectory:
    """Users and authentication over one audit log (any backend) and its credentials table.

    ``clock`` returns an aware UTC datetime (tests pass a fake one); it decides when a lock opens.
    ``on_committed`` is called with each entry the directory writes (a failed try, a lock, a user
    change), so a screen that names the log's latest record can follow these too.
    """

    def __init__(
        self,
        log,
        credentials: CredentialStore | None = None,
        *,
        max_failures: int = MAX_FAILURES,
        lockout_s: float = LOCKOUT_S,
        clock: Callable[[], datetime] | None = None,
        on_committed: Callable[[AuditEntry], None] | None = None,
    ) -> None:
        self.log = log
        self.credentials = credentials if credentials is not None else credentials_for(log)
        self.max_failures = max_failures
        self.lockout_s = lockout_s
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.on_committed = on_committed

    # -- reading --------------------------------------------------------------------------------
    def users(self) -> dict[str, User]:
        """user id -> User, as the log's user entries leave them."""
        found: dict[str, User] = {}
        entries = sorted(
            self.log.query(action=Action.USER_ADD) + self.log.query(action=Action.USER_CHANGE), key=lambda e: e.id
        )
        for entry in entries:
            details = entry.details
            user_id = details.get("user")
            if entry.action == Action.USER_ADD.value:
                found[user_id] = User(
                    user_id=user_id,
                    name=details["name"],
                    role=Role.parse(details["role"]),
                    demo=bool(details.get("demo", False)),
                    credential_sha256=details["credential_sha256"],
                    changed_entry=entry.id,
                )
            elif user_id in found:
                found[user_id] = _changed(found[user_id], entry)
        return found

    def get(self, user_id: str) -> User:
        user = self.users().get(user_id)
        if user is None:
            raise KeyError(f"no user {user_id!r}")
        return user

    def has_users(self) -> bool:
        return bool(self.log.query(action=Action.USER_ADD, limit=1))

    def locked_until(self, user_id: str) -> datetime | None:
        """When the account's lock opens, or None when it is not locked now."""
        lock = self._last(user_id, Action.ACCOUNT_LOCKED)
        if lock is None or self._last_reset(user_id) > lock.id:
            return None
        until = datetime.fromisoformat(lock.details["locked_until"])
        return until if until > self.clock() else None

    def failures(self, user_id: str) -> int:
        """Failed tries since the user's last sign-in, lock or password reset."""
        since = max(self._last_reset(user_id), _id(self._last(user_id, Action.ACCOUNT_LOCKED)))
        return sum(
            1
            for e in self.log.query(operator=user_id, action=Action.SIGN_IN_FAILED)
            if e.id > since and e.details.get("reason") != LOCKED_REASON
        )

    # -- authentication -------------------------------------------------------------------------
    def authenticate(self, user_id: str, password: str, purpose: str = "sign-in") -> User:
        """The user, if ``password`` is theirs and the account is active; otherwise the failure is
        recorded (and counted towards the lock) and AuthenticationError raised."""
        user_id = (user_id or "").strip()
        if not user_id:
            raise AuthenticationError("enter your ID")
        until = self.locked_until(user_id)
        if until is not None:
            self._record_failure(user_id, purpose, LOCKED_REASON, count=False)
            raise AccountLocked(user_id, until)
        user = self.users().get(user_id)
        if user is None:
            self._record_failure(user_id, purpose, "unknown user")
            self._refuse_wrong_password(user_id)  # the same answer: the sign-in dialog does not tell who exists
        if user.disabled:
            self._record_failure(user_id, purpose, "account disabled")
            raise AuthenticationError("ID or password is wrong, or the account is disabled")
        stored = self.credentials.get(user_id, user.credential_sha256)
        if stored is None or credential_digest(stored) != user.credential_sha256:
            self._record_failure(user_id, purpose, "no credential matches the audit log")
            raise AuthenticationError(
                f"the stored password of {user_id} does not match the audit log's record; an admin must reset it"
            )
        if not password_matches(stored, password or ""):
            self._record_failure(user_id, purpose, "wrong password")
            self._refuse_wrong_password(user_id)
        return user

    def _refuse_wrong_password(self, user_id: str) -> NoReturn:
        until = self.locked_until(user_id)
        if until is not None:
            raise AccountLocked(user_id, until)
        left = self.max_failures - self.failures(user_id)
        raise AuthenticationError(
            f"ID or password is wrong ({left} {'try' if left == 1 else 'tries'} left before the account locks)"
        )

    def sign_in(self, user_id: str, password: str) -> User:
        """Authenticate for a session. The caller records the SIGN_IN (``workflow.sign_in_draft``),
        which also ends the run of failed tries."""
        return self.authenticate(user_id, password, "sign-in")

    def sign(self, user_id: str, password: str, permission: Permission) -> Signature:
        """An electronic signature for ``permission``, given with the password at this moment.

        Raises AuthenticationError (recorded) for a wrong password and
        ``station.users.roles.PermissionDenied`` when the signer's role does not hold the permission.
        """
        user = self.authenticate(user_id, password, f"signature: {permission.value}")
        require(user.role, permission, f"{user.name} ({user.user_id})")
        return Signature(
            signer_id=user.user_id,
            name=user.name,
            role=user.role,
            meaning=SIGNATURE_MEANING.get(permission, permission.value),
            time_utc=self.clock().isoformat(timespec="seconds"),
        )

    # -- changes (each one an audit entry) ------------------------------------------------------
    def add_first_admin(self, user_id: str, name: str, password: str) -> User:
        """The station's first admin; refused once any user exists."""
        if self.has_users():
            raise PermissionDenied("this station already has users: an admin adds new ones")
        return self._add(user_id, name, Role.ADMIN, password, operator_id=user_id.strip(), signature=None,
                         extra={"first_admin": True})

    def add(self, admin: Signature, user_id: str, name: str, role: Role | str, password: str, *,
            demo: bool = False) -> User:
        _require_admin(admin)
        if user_id.strip() in self.users():
            raise ValueError(f"user {user_id.strip()!r} exists already (change it with role, passwd or disable)")
        return self._add(user_id, name, Role.parse(role), password, operator_id=admin.signer_id, signature=admin,
                         extra={"demo": True} if demo else {})

    def add_demo_users(self, accounts: list[tuple[str, str, Role, str]]) -> list[User]:
        """The documented demo accounts, on a station that has no users yet (``station --demo``).
        The first is an admin and signs the others in."""
        if self.has_users():
            raise PermissionDenied("this station already has users: demo accounts are only made on a fresh station")
        (admin_id, admin_name, admin_role, admin_password), *others = accounts
        if admin_role is not Role.ADMIN:
            raise ValueError("the first demo account must be an admin")
        admin = self._add(admin_id, admin_name, Role.ADMIN, admin_password, operator_id=admin_id, signature=None,
                          extra={"first_admin": True, "demo": True})
        signature = self.sign(admin.user_id, admin_password, Permission.MANAGE_USERS)
        return [admin] + [self.add(signature, uid, name, role, pw, demo=True) for uid, name, role, pw in others]

    def set_role(self, admin: Signature, user_id: str, role: Role | str) -> User:
        role = Role.parse(role)
        self._check_last_admin(admin, user_id, demoting=role is not Role.ADMIN)
        return self._change(admin, user_id, "role", {"role": role.value})

    def disable(self, admin: Signature, user_id: str) -> User:
        self._check_last_admin(admin, user_id, demoting=True)
        return self._change(admin, user_id, "disable", {})

    def enable(self, admin: Signature, user_id: str) -> User:
        return self._change(admin, user_id, "enable", {})

    def set_password(self, admin: Signature, user_id: str, password: str) -> User:
        """A new password (which also opens a lock and clears the failed tries)."""
        check_new_password(password)
        self.get(user_id)
        key = self.credentials.add(user_id, hash_password(password))
        return self._change(admin, user_id, "passwd", {"credential_sha256": key})

    # -- internals ------------------------------------------------------------------------------
    def _add(self, user_id: str, name: str, role: Role, password: str, *, operator_id: str,
             signature: Signature | None, extra: dict) -> User:
        user_id, name = (user_id or "").strip(), (name or "").strip()
        if not USER_ID_PATTERN.match(user_id):
            raise ValueError(f"a user ID is 1-64 letters, digits or . _ @ - (starting with a letter or digit), "
                             f"got {user_id!r}")
        if not name:
            raise ValueError("a user needs a name (it is shown on every signature)")
        check_new_password(password)
        key = self.credentials.add(user_id, hash_password(password))
        details = {"user": user_id, "name": name, "role": role.value, "credential_sha256": key, **extra}
        if signature is not None:
            details["signature"] = signature.to_dict()
        entry = self._append(Action.USER_ADD, operator_id, details)
        return _changed(User(user_id, name, role, credential_sha256=key), entry, added=True)

    def _change(self, admin: Signature, user_id: str, change: str, values: dict) -> User:
        _require_admin(admin)
        user = self.get(user_id)
        details = {"user": user.user_id, "change": change, **values, "signature": admin.to_dict()}
        entry = self._append(Action.USER_CHANGE, admin.signer_id, details)
        return _changed(user, entry)

    def _check_last_admin(self, admin: Signature, user_id: str, demoting: bool) -> None:
        users = self.users()
        target = users.get(user_id)
        if target is None:
            raise KeyError(f"no user {user_id!r}")
        active_admins = [u for u in users.values() if u.role is Role.ADMIN and not u.disabled]
        if demoting and target.role is Role.ADMIN and active_admins == [target]:
            raise ValueError(f"{user_id} is the only active admin: add another admin first")

    def _record_failure(self, user_id: str, purpose: str, reason: str, count: bool = True) -> None:
        entry = self._append(Action.SIGN_IN_FAILED, user_id, {"purpose": purpose, "reason": reason})
        if count and self.failures(user_id) >= self.max_failures and self.locked_until(user_id) is None:
            until = self.clock() + timedelta(seconds=self.lockout_s)
            self._append(
                Action.ACCOUNT_LOCKED,
                user_id,
                {"locked_until": until.isoformat(), "failures": self.max_failures, "last_failure": entry.id},
            )

    def _last(self, user_id: str, action: Action) -> AuditEntry | None:
        entries = self.log.query(operator=user_id, action=action, limit=1, newest_first=True)
        return entries[0] if entries else None

    def _last_reset(self, user_id: str) -> int:
        """The id of the entry after which failed tries count anew: a sign-in or a password reset."""
        last = _id(self._last(user_id, Action.SIGN_IN))
        for entry in self.log.query(action=Action.USER_CHANGE, newest_first=True):
            if entry.details.get("user") == user_id and entry.details.get("change") == "passwd":
                return max(last, entry.id)
        return last

    def _append(self, action: Action, operator_id: str, details: dict) -> AuditEntry:
        entry = self.log.append(EntryDraft(action, operator_id=operator_id, details=details))
        if self.on_committed is not None:
            self.on_committed(entry)
        return entry


def _require_admin(signature: Signature) -> None:
    if not isinstance(signature, Signature):
        raise TypeError("a user change needs an admin's Signature (UserDirectory.sign(..., MANAGE_USERS))")
    require(signature.role, Permission.MANAGE_USERS, f"{signature.name} ({signature.signer_id})")


def _changed(user: User, entry: AuditEntry, added: bool = False) -> User:
    if added:
        return replace(user, changed_entry=entry.id)
    details = entry.details
    change = details.get("change")
    if change == "role":
        user = replace(user, role=Role.parse(details["role"]))
    elif change == "disable":
        user = replace(user, disabled=True)
    elif change == "enable":
        user = replace(user, disabled=False)
    elif change == "passwd":
        user = replace(user, credential_sha256=details["credential_sha256"])
    return replace(user, changed_entry=entry.id)


def _id(entry: AuditEntry | None) -> int:
    return entry.id if entry is not None else 0
