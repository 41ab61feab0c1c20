"""Users and approvals for tests: a signed-in technician, expert and admin, and approved models.

    directory = make_directory()                     # the test station's log (STATION_HOME)
    accounts = make_users(directory)                 # {"technician": TECH, "expert": EXPERT, "admin": ADMIN}
    signature = directory.sign(*EXPERT.login, Permission.OVERRIDE)
    approve_models(recipe.classifier, recipe.detector)   # as the admin, on the station's log
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from station.audit import AuditLog
from station.users import Permission, Role, Signature, UserDirectory
from station.users.approvals import approve_model
from station.users.roles import SIGNATURE_MEANING


@dataclass(frozen=True)
class Account:
    user_id: str
    name: str
    role: Role
    password: str

    @property
    def login(self) -> tuple[str, str]:
        return self.user_id, self.password

    def operator(self):
        from station.workflow import Operator

        return Operator(self.user_id, self.name, self.role)


ADMIN = Account("A001", "Ada Admin", Role.ADMIN, "admin-password-1")
EXPERT = Account("E001", "Erin Expert", Role.EXPERT, "expert-password-1")
TECH = Account("T001", "Tom Technician", Role.TECHNICIAN, "tech-password-1")


def make_directory(log: AuditLog | None = None, **options) -> UserDirectory:
    return UserDirectory(log if log is not None else AuditLog(), **options)


def make_users(directory: UserDirectory) -> dict[str, Account]:
    """The three accounts on ``directory`` (the admin first, as the station's first admin)."""
    directory.add_first_admin(ADMIN.user_id, ADMIN.name, ADMIN.password)
    signature = directory.sign(*ADMIN.login, Permission.MANAGE_USERS)
    for account in (EXPERT, TECH):
        directory.add(signature, account.user_id, account.name, account.role, account.password)
    return {account.role.value: account for account in (ADMIN, EXPERT, TECH)}


def approve_models(*model_dirs: Path | str | None, directory: UserDirectory | None = None) -> None:
    """The admin approves each model folder (None entries skipped); makes the users if needed."""
    directory = directory or make_directory()
    if not directory.has_users():
        make_users(directory)
    signature = directory.sign(*ADMIN.login, Permission.APPROVE_MODEL)
    for model_dir in model_dirs:
        if model_dir is not None:
            approve_model(directory.log, Path(model_dir), signature)


def require_approvals(monkeypatch) -> None:
    """Undo the suite's developer setting: only approved models load."""
    monkeypatch.delenv("STATION_ALLOW_UNAPPROVED_MODELS", raising=False)


def signature_for(permission: Permission, account: Account | None = None) -> Signature:
    """A signature as ``UserDirectory.sign`` returns it once the password checked out (for tests
    of the policy that checks signatures; the password check itself is tested on the directory)."""
    account = account or (ADMIN if permission in (Permission.MANAGE_USERS, Permission.APPROVE_MODEL) else EXPERT)
    return Signature(account.user_id, account.name, account.role, SIGNATURE_MEANING[permission],
                     "2026-05-09T08:00:00+00:00")


def expert_signs(permission: Permission, what: str = "") -> Signature:
    """Stands in for ``MainWindow.ask_signature`` in GUI tests: the expert (the admin for admin
    acts) signs whatever is asked."""
    return signature_for(permission)


def nobody_signs(permission: Permission, what: str = "") -> None:
    """Stands in for ``MainWindow.ask_signature``: the signature dialog is cancelled."""
    return None
