-- A Unix-socket chat server serving several clients at once with one
-- ipc.poller (epoll): every line a client sends is relayed to all the
-- other clients.  Three forked clients join; once all are in, the server
-- says "start", each client says hello, reads the other two greetings and
-- leaves.  The server stops when the last client has gone.
-- Run: lua5.4 examples/socket_unix_chat.lua
local ipc = require "lipc"

local NCLIENTS = 3
local srv <close> = assert(ipc.listen("unix:"))     -- a generated path
local url = srv:address()
print("chat server on " .. url)

local function client(name)
  local c <close> = assert(ipc.connect(url, 5))
  local lines = c:lines()
  assert(lines() == "start")
  assert(c:write(name .. ": hello everyone\n"))
  for _ = 1, NCLIENTS - 1 do
    print(("  %s heard %q"):format(name, assert(lines())))
  end
end

local pids = {}
for i = 1, NCLIENTS do
  local pid = assert(ipc.fork())
  if pid == 0 then
    srv:close()
    local ok, err = pcall(client, "client" .. i)
    if not ok then io.stderr:write(tostring(err), "\n") end
    ipc.exit(ok and 0 or 1)
  end
  pids[#pids + 1] = pid
end

local poller <close> = assert(ipc.poller())
assert(poller:add(srv, "r"))
local members, joined = {}, 0
while joined < NCLIENTS or next(members) do
  local events = 0
  for obj, _ in poller:wait(10) do
    events = events + 1
    if obj == srv then
      local c = assert(srv:accept(5))
      members[c] = true
      joined = joined + 1
      assert(poller:add(c, "r"))
      if joined == NCLIENTS then
        for m in pairs(members) do assert(m:write("start\n")) end
      end
    else
      local line = obj:read("l", 5)
      if line == nil then                       -- the client left
        poller:remove(obj)
        members[obj] = nil
        obj:close()
      else
        for m in pairs(members) do
          if m ~= obj then assert(m:write(line .. "\n")) end
        end
      end
    end
  end
  assert(events > 0, "no activity for 10 s")
end

for _, pid in ipairs(pids) do
  local how, code = ipc.wait(pid, 10)
  assert(how == "exited" and code == 0, "a client failed")
end
print("all clients left")
