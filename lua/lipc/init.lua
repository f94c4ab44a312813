--- lipc: every Linux IPC primitive as a Lua object.
-- `local ipc = require "lipc"` loads the C core (`lipc.core`) and the Lua
-- layers that extend it. See README.md and doc/api.md for the contract.
-- @module lipc

local ipc = require "lipc.core"

-- Lua layers: each module returns a function that adds to the table.
for _, layer in ipairs { "lipc.proc", "lipc.channel", "lipc.region", "lipc.pool" } do
  require(layer)(ipc)
end

--- Wait until some of the objects are ready (csrc/poll.c; see doc/events.md).
-- Channels are polled here: a channel with a value already buffered (or at
-- its end of stream) is ready at once; otherwise its read-side transport is
-- polled in its place, and the channel is reported when that is ready.
-- @function ipc.poll
-- @tparam table list objects, descriptors and channels
-- @tparam[opt] number timeout seconds
-- @treturn table the ready items, in list order ({} on timeout)
do
  local cpoll = ipc.poll
  local function is_channel(x)
    local mt = type(x) == "table" and getmetatable(x)
    return mt and mt.__name == "lipc.channel"
  end
  function ipc.poll(list, timeout)
    if type(list) ~= "table" then return cpoll(list, timeout) end
    -- raw: a hostile __len or __index must not make this loop (the C poll
    -- bounds and checks the list itself)
    local n, chans = rawlen(list), false
    if n > 1000000 then return cpoll(list, timeout) end   -- it raises "too many items"
    for i = 1, n do
      if type(rawget(list, i)) == "table" then chans = true; break end
    end
    if not chans then return cpoll(list, timeout) end
    local sub, now = {}, false
    for i = 1, n do
      local x = rawget(list, i)
      if is_channel(x) then
        local why = x.closed and "attempt to use a closed lipc.channel" or not x.rd and "lipc.channel has no read side"
        if why then error(("bad argument #1 to 'poll' (item %d: %s)"):format(i, why), 2) end
        if x.eof or x:buffered() then now = true end
        sub[i] = x.rd
      else
        sub[i] = x
      end
    end
    local got, err, code = cpoll(sub, now and 0 or timeout)
    if not got then return got, err, code end
    local ready = {}
    for _, o in ipairs(got) do ready[o] = true end
    local out = {}
    for i = 1, n do
      local x = list[i]
      if ready[sub[i]] or (is_channel(x) and (x.eof or x:buffered())) then out[#out + 1] = x end
    end
    return out
  end
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
