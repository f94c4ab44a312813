-- Graceful shutdown on SIGTERM: a worker serves jobs from a pipe with a
-- poller that also watches TERM; the parent sends TERM and the worker
-- finishes cleanly (exit 0) instead of dying mid-job.
-- Run from the repository root: lua5.4 examples/signal_graceful_shutdown.lua
local ipc = require "lipc"

local jobs_r, jobs_w = assert(ipc.pipe())
local res_r, res_w = assert(ipc.pipe())
local jr <close> = jobs_r
local jw <close> = jobs_w
local rr <close> = res_r
local rw <close> = res_w

local worker <close> = assert(ipc.spawn(function()
  jw:close(); rr:close()
  -- TERM is blocked from here on and read through the watch's descriptor
  local term <close> = assert(ipc.signal.watch { "TERM" })
  local poller <close> = ipc.poller()
  assert(poller:add(term, "r"))
  assert(poller:add(jr, "r"))
  assert(rw:write("ready\n"))
  local served = 0
  while true do
    for obj in poller:wait() do
      if obj == term then
        local name, info = assert(term:next(0))
        print(("worker: got %s from pid %d after %d jobs; cleaning up"):format(name, info.pid, served))
        rw:close()
        return 0   -- the exit code of the worker
      end
      local line = jr:read(256, 0)
      if line == nil then return 1 end   -- the parent vanished: not graceful
      for n in line:gmatch("(%d+)\n") do
        served = served + 1
        assert(rw:write(("%d squared is %d\n"):format(n, n * n)))
      end
    end
  end
end))
jr:close(); rw:close()

local results = rr:lines()
assert(results() == "ready", "worker did not start")
for n = 1, 3 do
  assert(jw:write(n .. "\n"))
  print("parent: " .. assert(results(), "no answer"))
end

print(("parent: sending TERM to worker %d"):format(worker.pid))
assert(ipc.signal.kill(worker.pid, "TERM"))
local how, code = worker:wait(10)
print(("parent: worker %s with code %s"):format(how, code))
assert(how == "exited" and code == 0, "the worker did not shut down gracefully")
