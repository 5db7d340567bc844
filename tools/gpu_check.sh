#!/usr/bin/env bash
# The checks that need a GPU, in about 9 minutes on one: CUDA/NCCL tests (nvJPEG decode included),
# the GPU rows of BENCHMARKS.md, the data paths at ImageNet size with nvJPEG decode, and 50
# iterations of the used-by command (SiMo R50, --num-gpus 1) on generated 224 px images. Everything lands in one JSON file.
#
#   bash tools/gpu_check.sh [OUT_DIR]        (default: output/gpu_check; results: OUT_DIR/gpu_check.json)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-output/gpu_check}
PY=${PYTHON:-.venv/bin/python}
export PYTHONPATH=$PWD
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
: > "$LOG"
step() { echo "== $1" | tee -a "$LOG"; }

"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu_check.sh: no CUDA device visible')"

step "CUDA/NCCL tests (pytest -m cuda)"
"$PY" -m pytest -q -m cuda tests/ --junitxml="$OUT/cuda_tests.xml" 2>&1 | tee -a "$LOG" | tail -3

step "generated data: Shapes 64 px, ImageFolder 224 px (512 train / 64 val images)"
"$PY" - "$OUT/data" <<'EOF' 2>&1 | tee -a "$LOG"
import os, sys
import numpy as np
from PIL import Image
root = sys.argv[1]
for split, per_class in (("train", 128), ("val", 16)):
    rng = np.random.default_rng(len(split))
    for c in range(4):
        folder = os.path.join(root, "imagenet", split, f"n{c:08d}")
        os.makedirs(folder, exist_ok=True)
        for i in range(per_class):
            path = os.path.join(folder, f"{i}.jpg")
            if not os.path.exists(path):
                pixels = rng.integers(0, 64, (256, 256, 3)) + np.array([60 * c, 255 - 60 * c, 128])
                Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(path, quality=90)
print("ok")
EOF

B="$PY tools/benchmark.py --iters 20 --warmup 5"
GPU="MODEL.DEVICE cuda DATALOADER.NUM_WORKERS 8 DATALOADER.PIN_MEMORY True DATASETS.ROOT $OUT/data"
step "benchmark: Shapes ResNet-18 fp32, then bf16 + channels_last + batched augmentation"
$B --config-file configs/Shapes/mocov2_r18.yaml --output "$OUT/bench_r18_fp32.json" $GPU 2>&1 | tee -a "$LOG" | tail -4
$B --config-file configs/Shapes/mocov2_r18.yaml --amp --channels-last --output "$OUT/bench_r18_bf16_cl.json" \
    $GPU INPUT.BATCHED_AUGMENTATION True 2>&1 | tee -a "$LOG" | tail -4
step "benchmark: SiMo ResNet-50 224 px, bf16 + channels_last + batched augmentation, batch 256"
$B --config-file projects/SiMo/configs/r50_200ep.yaml --amp --channels-last --output "$OUT/bench_simo_r50.json" \
    $GPU INPUT.BATCHED_AUGMENTATION True 2>&1 | tee -a "$LOG" | tail -4

step "data paths at ImageNet size (500 generated JPEGs): per-core rates, and nvJPEG decode of 256 files"
SSL_LAB_CACHE="$OUT/cache" "$PY" tools/benchmark_data.py --images 500 --rounds 3 --per-round 30 --batch 256 --decode-device cuda \
    --output "$OUT/bench_data_imagenet.json" 2>&1 | tee -a "$LOG" | tail -12

step "used-by command: SiMo r50_200ep.yaml --num-gpus 1, 50 iterations on generated 224 px images"
rm -rf "$OUT/simo_r50"
start=$(date +%s)
"$PY" tools/train_net.py --config-file projects/SiMo/configs/r50_200ep.yaml --num-gpus 1 \
    DATASETS.ROOT "$OUT/data" OUTPUT_DIR "$OUT/simo_r50" SOLVER.MAX_ITER 50 LOG_PERIOD 10 2>&1 | tee -a "$LOG" | tail -5
echo $(( $(date +%s) - start )) > "$OUT/simo_r50_seconds"

step "collect"
"$PY" - "$OUT" <<'EOF' | tee -a "$LOG"
import glob, json, os, sys
import torch
out = sys.argv[1]
results = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "cuda": torch.version.cuda,
           "nccl": ".".join(map(str, torch.cuda.nccl.version()))}
xml = open(os.path.join(out, "cuda_tests.xml")).read()
results["cuda_tests"] = xml[xml.find("<testsuite "):].split(">")[0]
for path in sorted(glob.glob(os.path.join(out, "bench_*.json"))):
    results[os.path.basename(path)[:-5]] = json.load(open(path))
metrics = [json.loads(line) for line in open(os.path.join(out, "simo_r50", "metrics.json"))]
results["simo_r50_50_iterations"] = {"seconds": int(open(os.path.join(out, "simo_r50_seconds")).read()),
                                     "records": metrics}
json.dump(results, open(os.path.join(out, "gpu_check.json"), "w"), indent=1)
print(f"wrote {os.path.join(out, 'gpu_check.json')}")
EOF
