#!/usr/bin/env bash
# Everything kvsim needs a GPU for, in one run of at most 8 minutes (DESIGN §8), writing to $OUT:
#   1. install kvsim (no deps, no build isolation: the GPU machine has no internet)
#   2. print nvidia-smi, torch, triton versions
#   3. kernel tests on the GPU, full-size `gpu` cases included         -> $OUT/kernel_tests.log
#   4. kernel benchmark: decode GB/s and prefill TFLOP/s vs the peak   -> $OUT/kernel_bench.csv, _summary.txt
#   5. VMM page mapping beside queued GPU work (vAttention's overlap)  -> $OUT/vmm_overlap.json
#   6. calibration sweep and fit, then whole decoder layers against    -> $OUT (profile JSON, raw CSV,
#      the profile (their launch overlap refitted into it)                  step_validation CSV)
#   7. a short summary
# Fails fast and loudly when a step that the rest needs breaks (install, versions). A failing kernel test or
# benchmark is logged and the script goes on to calibration (its GEMM and VMM sweeps need no Triton kernel),
# then exits non-zero: one short GPU loan still brings back everything that did work.
#
# Usage:  OUT=/path/to/results bash scripts/gpu_session.sh
#         KVSIM_GPU_DEADLINE_S=300 ... for a shorter loan (calibration gets what the rest leaves)
#         KVSIM_GPU_DRY_RUN=1 OUT=/tmp/x bash scripts/gpu_session.sh   (or --dry-run: checks every step on
#         CPU: no install, test collection only, the benchmark's tiny interpreter shapes, a CPU smoke
#         calibration)
set -euo pipefail

DRY_RUN="${KVSIM_GPU_DRY_RUN:-0}"
if [[ "${1:-}" == "--dry-run" ]]; then DRY_RUN=1; fi
: "${OUT:?set OUT to the folder where results go}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"

START_S=$(date +%s)
DEADLINE_S="${KVSIM_GPU_DEADLINE_S:-470}" # the whole script must finish inside 8 minutes (480 s); 10 s spare
elapsed() { echo $(($(date +%s) - START_S)); }
step() { echo; echo "=== [$(elapsed)s] $*"; }
fail() {
  echo "gpu_session: FAILED after $(elapsed)s: $*" >&2
  exit 1
}
# run_step NAME MAX_S CMD...: the command under `timeout`, capped at what is left of the deadline
run_step() {
  local name=$1 max_s=$2
  shift 2
  local left=$((DEADLINE_S - $(elapsed)))
  ((left > 0)) || fail "$name: no time left before the 8-minute deadline"
  local limit=$((max_s < left ? max_s : left))
  local rc=0
  timeout "$limit" "$@" || rc=$?
  if ((rc == 124)); then fail "$name: timed out after ${limit}s"; fi
  if ((rc != 0)); then fail "$name: exit status $rc"; fi
}
FAILED=()
# soft_step NAME MAX_S CMD...: like run_step, but a failure or timeout is recorded and the script goes on
soft_step() {
  local rc=0
  (run_step "$@") || rc=$?
  if ((rc != 0)); then
    FAILED+=("$1")
    echo "gpu_session: step '$1' FAILED (exit $rc); going on" >&2
  fi
}

step "1/7 install kvsim"
if ((DRY_RUN)); then
  echo "(dry run) would run: $PY -m pip install --no-deps --no-build-isolation -e ."
else
  run_step install 90 "$PY" -m pip install -q --no-deps --no-build-isolation -e .
fi

step "2/7 versions"
if command -v nvidia-smi >/dev/null 2>&1; then
  run_step nvidia-smi 20 nvidia-smi
elif ((!DRY_RUN)); then
  fail "nvidia-smi not found: this script needs an NVIDIA GPU (use KVSIM_GPU_DRY_RUN=1 to check it on CPU)"
fi
run_step versions 60 "$PY" - "$DRY_RUN" <<'EOF'
import sys
import torch, triton
cuda = torch.cuda.is_available()
print(f"python {sys.version.split()[0]}, torch {torch.__version__}, triton {triton.__version__}, cuda {cuda}")
if cuda:
    print(f"device {torch.cuda.get_device_name()}, {torch.cuda.get_device_properties(0).multi_processor_count} SMs")
