#!/bin/bash
# NEU-DET: the bundled wbam-ffem-neu recipe (300 epochs, seed 0, same split) + mosaic + grey jitter.
# Resume after any interruption: run.sh --resume (it runs code/, a git archive of the commit in code/COMMIT)
cd "${STATION_CHECKOUT:-$(dirname "$0")/code}"  # a frozen copy of the code (git archive of code/COMMIT)
export PYTHONPATH=$PWD OMP_NUM_THREADS=1
exec nice -n 5 ${PY:-/work/main/.venv/bin/python} -m station train detector --data /work/shared/data/neu-det --format voc \
  --split /root/station-runs/neu-mosaic/split.json --model wbam-ffem-nano --imgsz 224 --batch 16 --epochs 300 --amp bf16 --val-every 5 \
  --patience 300 --workers 1 --seed 0 --keep-checkpoint --out /root/station-runs/neu-mosaic --name wbam-ffem-neu \
  --mosaic 1.0 --close-mosaic 10 --brightness 0.4 --contrast 0.4 --saturation 0 \
  --description "NEU surface defect database, detection (NEU-DET VOC boxes), the 1,440 images in ../shared/data/neu-det" \
  --licence "research use only (NEU surface defect database)" --quiet "$@"
