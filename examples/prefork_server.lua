-- A prefork server: the parent accepts TCP connections and hands each
-- accepted socket to one of three preforked workers (sendfd over a Unix
-- socketpair); a worker receives it as a lipc.socket and answers the client.
-- A client process makes six connections and checks the answers.
-- Run from the repository root: lua5.4 examples/prefork_server.lua
local ipc = require "lipc"

local srv <close> = assert(ipc.listen("tcp://127.0.0.1:0"))
local WORKERS, CLIENTS = 3, 6

local workers = {}
for i = 1, WORKERS do
  local mine, theirs = assert(ipc.socketpair("stream"))
  -- the worker keeps only its end of the socketpair: no listener, no other worker
  local p = assert(ipc.spawn { function(hand)
    while true do
      local conn = hand:recvfd()              -- nil: the parent closed its end
      if not conn then return 0 end
      local line = assert(conn:read("l", 10))
      assert(conn:write(("worker %d (%s) says: %s\n"):format(i, ipc.type(conn), line:upper())))
      conn:close()
    end
  end, theirs, keep = {} })
  theirs:close()
  workers[i] = { p = p, hand = mine }
end

local client <close> = assert(ipc.spawn(function(addr)
  for n = 1, CLIENTS do
    local c <close> = assert(ipc.connect(addr, 10))
    assert(c:write("hello " .. n .. "\n"))
    local answer = assert(c:read("l", 10))
    print("client: " .. answer)
    assert(answer:match("says: HELLO " .. n .. "$"), answer)
  end
  return 0
end, srv:address()))

for n = 1, CLIENTS do
  local conn <close> = assert(srv:accept(10))
  local w = workers[(n - 1) % WORKERS + 1]
  assert(w.hand:sendfd(conn, "c"))           -- the worker gets its own descriptor
end

local how, code = client:wait(30)
assert(how == "exited" and code == 0, "the client failed")
for i, w in ipairs(workers) do
  w.hand:close()                             -- end of stream: the worker leaves
  local wh, wc = w.p:wait(10)
  assert(wh == "exited" and wc == 0, "worker " .. i .. " failed")
  w.p:close()
end
print(("served %d connections with %d workers"):format(CLIENTS, WORKERS))
