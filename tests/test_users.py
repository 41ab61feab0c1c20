"""Users, roles, sign-in, lockout and e-signatures (station.users), all on the audit log."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone

import pytest
from helpers_users import ADMIN, EXPERT, TECH, make_directory, make_users

from station.audit import Action, AuditLog
from station.users import AccountLocked, AuthenticationError, Permission, PermissionDenied, Role, Signature, allows
from station.users.passwords import credential_digest


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 5, 9, 8, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def directory(tmp_path, clock):
    directory = make_directory(AuditLog(tmp_path / "audit.sqlite3"), clock=clock, lockout_s=600)
    make_users(directory)
    return directory


def test_roles_include_the_one_below():
    assert allows(Role.TECHNICIAN, Permission.ACCEPT) and allows(Role.TECHNICIAN, Permission.HOLD)
    for permission in (Permission.OVERRIDE, Permission.RELEASE_HELD, Permission.ACCEPT_UNCERTAIN, Permission.APPROVE_MODEL):
        assert not allows(Role.TECHNICIAN, permission)
    assert allows(Role.EXPERT, Permission.OVERRIDE) and allows(Role.EXPERT, Permission.RELEASE_HELD)
    assert not allows(Role.EXPERT, Permission.MANAGE_USERS) and not allows(Role.EXPERT, Permission.APPROVE_MODEL)
    assert all(allows(Role.ADMIN, permission) for permission in Permission)


def test_users_are_the_fold_of_signed_entries_on_the_log(directory):
    users = directory.users()
    assert {u: (users[u].name, users[u].role) for u in users} == {
        "A001": ("Ada Admin", Role.ADMIN), "E001": ("Erin Expert", Role.EXPERT), "T001": ("Tom Technician", Role.TECHNICIAN)}
    added = directory.log.query(action=Action.USER_ADD)
    assert [e.details["user"] for e in added] == ["A001", "E001", "T001"]
    assert added[0].details["first_admin"] is True
    assert added[1].details["signature"]["signer_id"] == "A001"
    assert added[1].details["signature"]["meaning"] == "user change approved"
    assert directory.log.verify().ok


def test_passwords_are_never_stored_or_logged_in_clear(directory):
    directory.sign_in(*TECH.login)
    with pytest.raises(AuthenticationError):
        directory.sign_in(TECH.user_id, "a-wrong-guess")
    raw = b"".join(p.read_bytes() for p in directory.log.path.parent.glob("audit.sqlite3*"))
    for password in (ADMIN.password, EXPERT.password, TECH.password, "a-wrong-guess"):
        assert password.encode() not in raw
    conn = sqlite3.connect(directory.log.path)
    hashes = [row[0] for row in conn.execute("SELECT password_hash FROM user_credentials")]
    assert hashes and all(h.startswith("$argon2id$") for h in hashes)
    # the log names only the sha256 of the hash, never the hash
    payloads = " ".join(row[0] for row in conn.execute("SELECT payload FROM entries"))
    assert not any(h in payloads for h in hashes) and credential_digest(hashes[0]) in payloads


def test_a_wrong_password_is_refused_and_counted(directory):
    with pytest.raises(AuthenticationError, match="4 tries left"):
        directory.sign_in(TECH.user_id, "not-the-password")
    with pytest.raises(AuthenticationError, match="3 tries left"):
        directory.sign_in(TECH.user_id, "")
    assert directory.failures(TECH.user_id) == 2
    failed = directory.log.query(action=Action.SIGN_IN_FAILED)
    assert [(e.operator_id, e.details["reason"]) for e in failed] == [("T001", "wrong password")] * 2
    assert directory.sign_in(*TECH.login).role is Role.TECHNICIAN


def test_an_unknown_id_gets_the_same_answer_as_a_wrong_password(directory):
    with pytest.raises(AuthenticationError, match="ID or password is wrong") as unknown:
        directory.sign_in("nobody", "whatever-it-is")
    assert "nobody" not in str(unknown.value)
    assert directory.log.query(action=Action.SIGN_IN_FAILED)[-1].details["reason"] == "unknown user"
    with pytest.raises(AuthenticationError) as wrong_password:
        directory.sign_in(TECH.user_id, "not-the-password")
    assert str(unknown.value) == str(wrong_password.value)  # the answer does not tell which IDs exist


def test_five_failed_tries_lock_the_account_for_the_set_time(directory, clock):
    for _ in range(4):
        with pytest.raises(AuthenticationError):
            directory.sign_in(TECH.user_id, "guess-guess")
    with pytest.raises(AccountLocked):
        directory.sign_in(TECH.user_id, "guess-guess")
    lock = directory.log.query(action=Action.ACCOUNT_LOCKED)
    assert len(lock) == 1 and lock[0].operator_id == "T001"
    assert datetime.fromisoformat(lock[0].details["locked_until"]) == clock.now + timedelta(seconds=600)
    # a locked account cannot sign in, even with the right password; the try is recorded
    with pytest.raises(AccountLocked, match="locked"):
        directory.sign_in(*TECH.login)
    assert directory.log.query(action=Action.SIGN_IN_FAILED)[-1].details["reason"] == "account locked"
    clock.now += timedelta(seconds=601)
    assert directory.locked_until(TECH.user_id) is None
    assert directory.sign_in(*TECH.login).user_id == "T001"
    assert directory.failures(TECH.user_id) == 0  # the tries while locked do not count again


def test_a_new_password_opens_a_lock(directory):
    for _ in range(5):
        with pytest.raises(AuthenticationError):
            directory.sign_in(EXPERT.user_id, "guess-guess")
    assert directory.locked_until(EXPERT.user_id) is not None
    admin = directory.sign(*ADMIN.login, Permission.MANAGE_USERS)
    directory.set_password(admin, EXPERT.user_id, "a-fresh-password")
    assert directory.locked_until(EXPERT.user_id) is None
    with pytest.raises(AuthenticationError):
        directory.sign_in(*EXPERT.login)
    assert directory.sign_in(EXPERT.user_id, "a-fresh-password").role is Role.EXPERT


def test_wrong_signature_passwords_count_towards_the_lock(directory):
    for _ in range(5):
        with pytest.raises(AuthenticationError):
            directory.sign(EXPERT.user_id, "guess-guess", Permission.OVERRIDE)
    with pytest.raises(AccountLocked):
        directory.sign(*EXPERT.login, Permission.OVERRIDE)
    purposes = {e.details["purpose"] for e in directory.log.query(action=Action.SIGN_IN_FAILED)}
    assert purposes == {"signature: override"}


def test_a_signature_names_signer_role_meaning_and_time(directory, clock):
    signature = directory.sign(*EXPERT.login, Permission.OVERRIDE)
    assert signature == Signature("E001", "Erin Expert", Role.EXPERT, "override approved", "2026-05-09T08:00:00+00:00")
    assert Signature.from_dict(signature.to_dict()) == signature
    assert directory.sign(*EXPERT.login, Permission.RELEASE_HELD).meaning == "release approved"


def test_a_technician_cannot_sign_an_override_or_a_user_change(directory):
    with pytest.raises(PermissionDenied, match="technician"):
        directory.sign(*TECH.login, Permission.OVERRIDE)
    with pytest.raises(PermissionDenied, match="expert"):
        directory.sign(*EXPERT.login, Permission.MANAGE_USERS)
    expert = directory.sign(*EXPERT.login, Permission.OVERRIDE)
    with pytest.raises(PermissionDenied):
        directory.add(expert, "X1", "Xavier", Role.ADMIN, "password-x1")


def test_role_disable_and_enable_are_signed_entries(directory):
    admin = directory.sign(*ADMIN.login, Permission.MANAGE_USERS)
    assert directory.set_role(admin, TECH.user_id, "expert").role is Role.EXPERT
    directory.disable(admin, TECH.user_id)
    with pytest.raises(AuthenticationError, match="disabled"):
        directory.sign_in(*TECH.login)
    assert directory.log.query(action=Action.SIGN_IN_FAILED)[-1].details["reason"] == "account disabled"
    directory.enable(admin, TECH.user_id)
    assert directory.sign_in(*TECH.login).role is Role.EXPERT
    changes = [(e.details["change"], e.details["signature"]["signer_id"]) for e in directory.log.query(action=Action.USER_CHANGE)]
    assert changes == [("role", "A001"), ("disable", "A001"), ("enable", "A001")]


def test_the_last_admin_cannot_be_demoted_or_disabled(directory):
    admin = directory.sign(*ADMIN.login, Permission.MANAGE_USERS)
    with pytest.raises(ValueError, match="only active admin"):
        directory.disable(admin, ADMIN.user_id)
    with pytest.raises(ValueError, match="only active admin"):
        directory.set_role(admin, ADMIN.user_id, "expert")


def test_a_first_admin_only_on_a_station_without_users(directory):
    with pytest.raises(PermissionDenied, match="already has users"):
        directory.add_first_admin("B001", "Bob", "password-b1")


def test_short_passwords_and_bad_ids_are_refused(tmp_path):
    directory = make_directory(AuditLog(tmp_path / "audit.sqlite3"))
    with pytest.raises(ValueError, match="at least 8"):
        directory.add_first_admin("A1", "Ann", "short")
    with pytest.raises(ValueError, match="user ID"):
        directory.add_first_admin("two words", "Ann", "long-enough")
    assert not directory.has_users()


def test_a_swapped_password_hash_is_refused(directory):
    """Someone with the database writes their own hash for the admin: the log names another."""
    from station.users.passwords import hash_password

    conn = sqlite3.connect(directory.log.path)
    conn.execute("UPDATE user_credentials SET password_hash = ? WHERE user_id = ?",
                 (hash_password("attacker-password"), ADMIN.user_id))
    conn.commit()
    conn.close()
    with pytest.raises(AuthenticationError):
        directory.sign_in(ADMIN.user_id, "attacker-password")
    with pytest.raises(AuthenticationError, match="does not match the audit log"):
        directory.sign_in(*ADMIN.login)
