# with_progress LABEL COMMAND...: runs COMMAND, printing "LABEL: still running (Ns)" every
# 30 seconds while it runs, so a long first build is never silent. Sourced by the scripts.
with_progress() {
  local label=$1
  shift
  local start=$SECONDS
  "$@" &
  local pid=$!
  (
    while sleep 30; do
      kill -0 "$pid" 2>/dev/null || exit 0
      echo "$label: still running ($((SECONDS - start))s)" >&2
    done
  ) &
  local ticker=$!
  local rc=0
  wait "$pid" || rc=$?
  kill "$ticker" 2>/dev/null || true
  wait "$ticker" 2>/dev/null || true
  return "$rc"
}
