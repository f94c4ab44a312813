--- sock_pingpong.lua - the lipc side of bench/sock_pingpong.c: round trip of
-- a 64-byte message between a parent and its forked child over a Unix stream
-- socket, a socketpair, TCP on 127.0.0.1 (nodelay) and UDP on 127.0.0.1.
-- Run through bench/run.sh (it sets LUA_PATH/LUA_CPATH and builds benchclock).
-- BENCH_ITERS (default 20000) timed round trips after BENCH_WARMUP (2000).
local ipc = require "lipc"
local clock = require "benchclock"
local bench = require "benchutil"

local MSG = 64
local iters, warm = bench.counts()

-- exactly n bytes from a stream socket (one datagram otherwise); nil at EOF
local function recv_all(s, n, stream)
  local d = s:recv(n)
  if not d or not stream or #d == n then return d end
  local parts = { d }
  local got = #d
  while got < n do
    d = s:recv(n - got)
    if not d then return nil end
    parts[#parts + 1] = d
    got = got + #d
  end
  return table.concat(parts)
end

-- Fork a child echoing on child_sock; time the round trips over sock.
local function run(key, sock, child_sock, stream)
  local pid = assert(ipc.fork())
  if pid == 0 then
    sock:close()
    local crecv, csend = child_sock.recv, child_sock.send
    while true do
      local m = crecv(child_sock, MSG)
      if m and #m < MSG and stream then m = m .. (recv_all(child_sock, MSG - #m, stream) or "") end
      if not m or m == "" then ipc.exit(0) end
      if not csend(child_sock, m) then ipc.exit(1) end
    end
  end
  child_sock:close()
  local ns = clock.ns
  local msg = ("x"):rep(MSG)
  local send, recv = sock.send, sock.recv
  local rtt = {}
  for i = 1, warm + iters do
    local t0 = ns()
    assert(send(sock, msg) == MSG)
    local back = recv(sock, MSG)
    if #back < MSG then assert(recv_all(sock, MSG - #back, stream)) end
    local t1 = ns()
    if i > warm then rtt[i - warm] = t1 - t0 end
  end
  if stream then sock:shutdown("w") else sock:send("") end
  bench.reap(pid, key .. ": child")
  sock:close()
  bench.report_rtt(key, rtt, "<=1.15")
end

-- Unix stream socket on a (generated) path
do
  local srv = assert(ipc.listen("unix:"))
  local c = assert(ipc.connect(srv:address(), 5))
  local a = assert(srv:accept(5))
  srv:close()
  run("sock_unix", c, a, true)
end

do
  local a, b = assert(ipc.socketpair("stream"))
  run("sock_pair", a, b, true)
end

do
  local srv = assert(ipc.listen("tcp://127.0.0.1:0"))
  local c = assert(ipc.connect(srv:address(), 5))
  local a = assert(srv:accept(5))
  srv:close()
  assert(c:setoption("nodelay", true))
  assert(a:setoption("nodelay", true))
  run("sock_tcp", c, a, true)
end

do
  -- two bound UDP sockets connected to each other, as in the C version
  local x = assert(ipc.listen("udp://127.0.0.1:0"))
  local y = assert(ipc.listen("udp://127.0.0.1:0"))
  assert(x:connect(y:address()))
  assert(y:connect(x:address()))
  run("sock_udp", y, x, false)
end
