#!/bin/bash
# docs/OWN-CHIPS.md, run for real on synthetic chips with the bundled demo recipe, in a throw-away
# station home. Prints every command and what it printed. tests/test_walkthrough_own_chips.py runs
# the same steps with tiny models.
#   scripts/walkthrough-own-chips.sh [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
WORK=${1:-$(mktemp -d)}
export STATION_HOME=$WORK/home PYTHONPATH=$PWD
mkdir -p "$WORK"
step() { echo; echo "\$ station ${*}"; "$PY" -m station "$@"; }

echo "# the station's first admin, who approves the bundled models"
printf 'admin-password-1\n' | step users add --first-admin A001 --name "Ada Admin"
printf 'admin-password-1\n' | step models approve models/cti-ic-material models/wbam-ffem-ic --admin A001

echo; echo "# 1. capture: 90 of the lab's chips (here synthetic, one folder per material so the review knows the truth)"
step synth --out "$WORK/captures" --count 90 --seed 7000
echo; echo "# 2. review: batch review with the station's recipe, then the expert's verdicts"
step batch "$WORK/captures" --recipe "IC package (demo)" --out "$WORK/review.csv" --recursive --no-attention --quiet
"$PY" - "$WORK/captures" <<'EOF'
# what the expert does in the batch window: accept the right calls, override the wrong ones (signed)
import sys
from pathlib import Path
from station.audit import AuditLog, Verdict
from station.inference.recipes import load_recipes
from station.review.store import BatchStore
from station.review.verdicts import BatchContext, VerdictRequest, commit_verdict
from station.users import Permission, UserDirectory
from station.workflow import Operator

folder = Path(sys.argv[1]).resolve()
recipe = load_recipes()["IC package (demo)"]
with AuditLog() as log, BatchStore.for_folder(folder, recipe.name) as store:
    directory = UserDirectory(log)
    expert = Operator("A001", "Ada Admin")
    context = BatchContext(folder, store.directory, dict(recipe.decap_methods))
    accepted = overridden = 0
    for row in store.rows():
        truth = row.relative_path.split("/")[0]
        if truth not in recipe.decap_methods:
            continue
        if row.material == truth and not row.uncertain:
            request = VerdictRequest((row.item_id,), Verdict.ACCEPT, expert)
            accepted += 1
        else:
            signature = directory.sign("A001", "admin-password-1", Permission.OVERRIDE)
            request = VerdictRequest((row.item_id,), Verdict.OVERRIDE, expert, truth, "checked under the stereo microscope",
                                     signature=signature)
            overridden += 1
        commit_verdict(log, store, context, row.item_id, request)
print(f"review: {accepted} accepted, {overridden} overridden by the expert")
EOF
echo; echo "# 3. dataset: the reviewed images, labelled with the final decision"
step dataset from-batch "$WORK/captures" --recipe "IC package (demo)" --out "$WORK/dataset"
echo; echo "# 4. fine-tune from the recipe's classifier"
step train classifier --init models/cti-ic-material --data "$WORK/dataset" --format folder --epochs 3 --batch 16 \
  --workers 0 --name lab-material --out "$WORK/runs/lab-material" --quiet
echo; echo "# 5. compare on chips neither model saw"
step synth --out "$WORK/heldout" --count 60 --seed 9000
step models compare models/cti-ic-material "$WORK/runs/lab-material" --data "$WORK/heldout" --format folder --device cpu
echo; echo "# 6. approve and 7. promote (the admin's signed acts)"
printf 'admin-password-1\n' | step models approve "$WORK/runs/lab-material" --admin A001
printf 'admin-password-1\n' | step models promote "$WORK/runs/lab-material" --recipe "IC package (demo)" --admin A001
step audit verify
