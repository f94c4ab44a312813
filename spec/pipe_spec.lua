local ipc = require "lipc"
local helper = require "spec.helper"

local E = ipc.errno

-- Objects made by the running test, closed after it whatever happens.
local made = {}
after_each(function()
  for _, o in ipairs(made) do o:close() end
  made = {}
end)

-- A pipe whose ends are closed after the test.
local function pipe(opts)
  local r, w = assert(ipc.pipe(opts))
  made[#made + 1] = r
  made[#made + 1] = w
  return r, w
end

-- Wall-clock seconds via the shell-free clock of /proc/uptime.
local function now()
  local f = assert(io.open("/proc/uptime"))
  local t = tonumber(f:read("l"):match("^(%S+)"))
  f:close()
  return t
end

describe("ipc.pipe", function()
  it("makes two close-on-exec ends that show their direction", function()
    local r, w = pipe()
    assert.matches("^lipc%.pipe%(fd=%d+, read%)$", tostring(r))
    assert.matches("^lipc%.pipe%(fd=%d+, write%)$", tostring(w))
    for _, e in ipairs { r, w } do
      local f = assert(io.open("/proc/self/fdinfo/" .. e:fileno()))
      local flags = tonumber(f:read("a"):match("flags:%s*(%d+)"), 8)
      f:close()
      assert.equal(0x80000, flags & 0x80000)  -- O_CLOEXEC
    end
    assert.is_true(r:close())
    assert.is_true(r:close())
    assert.equal("lipc.pipe(closed)", tostring(r))
  end)

  it("reads and writes bytes, lines and everything", function()
    local r, w = pipe()
    assert.equal(15, w:write("ab\ncd\nlast line"))
    assert.equal("a", r:read(1))
    assert.equal("b", r:read("l"))
    assert.equal("cd\n", r:read("L"))
    assert.equal("last", r:read(4))
    w:close()
    assert.equal(" line", r:read("a"))
    assert.equal("", r:read("a"))
    assert.is_nil(r:read(10))
    assert.is_nil(r:read("l"))
    assert.equal("", r:read(0))
  end)

  it("iterates lines and gives the last line without a newline", function()
    local r, w = pipe()
    w:write("one\ntwo\n\nthree")
    w:close()
    local got = {}
    for line in r:lines() do got[#got + 1] = line end
    assert.same({ "one", "two", "", "three" }, got)
  end)

  it("moves data both ways between a parent and its child", function()
    local r1, w1 = pipe()
    local r2, w2 = pipe()
    local pid = helper.fork(function()
      w1:close(); r2:close()
      for line in r1:lines() do
        assert(w2:write(line:upper() .. "\n"))
      end
      return true
    end)
    r1:close(); w2:close()
    for i = 1, 100 do
      assert.equal(6, w1:write("line" .. (i % 10) .. "\n"))
      assert.equal("LINE" .. (i % 10), r2:read("l", 10))
    end
    w1:close()
    assert.is_nil(r2:read("l", 10))
    assert.same({ "exited", 0 }, { ipc.wait(pid, 10) })
  end)

  it("carries a large transfer intact", function()
    local r, w = pipe()
    local chunk = ("0123456789abcdef"):rep(4096)  -- 64 KiB
    local pid = helper.fork(function()
      r:close()
      for _ = 1, 32 do assert(w:write(chunk) == #chunk) end
      return true
    end)
    w:close()
    local data = r:read("a", 10)
    assert.equal(32 * #chunk, #data)
    assert.equal(chunk:rep(32), data)
    assert.same({ "exited", 0 }, { ipc.wait(pid, 10) })
  end)

  it("sees EOF only when every write end is closed, the child's included", function()
    local r, w = pipe()
    local sr, sw = pipe()
    local pid = helper.fork(function()
      sw:close(); r:close()
      -- hold w open until the parent says go
      assert(sr:read(1, 10) == "g")
      w:close()
      return true
    end)
    sr:close()
    w:close()
    assert.same({ nil, "timeout", E.ETIMEDOUT }, { r:read(10, 0.2) })
    sw:write("g")
    assert.is_nil(r:read(10, 10))
    assert.same({ "exited", 0 }, { ipc.wait(pid, 10) })
  end)

  it("does not keep a write end open in programs started with exec", function()
    local r, w = pipe()
    local p <close> = assert(ipc.exec { "sleep", "10" })
    w:close()
    assert.is_nil(r:read(10, 5))  -- EOF at once: sleep did not inherit w
    p:kill("KILL")
    assert.same({ "signaled", 9 }, { p:wait(10) })
  end)

  it("returns EPIPE when the reader is gone and the process lives on", function()
    local r, w = pipe()
    r:close()
    local n, msg, err = w:write("data")
    assert.is_nil(n)
    assert.matches("Broken pipe", msg)
    assert.equal(E.EPIPE, err)
    -- and to a child that exited without reading
    local p <close> = assert(ipc.exec { "true", stdin = "pipe" })
    assert.same({ "exited", 0 }, { p:wait(10) })
    n, msg, err = p.stdin:write(("x"):rep(100000))
    assert.is_nil(n)
    assert.matches("^write .*Broken pipe$", msg)
    assert.equal(E.EPIPE, err)
    p.stdin:close()
  end)

  it("leaves SIGPIPE's disposition and the signal mask alone", function()
    local ok, _, out = helper.run_lua([[
      local ipc = require "lipc"
      local function status()
        local f = assert(io.open("/proc/self/status"))
        local s = f:read("a"); f:close()
        return s:match("SigBlk:%s*(%x+)"), s:match("SigIgn:%s*(%x+)"), s:match("SigPnd:%s*(%x+)")
      end
      local b0, i0 = status()
      local r, w = ipc.pipe()
      r:close()
      for _ = 1, 3 do assert(select(3, w:write("x")) == ipc.errno.EPIPE) end
      local b1, i1, p1 = status()
      assert(b0 == b1 and i0 == i1, "mask or dispositions changed")
      assert(tonumber(p1, 16) & (1 << 12) == 0, "SIGPIPE left pending")
      -- the default action is still there: a plain io write to a closed pipe kills
      print("alive")
    ]])
    assert.is_true(ok, out)
    assert.equal("alive\n", out)
  end)

  it("fills to the pipe capacity then times out when nonblocking (never EAGAIN)", function()
    local r, w = pipe { nonblock = true }
    local total = 0
    local block = ("x"):rep(4096)
    while true do
      local n, msg, err = w:write(block)
      if not n then
        assert.same({ "timeout", E.ETIMEDOUT }, { msg, err })
        break
      end
      total = total + n
    end
    assert.equal(65536, total)
    assert.equal(w:size(), total)
    -- a nonblocking reader drains, then answers like timeout 0
    local got = 0
    while true do
      local s, msg, err = r:read(65536)
      if not s then assert.same({ "timeout", E.ETIMEDOUT }, { msg, err }); break end
      got = got + #s
    end
    assert.equal(total, got)
  end)

  it("switches blocking mode with setnonblock", function()
    local r, w = pipe()
    assert.is_true(r:setnonblock(true))
    assert.same({ nil, "timeout", E.ETIMEDOUT }, { r:read(1) })
    assert.is_true(r:setnonblock(false))
    w:write("z")
    assert.equal("z", r:read(1))
  end)

  -- One rule for "nothing ready" (doc/pipe.md): a nonblocking end called
  -- without a timeout answers like timeout 0, in every read format, write
  -- and lines, and a write that did part of its work returns that count.
  it("answers nothing ready on a nonblocking end like timeout 0, every call", function()
    local r, w = pipe { nonblock = true }
    local timeout = { nil, "timeout", E.ETIMEDOUT }
    for _, fmt in ipairs { 1, 100000, "l", "L", "a" } do
      assert.same(timeout, { r:read(fmt) }, tostring(fmt))
      assert.same(timeout, { r:read(fmt, 0) }, tostring(fmt))
    end
    assert.error_matches(function() r:lines()() end, "timeout")
    -- a big write: what fits (a short count), then the timeout
    assert.equal(65536, w:write(("y"):rep(100000)))
    assert.same(timeout, { w:write("z") })
    assert.same(timeout, { w:write("z", 0) })
    -- bytes of a line or of "a" that timed out stay for the next read
    assert.equal(65536, #r:read(65536))
    w:write("par")
    assert.same(timeout, { r:read("l") })
    assert.same(timeout, { r:read("a") })
    w:write("tial\nrest")
    assert.equal("partial", r:read("l"))
    w:close()
    assert.equal("rest", r:read("a"))
  end)

  it("waits on a blocking end whose description was made nonblocking by another holder", function()
    local r, w = pipe()
    -- a second object on the same open file description: O_NONBLOCK set
    -- through it is shared, while r still counts itself blocking
    local a, b = ipc.socketpair()
    assert(a:sendfd(r))
    local o = assert(b:recvfd(5))
    a:close(); b:close()
    made[#made + 1] = o
    assert.is_true(o:setnonblock(true))
    local parent = ipc.getpid()
    local pid = helper.fork(function()
      r:close()
      helper.wait_blocked(parent, { "read", "poll", "ppoll" })  -- the parent waits in r:read
      assert(w:write("late\n"))
    end)
    w:close()
    local got = { r:read("l") }  -- not EAGAIN: it waits for the line
    helper.reap(pid)
    assert.same({ "late" }, got)
  end)

  it("returns the bytes written so far when a blocking write times out", function()
    local r, w = pipe()
    local t0 = now()
    assert.equal(65536, w:write(("x"):rep(100000), 0.2))
    local dt = now() - t0
    assert.is_true(dt >= 0.15 and dt < 3, "took " .. dt)
    assert.equal(65536, #r:read(100000))
  end)

  it("times out reads promptly, timeout 0 included", function()
    local r, w = pipe()
    local t0 = now()
    assert.same({ nil, "timeout", E.ETIMEDOUT }, { r:read(10, 0) })
    assert.same({ nil, "timeout", E.ETIMEDOUT }, { r:read("l", 0) })
    assert.is_true(now() - t0 < 1)
    t0 = now()
    assert.same({ nil, "timeout", E.ETIMEDOUT }, { r:read(10, 0.2) })
    local dt = now() - t0
    assert.is_true(dt >= 0.15 and dt < 3, "took " .. dt)
    -- a partial line survives a timeout
    w:write("par")
    assert.same({ nil, "timeout", E.ETIMEDOUT }, { r:read("l", 0.05) })
    w:write("tial\n")
    assert.equal("partial", r:read("l", 5))
    w:write("ready")
    assert.equal("ready", r:read(10, 0))
  end)

  it("times out a write to a full pipe", function()
    local r, w = pipe()
    assert.equal(65536, w:write(("x"):rep(65536), 5))
    local t0 = now()
    assert.same({ nil, "timeout", E.ETIMEDOUT }, { w:write("more", 0.2) })
    assert.is_true(now() - t0 < 3)
    assert.equal(65536, #r:read(65536))
  end)

  it("hands a descriptor to io with tofile", function()
    local r, w = pipe()
    local f = w:tofile()
    assert.equal("file", io.type(f))
    f:write("via io\n")
    f:close()
    w:close()
    local rf = r:tofile()
    r:close()  -- the file has its own duplicate
    assert.equal("via io\n", rf:read("a"))
    rf:close()
  end)

  it("closes forgotten descriptors when collected", function()
    collectgarbage()
    local before = #ipc.descriptors()
    for _ = 1, 5000 do
      local r, w = ipc.pipe()
      assert(r and w)
    end
    collectgarbage()
    collectgarbage()
    assert.equal(before, #ipc.descriptors())
  end)

  it("names the nofile limit when descriptors run out (ulimit -n 40)", function()
    local code = [[
      local ipc = require "lipc"
      local keep = {}
      local msg, errno
      for _ = 1, 100 do
        local r, w, e = ipc.pipe()
        if not r then msg, errno = w, e break end
        keep[#keep + 1] = r
        keep[#keep + 1] = w
      end
      print(errno, msg)
      -- a last free slot (pipe needs two) goes to an eventfd, so none is left
      while true do
        local e = ipc.eventfd()
        if not e then break end
        keep[#keep + 1] = e
      end
      -- every family goes through the same error helper
      local _, m2 = ipc.socketpair("stream")
      print(m2)
      local _, m3 = ipc.eventfd()
      print(m3)
    ]]
    local out, ok = helper.sh_own_fds("ulimit -n 40 && " .. helper.lua_cmd() .. " -e " .. helper.shquote(code) ..
                                      " 2>&1")
    assert.is_true(ok, out)
    local lines = {}
    for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.equal(E.EMFILE .. "\tpipe: Too many open files (nofile limit 40)", lines[1])
    assert.matches("^socketpair: .* %(nofile limit 40%)$", lines[2])
    assert.matches("^eventfd: .* %(nofile limit 40%)$", lines[3])
  end)

  it("lists live ends in ipc.audit", function()
    local r, w = pipe()
    local found = 0
    for _, o in ipairs(ipc.audit()) do
      if o.kind == "pipe" and (o.fd == r:fileno() or o.fd == w:fileno()) then found = found + 1 end
    end
    assert.equal(2, found)
  end)

  it("passes data through a pipeline of real programs", function()
    local input = "b\\na\\nb\\nc\\na\\nb\\n"
    local p1 <close> = assert(ipc.exec { "printf", input, stdout = "pipe" })
    local p2 <close> = assert(ipc.exec { "sort", stdin = p1.stdout, stdout = "pipe" })
    p1.stdout:close()
    local p3 <close> = assert(ipc.exec { "uniq", "-c", stdin = p2.stdout, stdout = "pipe" })
    p2.stdout:close()
    local out = p3.stdout:read("a", 10)
    p3.stdout:close()
    for _, p in ipairs { p1, p2, p3 } do assert.same({ "exited", 0 }, { p:wait(10) }) end
    local expect = helper.sh("printf '" .. input .. "' | sort | uniq -c")
    assert.equal(expect, out)
    assert.matches("3 b", out)
  end)
end)

describe("ipc.pipe bad input", function()
  it("rejects bad options", function()
    assert.has_error(function() ipc.pipe("x") end)
    assert.error_matches(function() ipc.pipe { bogus = 1 } end, "unknown option 'bogus'")
    assert.error_matches(function() ipc.pipe { nonblock = "yes" } end, "boolean expected")
    assert.error_matches(function() ipc.pipe { size = -1 } end, "out of range")
    assert.error_matches(function() ipc.pipe { [1] = true } end, "option keys must be strings")
  end)

  it("rejects bad read and write arguments", function()
    local r, w = pipe()
    assert.error_matches(function() r:read(-1) end, "out of range")
    assert.error_matches(function() r:read(1.5) end, "integer representation")
    assert.error_matches(function() r:read("x") end, "invalid format")
    assert.error_matches(function() r:read("all") end, "invalid format")
    assert.error_matches(function() r:read({}) end, "string expected")
    assert.error_matches(function() r:read(1, -1) end, "timeout must be >= 0")
    assert.error_matches(function() r:read(1, 0 / 0) end, "timeout must be >= 0")
    assert.error_matches(function() r:read(1, "soon") end, "timeout in seconds")
    assert.error_matches(function() w:write({}) end, "string expected")
    assert.error_matches(function() w:write() end, "string expected")
    assert.error_matches(function() w:write("x", -0.5) end, "timeout must be >= 0")
    assert.error_matches(function() r:write("x") end, "attempt to write to a read%-only lipc.pipe")
    assert.error_matches(function() w:read(1) end, "attempt to read from a write%-only lipc.pipe")
    assert.error_matches(function() r:setnonblock("yes") end, "boolean expected")
    assert.error_matches(function() r:lines(-1) end, "timeout must be >= 0")
    assert.error_matches(function() r.read(42) end, "lipc stream expected")
    assert.error_matches(function() r.read(io.stdout) end, "lipc stream expected")
  end)

  it("raises on use after close", function()
    local r, w = ipc.pipe()
    local it = r:lines()
    r:close(); w:close()
    for _, f in ipairs {
      function() r:read(1) end, function() w:write("x") end, function() r:fileno() end,
      function() r:setnonblock(true) end, function() r:tofile() end, function() r:lines() end,
      function() r:size() end, it,
    } do
      assert.error_matches(f, "attempt to use a closed lipc.pipe")
    end
    assert.is_true(w:close())
  end)
end)

describe("Ctrl-C", function()
  -- Run a lua5.4 script that blocks in `call` and interrupt it with SIGINT
  -- once it sleeps in the call; return its status and output.
  local function interrupt(call)
    local fifo = helper.path(".fifo")
    local ok, text, status = helper.ctrl_c(([[
      local r, w = ipc.pipe()
      local fifo = assert(ipc.mkfifo(%q))
      io.stdout:write("ready\n"); io.stdout:flush()
      %s
      print("not interrupted")
    ]]):format(fifo, call), { ready = "ready",
                              -- clock_nanosleep: fifo.open's backoff between tries
                              calls = { "read", "write", "pwritev2", "poll", "ppoll", "clock_nanosleep" } })
    os.remove(fifo)
    return ok, status, text
  end

  for name, call in pairs {
    read = "r:read(1)", ["read line"] = "r:read('l')", ["read all"] = "r:read('a')",
    lines = "for _ in r:lines() do end", write = "w:write(('x'):rep(200000))",
    ["fifo.open w"] = "ipc.fifo.open(fifo:name(), 'w')", ["fifo.open r"] = "ipc.fifo.open(fifo:name(), 'r')",
  } do
    it("interrupts a blocking " .. name, function()
      local ok, status, out = interrupt(call)
      assert.is_false(ok)
      assert.equal(1, status)
      assert.matches("interrupted!", out)
    end)
  end
end)
