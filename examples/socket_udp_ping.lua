-- UDP ping: a forked responder bound to a free port answers each datagram
-- with "pong <n>" sent back to the sender's address (recvfrom tells it);
-- the pinger measures the round trip of a few pings.
-- Run: lua5.4 examples/socket_udp_ping.lua
local ipc = require "lipc"

local responder <close> = assert(ipc.listen("udp://127.0.0.1:0"))
local addr = responder:address()
local N = 5

local pid = assert(ipc.fork())
if pid == 0 then
  local ok, err = pcall(function()
    for _ = 1, N do
      local data, from = assert(responder:recvfrom(1500, 10))
      assert(responder:sendto(data:gsub("ping", "pong"), from, 5))
    end
  end)
  if not ok then io.stderr:write(tostring(err), "\n") end
  ipc.exit(ok and 0 or 1)
end
responder:close()   -- the parent's copy; the child keeps its own

-- a connected UDP socket: send/recv talk to the responder only
local pinger <close> = assert(ipc.connect(addr, 5))
print(("pinging %s from %s"):format(addr, pinger:address()))
for i = 1, N do
  assert(pinger:send("ping " .. i))
  local reply = assert(pinger:recv(1500, 5))
  assert(reply == "pong " .. i, reply)
  print(("sent ping %d, got %q"):format(i, reply))
end

local how, code = ipc.wait(pid, 10)
assert(how == "exited" and code == 0, "responder failed")
