-- System V message queue: a sender and a receiver process share a queue
-- found through ipc.ftok; the receiver picks messages by type.
-- Run from the repository root: lua5.4 examples/msg_sender_receiver.lua
local ipc = require "lipc"

-- ftok turns an existing file plus a project id (1..255) into a key that
-- unrelated programs can agree on
-- (a scratch file here, removed at the end by its __close)
local scratch <close> = setmetatable({ path = os.tmpname() }, { __close = function(f) os.remove(f.path) end })
local keyfile = scratch.path
local key = assert(ipc.ftok(keyfile, 65))
print(("sender: key 0x%08x from %s"):format(key & 0xffffffff, keyfile))

-- the sender creates the queue (mode 0600): it owns it, so closing the
-- handle at the end removes the queue (no leftover in `ipcs -q`)
local q <close> = assert(ipc.msg.get(key, { create = true, excl = true }))

local TEXT, URGENT, BYE = 1, 2, 99

local receiver = assert(ipc.fork())
if receiver == 0 then
  local ok, err = pcall(function()
    -- the receiver finds the queue from the same file and project id, as a
    -- separate program would; it only opens it, so it never removes it
    local mine <close> = assert(ipc.msg.get(assert(ipc.ftok(keyfile, 65))))
    -- type > 0: only that type; urgent news first, whatever else is waiting
    local urgent, t = assert(mine:receive(URGENT, 10))
    print(("receiver: [type %d] %s"):format(t, urgent))
    while true do
      -- type 0: the oldest message of any type
      local data, mtype = assert(mine:receive(0, 10))
      if mtype == BYE then break end
      print(("receiver: [type %d] %s"):format(mtype, data))
    end
    print("receiver: got bye, done")
  end)
  if not ok then io.stderr:write("receiver: ", tostring(err), "\n") end
  ipc.exit(ok and 0 or 1)  -- the child never runs the parent's cleanup
end

for i, line in ipairs { "Hello Message Queue!", "second line", "third line" } do
  assert(q:send(TEXT, line))
  print(("sender: sent text %d"):format(i))
end
assert(q:send(URGENT, "disk almost full"))
print("sender: sent urgent")
assert(q:send(BYE, ""))

local how, code = ipc.wait(receiver, 10)
assert(how == "exited" and code == 0, ("receiver ended %s %s"):format(how, code))
local left = q:stat().qnum
print(("sender: receiver exited, %d messages left in the queue"):format(left))
assert(left == 0)
