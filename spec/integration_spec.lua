-- Waiting together: ipc.step, the cqueues and luv recipes of
-- doc/integration.md (loaded from the doc as written, run for real in their
-- own lua5.4 process: each loop keeps descriptors of its own for the life of
-- the Lua state), and every awaitable kind waited on in a task while
-- another task ping-pongs on a socketpair.
local ipc = require "lipc"
local helper = require "spec.helper"

local ETIMEDOUT = ipc.errno.ETIMEDOUT

-- The ```lua block of doc/integration.md whose first line starts with
-- "-- <file>:" (the recipe saved as <file>).
local function recipe(file)
  local f = assert(io.open("doc/integration.md"))
  local text = f:read("a")
  f:close()
  for code in text:gmatch("```lua\n(.-)```") do
    if code:sub(1, #file + 4) == "-- " .. file .. ":" then return code end
  end
  error("no recipe " .. file .. " in doc/integration.md")
end

-- The ```lua block of doc/integration.md that follows "Use:" after the
-- recipe <file>.
local function usage(file)
  local f = assert(io.open("doc/integration.md"))
  local text = f:read("a")
  f:close()
  local at = assert(text:find("-- " .. file .. ":", 1, true))
  return assert(text:match("Use:\n\n```lua\n(.-)```", at))
end

-- Run code in a fresh lua5.4 with the recipe file saved where require finds
-- it; assert that it exits 0 and prints "ok".
local function run_with(file, code)
  local dir = helper.tmpdir() .. "/" .. helper.name("", ".recipes")
  assert(os.execute("mkdir -p " .. helper.shquote(dir)))
  local f = assert(io.open(dir .. "/" .. file, "w"))
  f:write(recipe(file))
  f:close()
  local ok, status, out = helper.run_lua(("package.path = %q .. package.path\n"):format(dir .. "/?.lua;") .. code)
  os.remove(dir .. "/" .. file)
  os.remove(dir)
  assert(ok, ("exited %s:\n%s"):format(tostring(status), out))
  return out
end

-- 1 when module name loads in a fresh lua5.4 (the busted process does not
-- load it: its loop would keep descriptors the leak audit sees).
local function installed(name)
  local ok = helper.run_lua(("require %q"):format(name))
  return ok
end

