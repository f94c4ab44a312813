--- bench/lib/benchutil.lua - what the Lua round-trip benchmarks share: the
-- iteration counts, reaping the echo child and the median / p99 report, the
-- same way as bench/lib/pingpong.h on the C side (see bench/README.md).
-- bench/run.sh puts bench/lib on LUA_PATH: `local bench = require "benchutil"`.
-- The timed loops stay in each benchmark, so that they show what they call.
local ipc = require "lipc"

local M = {}

--- The iteration counts: BENCH_ITERS (default 20000) timed round trips after
-- BENCH_WARMUP (default 2000).  Returns iters, warm.
function M.counts()
  return tonumber(os.getenv("BENCH_ITERS")) or 20000, tonumber(os.getenv("BENCH_WARMUP")) or 2000
end

--- Wait for the forked echo child pid; raises "<what> failed" (what defaults
-- to "child") unless it exited with 0.
function M.reap(pid, what)
  local how, code = ipc.wait(pid)
  assert(how == "exited" and code == 0, (what or "child") .. " failed")
end

--- Fork the echo child of a byte-stream ping-pong: it reads up to size
-- bytes from inp and writes them back to out until end of stream, then
-- exits 0 (1 when a write fails).  The parent's copies of inp and out are
-- closed; returns the child's pid.  child_ends: the parent's own ends, which
-- the child closes first.
function M.echo_child(inp, out, size, child_ends)
  local pid = assert(ipc.fork())
  if pid == 0 then
    for _, e in ipairs(child_ends or {}) do e:close() end
    local read, write = inp.read, out.write
    while true do
      local m = read(inp, size)
      if not m then ipc.exit(0) end
      if not write(out, m) then ipc.exit(1) end
    end
  end
  inp:close(); out:close()
  return pid
end

--- Print `metric <key>_rtt_median` and `<key>_rtt_p99` in microseconds from
-- the list rtt of nanosecond figures (sorted in place: the median is element
-- n/2, the p99 element ceil(0.99 n) - 1, 0-based, as in C), then
-- `target <key>_rtt_median <target>` unless target is nil.
function M.report_rtt(key, rtt, target)
  table.sort(rtt)
  local n = #rtt
  print(("metric %s_rtt_median %.3f us lower"):format(key, rtt[n // 2 + 1] / 1e3))
  print(("metric %s_rtt_p99 %.3f us lower"):format(key, rtt[math.ceil(n * 0.99)] / 1e3))
  if target then print(("target %s_rtt_median %s"):format(key, target)) end
  io.stdout:flush()
end

--- Run body() in a task of ipc.loop (in_task), which must end "done", or
-- directly in this process (blocking).
function M.run(body, in_task)
  if not in_task then return body() end
  local t = ipc.go(body)
  assert(ipc.loop())
  assert(t:status() == "done", t:status())
end

--- The median of a list of numbers (sorted in place).
function M.median(list)
  table.sort(list)
  return list[#list // 2 + 1]
end

--- The cost of waiting in a task: round_trips(in_task) (a list of ns) run
-- blocking and in a task, alternately, three times each, pooled; prints
-- the task's `<key>_rtt_*`, the blocking median and `<key>_vs_blocking`
-- (target <= 1.3).
function M.task_vs_blocking(key, round_trips)
  local block, task = {}, {}
  for _ = 1, 3 do
    for _, v in ipairs(round_trips(false)) do block[#block + 1] = v end
    for _, v in ipairs(round_trips(true)) do task[#task + 1] = v end
  end
  M.report_rtt(key, task)
  local mb, mt = M.median(block), M.median(task)
  print(("metric %s_rtt_median %.3f us lower blocking"):format(key, mb / 1e3))
  print(("metric %s_vs_blocking %.3f x lower"):format(key, mt / mb))
  print(("target %s_vs_blocking <=1.3"):format(key))
end

return M
