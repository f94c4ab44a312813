-- lipc.testing: the leak audit for users' tests catches a leaked descriptor,
-- child and name, and its busted hook fails exactly the leaking test.
local ipc = require "lipc"
local testing = require "lipc.testing"
local helper = require "spec.helper"

describe("lipc.testing", function()
  describe("snapshot and check", function()
    it("answer true when nothing leaked", function()
      local snap = testing.snapshot()
      local r, w = assert(ipc.pipe())
      r:close()
      w:close()
      assert.same({ true }, { testing.check(snap) })
    end)

    it("catch a leaked descriptor, naming its kind", function()
      local snap = testing.snapshot()
      local r, w = assert(ipc.pipe())
      local path = helper.path(".txt")
      local f = assert(io.open(path, "w"))
      finally(function() r:close() w:close() f:close() os.remove(path) end)
      local ok, msg = testing.check(snap)
      assert.is_nil(ok)
      assert.matches("^leaked: ", msg)
      assert.matches("fd " .. r:fileno() .. " (lipc.pipe)", msg, 1, true)
      assert.matches("fd " .. w:fileno() .. " (lipc.pipe)", msg, 1, true)
      assert.matches("(" .. path .. ")", msg, 1, true)
    end)

    it("catch a leaked child, and kill and reap it", function()
      local snap = testing.snapshot()
      local r, w = assert(ipc.pipe())
      local pid = assert(ipc.fork())
      if pid == 0 then
        r:close()
        w:write("x")
        ipc.poll({}, 60)   -- sleeps until killed
        ipc.exit(0)
      end
      w:close()
      assert.equal("x", r:read(1, 20))
      r:close()
      local ok, msg = testing.check(snap)
      assert.is_nil(ok)
      assert.matches("child " .. pid, msg, 1, true)
      assert.same({}, ipc.children())
      assert.is_nil(helper.proc_state(pid))
    end)

    it("catch leaked names: a segment, a queue, a System V queue", function()
      local snap = testing.snapshot()
      local seg = assert(ipc.shm.open(nil, { create = true, size = 4096 }))
      local q = assert(ipc.mq.open(nil, { create = true }))
      local m = assert(ipc.msg.get(ipc.IPC_PRIVATE, { create = true }))
      finally(function() seg:close() q:close() m:close() end)
      local ok, msg = testing.check(snap)
      assert.is_nil(ok)
      assert.matches("/dev/shm" .. seg:name(), msg, 1, true)
      local mq = testing.mqueue_dirs()[1]
      if mq then assert.matches(mq .. q:name(), msg, 1, true) end
      assert.matches("System V msg key=0 id=" .. m:id(), msg, 1, true)
      seg:close() q:close() m:close()
      assert.is_true(testing.check(snap))
    end)

    it("watch more directories when asked", function()
      local dir = helper.tmpdir()
      local snap = testing.snapshot { dirs = { scratch = dir } }
      local path = helper.path(".left")
      assert(io.open(path, "w")):close()
      finally(function() os.remove(path) end)
      local ok, msg = testing.check(snap)
      assert.is_nil(ok)
      assert.matches(path, msg, 1, true)
      local found = testing.leaks(snap)
      assert.equal("scratch", found[1].area)
    end)

    it("reject what is not a snapshot and unknown options", function()
      assert.has_error(function() testing.check({}) end, "bad argument #1 to 'check' (snapshot expected, got table)")
      assert.has_error(function() testing.snapshot { dir = {} } end,
                       "bad argument #1 to 'snapshot' (unknown option 'dir')")
    end)
  end)

  describe("busted()", function()
    -- Run a spec file in a busted of its own (outside this checkout's
    -- .busted, so only lipc.testing audits it); returns its TAP output.
    local function run_busted(src)
      local dir = helper.path(".d")
      assert(os.execute("mkdir " .. dir))
      finally(function() os.execute("rm -rf " .. helper.shquote(dir)) end)
      local f = assert(io.open(dir .. "/leak_spec.lua", "w"))
      f:write(src)
      f:close()
      local cwd = os.getenv("PWD") or helper.sh("pwd"):gsub("\n$", "")
      local lpath = ("%s/lua/?.lua;%s/lua/?/init.lua"):format(cwd, cwd)
      local cpath = cwd .. "/build/?.so"
      local out = helper.sh(("cd %s && lua5.4 /usr/bin/busted --lpath=%s --cpath=%s -o TAP leak_spec.lua 2>&1")
                            :format(helper.shquote(dir), helper.shquote(lpath), helper.shquote(cpath)))
      return out
    end

    it("fails exactly the test that leaks, after the file's own after_each", function()
      local out = run_busted([[
local ipc = require "lipc"
require("lipc.testing").busted()
local kept = {}
describe("a suite", function()
  local tidy
  after_each(function() if tidy then tidy:close() tidy = nil end end)
  it("is clean", function()
    local r, w = assert(ipc.pipe()); r:close(); w:close()
  end)
  it("leaks a pipe", function()
    kept[#kept + 1] = { assert(ipc.pipe()) }
  end)
  it("leaves a queue to after_each", function()
    tidy = assert(ipc.mq.open(nil, { create = true }))
  end)
end)
]])
      -- busted reports an after_each failure as an entry of its own, after
      -- the test: the message names the test
      assert.matches("ok 1 %- a suite is clean\nok 2 %- a suite leaks a pipe\nnot ok 3 %- after_each\n", out)
      assert.matches("a suite leaks a pipe: leaked: fd %d+ %(lipc%.pipe%), fd %d+ %(lipc%.pipe%)\n", out)
      assert.matches("\nok 4 %- a suite leaves a queue to after_each\n1%.%.4", out)
      assert.equal(1, select(2, out:gsub("not ok", "")))
    end)

    it("audits per file when asked", function()
      local out = run_busted([[
local ipc = require "lipc"
require("lipc.testing").busted { per = "file" }
local kept
describe("a suite", function()
  it("hands a pipe to the next test", function() kept = { assert(ipc.pipe()) } end)
  it("closes it", function() kept[1]:close(); kept[2]:close() end)
end)
]])
      assert.matches("ok 1 %- a suite hands a pipe", out)
      assert.matches("ok 2 %- a suite closes it", out)
      assert.not_matches("not ok", out)
      assert.not_matches("leaked", out)
    end)
  end)
end)
