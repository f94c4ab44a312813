--- Specs for System V message queues: ipc.ftok, ipc.IPC_PRIVATE, ipc.msg.get
-- and the lipc.msg methods.
local ipc = require "lipc"
local helper = require "spec.helper"

--- The ids of /proc/sysvipc/msg as a set.
local function sysv_ids()
  local set = {}
  local f = io.open("/proc/sysvipc/msg")
  f:read("l")
  for line in f:lines() do
    local id = line:match("^%s*%-?%d+%s+(%d+)")
    if id then set[tonumber(id)] = true end
  end
  f:close()
  return set
end

local function alive(id) return sysv_ids()[id] == true end

-- x86_64 system call numbers, to see that a process is blocked in one.
local SYS = { msgsnd = 69, msgrcv = 70 }
local is_x86_64 = helper.sh("uname -m"):match("x86_64") ~= nil

--- Wait (up to 10 s) until pid sleeps in system call `name` (x86_64 only).
local function wait_in_syscall(pid, name)
  if not is_x86_64 then return true end
  for _ = 1, 1000 do
    local f = io.open("/proc/" .. pid .. "/syscall")
    local line = f and f:read("l")
    if f then f:close() end
    if line and tonumber(line:match("^(%d+)")) == SYS[name] then return true end
    os.execute("sleep 0.01")
  end
  return false
end

--- A scratch file and its key for proj_id.
local function keyfile(proj)
  local path = helper.path(".key")
  local f = assert(io.open(path, "w"))
  f:close()
  return path, assert(ipc.ftok(path, proj or 65))
end

