#!/usr/bin/env bash
# One prepared device check (issue 15): conformance, performance (GEMM against a bare loop), the timing
# cross-check's false alarms over honest runs with the device's events (issue 11: CLOCK_RUNS, default 20)
# and serving (MLPerf LoadGen) on $DEVICE, printing a summary; result documents go to $OUT (or var/device-check).
# SKIP=conformance,performance,serving runs the clock cross-check alone (20 runs of five measurements each).
#
#   bash bench/device_check.sh                 # CUDA, Baseline-like serving durations (~8 minutes on a GPU)
#   DEVICE=cpu QUICK=1 bash bench/device_check.sh
#
# DEVICE=cpu without QUICK also works; QUICK defaults to 1 on cpu. PYTHON picks the interpreter
# (default: the project's .venv, else python3). LIMIT_S bounds the whole run (default 540 s).
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE="${DEVICE:-cuda}"
if [ "$DEVICE" = "cpu" ]; then QUICK="${QUICK:-1}"; else QUICK="${QUICK:-0}"; fi
PYTHON="${PYTHON:-}"
if [ -z "$PYTHON" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
OUT_DIR="${OUT:-var/device-check}"
LIMIT_S="${LIMIT_S:-540}"
args=(--device "$DEVICE" --out "$OUT_DIR")
if [ "$QUICK" = "1" ]; then args+=(--quick); fi
if [ -n "${SKIP:-}" ]; then args+=(--skip "$SKIP"); fi
if [ -n "${CLOCK_RUNS:-}" ]; then args+=(--clock-runs "$CLOCK_RUNS"); fi
case ",${SKIP:-}," in
  *,serving,*) ;;  # LoadGen is needed by the serving check only
  *) "$PYTHON" -c "import mlperf_loadgen" 2>/dev/null || {
       echo "mlperf_loadgen missing: pip install 'mlcommons-loadgen>=5.0,<7'" >&2; exit 3; } ;;
esac
echo "device_check: DEVICE=$DEVICE QUICK=$QUICK out=$OUT_DIR limit=${LIMIT_S}s"
exec timeout --signal=INT "$LIMIT_S" "$PYTHON" bench/device_check.py "${args[@]}"
