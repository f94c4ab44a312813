-- The same channel code over every transport: a child echoes tables back
-- through a channel made over a pipe pair, a FIFO, a Unix socket, a POSIX
-- message queue, a System V queue and a shared-memory ring. Framing (byte
-- streams) or one message per value (queues, rings) is chosen by lipc.
-- Run from the repository root: lua5.4 examples/channel_any_transport.lua
local ipc = require "lipc"

local function echo_child(make)
  return assert(ipc.spawn(function()
    local ch = make()
    for v in ch:values(10) do assert(ch:send({ echo = v }, 10)) end
    ch:close()
    return 0
  end))
end

local function check(name, parent_ch, child)
  local desc = tostring(parent_ch)
  local value = { name = name, list = { 1, 2, 3 }, nested = { deeper = { ok = true } } }
  assert(parent_ch:send(value, 10))
  local back = assert(parent_ch:recv(10))
  assert(back.echo.name == name and back.echo.nested.deeper.ok)
  assert(parent_ch:finish(10))            -- end of stream: the child's loop stops
  local how, code = child:wait(10)
  assert(how == "exited" and code == 0, name)
  parent_ch:close()
  print(("%-12s %-40s ok"):format(name, desc))
end

for _, kind in ipairs { "pipe", "stream", "seqpacket", "mq", "msg", "ring" } do
  local a, b = assert(ipc.channel.pair(kind))
  local child <close> = echo_child(function() a:close(); return b end)
  b:close()
  check(kind, a, child)
end

-- a FIFO: each side opens the name
local fifo <close> = assert(ipc.mkfifo())
local back <close> = assert(ipc.mkfifo())
local child <close> = echo_child(function()
  return ipc.channel(assert(ipc.fifo.open(fifo:name(), "r", 10)), assert(ipc.fifo.open(back:name(), "w", 10)))
end)
local w = assert(ipc.fifo.open(fifo:name(), "w", 10))
check("fifo", ipc.channel(assert(ipc.fifo.open(back:name(), "r", 10)), w), child)

-- a Unix socket: the child connects to the parent's listener
local srv <close> = assert(ipc.listen("unix:"))
local addr = srv:address()
local child2 <close> = echo_child(function() srv:close(); return ipc.channel(assert(ipc.connect(addr, 10))) end)
check("unix socket", ipc.channel(assert(srv:accept(10))), child2)
