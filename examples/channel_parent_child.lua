-- Lua values between a parent and its child: ipc.channel.pair() gives two
-- connected channels (a stream socketpair); the child, started with
-- ipc.spawn, answers requests (nested tables) until the parent closes its
-- end. Shows how to tell a nil value from the end of the stream.
-- Run from the repository root: lua5.4 examples/channel_parent_child.lua
local ipc = require "lipc"

local mine, theirs = assert(ipc.channel.pair())

local child <close> = assert(ipc.spawn(function()
  mine:close()                            -- the child keeps only its end
  while true do
    local req, err = theirs:recv(10)
    if err == "closed" then break end     -- the parent closed its end
    assert(err == nil, err)
    if req == nil then
      assert(theirs:send("you sent nil", 10))
    else
      local sum = 0
      for _, x in ipairs(req.numbers) do sum = sum + x end
      assert(theirs:send({ id = req.id, sum = sum, mean = sum / #req.numbers, by = ipc.getpid() }, 10))
    end
  end
  theirs:close()
  return 0
end))
theirs:close()                            -- the parent keeps only its end

for id, numbers in ipairs { { 1, 2, 3 }, { 10, 20 }, { 2.5, 3.5, 4, 6 } } do
  assert(mine:send({ id = id, numbers = numbers }, 10))
  local reply = assert(mine:recv(10))
  assert(reply.id == id)
  print(("request %d: sum %g, mean %g (computed by pid %d)"):format(id, reply.sum, reply.mean, reply.by))
end
assert(mine:send(nil, 10))
print("nil request: " .. assert(mine:recv(10)))

mine:close()                              -- end of stream for the child
local how, code = child:wait(10)
print("child " .. how .. " " .. code)
assert(how == "exited" and code == 0)
