#!/bin/sh
# scripts/demo.sh [pattern...] - the tour behind `make demo`.
# Runs every examples/*.lua (or those whose name contains one of the
# patterns) in sorted order from the repository root, with lipc taken
# from lua/ and build/ (LIPC_BUILD overrides build/), each under a timeout
# (DEMO_TIMEOUT seconds, default 60).  Stops with a non-zero exit at the
# first example that fails, naming it; ends with a summary line.
set -u
cd "$(dirname "$0")/.." || exit 1
build=${LIPC_BUILD:-build}
limit=${DEMO_TIMEOUT:-60}
lua=${LUA:-lua5.4}
export LUA_PATH="lua/?.lua;lua/?/init.lua;;"
export LUA_CPATH="$build/?.so;;"

if [ ! -f "$build/lipc/core.so" ]; then
  echo "demo: $build/lipc/core.so is missing (run make first)" >&2
  exit 1
fi

list=$(ls examples/*.lua 2>/dev/null | LC_ALL=C sort)
if [ $# -gt 0 ]; then
  keep=""
  for f in $list; do
    for pat in "$@"; do
      case $(basename "$f") in *"$pat"*) keep="$keep $f"; break;; esac
    done
  done
  list=$keep
fi
total=$(echo $list | wc -w)
[ "$total" -gt 0 ] || { echo "demo: no examples to run" >&2; exit 1; }

start=$(date +%s)
n=0
for f in $list; do
  n=$((n + 1))
  # the first sentence of the leading comment, as a title
  what=$(awk '/^--/ { sub(/^--+[ \t]*/, ""); t = t " " $0; next } { exit }
              END { sub(/^ +/, "", t); i = index(t, ": "); j = index(t, ". ");
                    if (j && (!i || j < i)) i = j; if (i) t = substr(t, 1, i - 1);
                    sub(/\.$/, "", t); if (length(t) > 100) t = substr(t, 1, 97) "...";
                    print t }' "$f")
  echo
  echo "=== [$n/$total] $f${what:+ - $what}"
  timeout -k 5 "$limit" "$lua" "$f" </dev/null
  rc=$?
  if [ $rc -ne 0 ]; then
    why="exit status $rc"
    [ $rc -eq 124 ] && why="timed out after ${limit}s"
    echo
    echo "demo: FAILED $f ($why); $((n - 1)) of $total examples passed before it" >&2
    exit 1
  fi
done
echo
echo "demo: all $total examples passed in $(( $(date +%s) - start ))s"
