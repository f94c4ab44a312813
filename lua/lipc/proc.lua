--- Process helpers written in Lua on top of the C side (csrc/proc.c).
-- Adds `ipc.run` to the module.
-- @module lipc.proc

--- Copy an exec table (raw, as ipc.exec reads it), leaving the caller's table untouched.
local function copy(t)
  local c = {}
  for k, v in next, t do c[k] = v end
  return c
end

return function(ipc)
  --- Run a program to completion and capture its standard output.
  -- `argv` is an `ipc.exec` table (program, arguments, `stdin`, `stderr`, `env`, `cwd`)
  -- plus an optional `input` string fed to the program's stdin (by a helper process,
  -- so a large input and a large output cannot deadlock). stdout is always captured.
  -- @tparam table argv the program and its options, as for `ipc.exec`
  -- @tparam[opt] number timeout seconds to wait for the program (it is killed after)
  -- @treturn string everything the program wrote to stdout
  -- @treturn string `"exited"` or `"signaled"`
  -- @treturn integer the exit code or the signal number
  -- @return or `nil, message, errno` when the program cannot start, or
  --   `nil, "timeout", ETIMEDOUT` when it ran out of time (it is killed and reaped)
  -- @usage local out, how, code = ipc.run{ "sort", input = "b\na\n" }
  function ipc.run(argv, timeout)
    if type(argv) ~= "table" then error("bad argument #1 to 'run' (table expected, got " .. type(argv) .. ")", 2) end
    local input = argv.input
    if input ~= nil and type(input) ~= "string" then
      error("bad argument #1 to 'run' (option 'input': string expected, got " .. type(input) .. ")", 2)
    end
    if timeout ~= nil and (type(timeout) ~= "number" or timeout < 0 or timeout ~= timeout) then
      error("bad argument #2 to 'run' (timeout must be a number >= 0)", 2)
    end
    local t = copy(argv)
    t.input = nil
    t.stdout = "pipe"
    if input then t.stdin = "pipe" end
    local p, err, no = ipc.exec(t)
    if not p then return nil, err, no end
    local feeder
    if input then
      feeder = ipc.spawn(function()
        p.stdout:close()
        p.stdin:write(input)
      end)
      p.stdin:close()
    end
    local out, rerr, rno = p.stdout:read("a", timeout)
    p.stdout:close()
    if not out then
      p:kill("KILL")
      if feeder then feeder:kill("KILL") end
    end
    if feeder then feeder:wait() feeder:close() end
    local how, code = p:wait(out and timeout or nil)
    if not how then
      p:kill("KILL")
      p:wait()
      p:close()
      return nil, "timeout", ipc.errno.ETIMEDOUT
    end
    p:close()
    if not out then return nil, rerr, rno end
    return out, how, code
  end
end
