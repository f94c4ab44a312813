#!/bin/sh
# Run the whole busted suite against the module built in $1 (build or
# build-asan) and end with the plain line "N passed, N failed, N skipped".
# Exits non-zero when anything failed, errored or the runner crashed.
builddir=${1:-build}
cd "$(dirname "$0")/.." || exit 1

# POSIX queues are auditable only where /dev/mqueue is mounted.
if [ ! -d /dev/mqueue ] || ! grep -qs ' /dev/mqueue mqueue ' /proc/mounts; then
  if [ "$(id -u)" = 0 ]; then
    mkdir -p /dev/mqueue && mount -t mqueue none /dev/mqueue 2>/dev/null ||
      echo "lipc: note: could not mount /dev/mqueue; queue leak audit uses names only"
  else
    echo "lipc: note: /dev/mqueue is not mounted and mounting it needs root; the POSIX queue"
    echo "lipc: note: tests expect it (as root: mkdir -p /dev/mqueue && mount -t mqueue none /dev/mqueue)"
  fi
fi

log=$(mktemp)
export LIPC_SPEC_TMP="$(mktemp -d /tmp/lipcspec.XXXXXX)"
if [ -n "$LIPC_ASAN" ]; then
  LD_PRELOAD="$(gcc -print-file-name=libasan.so)"
  export LD_PRELOAD
  export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:allow_user_segv_handler=1"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
fi
lua5.4 /usr/bin/busted --cpath="$builddir/?.so" -o utfTerminal 2>&1 | tee "$log"
# (the pipeline's status is that of tee: read busted's from its summary)
unset LD_PRELOAD
rm -rf "$LIPC_SPEC_TMP"

summary=$(grep -E '[0-9]+ success(es)? / [0-9]+ failures? / [0-9]+ errors? / [0-9]+ pending' "$log" | tail -n 1 |
  sed 's/\x1b\[[0-9;]*m//g')
rm -f "$log"
if [ -z "$summary" ]; then
  echo "lipc: busted ended without a summary (crashed?)"
  echo "0 passed, 1 failed"
  exit 1
fi
ok=$(echo "$summary" | sed -E 's/.*([^0-9]|^)([0-9]+) success.*/\2/')
fail=$(echo "$summary" | sed -E 's/.* ([0-9]+) failures?.*/\1/')
err=$(echo "$summary" | sed -E 's/.* ([0-9]+) errors?.*/\1/')
pend=$(echo "$summary" | sed -E 's/.* ([0-9]+) pending.*/\1/')
failed=$((fail + err))
echo "$ok passed, $failed failed, $pend skipped"
[ "$failed" -eq 0 ] && [ "$ok" -gt 0 ]
