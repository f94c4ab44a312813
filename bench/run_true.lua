--- run_true.lua - ipc.run{ "true" } per second beside raw C (posix_spawn +
-- waitpid, bench/run_true.c) and Python's subprocess.run(["true"])
-- (bench/run_true.py). ipc.run captures stdout (a pipe, drained until the
-- child is reaped), as subprocess.run(..., capture_output) would; the C
-- baseline captures nothing. BENCH_ITERS runs (default 2000) after 100
-- warm-up runs.
local ipc = require "lipc"
local clock = require "benchclock"

local iters = tonumber(os.getenv("BENCH_ITERS")) or 2000
local run = ipc.run
local argv = { "true" }

for _ = 1, 100 do assert(run(argv).code == 0) end
local t0 = clock.now()
for _ = 1, iters do
  local r = run(argv)
  if r.status ~= "exited" or r.code ~= 0 then error("true failed") end
end
print(("metric run_true_rate %.0f runs/s higher"):format(iters / (clock.now() - t0)))
print("target run_true_rate >=0.5")
