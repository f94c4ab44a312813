local ipc = require "lipc"
local helper = require "spec.helper"

local E = ipc.errno

-- Objects and processes made by the running test, cleaned up after it.
local made, procs = {}, {}
after_each(function()
  for _, p in ipairs(procs) do
    if tostring(p) ~= "lipc.process(closed)" then
      if p:status() == nil then pcall(p.kill, p, "KILL") end
      p:wait(10)
      p:close()
    end
  end
  for _, o in ipairs(made) do o:close() end
  made, procs = {}, {}
end)

local function keep(o, ...)
  assert(o, ...)
  made[#made + 1] = o
  return o
end

local function track(p, ...)
  assert(p, ...)
  procs[#procs + 1] = p
  return p
end

local function exists(path)
  return os.execute("test -e " .. helper.shquote(path)) == true
end

local function now()
  local f = assert(io.open("/proc/uptime"))
  local t = tonumber(f:read("l"):match("^(%S+)"))
  f:close()
  return t
end

describe("ipc.mkfifo", function()
  it("creates a FIFO with mode 0600 that the owner removes on close", function()
    local path = helper.path(".fifo")
    local f = ipc.mkfifo(path)
    assert.equal(path, f:name())
    assert.equal("lipc.fifo(" .. path .. ", owner)", tostring(f))
    assert.equal("p", helper.sh("stat -c %A " .. path):sub(1, 1))
    assert.equal("600\n", helper.sh("stat -c %a " .. path))
    local seen = false
    for _, o in ipairs(ipc.audit()) do
      if o.kind == "fifo" and o.name == path and o.owner then seen = true end
    end
    assert.is_true(seen)
    assert.is_true(f:close())
    assert.is_false(exists(path))
    assert.is_true(f:close())
  end)

  it("takes a mode as an octal string or integer", function()
    local path = helper.path(".fifo")
    local f = keep(ipc.mkfifo(path, { mode = "640" }))
    assert.equal("640\n", helper.sh("stat -c %a " .. path))
    f:close()
    keep(ipc.mkfifo(path, { mode = tonumber("604", 8) }))
    assert.equal("604\n", helper.sh("stat -c %a " .. path))
  end)

  it("fails with EEXIST on an existing path unless excl = false", function()
    local path = helper.path(".fifo")
    local f = keep(ipc.mkfifo(path))
    local n, msg, err = ipc.mkfifo(path)
    assert.is_nil(n)
    assert.equal("mkfifo " .. path .. ": File exists", msg)
    assert.equal(E.EEXIST, err)
    local g = keep(ipc.mkfifo(path, { excl = false }))
    assert.equal("lipc.fifo(" .. path .. ")", tostring(g))
    g:close()
    assert.is_true(exists(path))  -- not the owner: the path stays
    f:close()
    assert.is_false(exists(path))
    -- a regular file is never taken for a FIFO
    local file = helper.path(".txt")
    assert(io.open(file, "w")):close()
    finally(function() os.remove(file) end)
    n, msg, err = ipc.mkfifo(file, { excl = false })
    assert.matches("File exists", msg)
    assert.is_nil(n)
    assert.equal(E.EEXIST, err)
  end)

  it("keeps a persistent FIFO and removes on unlink", function()
    local path = helper.path(".fifo")
    local f = ipc.mkfifo(path, { persist = true })
    f:close()
    assert.is_true(exists(path))
    local g = keep(ipc.mkfifo(path, { excl = false }))
    assert.is_true(g:unlink())
    assert.is_false(exists(path))
    local n, _, err = g:unlink()
    assert.is_nil(n)
    assert.equal(E.ENOENT, err)
  end)

  it("removes the path when collected, and a child's copy never does", function()
    local path = helper.path(".fifo")
    do
      local f = ipc.mkfifo(path)
      local p = track(ipc.spawn(function() f:close() end))
      assert.same({ "exited", 0 }, { p:wait(10) })
      assert.is_true(exists(path))
    end
    collectgarbage()
    collectgarbage()
    assert.is_false(exists(path))
  end)

  it("skips a generated name held by a leftover of a process with our pid", function()
    local p = track(ipc.spawn(function()
      local dir = os.getenv("TMPDIR")
      if not (dir and dir:sub(1, 1) == "/") then dir = "/tmp" end
      -- the first name a new process generates is <dir>/lipc.<pid>.1.fifo
      local stale = dir .. "/lipc." .. ipc.getpid() .. ".1.fifo"
      local old = assert(ipc.mkfifo(stale))
      local f = assert(ipc.mkfifo())
      local name = f:name()
      assert(name ~= stale, name)
      assert(f:close() and old:close())
      assert(not exists(stale) and not exists(name))
      return 0
    end))
    assert.same({ "exited", 0 }, { p:wait(10) })
  end)

  it("makes a generated name when none is given", function()
    local f = ipc.mkfifo()
    local path = f:name()
    assert.matches("/lipc%.%d+%.%d+%.fifo$", path)
    assert.is_true(exists(path))
    f:close()
    assert.is_false(exists(path))
  end)
end)

describe("ipc.fifo.open", function()
  it("connects two unrelated programs: sh writes, cat reads", function()
    local path = helper.path(".fifo")
    keep(ipc.mkfifo(path))
    local cat = track(ipc.exec { "cat", path, stdout = "pipe" })
    local sh = track(ipc.exec { "sh", "-c", "echo hello > " .. helper.shquote(path) })
    assert.equal("hello\n", cat.stdout:read("a", 10))
    cat.stdout:close()
    assert.same({ "exited", 0 }, { sh:wait(10) })
    assert.same({ "exited", 0 }, { cat:wait(10) })
  end)

  it("reads what a shell writes and writes what a shell reads", function()
    local path = helper.path(".fifo")
    keep(ipc.mkfifo(path))
    local sh = track(ipc.exec { "sh", "-c", "printf 'a\\nb\\n' > " .. helper.shquote(path) })
    local r = keep(ipc.fifo.open(path, "r", 10))
    assert.matches("^lipc%.pipe%(fd=%d+, read%)$", tostring(r))
    local lines = {}
    for line in r:lines(10) do lines[#lines + 1] = line end
    assert.same({ "a", "b" }, lines)
    r:close()
    assert.same({ "exited", 0 }, { sh:wait(10) })
    local reader = track(ipc.exec { "sh", "-c", "read x < " .. helper.shquote(path) .. "; echo got $x",
                                    stdout = "pipe" })
    local w = keep(ipc.fifo.open(path, "w", 10))
    assert.equal(6, w:write("lipc!\n"))
    w:close()
    assert.equal("got lipc!\n", reader.stdout:read("a", 10))
    assert.same({ "exited", 0 }, { reader:wait(10) })
  end)

  it("returns a reader as soon as a writer opens, before any data", function()
    local path = helper.path(".fifo")
    keep(ipc.mkfifo(path))
    local sr, sw = ipc.pipe()
    keep(sr); keep(sw)
    local p = track(ipc.spawn(function()
      local w = assert(ipc.fifo.open(path, "w", 10))
      assert(sr:read(1, 10) == "g")  -- write only when the parent says so
      w:write("data")
      w:close()
    end))
    local r = keep(ipc.fifo.open(path, "r", 10))
    sw:write("g")
    assert.equal("data", r:read("a", 10))
    assert.same({ "exited", 0 }, { p:wait(10) })
  end)

  it("times out an open for writing with no reader, and for reading with no writer", function()
    local path = helper.path(".fifo")
    keep(ipc.mkfifo(path))
    local t0 = now()
    assert.same({ nil, "timeout", E.ETIMEDOUT }, { ipc.fifo.open(path, "w", 0.2) })
    local dt = now() - t0
    assert.is_true(dt >= 0.15 and dt < 3, "took " .. dt)
    assert.same({ nil, "timeout", E.ETIMEDOUT }, { ipc.fifo.open(path, "w", 0) })
    t0 = now()
    assert.same({ nil, "timeout", E.ETIMEDOUT }, { ipc.fifo.open(path, "r", 0.2) })
    dt = now() - t0
    assert.is_true(dt >= 0.15 and dt < 3, "took " .. dt)
  end)

  it("opens read-write at once and can stay nonblocking", function()
    local path = helper.path(".fifo")
    keep(ipc.mkfifo(path))
    local rw = keep(ipc.fifo.open(path, "rw", 0))
    assert.matches("rw%)$", tostring(rw))
    assert.equal(3, rw:write("abc"))
    assert.equal("abc", rw:read(3, 1))
    local nb = keep(ipc.fifo.open(path, "r", 0, { nonblock = true }))
    local n, _, err = nb:read(1)
    assert.is_nil(n)
    assert.equal(E.EAGAIN, err)
  end)

  it("reports a missing path and refuses what is not a FIFO", function()
    local n, msg, err = ipc.fifo.open(helper.path(".missing"), "r", 1)
    assert.is_nil(n)
    assert.matches("^open .*No such file or directory$", msg)
    assert.equal(E.ENOENT, err)
    local file = helper.path(".txt")
    assert(io.open(file, "w")):close()
    finally(function() os.remove(file) end)
    n, msg, err = ipc.fifo.open(file, "r", 1)
    assert.matches("^open %(not a FIFO%) ", msg)
    assert.is_nil(n)
    assert.equal(E.EINVAL, err)
  end)
end)

describe("ipc.fifo bad input", function()
  it("rejects bad arguments to mkfifo", function()
    local path = helper.path(".fifo")
    assert.error_matches(function() ipc.mkfifo({}) end, "string expected")
    assert.error_matches(function() ipc.mkfifo("") end, "empty path")
    assert.error_matches(function() ipc.mkfifo("a\0b") end, "NUL byte")
    assert.error_matches(function() ipc.mkfifo(("x"):rep(5000)) end, "path too long")
    assert.error_matches(function() ipc.mkfifo(path, "600") end, "table expected")
    assert.error_matches(function() ipc.mkfifo(path, { bogus = 1 }) end, "unknown option 'bogus'")
    assert.error_matches(function() ipc.mkfifo(path, { mode = "999" }) end, "octal")
    assert.error_matches(function() ipc.mkfifo(path, { mode = 99999 }) end, "out of range")
    assert.error_matches(function() ipc.mkfifo(path, { persist = 1 }) end, "boolean expected")
    assert.error_matches(function() ipc.mkfifo(path, { excl = "no" }) end, "boolean expected")
    assert.is_false(exists(path))
  end)

  it("rejects bad arguments to fifo.open", function()
    local path = helper.path(".fifo")
    keep(ipc.mkfifo(path))
    assert.error_matches(function() ipc.fifo.open(path, "x") end, "mode must be")
    assert.error_matches(function() ipc.fifo.open(path, "") end, "mode must be")
    assert.error_matches(function() ipc.fifo.open(path) end, "string expected")
    assert.error_matches(function() ipc.fifo.open(nil, "r") end, "string expected")
    assert.error_matches(function() ipc.fifo.open(path, "r", -1) end, "timeout must be >= 0")
    assert.error_matches(function() ipc.fifo.open(path, "r", 0 / 0) end, "timeout must be >= 0")
    assert.error_matches(function() ipc.fifo.open(path, "r", "1") end, "timeout in seconds")
    assert.error_matches(function() ipc.fifo.open(path, "r", 1, { bogus = true }) end, "unknown option")
    assert.error_matches(function() ipc.fifo.open("a\0b", "r") end, "NUL byte")
  end)

  it("raises on use after close", function()
    local f = ipc.mkfifo(helper.path(".fifo"))
    f:close()
    assert.error_matches(function() f:name() end, "attempt to use a closed lipc.fifo")
    assert.error_matches(function() f:unlink() end, "attempt to use a closed lipc.fifo")
    assert.equal("lipc.fifo(closed)", tostring(f))
  end)
end)
