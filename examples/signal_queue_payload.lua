-- Signals that carry data: three children report progress to their parent
-- with sigqueue (a real-time signal plus an integer); the parent reads them
-- in order through a signal watch, with the sender's pid for each.
-- Run from the repository root: lua5.4 examples/signal_queue_payload.lua
local ipc = require "lipc"

-- watch before forking, so no report can arrive unwatched (and kill us)
local progress <close> = assert(ipc.signal.watch { "RTMIN+1", "RTMIN+2" })
local parent = ipc.getpid()

local children = {}
for c = 1, 3 do
  local pid = assert(ipc.fork())
  if pid == 0 then
    -- child: three progress reports (percent), then "done" with its number
    for pct = 25, 75, 25 do
      assert(ipc.signal.queue(parent, "RTMIN+1", pct))
    end
    assert(ipc.signal.queue(parent, "RTMIN+2", c))
    ipc.exit(0)
  end
  children[pid] = { n = c, last = 0 }
end

-- real-time signals queue (up to RLIMIT_SIGPENDING) instead of merging,
-- so every report arrives, in order per sender
local done = 0
while done < 3 do
  local name, info = assert(progress:next(10))
  local child = assert(children[info.pid], "a report from a stranger")
  if name == "RTMIN+1" then
    assert(info.value > child.last, "reports out of order")
    child.last = info.value
    print(("child %d (pid %d): %d%%"):format(child.n, info.pid, info.value))
  else
    assert(info.value == child.n)
    print(("child %d (pid %d): done"):format(child.n, info.pid))
    done = done + 1
  end
end

for pid in pairs(children) do
  local how, code = ipc.wait(pid, 10)
  assert(how == "exited" and code == 0)
end
assert(progress:next(0) == nil, "more reports than expected")
print("parent: all children reported and exited")