describe("ipc.step", function()
  it("answers a descriptor wait, then the results once it is ready", function()
    local r, w = assert(ipc.pipe())
    finally(function() r:close(); w:close() end)
    local co = coroutine.create(function(n) return r:read(n, 10) end)
    local what, fd, events, timeout = ipc.step(co, 5)
    assert.equal("wait", what)
    assert.equal(r:fileno(), fd)
    assert.equal("r", events)
    assert.is_true(timeout > 9 and timeout <= 10)
    assert(w:write("hello"))
    assert.same({ "done", "hello" }, { ipc.step(co) })
    assert.equal("dead", coroutine.status(co))
  end)

  it("answers a write wait with 'w' and no timeout when the call has none", function()
    local a, b = assert(ipc.socketpair("stream"))
    finally(function() a:close(); b:close() end)
    local big = ("x"):rep(1 << 20)
    local co = coroutine.create(function() return a:send(big) end)
    local what, fd, events, timeout = ipc.step(co)
    assert.same({ "wait", a:fileno(), "w" }, { what, fd, events })
    assert.is_nil(timeout)
    local got = 0
    repeat
      got = got + #assert(b:recv(65536, 10))
      what = ipc.step(co)
    until what == "done"
    while got < #big do got = got + #assert(b:recv(65536, 10)) end
    assert.equal(#big, got)
  end)

  it("stepping early only tries again; the deadline gives the timeout triple", function()
    local r, w = assert(ipc.pipe())
    finally(function() r:close(); w:close() end)
    local co = coroutine.create(function() return r:read(1, 0.05) end)
    assert.equal("wait", (ipc.step(co)))
    local what, fd, _, pause = ipc.step(co)   -- nothing ready: a pause without descriptor
    assert.same({ "wait" }, { what, fd })
    assert.is_true(pause > 0 and pause <= 0.05)
    ipc.sleep(0.06)
    assert.same({ "done", nil, "timeout", ETIMEDOUT }, { ipc.step(co) })
  end)

  it("answers a sleep's time left without descriptor", function()
    local co = coroutine.create(function() return ipc.sleep(0.02) end)
    local what, fd, events, left = ipc.step(co)
    assert.same({ "wait" }, { what, fd, events })
    assert.is_true(left > 0 and left <= 0.02)
    ipc.sleep(0.03)
    assert.same({ "done", true }, { ipc.step(co) })
  end)

  it("passes plain yields through, both ways", function()
    local co = coroutine.create(function(a)
      local b = coroutine.yield(a + 1, "x")
      return b * 2
    end)
    assert.same({ "yield", 2, "x" }, { ipc.step(co, 1) })
    assert.same({ "done", 42 }, { ipc.step(co, 21) })
  end)

  it("gives an error with a traceback and runs the coroutine's <close> variables", function()
    local closed = false
    local co = coroutine.create(function()
      local _ <close> = setmetatable({}, { __close = function() closed = true end })
      error("boom")
    end)
    local what, err, tb = ipc.step(co)
    assert.equal("error", what)
    assert.matches("boom$", err)
    assert.matches("stack traceback", tb)
    assert.is_true(closed)
  end)

  it("raises for a dead, running or missing coroutine", function()
    local co = coroutine.create(function() end)
    assert.equal("done", (ipc.step(co)))
    assert.has_error(function() ipc.step(co) end, "ipc.step: cannot resume a dead or running coroutine")
    assert.has_error(function() ipc.step() end)
    assert.has_error(function() ipc.step("co") end)
    local self
    self = coroutine.create(function() return ipc.step(self) end)
    local ok, err = coroutine.resume(self)
    assert.is_false(ok)
    assert.matches("cannot resume a running coroutine", err)
  end)

  it("an abandoned wait closes the descriptor it opened for itself", function()
    local r1, w1 = assert(ipc.pipe())
    local r2, w2 = assert(ipc.pipe())
    finally(function() r1:close(); w1:close(); r2:close(); w2:close() end)
    local before = #ipc.descriptors()
    local co = coroutine.create(function() return ipc.poll({ r1, r2 }, 10) end)
    local what, fd = ipc.step(co)
    assert.equal("wait", what)
    assert.equal(before + 1, #ipc.descriptors())   -- the wait's epoll set
    assert.is_number(fd)
    assert.is_true(coroutine.close(co))
    assert.equal(before, #ipc.descriptors())
  end)
end)

describe("cqueues (doc/integration.md recipe)", function()
  local have = installed("cqueues")
  local function need()
    if not have then pending("lua-cqueues is not installed (apt-get install lua-cqueues; make test installs it)") end
    return have
  end

  it("a coroutine reads a pipe fed by a forked child while another coroutine runs", function()
    if not need() then return end
    -- the child sends each line only after the *other* coroutine asked for
    -- it: a read that blocked the process would time out
    assert.matches("ok", run_with("lipc_cqueues.lua", [[
      local cqueues = require "cqueues"
      local ipc = require "lipc"
      local lcq = require "lipc_cqueues"
      local rd, wr = assert(ipc.pipe())
      local ask, asked = assert(ipc.pipe())
      local pid = assert(ipc.fork())
      if pid == 0 then
        rd:close(); asked:close()
        for i = 1, 5 do assert(ask:read(1, 10)); assert(wr:write("line" .. i .. "\n")) end
        ipc.exit(0)
      end
      wr:close(); ask:close()
      local cq = cqueues.new()
      local got, ticks = {}, 0
      lcq.wrap(cq, function()
        for _ = 1, 5 do got[#got + 1] = assert(rd:read("l", 10)) end
        assert(rd:read("a", 10) == "")
      end)
      cq:wrap(function()
        for i = 1, 5 do
          assert(asked:write("x"))
          while #got < i do ticks = ticks + 1; cqueues.sleep(0.001) end
        end
      end)
      assert(cq:loop())
      assert(table.concat(got, ",") == "line1,line2,line3,line4,line5", table.concat(got, ","))
      assert(ticks > 0)
      local how, code = ipc.wait(pid, 10)
      assert(how == "exited" and code == 0)
      cq:close()
      print("ok")
    ]]))
  end)

  it("times out inside cqueues, waits for a process, sleeps and raises", function()
    if not need() then return end
    assert.matches("ok", run_with("lipc_cqueues.lua", [[
      local cqueues = require "cqueues"
      local ipc = require "lipc"
      local lcq = require "lipc_cqueues"
      local r, w = assert(ipc.pipe())
      local p = assert(ipc.spawn(function() ipc.sleep(0.05); return 3 end))
      local cq = cqueues.new()
      local res = {}
      local ticks = 0
      lcq.wrap(cq, function()
        local t0 = cqueues.monotime()
        res.timeout = { r:read(1, 0.05) }
        res.waited = cqueues.monotime() - t0
        res.proc = { p:wait(10) }
        res.sleep = ipc.sleep(0.01)
        res.err = { pcall(lcq.call, function() error("inner", 0) end) }
        res.call = { lcq.call(function(a, b) return a + b end, 1, 2) }
      end)
      cq:wrap(function() for _ = 1, 20 do ticks = ticks + 1; cqueues.sleep(0.001) end end)
      assert(cq:loop())
      assert(res.timeout[1] == nil and res.timeout[2] == "timeout" and res.timeout[3] == ipc.errno.ETIMEDOUT)
      assert(res.waited >= 0.045, res.waited)
      assert(res.proc[1] == "exited" and res.proc[2] == 3)
      assert(res.sleep == true)
      assert(res.err[1] == false and res.err[2] == "inner")
      assert(res.call[1] == 3)
      assert(ticks == 20)
      p:close(); r:close(); w:close(); cq:close()
      print("ok")
    ]]))
  end)

  it("waits on a descriptor number that a closed object had", function()
    if not need() then return end
    -- cqueues must not keep a stale registration of the old file
    assert.matches("ok", run_with("lipc_cqueues.lua", [[
      local cqueues = require "cqueues"
      local ipc = require "lipc"
      local lcq = require "lipc_cqueues"
      local cq = cqueues.new()
      local fds, ok = {}, 0
      lcq.wrap(cq, function()
        for i = 1, 3 do
          local r, w = assert(ipc.pipe())
          fds[i] = r:fileno()
          local e <close> = assert(ipc.eventfd(0))
          local t = assert(ipc.timer(0.01))
          assert(t:wait(10) >= 1)
          t:close()
          w:close()
          assert(r:read("a", 10) == "")   -- end of stream after a wait
          r:close()
          ok = ok + 1
        end
      end)
      assert(cq:loop())
      assert(ok == 3 and fds[1] == fds[2] and fds[2] == fds[3], tostring(fds[2]))
      cq:close()
      print("ok")
    ]]))
  end)

  it("runs the usage example of the doc", function()
    if not need() then return end
    assert.matches("hello", run_with("lipc_cqueues.lua", usage("lipc_cqueues.lua")))
  end)
end)

describe("luv (doc/integration.md recipe)", function()
  local have = installed("luv")
  local function need()
    if not have then pending("lua-luv is not installed (apt-get install lua-luv; make test installs it)") end
    return have
  end

  it("a coroutine reads a pipe fed by a forked child while another coroutine runs", function()
    if not need() then return end
    assert.matches("ok", run_with("lipc_luv.lua", [[
      local uv = require "luv"
      local ipc = require "lipc"
      local luv = require "lipc_luv"
      local rd, wr = assert(ipc.pipe())
      local ask, asked = assert(ipc.pipe())
      local pid = assert(ipc.fork())
      if pid == 0 then
        rd:close(); asked:close()
        for i = 1, 5 do assert(ask:read(1, 10)); assert(wr:write("line" .. i .. "\n")) end
        ipc.exit(0)
      end
      wr:close(); ask:close()
      local got, ticks, ends = {}, 0, {}
      luv.go(function()
        for _ = 1, 5 do got[#got + 1] = assert(rd:read("l", 10)) end
        assert(rd:read("a", 10) == "")
        return "reader"
      end, function(ok, v) ends[#ends + 1] = tostring(ok) .. v end)
      luv.go(function()
        for i = 1, 5 do
          assert(asked:write("x"))
          while #got < i do ticks = ticks + 1; ipc.sleep(0.001) end
        end
        return "asker"
      end, function(ok, v) ends[#ends + 1] = tostring(ok) .. v end)
      uv.run()
      assert(table.concat(got, ",") == "line1,line2,line3,line4,line5", table.concat(got, ","))
      assert(ticks > 0)
      table.sort(ends)
      assert(table.concat(ends, ",") == "trueasker,truereader", table.concat(ends, ","))
      local how, code = ipc.wait(pid, 10)
      assert(how == "exited" and code == 0)
      print("ok")
    ]]))
  end)

  it("times out, waits for a process, awaits a luv callback and reports errors", function()
    if not need() then return end
    assert.matches("ok", run_with("lipc_luv.lua", [[
      local uv = require "luv"
      local ipc = require "lipc"
      local luv = require "lipc_luv"
      local r, w = assert(ipc.pipe())
      local p = assert(ipc.spawn(function() ipc.sleep(0.05); return 3 end))
      local res, failed = {}, nil
      luv.go(function()
        local t0 = uv.hrtime()
        res.timeout = { r:read(1, 0.05) }
        res.waited = (uv.hrtime() - t0) / 1e9
        res.proc = { p:wait(10) }
        local err, st = luv.await(function(resume) uv.fs_stat("/", resume) end)
        res.stat = err == nil and st.type
        error("late failure", 0)
      end, function(ok, err, tb) failed = { ok, err, tb } end)
      uv.run()
      assert(res.timeout[1] == nil and res.timeout[2] == "timeout" and res.timeout[3] == ipc.errno.ETIMEDOUT)
      assert(res.waited >= 0.045, res.waited)
      assert(res.proc[1] == "exited" and res.proc[2] == 3)
      assert(res.stat == "directory", tostring(res.stat))
      assert(failed[1] == false and failed[2] == "late failure" and failed[3]:find("traceback"))
      p:close(); r:close(); w:close()
      print("ok")
    ]]))
  end)

  it("two coroutines wait on one descriptor", function()
    if not need() then return end
    -- luv allows one poll handle per descriptor: the second waiter falls
    -- back to looking every millisecond, and both get a byte
    assert.matches("ok", run_with("lipc_luv.lua", [[
      local uv = require "luv"
      local ipc = require "lipc"
      local luv = require "lipc_luv"
      local r, w = assert(ipc.pipe())
      local got = {}
      for i = 1, 2 do luv.go(function() got[i] = assert(r:read(1, 10)) end) end
      local t = uv.new_timer()
      t:start(20, 0, function() t:close(); assert(w:write("ab")) end)
      uv.run()
      assert(#got == 2 and got[1] ~= got[2], table.concat(got, ","))
      print("ok")
    ]]))
  end)

  it("runs the usage example of the doc", function()
    if not need() then return end
    assert.matches("hello", run_with("lipc_luv.lua", usage("lipc_luv.lua")))
  end)
end)

-- Every kind of wait already on the one wait path, in one ipc.loop: a task
-- waits on it while another task ping-pongs with a forked child over a
-- socketpair, and only that task, half-way, makes the wait ready.  A wait
-- that blocked the process would time out (the ping-pong could not run).
-- Semaphores and rings wait on futex words (the loop's futex waiter).
describe("each awaitable kind is waited on together with a socket", function()
  local ROUNDS, AT = 20, 10
  local pending_kinds = {}

  local kinds = {}
  kinds.semaphore = function()
    local region = assert(ipc.shm.anonymous(4096))
    local sem = assert(ipc.sem.new(region, 0, 0))
    return function() return sem:wait(10) end, function() assert(sem:post()) end,
      function(v) assert.is_true(v) end, function() sem:close(); region:close() end
  end
  kinds.ring = function()
    local ring = assert(ipc.ring.create(4096))
    return function() return ring:recv(10) end, function() assert(ring:send("ringed")) end,
      function(v) assert.equal("ringed", v) end, function() ring:close() end
  end
  kinds.pipe = function()
    local r, w = assert(ipc.pipe())
    return function() return r:read(5, 10) end, function() assert(w:write("hello")) end,
      function(v) assert.equal("hello", v) end, function() r:close(); w:close() end
  end
  kinds["socket recv"] = function()
    local x, y = assert(ipc.socketpair("dgram"))
    return function() return x:recv(64, 10) end, function() assert(y:send("dgram")) end,
      function(v) assert.equal("dgram", v) end, function() x:close(); y:close() end
  end
  kinds["socket accept"] = function()
    local srv = assert(ipc.listen("unix:" .. helper.path(".sock")))
    local c
    return function() return srv:accept(10) end, function() c = assert(ipc.connect(srv:address(), 10)) end,
      function(v) assert.equal("socket", ipc.type(v)); v:close() end,
      function() if c then c:close() end; srv:close() end
  end
  kinds.eventfd = function()
    local e = assert(ipc.eventfd(0))
    return function() return e:take(10) end, function() assert(e:add(3)) end,
      function(v) assert.equal(3, v) end, function() e:close() end
  end
  kinds.timer = function()
    local tm = assert(ipc.timer(3600))
    return function() return tm:wait(10) end, function() assert(tm:reset(0)) end,
      function(v) assert.equal(1, v) end, function() tm:close() end
  end
  kinds.mq = function()
    local q = assert(ipc.mq.open(helper.name(), { create = true, excl = true, maxmsg = 4, msgsize = 64 }))
    return function() return q:receive(10) end, function() assert(q:send("queued")) end,
      function(v) assert.equal("queued", v) end, function() q:close() end
  end
  kinds.msg = function()
    local m = assert(ipc.msg.get(ipc.IPC_PRIVATE, { create = true }))
    return function() return m:receive(0, 10) end, function() assert(m:send(7, "sysv")) end,
      function(v) assert.equal("sysv", v) end, function() m:remove(); m:close() end
  end
  kinds["signal watch"] = function()
    local wt = assert(ipc.signal.watch { "USR2" })
    return function() return wt:next(10) end, function() assert(ipc.signal.kill(ipc.getpid(), "USR2")) end,
      function(v) assert.equal("USR2", v) end, function() wt:close() end
  end
  kinds.process = function()
    local r, w = assert(ipc.pipe())
    local p = assert(ipc.spawn(function() assert(r:read(1, 30)); return 5 end))
    r:close()
    return function() local how, code = p:wait(10); return how .. code end,
      function() assert(w:write("x")) end,
      function(v) assert.equal("exited5", v) end,
      function() w:close(); if p:status() == nil then p:kill("KILL") end; p:wait(10); p:close() end
  end
  kinds.poller = function()
    local r, w = assert(ipc.pipe())
    local pl = assert(ipc.poller())
    assert(pl:add(r, "r"))
    return function()
        local it, state = pl:wait(10)
        local obj, ev = it(state)
        return obj == r and ev
      end, function() assert(w:write("x")) end,
      function(v) assert.equal("r", v) end, function() pl:close(); r:close(); w:close() end
  end
  kinds["ipc.poll"] = function()
    local r, w = assert(ipc.pipe())
    return function() local ready = ipc.poll({ r }, 10); return #ready == 1 and ready[1] == r end,
      function() assert(w:write("x")) end,
      function(v) assert.is_true(v) end, function() r:close(); w:close() end
  end
  kinds.channel = function()
    local a, b = ipc.channel.pair()
    return function() return b:recv(10) end, function() assert(a:send({ n = 1 })) end,
      function(v) assert.same({ n = 1 }, v) end, function() a:close(); b:close() end
  end

  local names = {}
  for name in pairs(kinds) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    it(name, function()
      if pending_kinds[name] then pending(pending_kinds[name]) return end
      local wait, trigger, check, cleanup = kinds[name]()
      finally(cleanup)
      local a, b = assert(ipc.socketpair("stream"))
      finally(function() a:close(); b:close() end)
      local pid = helper.fork(function()
        a:close()
        for _ = 1, ROUNDS do assert(b:send(assert(b:recv(16, 10)))) end
      end)
      b:close()
      local rounds, at_wake = 0, nil
      local waiter = ipc.go(function()
        local v = wait()
        at_wake = rounds
        return v
      end)
      local pinger = ipc.go(function()
        for i = 1, ROUNDS do
          assert(a:send("ping" .. i))
          assert.equal("ping" .. i, a:recv(16, 10))
          rounds = i
          if i == AT then trigger() end
        end
      end)
      assert.is_true(ipc.loop(30))
      local res = { waiter:join() }
      assert.is_true(res[1], tostring(res[2]))
      check(res[2])
      assert.same({ true }, { pinger:join() })
      assert.is_true(at_wake >= AT, "woke before the trigger")
      helper.reap(pid)
    end)
  end
end)
