#!/usr/bin/env bash
# Runs the node test cases defined by the `onnx` PyPI wheel (newer than Debian's libonnx 1.12: opsets
# up to 23+) through tunnx and reports the pass rate. Fails when the data cannot be made, or when the
# number of passing cases falls below the floor in newer_onnx_floor.txt (raise it as kernels land).
# With --cli it runs the same cases through `tunnx run --test-data` instead (cli_contract.py) and fails
# when an in-scope case that passed in-process (the report the first form wrote) fails there.
#   newer_onnx_tests.sh CONFORMANCE_BINARY WORK_DIR
#   newer_onnx_tests.sh --cli TUNNX WORK_DIR
set -euo pipefail
mode=in-process
if [ "$1" = --cli ]; then
  mode=cli
  shift
fi
binary=$1
work=$2
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
onnx_version=$(grep -E '^onnx==' "$root/scripts/requirements-dev.txt" | cut -d= -f3)

venv="$root/.venv"
if ! "$venv/bin/python" -c "import onnx, numpy" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "onnx==$onnx_version" numpy
fi
data="$work/onnx-$("$venv/bin/python" -c 'import onnx; print(onnx.__version__)')"
if [ ! -d "$data/node" ]; then
  rm -rf "$data.tmp"
  "$venv/bin/python" "$here/generate_onnx_node_tests.py" "$data.tmp" 2>/dev/null
  mv "$data.tmp" "$data"
fi

report="$work/newer_onnx_report.tsv"
if [ "$mode" = cli ]; then
  [ -f "$report" ] || { echo "no in-process report $report: run the newer_onnx_conformance test first"; exit 1; }
  exec "$venv/bin/python" "$here/cli_contract.py" "$binary" "$data" "$report" "$work/newer_onnx_cli_report.tsv"
fi

summary=$("$binary" --data "$data" --report "$report" | tail -1)
echo "newer ONNX node tests ($data): $summary"
passed=$(echo "$summary" | sed -E 's/^conformance: ([0-9]+) of.*/\1/')
floor=$(grep -v '^#' "$here/newer_onnx_floor.txt" | head -1)
if [ "$passed" -lt "$floor" ]; then
  echo "FAILED: $passed cases pass, fewer than the floor of $floor (tests/conformance/newer_onnx_floor.txt)"
  exit 1
fi
