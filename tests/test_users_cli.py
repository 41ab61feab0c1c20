"""``station users`` and ``station models approve``: admin only, with the admin's password."""

from __future__ import annotations

import io

import pytest
from helpers_models import make_tiny_classifier
from helpers_users import ADMIN, EXPERT, TECH, make_directory, make_users

from station.audit import Action, AuditLog
from station.cli import main


def _station(argv: list[str], monkeypatch, *lines: str) -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO("".join(line + "\n" for line in lines)))
    return main(argv)


def test_the_first_admin_then_users_added_by_that_admin(monkeypatch, capsys):
    assert _station(["users", "add", "--first-admin", "A001", "--name", "Ada Admin"], monkeypatch, ADMIN.password) == 0
    code = _station(["users", "add", "T001", "--name", "Tom Technician", "--role", "technician", "--admin", "A001"],
                    monkeypatch, ADMIN.password, TECH.password)
    assert code == 0
    assert _station(["users", "role", "T001", "expert", "--admin", "A001"], monkeypatch, ADMIN.password) == 0
    capsys.readouterr()
    assert _station(["users", "list", "--admin", "A001"], monkeypatch, ADMIN.password) == 0
    listing = capsys.readouterr().out
    assert "A001" in listing and "T001                 expert" in listing
    # a second first admin is refused
    assert _station(["users", "add", "--first-admin", "B001", "--name", "Bob"], monkeypatch, "password-b1") == 1
    with AuditLog() as log:
        assert [e.action for e in log.query(action=Action.USER_ADD)] == ["USER_ADD", "USER_ADD"]
        assert log.query(action=Action.USER_CHANGE)[-1].details["signature"]["signer_id"] == "A001"


@pytest.fixture
def users():
    directory = make_directory()
    make_users(directory)
    return directory


@pytest.mark.parametrize("argv", [
    ["users", "list"],
    ["users", "disable", "E001"],
    ["users", "passwd", "E001"],
    ["users", "role", "T001", "admin"],
    ["users", "add", "X001", "--name", "Xena", "--role", "admin"],
])
def test_a_technician_or_expert_cannot_manage_users(users, monkeypatch, capsys, argv):
    for account in (TECH, EXPERT):
        assert _station([*argv, "--admin", account.user_id], monkeypatch, account.password, "new-password-1") == 1
        assert "refused" in capsys.readouterr().err
    assert set(users.users()) == {"A001", "E001", "T001"}
    assert not any(u.disabled for u in users.users().values())


def test_a_wrong_admin_password_is_refused_and_counted(users, monkeypatch, capsys):
    assert _station(["users", "disable", "T001", "--admin", "A001"], monkeypatch, "not-the-password") == 1
    assert "ID or password is wrong" in capsys.readouterr().err
    assert users.failures("A001") == 1 and not users.get("T001").disabled


def test_passwd_and_disable_through_the_cli(users, monkeypatch):
    assert _station(["users", "passwd", "T001", "--admin", "A001"], monkeypatch, ADMIN.password, "another-password") == 0
    assert users.sign_in("T001", "another-password").user_id == "T001"
    assert _station(["users", "disable", "T001", "--admin", "A001"], monkeypatch, ADMIN.password) == 0
    assert users.get("T001").disabled


def test_only_an_admin_approves_a_model(users, tmp_path, monkeypatch, capsys):
    model = tmp_path / "tiny-material"
    make_tiny_classifier(model)
    for account in (TECH, EXPERT):
        assert _station(["models", "approve", str(model), "--admin", account.user_id], monkeypatch, account.password) == 1
        assert "refused" in capsys.readouterr().err
    assert not users.log.query(action=Action.MODEL_APPROVE)
    assert _station(["models", "approve", str(model), "--admin", "A001"], monkeypatch, ADMIN.password) == 0
    assert "approved by A001" in capsys.readouterr().out
    approval = users.log.query(action=Action.MODEL_APPROVE)
    assert len(approval) == 1 and approval[0].models == {"tiny-material": approval[0].details["weights_sha256"]}
    assert approval[0].details["signature"]["meaning"] == "model approved"
    assert _station(["models", "approve", str(model), "--admin", "A001"], monkeypatch, ADMIN.password) == 0
    assert "already approved" in capsys.readouterr().out
    assert len(users.log.query(action=Action.MODEL_APPROVE)) == 1
