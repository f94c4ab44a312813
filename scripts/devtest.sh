#!/bin/bash
# Developer loop while several people edit csrc/ at once:
#   scripts/devtest.sh NAME "fam1 fam2" [spec files...]
# builds build-dev/NAME/lipc/core.so from the working-tree files of the
# named families (plus core.c, system.c, init.c) and the committed (HEAD)
# version of every other family, then runs the given spec files in private
# IPC and mount namespaces (own /dev/shm, /dev/mqueue, SysV tables).
set -e
name=$1; fams=$2; shift 2
cd "$(dirname "$0")/.."
out=build-dev/$name
rm -rf "$out/src"; mkdir -p "$out/src" "$out/lipc"
srcs="csrc/core.c csrc/system.c csrc/init.c"
for f in csrc/*.c; do
  base=$(basename "$f" .c)
  case " core system init " in *" $base "*) continue;; esac
  if [[ " $fams " == *" $base "* ]]; then
    srcs="$srcs $f"
  elif git cat-file -e "HEAD:csrc/$base.c" 2>/dev/null; then
    git show "HEAD:csrc/$base.c" > "$out/src/$base.c"; srcs="$srcs $out/src/$base.c"
  fi
done
gcc -std=c11 -D_GNU_SOURCE -fPIC -fvisibility=hidden -Wall -Wextra -Werror -Wshadow \
  -Wmissing-prototypes -Wstrict-prototypes -I/usr/include/lua5.4 -Icsrc -O1 -g \
  ${LIPC_DEV_CFLAGS:-} -shared -o "$out/lipc/core.so" $srcs -lrt -lpthread -lm
[ $# -eq 0 ] && exit 0
export LIPC_SPEC_TMP="$(mktemp -d /tmp/lipcspec.XXXXXX)"
trap 'rm -rf "$LIPC_SPEC_TMP"' EXIT
unshare --ipc --mount --propagation private sh -c '
  mount -t tmpfs -o size=1g tmpfs /dev/shm
  mkdir -p /dev/mqueue; mount -t mqueue none /dev/mqueue
  exec lua5.4 /usr/bin/busted --cpath="'"$out"'/?.so" -o utfTerminal "$@"' sh "$@"
