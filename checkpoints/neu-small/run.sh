#!/bin/bash
# NEU-DET lever: the larger config wbam-ffem-small at the bundled recipe (224 px, 300 epochs, same split, seed 0).
# Resume after an interruption: run.sh --resume
cd "${STATION_CHECKOUT:-$(dirname "$0")/code}"
export PYTHONPATH=$PWD OMP_NUM_THREADS=1
exec nice -n 5 ${PY:-/work/main/.venv/bin/python} -m station train detector --data /work/shared/data/neu-det --format voc \
  --split /root/station-runs/neu-small/split.json --model wbam-ffem-small \
  --imgsz 224 --batch 16 --epochs 300 --amp bf16 --val-every 5 --patience 300 --workers 1 --seed 0 \
  --keep-checkpoint --out /root/station-runs/neu-small --name wbam-ffem-neu \
  --description "NEU surface defect database, detection (NEU-DET VOC boxes), the 1,440 images in ../shared/data/neu-det" \
  --licence "research use only (NEU surface defect database)" --quiet "$@"
