#!/usr/bin/env bash
# Long re-id trainings on rendered people, on a lent GPU machine (the device tool): its image has
# PyTorch, NumPy, Pillow and OpenCV but not this package's other needs, which these runs do not
# import. Its calls take at most 64 MiB of files each, so the crops travel in parts
# (benchmarks/carry_crops.py), one call each, while the machine stays warm between calls:
#
#   here:   python benchmarks/carry_crops.py pack data/people3d-v3 .gpu --parts 3 --quality 85
#           cp ~/.cache/personsearch/weights/mobilenet_v2-b0353104.pth .gpu/weights/
#   there:  bash benchmarks/rendered_people_gpu.sh receive .gpu/part1     (carry .gpu/part1)
#           bash benchmarks/rendered_people_gpu.sh receive .gpu/part2     (carry .gpu/part2)
#           bash benchmarks/rendered_people_gpu.sh receive                (carry .gpu/weights)
#           bash benchmarks/rendered_people_gpu.sh train .gpu/part3 SECONDS   (carry .gpu/part3)
#
# Each call also carries the tracked tree (about 29 MB), so a part (about 22 MB) and the weights
# (14 MB) do not fit one call together. Make the calls one after another: the machine goes back
# after 30 s idle, and everything received goes with it. `train .. 470` took 540 s there in all.
#
# `receive` moves a part out of the working tree (a later call's copy would replace it) and, the
# first time, starts drawing the synthetic `standard` benchmark in the background (the same
# command and seed as data/synthetic-standard here). `train` unpacks the crops and runs two
# trainings side by side on the one GPU, each fitted to SECONDS: the release recipe from ImageNet
# weights (nothing drawn in it) for many more epochs than a CPU affords, plain and with IBN-a.
# The networks, their training summaries and metrics come back under $OUT.
set -euo pipefail
STORE=${STORE:-/tmp/rendered-people-gpu}
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
mkdir -p "$STORE"

case "$1" in
receive)
    for part in "${@:2}"; do
        rm -rf "$STORE/$(basename "$part")"
        mv "$part" "$STORE/"
    done
    if [ -d .gpu/weights ]; then rm -rf "$STORE/weights"; mv .gpu/weights "$STORE/"; fi
    if [ ! -e "$STORE/synthetic.started" ]; then
        touch "$STORE/synthetic.started"
        setsid nohup "$PY" -c "
from personsearch.data.synthetic import make_synthetic
make_synthetic('$STORE/synthetic-standard', preset='standard', seed=0, workers=12)
open('$STORE/synthetic.done', 'w').close()
" >"$STORE/synthetic.log" 2>&1 </dev/null &
    fi
    ls "$STORE"
    ;;
train)
    part=$2 seconds=$3
    rm -rf "$STORE/$(basename "$part")" && mv "$part" "$STORE/"
    "$PY" -c "import torch; print('torch', torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name())"
    "$PY" benchmarks/carry_crops.py unpack "$STORE"/part* --out "$STORE/people3d-v3" --workers 14
    for _ in $(seq 120); do [ -e "$STORE/synthetic.done" ] && break; sleep 1; done
    [ -e "$STORE/synthetic.done" ] || { cat "$STORE/synthetic.log"; exit 1; }
    cat "$STORE/synthetic-standard/synthetic.json" | head -c 600
    export PERSONSEARCH_WEIGHTS="$STORE/weights" OMP_NUM_THREADS=7
    common=(--root "$STORE/people3d-v3" --mix "$STORE/synthetic-standard" --identities 1000
        --init imagenet --epochs 200 --lr 0.02 --device "$DEVICE" --budget-s "$seconds")
    "$PY" benchmarks/rendered_people.py train "${common[@]}" --out "$STORE/imagenet-long" \
        >"$STORE/imagenet-long.log" 2>&1 &
    "$PY" benchmarks/rendered_people.py train "${common[@]}" --instance-norm layer1 layer2 layer3 \
        --out "$STORE/imagenet-long-ibn" >"$STORE/imagenet-long-ibn.log" 2>&1 &
    status=0
    wait %1 || status=$?
    wait %2 || status=$?
    for run in imagenet-long imagenet-long-ibn; do
        tail -c 1500 "$STORE/$run.log"
        mkdir -p "$OUT/$run"
        cp "$STORE/$run/reid.json" "$STORE/$run/reid.safetensors" "$OUT/$run/" || status=1
        cp "$STORE/$run/train-reid/metrics.csv" "$OUT/$run/" || true
        cp "$STORE/$run.log" "$OUT/$run/train.log"
    done
    exit $status
    ;;
*)
    echo "usage: $0 receive PART... | train PART SECONDS" >&2
    exit 2
    ;;
esac