elif sys.argv[1] != "1":
    sys.exit("torch sees no CUDA device")
EOF

step "3/7 kernel tests"
if ((DRY_RUN)); then
  run_step "kernel test collection" 120 "$PY" -m pytest tests/kernels tests/calibrate/test_timing.py -m "gpu or not gpu" --collect-only -q \
    -p no:cacheprovider >"$OUT/kernel_tests.log"
  tail -n 1 "$OUT/kernel_tests.log"
else
  KVSIM_DEVICE=cuda soft_step "kernel tests" 150 "$PY" -m pytest tests/kernels tests/calibrate/test_timing.py -m "gpu or not gpu" -q \
    --maxfail=5 -p no:cacheprovider >"$OUT/kernel_tests.log" 2>&1
  tail -n 40 "$OUT/kernel_tests.log"
fi

step "4/7 kernel benchmark"
if ((DRY_RUN)); then
  run_step "kernel benchmark" 120 "$PY" -m kvsim.kernels.bench --device cpu --quick --out "$OUT/kernel_bench.csv"
else
  soft_step "kernel benchmark" 120 "$PY" -m kvsim.kernels.bench --device cuda --budget-s 90 \
    --out "$OUT/kernel_bench.csv" >"$OUT/kernel_bench.log" 2>&1
  cat "$OUT/kernel_bench.log"
fi

step "5/7 VMM mapping beside GPU work (vAttention's overlapped mapping)"
if ((DRY_RUN)); then
  run_step "vmm_overlap (help)" 60 "$PY" -m kvsim.calibrate.vmm_overlap --help >/dev/null
  echo "(dry run) on the GPU: $PY -m kvsim.calibrate.vmm_overlap --out $OUT/vmm_overlap.json"
else
  soft_step "vmm overlap" 60 "$PY" -m kvsim.calibrate.vmm_overlap --out "$OUT/vmm_overlap.json"
fi

step "6/7 calibration"
if "$PY" -c "import kvsim.calibrate.__main__" >/dev/null 2>&1; then
  if ((DRY_RUN)); then
    echo "(dry run) on the GPU: $PY -m kvsim.calibrate --device cuda --tp 1,2,4,8 --out $OUT --budget-s <time left - 100>"
    echo "(dry run) here, the same pipeline on tiny shapes:"
    run_step "calibration (CPU smoke)" 120 "$PY" -m kvsim.calibrate --device cpu --impl reference --out "$OUT" \
      --budget-s 10 --no-progress
  else
    # Give calibration what is left (its sweeps scale down to the budget), keeping 100 s for fitting, the
    # whole-layer check that follows the sweeps (about 15 s on an H200) and the summary; the step's timeout
    # allows 25 s past the budget before it counts as a failure.
    budget_s=$((DEADLINE_S - $(elapsed) - 100))
    ((budget_s >= 60)) || fail "calibration: only ${budget_s}s left; earlier steps overran"
    run_step calibration $((budget_s + 25)) "$PY" -m kvsim.calibrate --device cuda --tp 1,2,4,8 --out "$OUT" \
      --budget-s "$budget_s"
  fi
else
  echo "kvsim.calibrate is not importable (not built yet?): calibration skipped"
fi

step "7/7 summary"
grep -E "passed|failed|error|tests? collected" "$OUT/kernel_tests.log" | tail -n 1 || true
cat "$OUT/kernel_bench_summary.txt" 2>/dev/null || echo "(no kernel_bench_summary.txt)"
echo "outputs in $OUT:"
ls -1 "$OUT"
echo "next (on the session's machine): commit profile-*.json and measurements-*.csv under calibrate/profiles/,"
echo "and kernel_bench* under benchmarks/results/, named by the GPU above"
if ((${#FAILED[@]})); then
  echo "gpu_session: FAILED steps: ${FAILED[*]} (the rest ran; see their logs) after $(elapsed)s" >&2
  exit 1
fi
echo "gpu_session: OK in $(elapsed)s$( ((DRY_RUN)) && echo ' (dry run)')"
