--- task_echo.lua - requests per second of an echo server over Unix stream
-- sockets with 100 clients, all in one process on one loop: a task accepts,
-- a task serves each connection, and 100 client tasks each send 64-byte
-- requests one after another, reading each echo before the next.
-- bench/task_echo.py is the same server and clients in Python asyncio
-- (streams), bench/task_echo.c the same in raw C (epoll, nonblocking).
-- BENCH_ECHO_CLIENTS (100) clients, BENCH_ECHO_REQUESTS (200) each; the
-- best of 3 runs after a warm-up run.
local ipc = require "lipc"
local clock = require "benchclock"

local CLIENTS = tonumber(os.getenv("BENCH_ECHO_CLIENTS")) or 100
local REQUESTS = tonumber(os.getenv("BENCH_ECHO_REQUESTS")) or 200
local MSG = ("x"):rep(64)

-- One connection: echo what arrives until the client closes.
local function serve(c)
  local recv, send = c.recv, c.send
  while true do
    local m = recv(c, 64)
    if not m then break end
    assert(send(c, m))
  end
  c:close()
end

local function client(addr)
  local c = assert(ipc.connect(addr))
  local send, recv = c.send, c.recv
  for _ = 1, REQUESTS do
    assert(send(c, MSG))
    local m = assert(recv(c, 64))
    while #m < 64 do m = m .. assert(recv(c, 64 - #m)) end
  end
  c:close()
end

--- One run: seconds for CLIENTS * REQUESTS requests.
local function run(n)
  local srv = assert(ipc.listen(("unix:@lipc-bench-echo-%d-%d"):format(ipc.getpid(), n), { backlog = CLIENTS }))
  local addr = srv:address()
  local t0 = clock.ns()
  ipc.go(function()
    for _ = 1, CLIENTS do ipc.go(serve, assert(srv:accept())) end
  end)
  for _ = 1, CLIENTS do ipc.go(client, addr) end
  assert(ipc.loop(60))
  local s = (clock.ns() - t0) / 1e9
  srv:close()
  return s
end

run(0)
local best = math.huge
for n = 1, 3 do best = math.min(best, run(n)) end
print(("metric task_echo_rps %.0f req/s higher"):format(CLIENTS * REQUESTS / best))
print("target task_echo_rps >= 1.5 x Python asyncio")
