-- A classic TCP server and client on the loopback interface: the server
-- listens, accepts one connection and sends "Hello Client!"; the client
-- (a forked process) connects and prints what the server said.
-- Port 0 lets the kernel pick a free port; srv:address() tells which.
-- Run: lua5.4 examples/socket_tcp_server_client.lua
local ipc = require "lipc"

local srv <close> = assert(ipc.listen("tcp://127.0.0.1:0", { backlog = 5 }))
local url = srv:address()
print("server listening on " .. url)

local pid = assert(ipc.fork())
if pid == 0 then
  -- the client: connect (5 s at most), read until the server closes
  local ok, err = pcall(function()
    local c <close> = assert(ipc.connect(url, 5))
    -- stream sockets have the byte-stream methods: read everything up to EOF
    print("client: server says: " .. assert(c:read("a", 5)))
  end)
  if not ok then io.stderr:write(tostring(err), "\n") end
  ipc.exit(ok and 0 or 1)
end

-- the server: one client, one message, then close
local client <close> = assert(srv:accept(10))
print("server: accepted a connection from " .. client:peer())
assert(client:send("Hello Client!") == 13)
client:close()

local how, code = ipc.wait(pid, 10)
assert(how == "exited" and code == 0, "client failed")
print("done")
