#!/bin/sh
# bench/run.sh [names...] - lipc against raw C (and Python where present).
# For every bench name (bench/<name>.c, bench/<name>.lua, bench/<name>.py;
# all of them when no name is given) build the C with gcc -O2 into
# bench/out/, run the implementations alternately pinned to one CPU for
# BENCH_PASSES passes (default 3), collect their `metric` and `target`
# lines, print per metric the medians, the ratio lipc/C (median of per-pass
# ratios) and the target verdict (informational), and write
# bench/out/report.md and bench/out/rtt.png.  See bench/README.md.
# Environment: BENCH_PASSES (3), BENCH_PIN (1; 0 runs unpinned), BENCH_CPU (0),
# BENCH_OUT (bench/out: binaries, results, report and chart),
# BENCH_TIMEOUT (60 s per program), LIPC_BUILD (build: where lipc/core.so is).
set -u
cd "$(dirname "$0")/.." || exit 1
out=${BENCH_OUT:-bench/out}
build=${LIPC_BUILD:-build}
passes=${BENCH_PASSES:-3}
cpu=${BENCH_CPU:-0}
limit=${BENCH_TIMEOUT:-60}
lua=${LUA:-lua5.4}
py=/usr/bin/python3
mkdir -p "$out"

export LUA_PATH="lua/?.lua;lua/?/init.lua;bench/lib/?.lua;;"
export LUA_CPATH="$build/?.so;$out/?.so;;"

if [ "${BENCH_PIN:-1}" = 1 ] && command -v taskset >/dev/null 2>&1; then
  pin="taskset -c $cpu"; desc="pinned to CPU $cpu (taskset -c $cpu)"
else
  pin=""; desc="unpinned"
fi
# one bench run at a time on this machine: they would disturb each other
if command -v flock >/dev/null 2>&1; then
  exec 9>"${BENCH_LOCK:-/tmp/lipc-bench.lock}"
  if ! flock -n 9; then
    echo "bench: waiting for another bench run to finish..."
    flock 9
  fi
fi
load=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo "?")
case $load in
  0.[0-4]*|\?) ;;
  *) echo "bench: the machine is busy (load average $load): expect noisy numbers" ;;
esac
export BENCH_DESC="$passes passes, $desc, lipc from $build/, load average $load at start"

if [ ! -f "$build/lipc/core.so" ]; then
  echo "bench: $build/lipc/core.so is missing (run make, or set LIPC_BUILD)" >&2
  exit 1
fi

# names: the arguments, or every bench/<name>.{c,lua,py}
if [ $# -gt 0 ]; then
  names="$*"
else
  names=$(for f in bench/*.c bench/*.lua bench/*.py; do
            [ -f "$f" ] && basename "$f" | sed 's/\.[^.]*$//'
          done | sort -u)
fi
[ -n "$names" ] || { echo "bench: nothing to run" >&2; exit 1; }

# build the clock module for Lua and every C program (bench/lib/pingpong.h
# holds what the C round-trip programs share; bench/lib/benchutil.lua the same
# for the Lua side)
cflags="-O2 -std=gnu11 -Wall -Wextra"
gcc $cflags -fPIC -shared -I/usr/include/lua5.4 -o "$out/benchclock.so" bench/lib/benchclock.c \
  || { echo "bench: cannot build benchclock" >&2; exit 1; }
for n in $names; do
  if [ ! -f "bench/$n.c" ] && [ ! -f "bench/$n.lua" ] && [ ! -f "bench/$n.py" ]; then
    echo "bench: no bench/$n.c, bench/$n.lua or bench/$n.py" >&2; exit 1
  fi
  if [ -f "bench/$n.c" ]; then
    gcc $cflags -Ibench/lib -o "$out/$n" "bench/$n.c" -lrt -lpthread -lm \
      || { echo "bench: cannot build bench/$n.c" >&2; exit 1; }
  fi
done

results=$out/results.txt
: > "$results"
failed=0
broken=""

# run_one PASS IMPL NAME CMD...: run one program, append its output to results
run_one() {
  r_pass=$1 r_impl=$2 r_name=$3; shift 3
  tmp=$out/.run.$$
  start=$(date +%s.%N)
  # shellcheck disable=SC2086
  timeout "$limit" $pin "$@" </dev/null >"$tmp" 2>"$tmp.err" 9>&-
  rc=$?
  secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
  status=ok
  if [ $rc -ne 0 ]; then
    status="exit=$rc"; [ $rc -eq 124 ] && status="timeout=${limit}s"
    failed=$((failed + 1))
    broken="$broken $r_name.$r_impl "
  fi
  echo "run $r_pass $r_impl $r_name $status" >> "$results"
  grep -E '^(metric|target) ' "$tmp" >> "$results"
  summary=$(awk '$1 == "metric" { printf " %s=%s", $2, $3 }' "$tmp")
  printf '  %-22s %-5s %6ss %s%s\n' "$r_name" "$r_impl" "$secs" "$status" "$summary"
  if [ $rc -ne 0 ]; then sed 's/^/      | /' "$tmp.err" | tail -n 8; fi
  rm -f "$tmp" "$tmp.err"
}

# run_impls PASS NAME: every implementation of NAME, C first on odd passes;
# one that failed in an earlier pass is not run again
run_impls() {
  p=$1 n=$2
  if [ $((p % 2)) -eq 1 ]; then order="c lipc py"; else order="lipc c py"; fi
  for impl in $order; do
    case $broken in *" $n.$impl "*)
      printf '  %-22s %-5s skipped: failed in an earlier pass\n' "$n" "$impl"; continue;;
    esac
    case $impl in
      c)    [ -f "bench/$n.c" ] && run_one "$p" c "$n" "$out/$n" ;;
      lipc) [ -f "bench/$n.lua" ] && run_one "$p" lipc "$n" "$lua" "bench/$n.lua" ;;
      py)   [ -f "bench/$n.py" ] && [ -x "$py" ] && run_one "$p" py "$n" "$py" "bench/$n.py" ;;
    esac
  done
}

echo "bench: $(echo $names | wc -w) benchmarks, $BENCH_DESC"
p=1
while [ $p -le "$passes" ]; do
  echo "pass $p/$passes"
  for n in $names; do run_impls "$p" "$n"; done
  p=$((p + 1))
done

"$lua" bench/lib/report.lua "$results" "$out" || exit 1
if ! grep -q rtt "$results"; then
  echo "bench: no round-trip metric in this run: no chart"
elif command -v gnuplot >/dev/null 2>&1; then
  gnuplot "$out/rtt.gp" || echo "bench: gnuplot failed" >&2
else
  echo "bench: gnuplot missing (apt-get install gnuplot-nox): no chart" >&2
fi
[ $failed -eq 0 ] || { echo "bench: $failed program run(s) failed" >&2; exit 1; }
exit 0
