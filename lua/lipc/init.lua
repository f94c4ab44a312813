--- lipc: every Linux IPC primitive as a Lua object.
-- `local ipc = require "lipc"` loads the C core (`lipc.core`) and the Lua
-- layers that extend it. See README.md and doc/api.md for the contract.
-- @module lipc

local ipc = require "lipc.core"

-- Lua layers: each module returns a function that adds to the table.
for _, layer in ipairs { "lipc.proc", "lipc.channel", "lipc.region", "lipc.pool" } do
  require(layer)(ipc)
end

--- Tasks (csrc/task.c, csrc/timer.c; see doc/tasks.md).
-- Inside a task every lipc call that can block yields to the loop instead of
-- blocking the process, with the same results, timeouts and errors.
-- @section tasks

--- Start `fn(...)` as a task (a coroutine on this process's loop).
-- It runs when the loop runs: `ipc.loop`, or `t:join` from outside a task.
-- @function ipc.go
-- @tparam function fn the task's body
-- @param ... its arguments
-- @treturn lipc.task the task: `t:join([timeout])`, `t:cancel()`, `t:status()`
-- @usage local t = ipc.go(function(e) return e:take() end, e); print(t:join())

--- Run the tasks until none is left.
-- Raises the error (with its traceback) of a task that failed and that
-- nobody joined.
-- @function ipc.loop
-- @tparam[opt] number timeout seconds
-- @return `true`, or `nil, "timeout", ETIMEDOUT` with tasks left

--- Sleep: yields inside a task, sleeps the process outside (Ctrl-C works).
-- @function ipc.sleep
-- @tparam number seconds
-- @treturn boolean true

--- A timer (timerfd, CLOCK_MONOTONIC): `tm:wait([timeout])` returns the number
-- of expirations since the last wait; `tm:reset(after [, every])`, `tm:fileno()`.
-- @function ipc.timer
-- @tparam number after seconds to the first expiry (0: at once)
-- @tparam[opt] number every period in seconds (absent or 0: once)
-- @treturn lipc.timer

ipc._VERSION = "lipc scm-1"

return ipc
