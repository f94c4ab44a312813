-- Tasks in one process wait for a forked child and a timer at the same time:
-- one task takes the values a child adds to an eventfd, another ticks a
-- periodic timer, a third joins the first and reports.  While one task
-- waits, the others run; the process blocks only when all of them wait.
-- Run from the repository root: lua5.4 examples/tasks_eventfd_child.lua
local ipc = require "lipc"

local VALUES = 5
local data <close> = assert(ipc.eventfd(0, { semaphore = true }))
local more <close> = assert(ipc.eventfd(0, { semaphore = true }))

-- the child adds one value each time the parent asks for more
local child = assert(ipc.spawn(function()
  for _ = 1, VALUES do
    assert(more:take(10))
    assert(data:add(1))
  end
  return 0
end))

local ticks = 0
local tm <close> = assert(ipc.timer(0.01, 0.01))
local ticker = ipc.go(function()
  while true do ticks = ticks + assert(tm:wait()) end   -- ends when cancelled
end)

local reader = ipc.go(function()
  local got = 0
  for i = 1, VALUES do
    assert(more:add(1))
    got = got + assert(data:take(10))      -- yields until the child added
    print(("reader: value %d after %d timer ticks"):format(i, ticks))
    ipc.sleep(0.02)                        -- the ticker runs meanwhile
  end
  return got
end)

local reporter = ipc.go(function()
  local ok, got = reader:join(30)          -- yields until reader ends
  assert(ok, got)
  print(("reporter: reader got %d values"):format(got))
  ticker:cancel()                          -- its pending wait raises "cancelled"
  return got
end)

assert(ipc.loop(30))
assert(select(2, reporter:join()) == VALUES)
assert(ticker:status() == "cancelled")
assert(ticks >= VALUES, "the timer ticked while the reader waited")
local how, code = child:wait(10)
assert(how == "exited" and code == 0)
child:close()
print(("done: %d values, %d ticks"):format(VALUES, ticks))
