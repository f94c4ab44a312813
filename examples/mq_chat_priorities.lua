-- POSIX message queues: two processes chat over a pair of queues, and an
-- urgent message (higher priority) overtakes the ones queued before it.
-- Run from the repository root: lua5.4 examples/mq_chat_priorities.lua
local ipc = require "lipc"

local NORMAL, URGENT = 0, 10

-- generated names (/lipc.<pid>.<unique>), owned: removed when closed
local to_bob <close> = assert(ipc.mq.open(nil, { maxmsg = 8, msgsize = 256 }))
local to_alice <close> = assert(ipc.mq.open(nil, { maxmsg = 8, msgsize = 256 }))
print(("alice: queues %s and %s"):format(to_bob:name(), to_alice:name()))

-- alice writes before bob reads anything: the queue orders by priority,
-- first in first out within one priority
assert(to_bob:send("lunch at noon?", NORMAL))
assert(to_bob:send("the slides are ready", NORMAL))
assert(to_bob:send("production is down!", URGENT))
assert(to_bob:send("bye", NORMAL))
print("alice: sent 2 normal messages, 1 urgent, then bye")

local bob = assert(ipc.fork())
if bob == 0 then
  -- the child ends with ipc.exit, whatever happens
  local ok, err = pcall(function()
    local first
    while true do
      local msg, prio = assert(to_bob:receive(10))
      first = first or msg
      print(("bob:   got %-26s priority %d"):format(("%q"):format(msg), prio))
      if msg == "bye" then break end
      if prio == URGENT then
        assert(to_alice:send("on it, looking now", URGENT))
      else
        assert(to_alice:send("ok: " .. msg, NORMAL))
      end
    end
    assert(to_alice:send("bye", NORMAL))
    assert(first == "production is down!", "the urgent message did not come first")
  end)
  if not ok then io.stderr:write("bob: ", tostring(err), "\n") end
  ipc.exit(ok and 0 or 1)
end

-- alice reads bob's replies as they come (whatever is waiting in her
-- queue, the urgent one is handed out first)
local urgent_seen = false
while true do
  local msg, prio = assert(to_alice:receive(10))
  print(("alice: got %-26s priority %d"):format(("%q"):format(msg), prio))
  if prio == URGENT then urgent_seen = true end
  if msg == "bye" then break end
end
assert(urgent_seen, "no urgent reply")

local how, code = ipc.wait(bob, 10)
assert(how == "exited" and code == 0, ("bob ended %s %s (urgent did not overtake?)"):format(how, code))
print("alice: bob read the urgent message first; queues are removed on close")
