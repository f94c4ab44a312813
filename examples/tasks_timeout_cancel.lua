-- Timeouts, cancellation and errors of tasks: a wait in a task times out at
-- its deadline while another task keeps working; cancelling a task runs its
-- <close> variables; an error in a task is returned by join with its
-- message, and one that nobody joins is raised by ipc.loop with the
-- task's traceback.
-- Run from the repository root: lua5.4 examples/tasks_timeout_cancel.lua
local ipc = require "lipc"

local never <close> = assert(ipc.eventfd(0))   -- nobody ever adds to it

-- 1. a timeout inside a task, while another task counts
local counted = 0
local waiter = ipc.go(function()
  local t0 = ipc.clock()
  local v, msg, err = never:take(0.2)
  assert(v == nil and msg == "timeout" and err == ipc.errno.ETIMEDOUT)
  return ipc.clock() - t0
end)
local counter = ipc.go(function()
  for _ = 1, 10 do counted = counted + 1; ipc.sleep(0.01) end
end)
local ok, took = waiter:join(10)
assert(ok and counter:join(10))
print(("timed out after %.2f s while the counter reached %d"):format(took, counted))

-- 2. cancel: the pending wait raises "cancelled", <close> variables run
local released = false
local worker = ipc.go(function()
  local _guard <close> = setmetatable({}, { __close = function() released = true end }) -- luacheck: ignore
  never:take()                             -- would wait forever
end)
assert(ipc.loop(0.05) == nil)              -- runs it up to its wait
assert(worker:status() == "waiting")
worker:cancel()
local ok2, msg2 = worker:join(10)
assert(ok2 == nil and msg2 == "cancelled" and released)
print("cancelled; its <close> variable ran:", released)

-- 3. errors: join returns them; ipc.loop raises the ones nobody joins
local failing = ipc.go(function() error("bad input") end)
local ok3, msg3 = failing:join(10)
assert(ok3 == nil and msg3:find("bad input"))
print("join returned the error:", msg3)

ipc.go(function() ipc.sleep(0.01); error("nobody joins me") end)
local ok4, err4 = pcall(ipc.loop, 10)
assert(not ok4 and err4:find("nobody joins me") and err4:find("stack traceback"))
print("ipc.loop raised:\n" .. err4)
