-- ipc.audit, ipc.sweep and ipc.clock across every family: what a test or a
-- long-running script uses to prove that nothing leaked.
local ipc = require "lipc"
local helper = require "spec.helper"

local function find(list, pred)
  for _, item in ipairs(list) do
    if pred(item) then return item end
  end
end

local exists = helper.exists

describe("ipc.audit", function()
  it("lists every live object with its kind, identity and ownership", function()
    local r, w = assert(ipc.pipe())
    local q = assert(ipc.mq.open(nil, { create = true }))
    local region = assert(ipc.shm.open(nil, { create = true, size = 4096 }))
    local m = assert(ipc.msg.get(ipc.IPC_PRIVATE, { create = true }))
    local srv = assert(ipc.listen("unix:"))
    local e = assert(ipc.eventfd(0))
    local before = #ipc.audit()
    local list = ipc.audit()
    assert.equal(before, #list)
    assert.same({ kind = "pipe", owner = false, fd = r:fileno(), object = r },
      find(list, function(a) return a.object == r end))
    local qa = find(list, function(a) return a.object == q end)
    assert.equal("mq", qa.kind)
    assert.equal(q:name(), qa.name)
    assert.is_true(qa.owner)
    local ra = find(list, function(a) return a.object == region end)
    assert.equal("region", ra.kind)
    assert.is_true(ra.owner)
    assert.equal(m:id(), find(list, function(a) return a.object == m end).id)
    assert.equal(srv:address(), find(list, function(a) return a.object == srv end).name)
    assert.equal("eventfd", find(list, function(a) return a.object == e end).kind)
    for _, o in ipairs { r, w, q, region, m, srv, e } do assert.is_true(o:close()) end
    assert.equal(before - 7, #ipc.audit())
    for _, o in ipairs { r, q, region, m, srv, e } do
      assert.is_nil(find(ipc.audit(), function(a) return a.object == o end))
    end
  end)

  it("shows inherited objects as not owned in a forked child", function()
    local q = assert(ipc.mq.open(nil, { create = true }))
    local r, w = assert(ipc.pipe())
    local child = ipc.spawn(function()
      local a = find(ipc.audit(), function(x) return x.object == q end)
      w:write(a and tostring(a.owner) or "missing")
    end)
    w:close()
    assert.equal("false", r:read("a", 10))
    assert.same({ "exited", 0 }, { child:wait(10) })
    r:close()
    local name = q:name()
    q:close()
    assert.is_false(exists("/dev/mqueue" .. name))
  end)
end)

describe("ipc.sweep", function()
  it("removes the generated names of a process killed with SIGKILL, and only those", function()
    local r, w = assert(ipc.pipe())
    local hold_r, hold_w = assert(ipc.pipe())
    local child = ipc.spawn(function()
      hold_w:close()
      local q = assert(ipc.mq.open(nil, { create = true }))
      local s = assert(ipc.shm.open(nil, { create = true, size = 4096 }))
      local sem = assert(ipc.sem.open(nil, { create = true }))
      local srv = assert(ipc.listen("unix:"))
      local f = assert(ipc.mkfifo())
      w:write(table.concat({ q:name(), s:name(), sem:name(), srv:address(), f:name() }, " ") .. "\n")
      hold_r:read(1) -- blocks until killed
    end)
    w:close()
    hold_r:close()
    local names = {}
    for n in assert(r:read("l", 10)):gmatch("%S+") do names[#names + 1] = n end
    finally(function()   -- whatever happens, leave nothing behind
      child:kill("KILL"); child:wait(10); child:close()
      hold_w:close()
      ipc.sweep()
      pcall(ipc.mq.unlink, names[1])
    end)
    assert.equal(5, #names)
    local mine = assert(ipc.shm.open(nil, { create = true, size = 4096 }))  -- a live creator's
    assert.is_true(child:kill("KILL"))
    assert.same({ "signaled", 9 }, { child:wait(10) })
    r:close()
    local sock = names[4]:match("^unix:(.*)$")
    assert.is_true(exists("/dev/shm" .. names[2]))
    assert.is_true(exists(sock))
    assert.is_true(exists(names[5]))

    local removed = {}
    for _, item in ipairs(ipc.sweep()) do removed[item] = true end
    assert.is_true(removed["shm:" .. names[2]])
    assert.is_true(removed["sem:" .. names[3]])
    assert.is_true(removed["unix:" .. sock])
    assert.is_true(removed["fifo:" .. names[5]])
    if helper.sh("cat /proc/mounts"):find(" /dev/mqueue mqueue ", 1, true) then
      assert.is_true(removed["mq:" .. names[1]])
    end
    assert.is_false(exists("/dev/shm" .. names[2]))
    assert.is_false(exists("/dev/shm/sem." .. names[3]:sub(2)))
    assert.is_false(exists(sock))
    assert.is_false(exists(names[5]))
    assert.is_nil(removed["shm:" .. mine:name()])   -- its creator (this process) lives
    assert.is_true(exists("/dev/shm" .. mine:name()))
    mine:close()
    ipc.mq.unlink(names[1])  -- where /dev/mqueue is not mounted sweep cannot list queues
  end)
end)

describe("running out of descriptors", function()
  it("collects forgotten objects and tries again instead of failing with EMFILE", function()
    local file = helper.path(".lua")
    local f = assert(io.open(file, "w"))
    f:write([[
      local ipc = require "lipc"
      for _ = 1, 2000 do assert(ipc.pipe()) end   -- pipes alone: nothing else collects
      for _ = 1, 500 do   -- 3500 descriptors, none closed, under a limit of 64
        assert(ipc.pipe())
        assert(ipc.eventfd(0))
        assert(ipc.socketpair("stream"))
        assert(ipc.mq.open(nil, { create = true }))
        assert(ipc.shm.open(nil, { create = true, size = 4096 }))
        assert(ipc.poller())
      end
      io.write("ok ", #ipc.descriptors(), "\n")
    ]])
    f:close()
    finally(function() os.remove(file) end)
    local out, ok = helper.sh_own_fds("ulimit -n 64; " .. helper.lua_cmd() .. " " .. file .. " 2>&1")
    assert.is_true(ok, out)
    local n = tonumber(out:match("^ok (%d+)"))
    assert.is_truthy(n, out)
    assert.is_true(n < 64)
  end)
end)

describe("ipc.clock", function()
  it("is monotonic seconds", function()
    local t0 = ipc.clock()
    local t1 = ipc.clock()
    assert.is_true(t1 >= t0)
    local p = ipc.exec{ "sleep", "0.2" }
    p:wait(10)
    assert.is_true(ipc.clock() - t0 >= 0.19)
  end)
end)

describe("core bad input", function()
  it("rejects misuse of the housekeeping functions", function()
    assert.has_error(function() ipc.exit("x") end)
    local r, w = ipc.pipe()
    r:close(); w:close()
    assert.has_error(function() r:read(1) end, "attempt to use a closed lipc.pipe")
    assert.is_true(r:close())          -- idempotent
    assert.equal("lipc.pipe(closed)", tostring(r))
    assert.has_error(function() ipc.pipe{ nonblok = true } end)
    assert.has_error(function() ipc.mq.open("/x", { mode = "999" }) end)
    assert.has_error(function() ipc.mq.open("/x", { mode = 4096 * 2 }) end)
    assert.has_error(function() ipc.signal.kill(ipc.getpid(), "NOPE") end)
    assert.has_error(function() r:read(1, -1) end)
    local q = assert(ipc.mq.open(nil, { create = true }))
    assert.has_error(function() q:receive(0 / 0) end)
    assert.has_error(function() q:receive(-0.5) end)
    assert.has_error(function() q:receive("soon") end)
    q:close()
    assert.equal(0, #helper.leaks(helper.snapshot()))
  end)
end)
