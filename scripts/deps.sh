#!/bin/sh
# Install (as root) or name (otherwise) the Debian packages one task needs:
#   sh scripts/deps.sh build   gcc, make, Lua 5.4 and its headers: all `make` needs
#   sh scripts/deps.sh test    build + busted, the outside peers the specs talk to, and the
#                              event loops of doc/integration.md (cqueues, luv)
#   sh scripts/deps.sh bench   build + the benchmarks' peers, cjson and gnuplot
#   sh scripts/deps.sh lint    build + luacheck
#   sh scripts/deps.sh valgrind   build + valgrind (make valgrind)
# Several sets may be given.  Each entry is "package:file-that-proves-it-is-installed".
build="gcc:/usr/bin/gcc make:/usr/bin/make lua5.4:/usr/bin/lua5.4 liblua5.4-dev:/usr/include/lua5.4/lua.h"
test="lua-busted:/usr/bin/busted socat:/usr/bin/socat python3:/usr/bin/python3
python3-sysv-ipc:/usr/lib/python3/dist-packages/sysv_ipc.cpython-311-x86_64-linux-gnu.so
util-linux:/usr/bin/unshare procps:/usr/bin/ps iproute2:/usr/sbin/ip
lua-cqueues:/usr/lib/x86_64-linux-gnu/lua/5.4/_cqueues.so lua-luv:/usr/lib/x86_64-linux-gnu/lua/5.4/luv.so"
bench="python3:/usr/bin/python3 lua-cjson:/usr/lib/x86_64-linux-gnu/lua/5.4/cjson.so gnuplot-nox:/usr/bin/gnuplot"
lint="lua-check:/usr/bin/luacheck"
valgrind="valgrind:/usr/bin/valgrind"

[ $# -gt 0 ] || set -- build
need=$build
for set in "$@"; do
  case $set in
    build) ;;
    test) need="$need $test" ;;
    bench) need="$need $bench" ;;
    lint) need="$need $lint" ;;
    valgrind) need="$need $valgrind" ;;
    *) echo "deps.sh: unknown set '$set' (build, test, bench, lint or valgrind)" >&2; exit 2 ;;
  esac
done

missing=""
for entry in $need; do
  pkg=${entry%%:*}; file=${entry#*:}
  case " $missing " in *" $pkg "*) continue ;; esac
  [ -e "$file" ] || missing="$missing $pkg"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
  echo "lipc: installing missing Debian packages:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || exit 1
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null || exit 1
  # Debian's lua-busted may point /usr/bin/lua elsewhere; lipc always calls lua5.4.
  exit 0
fi
echo "lipc: missing Debian packages:$missing"
echo "lipc: install them as root (or with sudo) with:"
echo "  apt-get install -y$missing"
exit 1