describe("ipc.msg", function()
  describe("ftok", function()
    it("derives a stable key from an existing file", function()
      local path, key = keyfile(65)
      finally(function() os.remove(path) end)
      assert.is_number(key)
      assert.equal(key, ipc.ftok(path, 65))
      assert.not_equal(key, ipc.ftok(path, 66))
      assert.equal(65, (key >> 24) & 0xff)
    end)

    it("returns the error triple for a missing file", function()
      local r, err, errno = ipc.ftok("/nonexistent/lipc", 1)
      assert.is_nil(r)
      assert.equal("ftok /nonexistent/lipc: No such file or directory", err)
      assert.equal(ipc.errno.ENOENT, errno)
    end)

    it("IPC_PRIVATE is 0", function()
      assert.equal(0, ipc.IPC_PRIVATE)
    end)
  end)

  describe("get", function()
    it("creates a private queue, owned, removed on close", function()
      local m = assert(ipc.msg.get(ipc.IPC_PRIVATE))
      local id = m:id()
      assert.is_true(alive(id))
      assert.equal(0, m:key())
      assert.equal(("lipc.msg(id=%d, key=private)"):format(id), tostring(m))
      assert.is_true(m:close())
      assert.is_false(alive(id))
      assert.equal("lipc.msg(closed)", tostring(m))
    end)

    it("no key means a private queue too", function()
      local m <close> = assert(ipc.msg.get())
      assert.equal(0, m:key())
      assert.is_true(alive(m:id()))
    end)

    it("creates from a key; a second get opens the same queue without owning it", function()
      local path, key = keyfile()
      finally(function() os.remove(path) end)
      local m <close> = assert(ipc.msg.get(key, { create = true }))
      assert.equal(("lipc.msg(id=%d, key=0x%08x)"):format(m:id(), key & 0xffffffff), tostring(m))
      local other = assert(ipc.msg.get(key))
      assert.equal(m:id(), other:id())
      local also = assert(ipc.msg.get(key, { create = true }))
      assert.equal(m:id(), also:id())
      other:close()
      also:close()
      assert.is_true(alive(m:id()))
    end)

    it("excl fails when the key exists; a missing key without create fails", function()
      local path, key = keyfile()
      finally(function() os.remove(path) end)
      local r, err, errno = ipc.msg.get(key)
      assert.is_nil(r)
      assert.equal(("msgget key=0x%08x: No such file or directory"):format(key & 0xffffffff), err)
      assert.equal(ipc.errno.ENOENT, errno)
      local m <close> = assert(ipc.msg.get(key, { create = true }))
      assert.equal(key, m:key())
      r, err, errno = ipc.msg.get(key, { create = true, excl = true })
      assert.is_nil(r)
      assert.matches("File exists", err)
      assert.equal(ipc.errno.EEXIST, errno)
    end)

    it("applies mode (default 0600)", function()
      local a <close> = assert(ipc.msg.get())
      local b <close> = assert(ipc.msg.get(nil, { mode = "640" }))
      assert.equal(tonumber("600", 8), a:stat().mode)
      assert.equal(tonumber("640", 8), b:stat().mode)
    end)

    it("is listed by ipcs while open and gone after close", function()
      local m = assert(ipc.msg.get())
      local id = m:id()
      local out = helper.sh("ipcs -q")
      assert.matches("%s" .. id .. "%s", out)
      m:close()
      out = helper.sh("ipcs -q")
      assert.not_matches("0x00000000%s+" .. id .. "%s", out)
    end)
  end)

  describe("send and receive", function()
    it("receives by type: 0 first, > 0 that type, < 0 lowest type <= |t|", function()
      local m <close> = assert(ipc.msg.get())
      for _, t in ipairs { 5, 2, 7, 2, 3 } do assert(m:send(t, "t" .. t .. "#" .. _)) end
      assert.same({ "t5#1", 5 }, { m:receive(0, 0) })          -- the oldest
      assert.same({ "t7#3", 7 }, { m:receive(7, 0) })          -- that type
      assert.same({ "t2#2", 2 }, { m:receive(-4, 0) })         -- lowest <= 4
      assert.same({ "t2#4", 2 }, { m:receive(-4, 0) })
      assert.same({ "t3#5", 3 }, { m:receive(-4, 0) })
      assert.same({ nil, "timeout", ipc.errno.ETIMEDOUT }, { m:receive(-4, 0) })
      assert.same({ nil, "timeout", ipc.errno.ETIMEDOUT }, { m:receive(0, 0) })
    end)

    it("carries binary data, empty messages and the largest allowed size", function()
      local m <close> = assert(ipc.msg.get())
      local msgmax = ipc.limits().msgmax
      assert(m:send(1, "a\0b\255"))
      assert(m:send(1, ""))
      assert(m:send(2, ("z"):rep(msgmax)))
      assert.equal("a\0b\255", (m:receive()))
      assert.equal("", (m:receive()))
      local big = m:receive(2, 5)
      assert.equal(msgmax, #big)
    end)

    it("refuses a message over msgmax with a message naming the limit", function()
      local m <close> = assert(ipc.msg.get())
      local msgmax = ipc.limits().msgmax
      local r, err, errno = m:send(1, ("z"):rep(msgmax + 1))
      assert.is_nil(r)
      assert.equal(("msgsnd id=%d: message too long (%d > msgmax %d of /proc/sys/kernel/msgmax)")
        :format(m:id(), msgmax + 1, msgmax), err)
      assert.equal(ipc.errno.EINVAL, errno)
    end)

    it("refuses at once a message that can never fit the queue's qbytes", function()
      local path, key = keyfile(67)
      finally(function() os.remove(path) end)
      local m <close> = assert(ipc.msg.get(key, { create = true }))
      local out, ok = helper.sh("/usr/bin/python3 -c 'import sysv_ipc; sysv_ipc.MessageQueue(" .. key ..
        ").max_size = 100' 2>&1")
      assert.is_true(ok, out)
      assert.equal(100, m:stat().qbytes)
      local pid = helper.fork(function()
        for _, timeout in ipairs { 0, 5, "forever" } do
          local r, err, errno = m:send(1, ("x"):rep(101), timeout ~= "forever" and timeout or nil)
          assert(r == nil and errno == ipc.errno.EMSGSIZE, err)
          assert(err == ("msgsnd id=%d: message too long (101 > the queue's qbytes 100)"):format(m:id()), err)
        end
        assert(m:send(1, ("x"):rep(100), 0))
      end)
      local how, code = ipc.wait(pid, 10)
      if not how then os.execute("kill -KILL " .. pid); ipc.wait(pid, 10) end
      assert.same({ "exited", 0 }, { how, code })
      assert.equal(1, m:stat().qnum)
    end)

    it("a blocking receive is woken by a child's send", function()
      local m <close> = assert(ipc.msg.get())
      local parent = ipc.getpid()
      local pid = helper.fork(function()
        assert(wait_in_syscall(parent, "msgrcv"), "parent never blocked")
        assert(m:send(42, "from child"))
      end)
      assert.same({ "from child", 42 }, { m:receive() })
      assert.same({ "exited", 0 }, { ipc.wait(pid, 10) })
    end)

    it("a timed typed receive is satisfied by a child's later send", function()
      local m <close> = assert(ipc.msg.get())
      local back <close> = assert(ipc.msg.get())
      local pid = helper.fork(function()
        assert(back:receive(1, 10))   -- the parent is about to wait
        assert(m:send(9, "other type"))
        assert(m:send(4, "wanted"))
      end)
      assert(back:send(1, "go"))
      assert.same({ "wanted", 4 }, { m:receive(4, 10) })
      assert.same({ "exited", 0 }, { ipc.wait(pid, 10) })
      assert.same({ "other type", 9 }, { m:receive(0, 0) })
    end)

    it("timed receive times out with ETIMEDOUT, sleeping rather than spinning", function()
      local m <close> = assert(ipc.msg.get())
      local t0 = os.time()
      local c0 = os.clock()
      assert.same({ nil, "timeout", ipc.errno.ETIMEDOUT }, { m:receive(0, 0.5) })
      assert.is_true(os.time() - t0 <= 5)
      assert.is_true(os.clock() - c0 < 0.1, "used " .. (os.clock() - c0) .. " s of CPU")
    end)

    it("send on a full queue: timeout 0 and timed send give ETIMEDOUT, blocking send waits", function()
      local m <close> = assert(ipc.msg.get())
      local qbytes = m:stat().qbytes
      local chunk = ("q"):rep(ipc.limits().msgmax)
      local n = 0
      while m:send(1, chunk, 0) do n = n + 1 end
      assert.is_true(n >= 1 and n * #chunk <= qbytes)
      assert.same({ nil, "timeout", ipc.errno.ETIMEDOUT }, { m:send(1, chunk, 0) })
      local c0 = os.clock()
      assert.same({ nil, "timeout", ipc.errno.ETIMEDOUT }, { m:send(1, chunk, 0.3) })
      assert.is_true(os.clock() - c0 < 0.1)
      local parent = ipc.getpid()
      local pid = helper.fork(function()
        assert(wait_in_syscall(parent, "msgsnd"), "parent never blocked")
        assert(m:receive(0, 10))
      end)
      assert.is_true(m:send(2, "after room"))
      assert.same({ "exited", 0 }, { ipc.wait(pid, 10) })
      assert.same({ "after room", 2 }, { m:receive(2, 0) })
    end)

    it("a removed queue makes a blocked receiver fail with EIDRM", function()
      local m <close> = assert(ipc.msg.get())
      local parent = ipc.getpid()
      local pid = helper.fork(function()
        assert(wait_in_syscall(parent, "msgrcv"), "parent never blocked")
        assert(m:remove())
      end)
      local r, err, errno = m:receive()
      assert.is_nil(r)
      assert.matches("^msgrcv id=%d+: Identifier removed$", err)
      assert.equal(ipc.errno.EIDRM, errno)
      assert.same({ "exited", 0 }, { ipc.wait(pid, 10) })
    end)

    it("Ctrl-C interrupts a blocking receive in the lua5.4 interpreter", function()
      if not is_x86_64 then pending("needs x86_64 system call numbers to see the block") return end
      local path, key = keyfile(7)
      local script = helper.path(".lua")
      finally(function() os.remove(path); os.remove(script) end)  -- (busted keeps one finally)
      local k <close> = assert(ipc.msg.get(key, { create = true }))
      for _, timeout in ipairs { "blocking", "timed" } do
        local f = assert(io.open(script, "w"))
        f:write(([[local ipc = require "lipc"
          local m = assert(ipc.msg.get(%d))
          print(m:receive(0, %s))]]):format(key, timeout == "timed" and "60" or "nil"))
        f:close()
        local sysno = timeout == "blocking" and "'^70 '" or "'^230 '"
        local out = helper.sh(helper.lua_cmd() .. " " .. script .. " 2>&1 & p=$!; " ..
          "i=0; while [ $i -lt 500 ] && ! grep -q " .. sysno .. " /proc/$p/syscall; " ..
          "do sleep 0.02; i=$((i+1)); done; " ..
          "i=0; while [ $i -lt 100 ] && kill -INT $p 2>/dev/null; do sleep 0.05; i=$((i+1)); done; " ..
          "wait $p; echo rc=$?")
        assert.matches("interrupted!", out, 1, true)
        assert.matches("rc=1", out, 1, true)
      end
      assert.equal(0, k:stat().qnum)
    end)
  end)

  describe("stat", function()
    it("reports counts, pids, owner and times", function()
      local m <close> = assert(ipc.msg.get())
      local s = m:stat()
      assert.equal(0, s.qnum)
      assert.is_true(s.qbytes > 0)
      assert.equal(0, s.stime)
      assert(m:send(3, "abc"))
      s = m:stat()
      assert.equal(1, s.qnum)
      assert.equal(3, s.cbytes)
      assert.equal(ipc.getpid(), s.lspid)
      assert.is_true(s.stime > 0)
      for _, k in ipairs { "lrpid", "uid", "gid", "cuid", "cgid", "rtime", "ctime", "mode" } do
        assert.is_number(s[k], k)
      end
      local pid = helper.fork(function() assert(m:receive(3, 10)) end)
      assert.same({ "exited", 0 }, { ipc.wait(pid, 10) })
      assert.equal(pid, m:stat().lrpid)
    end)
  end)

  describe("ownership", function()
    it("GC of the owner removes the queue", function()
      local id
      do id = assert(ipc.msg.get()):id() end
      collectgarbage()
      collectgarbage()
      assert.is_false(alive(id))
    end)

    it("persist keeps the queue after the owner closes", function()
      local path, key = keyfile()
      finally(function() os.remove(path) end)
      local m = assert(ipc.msg.get(key, { create = true, persist = true }))
      local id = m:id()
      assert(m:send(1, "kept"))
      m:close()
      assert.is_true(alive(id))
      local again <close> = assert(ipc.msg.get(key))
      assert.equal("kept", (again:receive(0, 0)))
      assert.is_true(again:remove())
      assert.is_false(alive(id))
    end)

    it("remove removes at once; later calls report EINVAL/EIDRM", function()
      local m <close> = assert(ipc.msg.get())
      assert.is_true(m:remove())
      local r, _, errno = m:send(1, "x", 0)
      assert.is_nil(r)
      assert.is_true(errno == ipc.errno.EINVAL or errno == ipc.errno.EIDRM)
      assert.is_nil((m:stat()))
    end)

    it("a forked child's close and GC never remove the parent's queue", function()
      local m <close> = assert(ipc.msg.get())
      local pid = helper.fork(function()
        m:close()
        collectgarbage()
        return true
      end)
      assert.same({ "exited", 0 }, { ipc.wait(pid, 10) })
      assert.is_true(alive(m:id()))
      assert(m:send(1, "still here", 0))
    end)

    it("audit lists it with id and ownership", function()
      local m <close> = assert(ipc.msg.get())
      local entry
      for _, e in ipairs(ipc.audit()) do if e.object == m then entry = e end end
      assert.equal("msg", entry.kind)
      assert.equal(m:id(), entry.id)
      assert.is_true(entry.owner)
    end)
  end)

  describe("interop", function()
    it("exchanges typed messages with Python's sysv_ipc", function()
      local path, key = keyfile(66)
      finally(function() os.remove(path) end)
      local m <close> = assert(ipc.msg.get(key, { create = true }))
      assert(m:send(3, "to python"))
      local out, ok = helper.sh("/usr/bin/python3 -c '\n" ..
        "import sysv_ipc\n" ..
        "q = sysv_ipc.MessageQueue(" .. key .. ")\n" ..
        "data, t = q.receive(type=3)\n" ..
        "print(data.decode(), t)\n" ..
        "q.send(b\"from python\", type=8)\n' 2>&1")
      assert.is_true(ok, out)
      assert.equal("to python 3\n", out)
      assert.same({ "from python", 8 }, { m:receive(8, 5) })
    end)
  end)

  describe("bad input", function()
    it("ftok rejects bad paths and proj_id", function()
      assert.has_error(function() ipc.ftok() end)
      assert.has_error(function() ipc.ftok({}, 1) end)
      assert.has_error(function() ipc.ftok("/tmp", 0) end)
      assert.has_error(function() ipc.ftok("/tmp", 256) end)
      assert.has_error(function() ipc.ftok("/tmp", 1.5) end)
      assert.has_error(function() ipc.ftok("/tmp", "A") end)
      assert.has_error(function() ipc.ftok("/tmp\0x", 1) end)
      assert.has_error(function() ipc.ftok("", 1) end)
    end)

    it("get rejects bad keys and options", function()
      assert.has_error(function() ipc.msg.get("key") end)
      assert.has_error(function() ipc.msg.get(2 ^ 31) end)
      assert.has_error(function() ipc.msg.get(-2 ^ 31 - 1) end)
      assert.has_error(function() ipc.msg.get(1.5) end)
      assert.has_error(function() ipc.msg.get(nil, { bogus = true }) end)
      assert.has_error(function() ipc.msg.get(nil, "create") end)
      assert.has_error(function() ipc.msg.get(nil, { mode = "9" }) end)
      assert.has_error(function() ipc.msg.get(nil, { mode = "4700" }) end)
      assert.has_error(function() ipc.msg.get(nil, { persist = 1 }) end)
      assert.has_error(function() ipc.msg.get(12345, { excl = true }) end)
    end)

    it("methods reject wrong types and ranges", function()
      local m <close> = assert(ipc.msg.get())
      assert.has_error(function() m:send() end)
      assert.has_error(function() m:send(0, "x") end)
      assert.has_error(function() m:send(-1, "x") end)
      assert.has_error(function() m:send(1.5, "x") end)
      assert.has_error(function() m:send("1x", "x") end)
      assert.has_error(function() m:send(1, {}) end)
      assert.has_error(function() m:send(1, nil) end)
      assert.has_error(function() m:send(1, "x", -1) end)
      assert.has_error(function() m:send(1, "x", 0 / 0) end)
      assert.has_error(function() m:receive("x") end)
      assert.has_error(function() m:receive(math.mininteger) end)
      assert.has_error(function() m:receive(0, -0.5) end)
      assert.has_error(function() m:receive(0, "1") end)
      assert.has_error(function() m.send(io.stdout, 1, "x") end)
      assert.has_error(function() m.stat({}) end)
      assert.equal(0, m:stat().qnum)
    end)

    it("closed objects raise on every method", function()
      local m = assert(ipc.msg.get())
      m:close()
      for _, name in ipairs { "send", "receive", "stat", "remove", "id", "key" } do
        local ok, err = pcall(m[name], m, 1, "x")
        assert.is_false(ok, name)
        assert.matches("attempt to use a closed lipc.msg", err)
      end
      assert.is_true(m:close())
    end)
  end)
end)
