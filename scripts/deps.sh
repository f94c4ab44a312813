#!/bin/sh
# Install (as root) or name (otherwise) the Debian packages lipc needs.
# Each entry is "package:file-that-proves-it-is-installed".
need="lua5.4:/usr/bin/lua5.4 liblua5.4-dev:/usr/include/lua5.4/lua.h lua-busted:/usr/bin/busted
lua-check:/usr/bin/luacheck gcc:/usr/bin/gcc make:/usr/bin/make socat:/usr/bin/socat
python3:/usr/bin/python3 python3-sysv-ipc:/usr/lib/python3/dist-packages/sysv_ipc.cpython-311-x86_64-linux-gnu.so
util-linux:/usr/bin/unshare procps:/usr/bin/ps iproute2:/usr/sbin/ip
lua-cjson:/usr/lib/x86_64-linux-gnu/lua/5.4/cjson.so gnuplot-nox:/usr/bin/gnuplot"
missing=""
for entry in $need; do
  pkg=${entry%%:*}; file=${entry#*:}
  [ -e "$file" ] || missing="$missing $pkg"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
  echo "lipc: installing missing Debian packages:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || exit 1
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null || exit 1
  # Debian's luarocks/lua-busted may point /usr/bin/lua elsewhere; lipc always calls lua5.4.
  exit 0
fi
echo "lipc: missing Debian packages:$missing"
echo "lipc: install them as root (or with sudo) with:"
echo "  apt-get install -y$missing"
exit 1
