"""The demo accounts of ``station --demo`` (documented in the README; never for production).

On a station that has no users yet, ``--demo`` creates three accounts whose password is their
ID, each marked ``demo`` on the log and in ``station users list``:

=================  ===============  ==========
ID / password      name             role
=================  ===============  ==========
``demo-tech``      Demo Technician  technician
``demo-expert``    Demo Expert      expert
``demo-admin``     Demo Admin       admin
=================  ===============  ==========

While every user of the station is a demo account, ``--demo`` also has ``demo-admin`` approve
the bundled models that no approval covers yet (a recorded ``MODEL_APPROVE`` signed by the demo
admin), so ``make demo`` starts into a usable station. A station with a real user gets neither:
its admins approve models and add users themselves.
"""

from __future__ import annotations

import logging
from pathlib import Path

from station.users.directory import AuthenticationError, UserDirectory
from station.users.roles import Permission, Role

log = logging.getLogger(__name__)

DEMO_ACCOUNTS: list[tuple[str, str, Role, str]] = [
    ("demo-admin", "Demo Admin", Role.ADMIN, "demo-admin"),
    ("demo-expert", "Demo Expert", Role.EXPERT, "demo-expert"),
    ("demo-tech", "Demo Technician", Role.TECHNICIAN, "demo-tech"),
]
DEMO_HINT = "Demo accounts (password = ID): demo-tech (technician), demo-expert (expert), demo-admin (admin)"


def prepare_demo_station(directory: UserDirectory, models_dir: Path | None = None) -> list[str]:
    """Create the demo accounts on a station without users and approve the bundled models while
    only demo accounts exist. Returns what was done, one line each (empty: nothing to do)."""
    from station import paths
    from station.ml.cards import CARD_FILE, ModelLoadError
    from station.users.approvals import ModelApprovals, ModelHashes, approve_model

    done: list[str] = []
    if not directory.has_users():
        directory.add_demo_users(DEMO_ACCOUNTS)
        done.append("created the demo accounts " + ", ".join(a[0] for a in DEMO_ACCOUNTS))
    users = directory.users()
    if not users or not all(user.demo for user in users.values()):
        return done
    admin_id, _, _, admin_password = DEMO_ACCOUNTS[0]
    approvals = ModelApprovals.from_log(directory.log)
    folder = models_dir or paths.models_dir()
    pending = []
    for model_dir in sorted(p for p in folder.iterdir() if (p / CARD_FILE).is_file()) if folder.is_dir() else []:
        try:
            if approvals.find(ModelHashes.of(model_dir)) is None:
                pending.append(model_dir)
        except ModelLoadError as exc:
            log.warning("demo: bundled model %s not approved: %s", model_dir, exc)
    if not pending:
        return done
    try:
        signature = directory.sign(admin_id, admin_password, Permission.APPROVE_MODEL)
    except AuthenticationError as exc:
        log.warning("demo: the demo admin cannot approve the bundled models (%s)", exc)
        return done
    for model_dir in pending:
        try:
            approve_model(directory.log, model_dir, signature)
            done.append(f"demo-admin approved the bundled model {model_dir.name}")
        except (ModelLoadError, ValueError) as exc:
            log.warning("demo: bundled model %s not approved: %s", model_dir, exc)
    return done
