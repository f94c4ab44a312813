-- One process, one loop, hundreds of connections: an echo server over a Unix
-- socket accepts in one task and serves each connection in a task of its
-- own, while 200 client tasks connect, send their lines and check every
-- echo.  No threads, no callbacks: each task is plain sequential code whose
-- waits yield to the loop.
-- Run from the repository root: lua5.4 examples/tasks_echo_server.lua
local ipc = require "lipc"

local CLIENTS, LINES = 200, 20
local srv <close> = assert(ipc.listen("unix:@lipc-echo-" .. ipc.getpid(), { backlog = CLIENTS }))
local addr = srv:address()

-- one connection: echo every line until the client closes
local function serve(c)
  local conn <close> = c
  for line in conn:lines() do assert(conn:write(line .. "\n")) end
end

local served = 0
local acceptor = ipc.go(function()
  for _ = 1, CLIENTS do
    ipc.go(serve, assert(srv:accept(30)))
    served = served + 1
  end
end)

local function client(id)
  local c <close> = assert(ipc.connect(addr, 30))
  for i = 1, LINES do
    local msg = ("client %d line %d"):format(id, i)
    assert(c:write(msg .. "\n"))
    local echo = assert(c:read("l", 30))
    assert(echo == msg, ("client %d got %q"):format(id, echo))
  end
  return LINES
end

local clients = {}
for id = 1, CLIENTS do clients[id] = ipc.go(client, id) end

local t0 = os.clock()
assert(ipc.loop(60))
local total = 0
for _, t in ipairs(clients) do
  local ok, n = t:join()
  assert(ok, n)
  total = total + n
end
assert(acceptor:status() == "done" and served == CLIENTS)
assert(total == CLIENTS * LINES)
print(("%d clients, %d echoed lines, %.2f s of CPU"):format(CLIENTS, total, os.clock() - t0))
