--- Process helpers written in Lua on top of the C side (csrc/proc.c).
-- Adds `ipc.run` and the method `p:communicate` of `lipc.process`.
--
-- Both move bytes through every pipe of a child at once: stdin is written
-- with a zero timeout (what fits), stdout and stderr are read with a zero
-- timeout (what is there), and the process waits for whichever is ready
-- (`ipc.poll`, or an `ipc.poller` while input is pending, since writes need
-- the writable event). No size of input, stdout or stderr can deadlock.
--
-- The rule for descriptors that outlive the child: once the child has
-- exited, what the pipes hold is read (at most 4 MiB per pipe, more than a
-- pipe can buffer) and reading stops, whether or not end of stream came. A
-- background grandchild that keeps stdout open therefore never makes
-- `run`/`communicate` hang; what it writes afterwards is not collected.
-- @module lipc.proc

--- Copy an exec table (raw, as ipc.exec reads it), leaving the caller's table untouched.
local function copy(t)
  local c = {}
  for k, v in next, t do c[k] = v end
  return c
end

return function(ipc)
  local E = ipc.errno
  local now = ipc.clock
  local poll = ipc.poll
  local core_type = ipc.type
  local concat = table.concat
  local methods = ipc._methods.process

  local CHUNK = 65536          -- bytes per read or write
  local AFTER_EXIT = 64        -- reads per pipe after the child exited (4 MiB)

  -- The state of communicate, per process: kept across calls that time out.
  local states = setmetatable({}, { __mode = "k" })

  local function check_timeout(t, argn, fname)
    if t ~= nil and (math.type(t) == nil or t ~= t or t < 0) then
      error(("bad argument #%d to '%s' (timeout must be a number >= 0)"):format(argn, fname), 3)
    end
    return t
  end

  -- Read what s has ready into the list buf: "eof", "empty", or nil, message, errno.
  -- limit bounds the number of reads (after the child exited).
  local function drain(s, buf, limit)
    for _ = 1, limit or math.huge do
      local data, err, no = s:read(CHUNK, 0)
      if data then
        buf[#buf + 1] = data
        if #data < CHUNK then return "empty" end   -- emptied: poll tells when more comes
      elseif err == nil then
        return "eof"
      elseif no == E.ETIMEDOUT then
        return "empty"
      else
        return nil, err, no
      end
    end
    return "empty"
  end

  -- Stop feeding stdin (input done, or the child closed its end).
  local function end_input(st)
    st.inp = nil
    if st.poller then st.poller:close(); st.poller = nil end
    if st.stdin then st.stdin:close(); st.stdin = nil end
  end

  -- Close the output pipes still open.
  local function end_outputs(st)
    for i = #st.outs, 1, -1 do
      st.outs[i].s:close()
      st.outs[i] = nil
    end
  end

  -- Write what fits of the pending input. true, or nil, message, errno.
  local function feed(st)
    local inp, off = st.inp, st.off
    while off <= #inp do
      local n, err, no = st.stdin:write(inp:sub(off, off + CHUNK - 1), 0)
      if not n then
        if no == E.ETIMEDOUT then break end
        if no == E.EPIPE then end_input(st); return true end   -- the child stopped reading
        return nil, err, no
      end
      off = off + n
    end
    st.off = off
    if off > #inp then end_input(st) end
    return true
  end

  -- Wait until a pipe or the process is ready, at most `left` seconds.
  local function wait_ready(p, st, left)
    if st.inp then
      local pl = st.poller
      if not pl then
        pl = assert(ipc.poller())
        st.poller = pl
        assert(pl:add(st.stdin, "w"))
        for _, o in ipairs(st.outs) do assert(pl:add(o.s, "r")) end
        assert(pl:add(p, "r"))
      end
      local f, ps = pl:wait(left)
      if type(f) == "function" then for _ in f, ps do end end
      return
    end
    local list = { p }
    for i, o in ipairs(st.outs) do list[i + 1] = o.s end
    poll(list, left)
  end

  -- Move bytes until the child exited and its pipes were read (results in
  -- st), or the deadline: nil, "timeout", ETIMEDOUT.
  local function pump(p, st, timeout)
    local deadline = timeout and now() + timeout
    while true do
      local exited = p:status() ~= nil
      if st.inp then
        if exited then end_input(st)
        else
          local ok, err, no = feed(st)
          if not ok then return nil, err, no end
        end
      end
      for i = #st.outs, 1, -1 do
        local o = st.outs[i]
        local r, err, no = drain(o.s, o.buf, exited and AFTER_EXIT or nil)
        if not r then return nil, err, no end
        if r == "eof" then
          if st.poller then st.poller:remove(o.s) end
          o.s:close()
          table.remove(st.outs, i)
        end
      end
      if exited then end_outputs(st); return true end
      local left = deadline and deadline - now()
      if left and left < 0 then left = 0 end
      if not st.inp and #st.outs == 0 then
        local how, err, no = p:wait(left)
        if not how then return nil, err, no end
        return true
      end
      if left == 0 then return nil, "timeout", E.ETIMEDOUT end
      wait_ready(p, st, left)
    end
  end

  --- Feed `input` to the process's stdin, read its stdout and stderr until it
  -- exits, and wait for it (the pipes are those of `ipc.exec{ stdin = "pipe", ... }`).
  -- Every pipe is served at once, so no size of input or output can deadlock.
  -- stdin is closed when the input is written (at once without input); a child
  -- that stops reading early drops the rest. On a timeout nothing is lost: a
  -- later call (input nil, or more input while stdin is open) continues and
  -- returns everything from the start. The process is not killed on a timeout.
  -- @tparam[opt] string input bytes for stdin (needs `stdin = "pipe"`)
  -- @tparam[opt] number timeout seconds
  -- @treturn string stdout ("" when stdout is not a pipe)
  -- @treturn string stderr ("" when stderr is not a pipe)
  -- @treturn string `"exited"` or `"signaled"`
  -- @treturn integer exit code or signal number
  -- @return or `nil, "timeout", ETIMEDOUT`, or `nil, message, errno`
  -- @usage local p = ipc.exec{ "sort", stdin = "pipe", stdout = "pipe" }
  -- local out, err, how, code = p:communicate("b\na\n", 10)
  function methods.communicate(p, input, timeout)
    if core_type(p) ~= "process" then
      if core_type(p) == "closed process" then error("attempt to use a closed lipc.process", 2) end
      error("bad argument #1 to 'communicate' (lipc.process expected, got " .. type(p) .. ")", 2)
    end
    if input ~= nil and type(input) ~= "string" then
      error("bad argument #1 to 'communicate' (string expected, got " .. type(input) .. ")", 2)
    end
    check_timeout(timeout, 2, "communicate")
    local st = states[p]
    if not st then
      st = { outs = {}, off = 1 }
      local si = p.stdin
      if core_type(si) == "pipe" then st.stdin = si end
      for _, key in ipairs { "stdout", "stderr" } do
        local s = p[key]
        if core_type(s) == "pipe" then
          local o = { s = s, buf = {} }
          st[key] = o
          st.outs[#st.outs + 1] = o
        end
      end
      states[p] = st
      if input ~= nil and not st.stdin then
        error("bad argument #1 to 'communicate' (input given but stdin is not an open pipe)", 2)
      end
      st.inp = input
      if not input and st.stdin then end_input(st) end
    elseif input ~= nil and input ~= "" then
      if not st.stdin then error("bad argument #1 to 'communicate' (stdin is already closed)", 2) end
      st.inp = st.inp and st.inp:sub(st.off) .. input or input
      st.off = 1
    end
    if not st.done then
      local ok, err, no = pump(p, st, timeout)
      if not ok then return nil, err, no end
      st.done = true
    end
    local how, code = p:wait()
    local out = st.stdout and concat(st.stdout.buf) or ""
    local err = st.stderr and concat(st.stderr.buf) or ""
    if st.stdout then st.stdout.buf = {} end
    if st.stderr then st.stderr.buf = {} end
    return out, err, how, code
  end

  local RUN_KEYS = { input = true, timeout = true }

  --- Run a program to completion, capturing its stdout (and stderr with
  -- `stderr = "pipe"`), feeding `input` to its stdin.
  -- `argv` is an `ipc.exec` table (program, arguments and any exec option) plus
  -- `input` (a string) and `timeout` (seconds). stdout is captured unless the
  -- table sets `stdout`. On a timeout the process (and, with `session` or
  -- `group`, its whole process group) is killed with SIGKILL and reaped, and
  -- the output read so far is in the result.
  -- @tparam table argv the program and its options, as for `ipc.exec`, plus `input`, `timeout`
  -- @tparam[opt] number timeout the same as `argv.timeout` (kept for older callers)
  -- @treturn table `{ stdout =, stderr = (when captured), status = "exited"|"signaled"|"timeout",
  --   code = exit code or signal number, pid = }`
  -- @return or `nil, message, errno` when the program cannot start
  -- @usage local r = ipc.run{ "sort", input = "b\na\n", timeout = 10 }
  -- print(r.stdout, r.status, r.code)   --> "a\nb\n"  exited  0
  function ipc.run(argv, timeout)
    if type(argv) ~= "table" then error("bad argument #1 to 'run' (table expected, got " .. type(argv) .. ")", 2) end
    local input = rawget(argv, "input")
    if input ~= nil and type(input) ~= "string" then
      error("bad argument #1 to 'run' (option 'input': string expected, got " .. type(input) .. ")", 2)
    end
    local t = copy(argv)
    if t.timeout ~= nil then
      if timeout ~= nil then error("bad argument #2 to 'run' (timeout given twice)", 2) end
      timeout = t.timeout
      if math.type(timeout) == nil or timeout ~= timeout or timeout < 0 then
        error("bad argument #1 to 'run' (option 'timeout': number >= 0 expected)", 2)
      end
    end
    check_timeout(timeout, 2, "run")
    for k in pairs(RUN_KEYS) do t[k] = nil end
    if t.stdout == nil then t.stdout = "pipe" end
    if input then
      if t.stdin ~= nil then error("bad argument #1 to 'run' (options 'input' and 'stdin' exclude each other)", 2) end
      t.stdin = "pipe"
    end
    local p, err, no = ipc.exec(t)
    if not p then return nil, err, no end
    local out, e2, how, code = p:communicate(input, timeout)
    local status = how
    if not out then
      local msg, eno = e2, how
      if t.session or t.group then p:kill("KILL", "group") end
      if not p:status() then p:kill("KILL") end
      p:wait()
      out, e2, how, code = p:communicate(nil, 0)   -- the child is gone: what is buffered
      if not out or eno ~= E.ETIMEDOUT then
        p:close()
        if not out then return nil, e2, how end
        return nil, msg, eno                        -- a pipe failed (not a timeout)
      end
      status = "timeout"
    end
    local r = { status = status, code = code, pid = p.pid }
    if core_type(p.stdout) == "closed pipe" then r.stdout = out end
    if core_type(p.stderr) == "closed pipe" then r.stderr = e2 end
    p:close()
    return r
  end
end
