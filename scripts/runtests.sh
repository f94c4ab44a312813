#!/bin/sh
# Run the busted suite against the module built in $1 (build or build-asan),
# one busted process per spec file, and end with the plain line
# "N passed, N failed, N skipped" (summed over the files).
# Exits non-zero when anything failed, errored or a busted run crashed (a
# crashed file counts as one failure and is named).
#
# As root each file runs in its own IPC and mount namespaces (its own tmpfs
# on /dev/shm, its own mqueue on /dev/mqueue, its own /run/netns), so the
# leak audit of spec/helper.lua sees only what that file could have made, not
# what other programs on the machine create meanwhile.  Elsewhere (not root,
# or no unshare) the files run in the machine's namespaces, as before.
# LIPC_NS=0 forces the plain way; LIPC_SPECS="spec/a_spec.lua ..." runs only
# those files; LIPC_WRAP="valgrind ..." runs busted under that command.
builddir=${1:-build}
cd "$(dirname "$0")/.." || exit 1

isolate=0
if [ "${LIPC_NS:-1}" != 0 ] && [ "$(id -u)" = 0 ] &&
   unshare --ipc --mount --propagation private true 2>/dev/null; then
  isolate=1
fi

# POSIX queues are auditable only where /dev/mqueue is mounted (inside the
# namespaces every file gets its own mount).
if [ "$isolate" = 0 ] && { [ ! -d /dev/mqueue ] || ! grep -qs ' /dev/mqueue mqueue ' /proc/mounts; }; then
  if [ "$(id -u)" = 0 ]; then
    mkdir -p /dev/mqueue && mount -t mqueue none /dev/mqueue 2>/dev/null ||
      echo "lipc: note: could not mount /dev/mqueue; queue leak audit uses names only"
  else
    echo "lipc: note: /dev/mqueue is not mounted and mounting it needs root; the POSIX queue"
    echo "lipc: note: tests expect it (as root: mkdir -p /dev/mqueue && mount -t mqueue none /dev/mqueue)"
  fi
fi

preload=""
if [ -n "$LIPC_ASAN" ]; then
  preload="$(gcc -print-file-name=libasan.so)"
  export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:allow_user_segv_handler=1"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
fi

# The mounts a namespaced file gets before busted starts.  A failing mount
# of /run/netns only loses the netns part of the isolation.
# shellcheck disable=SC2016
nsinit='mount -t tmpfs -o size=1g,mode=1777 tmpfs /dev/shm || exit 97
mkdir -p /dev/mqueue && mount -t mqueue none /dev/mqueue || exit 97
{ mkdir -p /run/netns && mount -t tmpfs -o size=1m,mode=755 tmpfs /run/netns; } 2>/dev/null
exec "$@"'

# Run busted on one file ($1) in the current shell's choice of namespaces
# (LIPC_WRAP: a command line that runs it, e.g. valgrind and its options).
run_file() {
  if [ -n "$preload" ]; then
    set -- env LD_PRELOAD="$preload" lua5.4 /usr/bin/busted --cpath="$builddir/?.so" -o utfTerminal "$1"
  else
    # (.busted's lua = "lua5.4" makes busted run itself again through a
    # shell: --ignore-lua keeps the run inside the wrapper)
    # shellcheck disable=SC2086
    set -- $LIPC_WRAP lua5.4 /usr/bin/busted ${LIPC_WRAP:+--ignore-lua} --cpath="$builddir/?.so" -o utfTerminal "$1"
  fi
  # stdin from /dev/null: no spec reads it, and a closed descriptor 0 (as some
  # CI runners leave it) would be handed to the first object a spec makes
  if [ "$isolate" = 1 ]; then
    unshare --ipc --mount --propagation private sh -c "$nsinit" lipc-ns "$@" </dev/null
  else
    "$@" </dev/null
  fi
}

if [ -n "$LIPC_SPECS" ]; then files=$LIPC_SPECS; else files=$(ls spec/*_spec.lua | sort); fi
work=$(mktemp -d /tmp/lipcrun.XXXXXX)
ok=0; failed=0; pend=0; bad=""
for file in $files; do
  LIPC_SPEC_TMP="$(mktemp -d /tmp/lipcspec.XXXXXX)"
  export LIPC_SPEC_TMP
  # (a pipeline's status is that of tee: keep busted's in a file)
  { run_file "$file" 2>&1; echo $? >"$work/status"; } | tee "$work/log"
  rm -rf "$LIPC_SPEC_TMP"
  status=$(cat "$work/status" 2>/dev/null)
  summary=$(grep -E '[0-9]+ success(es)? / [0-9]+ failures? / [0-9]+ errors? / [0-9]+ pending' "$work/log" |
    tail -n 1 | sed 's/\x1b\[[0-9;]*m//g')
  if [ -z "$summary" ]; then
    echo "lipc: $file: busted ended without a summary (exit status $status: crashed?)"
    failed=$((failed + 1)); bad="$bad $file(crashed)"
    continue
  fi
  n_ok=$(echo "$summary" | sed -E 's/.*([^0-9]|^)([0-9]+) success.*/\2/')
  n_fail=$(echo "$summary" | sed -E 's/.* ([0-9]+) failures?.*/\1/')
  n_err=$(echo "$summary" | sed -E 's/.* ([0-9]+) errors?.*/\1/')
  n_pend=$(echo "$summary" | sed -E 's/.* ([0-9]+) pending.*/\1/')
  ok=$((ok + n_ok)); pend=$((pend + n_pend))
  if [ $((n_fail + n_err)) -gt 0 ]; then
    failed=$((failed + n_fail + n_err)); bad="$bad $file"
    # each failure's place, test name and first line of its message, kept
    # for the recap at the end (a CI log often shows only its tail)
    sed 's/\x1b\[[0-9;]*m//g' "$work/log" | grep -E -A2 '^(Failure|Error) → ' |
      grep -v '^--$' | cut -c1-300 >>"$work/recap"
  elif [ "$status" != 0 ]; then
    # a clean summary but a bad exit: it died afterwards (a crash at exit, in __gc)
    echo "lipc: $file: busted exited with status $status after a clean summary (crashed?)"
    failed=$((failed + 1)); bad="$bad $file(crashed)"
  fi
done
if [ -s "$work/recap" ]; then
  echo "lipc: what failed (place, test, first line of the message):"
  sed 's/^/  /' "$work/recap"
fi
rm -rf "$work"

[ -n "$bad" ] && echo "lipc: failed:$bad"
echo "$ok passed, $failed failed, $pend skipped"
[ "$failed" -eq 0 ] && [ "$ok" -gt 0 ]
