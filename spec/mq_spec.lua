--- Specs for POSIX message queues: ipc.mq.open, lipc.mq methods, ipc.mq.unlink.
local ipc = require "lipc"
local helper = require "spec.helper"

-- Whether the queue exists: asked of the kernel (works without /dev/mqueue).
local function exists(name)
  local q, _, code = ipc.mq.open(name)
  if q then q:close() return true end
  return code ~= ipc.errno.ENOENT
end

local function has_mqueue_fs()
  local f = io.open("/proc/mounts")
  local text = f and f:read("a") or ""
  if f then f:close() end
  return text:find(" /dev/mqueue mqueue ", 1, true) ~= nil
end

-- (glibc's mq_send/mq_receive are the system calls mq_timedsend/mq_timedreceive)
local is_x86_64 = helper.is_x86_64

--- Wait (up to 10 s) until pid sleeps in system call `name` (see helper.wait_blocked).
local function wait_in_syscall(pid, name) return helper.wait_blocked(pid, { name }) end

local function has_cap_sys_resource()
  local f = io.open("/proc/self/status")
  local text = f:read("a")
  f:close()
  local hex = text:match("CapEff:%s*(%x+)")
  return hex ~= nil and (tonumber(hex, 16) >> 24) & 1 == 1
end

local function cloexec(fd)
  return helper.fdinfo(fd) & tonumber("2000000", 8) ~= 0
end

describe("ipc.mq", function()
  describe("open", function()
    it("creates a generated name exclusively and owns it", function()
      local q <close> = assert(ipc.mq.open())
      local name = q:name()
      assert.matches("^/lipc%.%d+%.[%x%-]+$", name)
      assert.is_true(exists(name))
      assert.matches("^lipc%.mq%(/lipc%.%d+%.[%x%-]+, fd=%d+%)$", tostring(q))
      q:close()
      assert.is_false(exists(name))
      assert.equal("lipc.mq(closed)", tostring(q))
    end)

    it("creates with maxmsg and msgsize and reports them in attr", function()
      local name = helper.name()
      local q <close> = assert(ipc.mq.open(name, { create = true, maxmsg = 3, msgsize = 64 }))
      local a = q:attr()
      assert.same({ maxmsg = 3, msgsize = 64, curmsgs = 0, nonblock = false }, a)
      assert(q:send("x"))
      assert.equal(1, q:attr().curmsgs)
    end)

    it("fills the missing one of maxmsg/msgsize from the system default", function()
      local q <close> = assert(ipc.mq.open(nil, { msgsize = 100 }))
      local a = q:attr()
      assert.equal(100, a.msgsize)
      assert.equal(tonumber((helper.sh("cat /proc/sys/fs/mqueue/msg_default"))), a.maxmsg)
    end)

    it("applies mode (default 0600)", function()
      if not has_mqueue_fs() then
        print("skipped: /dev/mqueue is not mounted, so queue modes cannot be read")
        pending("/dev/mqueue is not mounted")
        return
      end
      local q1 <close> = assert(ipc.mq.open())
      local q2 <close> = assert(ipc.mq.open(nil, { mode = "640" }))
      local m1 = helper.sh("stat -c %a /dev/mqueue" .. q1:name())
      local m2 = helper.sh("stat -c %a /dev/mqueue" .. q2:name())
      assert.equal(helper.masked(tonumber("600", 8)), m1:match("%d+"))   -- less the umask
      assert.equal(helper.masked(tonumber("640", 8)), m2:match("%d+"))
    end)

    it("fails to open a missing queue without create", function()
      local q, err, errno = ipc.mq.open(helper.name())
      assert.is_nil(q)
      assert.matches("^mq_open /lipcspec%.%d+%.%d+: No such file or directory$", err)
      assert.equal(ipc.errno.ENOENT, errno)
    end)

    it("excl fails when the queue exists", function()
      local q <close> = assert(ipc.mq.open())
      local r, err, errno = ipc.mq.open(q:name(), { create = true, excl = true })
      assert.is_nil(r)
      assert.matches("File exists", err)
      assert.equal(ipc.errno.EEXIST, errno)
    end)

    it("sets nonblock, and setnonblock changes it", function()
      local q <close> = assert(ipc.mq.open(nil, { nonblock = true }))
      assert.is_true(q:attr().nonblock)
      assert.same({ nil, "timeout", ipc.errno.ETIMEDOUT }, { q:receive() })
      assert.is_true(q:setnonblock(false))
      assert.is_false(q:attr().nonblock)
    end)

    it("opens descriptors close-on-exec, usable as fileno", function()
      local q <close> = assert(ipc.mq.open())
      assert.is_true(cloexec(q:fileno()))
    end)

    it("the descriptor is pollable: readable once a message is queued", function()
      if not ipc.poll then pending("ipc.poll is not built in this tree") return end
      local q <close> = assert(ipc.mq.open())
      assert.same({}, ipc.poll({ q }, 0))
      assert(q:send("wake"))
      local ready = ipc.poll({ q }, 5)
      assert.equal(q, ready[1])
    end)

    it("access = 'r' / 'w' opens one direction", function()
      local q <close> = assert(ipc.mq.open())
      local w <close> = assert(ipc.mq.open(q:name(), { access = "w" }))
      local r <close> = assert(ipc.mq.open(q:name(), { access = "r" }))
      assert(w:send("one"))
      assert.equal("one", (r:receive(5)))
      local _, _, errno = r:send("x", 0, 0)
      assert.equal(ipc.errno.EBADF, errno)
    end)

    it("names the system limit when maxmsg or msgsize is too large", function()
      local msg_max = tonumber((helper.sh("cat /proc/sys/fs/mqueue/msg_max")))
      local size_max = tonumber((helper.sh("cat /proc/sys/fs/mqueue/msgsize_max")))
      -- above the hard limits: refused for everyone
      local q, err, errno = ipc.mq.open(helper.name(), { create = true, maxmsg = 65537, msgsize = 16 })
      assert.is_nil(q)
      assert.equal(ipc.errno.EINVAL, errno)
      assert.matches("maxmsg 65537 exceeds the limit %d+ of /proc/sys/fs/mqueue/msg_max", err)
      q, err, errno = ipc.mq.open(helper.name(), { create = true, maxmsg = 1, msgsize = 16 * 1024 * 1024 + 1 })
      assert.is_nil(q)
      assert.equal(ipc.errno.EINVAL, errno)
      assert.matches("/proc/sys/fs/mqueue/msgsize_max", err)
      -- between the sysctl and the hard limit: needs CAP_SYS_RESOURCE
      local name = helper.name()
      q, err, errno = ipc.mq.open(name, { create = true, maxmsg = msg_max + 1, msgsize = 16 })
      if has_cap_sys_resource() then
        assert.is_truthy(q, err)
        assert.equal(msg_max + 1, q:attr().maxmsg)
        q:close()
      else
        assert.is_nil(q)
        assert.equal(ipc.errno.EINVAL, errno)
        assert.equal(("mq_open %s: Invalid argument (maxmsg %d exceeds the limit %d of " ..
          "/proc/sys/fs/mqueue/msg_max; with CAP_SYS_RESOURCE up to 65536)"):format(name, msg_max + 1, msg_max), err)
      end
      q, err = ipc.mq.open(name, { create = true, maxmsg = 1, msgsize = size_max + 1 })
      if has_cap_sys_resource() then
        assert.is_truthy(q, err)
        q:close()
      else
        assert.is_nil(q)
        assert.matches("msgsize " .. (size_max + 1) .. " exceeds the limit " .. size_max, err)
      end
      assert.is_false(exists(name))
    end)

    it("without CAP_SYS_RESOURCE the sysctl limit applies (checked in a child without it)", function()
      local out, ok = helper.sh("setpriv --inh-caps=-sys_resource --bounding-set=-sys_resource env " ..
        helper.lua_cmd() .. [[ -e 'local ipc = require "lipc"
          local limit = tonumber(io.open("/proc/sys/fs/mqueue/msg_max"):read("l"))
          local q, err, errno = ipc.mq.open(nil, { maxmsg = limit + 11 })
          print(q, err, errno)' 2>&1]])
      assert.is_true(ok, out)
      assert.matches("nil\tmq_open /lipc%.%d+%.[%x%-]+: Invalid argument %(maxmsg %d+ exceeds the limit %d+ of " ..
        "/proc/sys/fs/mqueue/msg_max; with CAP_SYS_RESOURCE up to 65536%)\t22", out)
    end)
  end)

  describe("send and receive", function()
    it("delivers the highest priority first, FIFO within one priority", function()
      local q <close> = assert(ipc.mq.open(nil, { maxmsg = 8, msgsize = 32 }))
      local input = { { "a1", 1 }, { "b5", 5 }, { "c0", 0 }, { "d5", 5 }, { "e1", 1 }, { "f9", 9 }, { "g0", 0 } }
      for _, m in ipairs(input) do assert.is_true(q:send(m[1], m[2])) end
      local got = {}
      for _ = 1, #input do
        local msg, prio = assert(q:receive(0))
        got[#got + 1] = msg .. "/" .. prio
      end
      assert.same({ "f9/9", "b5/5", "d5/5", "a1/1", "e1/1", "c0/0", "g0/0" }, got)
    end)

    it("carries binary data including NUL bytes and empty messages", function()
      local q <close> = assert(ipc.mq.open())
      local data = "a\0b\255\0" .. ("x"):rep(100)
      assert(q:send(data))
      assert(q:send(""))
      assert.equal(data, (q:receive(0)))
      assert.equal("", (q:receive(0)))
    end)

    it("accepts the full priority range and rejects PRIO_MAX", function()
      local q <close> = assert(ipc.mq.open())
      assert.equal(32768, ipc.mq.PRIO_MAX)
      assert(q:send("top", ipc.mq.PRIO_MAX - 1))
      local msg, prio = q:receive(0)
      assert.equal("top", msg)
      assert.equal(ipc.mq.PRIO_MAX - 1, prio)
      assert.has_error(function() q:send("x", ipc.mq.PRIO_MAX) end)
      assert.has_error(function() q:send("x", -1) end)
    end)

    it("a blocking receive is woken by a child's send", function()
      local q <close> = assert(ipc.mq.open())
      local parent = ipc.getpid()
      local pid = helper.fork(function()
        assert(wait_in_syscall(parent, "mq_timedreceive"), "parent never blocked")
        assert(q:send("from child", 3))
      end)
      local msg, prio = q:receive()
      assert.equal("from child", msg)
      assert.equal(3, prio)
      assert.same({ "exited", 0 }, { ipc.wait(pid, 10) })
    end)

    it("a blocking send on a full queue is woken by a child's receive", function()
      local q <close> = assert(ipc.mq.open(nil, { maxmsg = 1, msgsize = 16 }))
      assert(q:send("first"))
      local parent = ipc.getpid()
      local pid = helper.fork(function()
        assert(wait_in_syscall(parent, "mq_timedsend"), "parent never blocked")
        assert(q:receive(10) == "first")
      end)
      assert.is_true(q:send("second"))
      assert.same({ "exited", 0 }, { ipc.wait(pid, 10) })
      assert.equal("second", (q:receive(0)))
    end)

    it("timed receive times out with ETIMEDOUT after about the timeout", function()
      local q <close> = assert(ipc.mq.open())
      local t0 = os.time()
      local c0 = os.clock()
      local r, err, errno = q:receive(0.3)
      assert.is_nil(r)
      assert.equal("timeout", err)
      assert.equal(ipc.errno.ETIMEDOUT, errno)
      assert.is_true(os.time() - t0 <= 5)
      assert.is_true(os.clock() - c0 < 0.1)  -- it slept, it did not spin
      assert.same({ nil, "timeout", ipc.errno.ETIMEDOUT }, { q:receive(0) })
    end)

    it("timed send on a full queue times out with ETIMEDOUT", function()
      local q <close> = assert(ipc.mq.open(nil, { maxmsg = 2, msgsize = 8 }))
      assert(q:send("1", 0, 0))
      assert(q:send("2", 0, 0))
      assert.same({ nil, "timeout", ipc.errno.ETIMEDOUT }, { q:send("3", 0, 0) })
      assert.same({ nil, "timeout", ipc.errno.ETIMEDOUT }, { q:send("3", 0, 0.2) })
      assert.equal(2, q:attr().curmsgs)
    end)

    it("a timed receive is satisfied by a child's later send", function()
      local q <close> = assert(ipc.mq.open())
      local parent = ipc.getpid()
      local pid = helper.fork(function()
        assert(wait_in_syscall(parent, "mq_timedreceive"))
        assert(q:send("late"))
      end)
      assert.equal("late", (q:receive(10)))
      assert.same({ "exited", 0 }, { ipc.wait(pid, 10) })
    end)

    it("refuses an oversized message with EMSGSIZE, before the call", function()
      local q <close> = assert(ipc.mq.open(nil, { maxmsg = 2, msgsize = 16 }))
      local r, err, errno = q:send(("x"):rep(17))
      assert.is_nil(r)
      assert.equal(("mq_send %s: message too long (17 > msgsize 16)"):format(q:name()), err)
      assert.equal(ipc.errno.EMSGSIZE, errno)
      assert(q:send(("x"):rep(16)))
    end)

    it("Ctrl-C interrupts a blocking or timed receive in the lua5.4 interpreter", function()
      if not is_x86_64 then pending("needs x86_64 system call numbers to see the block") return end
      local q <close> = assert(ipc.mq.open())
      for _, timeout in ipairs { "nil", "60" } do
        local _, out, rc = helper.ctrl_c(([[
          local q = assert(ipc.mq.open(%q))
          print(q:receive(%s))]]):format(q:name(), timeout), { calls = { "mq_timedreceive" } })
        assert.matches("interrupted!", out, 1, true)
        assert.equal(1, rc)
      end
      assert.same({ nil, "timeout", ipc.errno.ETIMEDOUT }, { q:receive(0) })
    end)
  end)

  describe("ownership", function()
    it("an opened-only handle's close does not unlink", function()
      local q <close> = assert(ipc.mq.open())
      local other = assert(ipc.mq.open(q:name()))
      assert.is_true(other:close())
      assert.is_true(exists(q:name()))
    end)

    it("create on an existing name opens it without owning it", function()
      local q <close> = assert(ipc.mq.open())
      local other = assert(ipc.mq.open(q:name(), { create = true }))
      other:close()
      assert.is_true(exists(q:name()))
    end)

    it("the owner's close unlinks, and GC does too", function()
      local name = helper.name()
      local q = assert(ipc.mq.open(name, { create = true }))
      assert.is_true(exists(name))
      assert.is_true(q:close())
      assert.is_true(q:close())  -- idempotent
      assert.is_false(exists(name))
      do local _ = assert(ipc.mq.open(name, { create = true })) end
      collectgarbage()
      collectgarbage()
      assert.is_false(exists(name))
    end)

    it("persist keeps the queue after the owner closes", function()
      local name = helper.name()
      local q = assert(ipc.mq.open(name, { create = true, persist = true }))
      assert(q:send("kept"))
      q:close()
      finally(function() ipc.mq.unlink(name) end)
      assert.is_true(exists(name))
      local again <close> = assert(ipc.mq.open(name))
      assert.equal("kept", (again:receive(0)))
    end)

    it("unlink removes the name at once; the handle stays usable", function()
      local q <close> = assert(ipc.mq.open())
      local name = q:name()
      assert.is_true(q:unlink())
      assert.is_false(exists(name))
      assert(q:send("still"))
      assert.equal("still", (q:receive(0)))
      local r, _, errno = ipc.mq.unlink(name)
      assert.is_nil(r)
      assert.equal(ipc.errno.ENOENT, errno)
    end)

    it("ipc.mq.unlink removes a queue by name", function()
      local name = helper.name()
      local q <close> = assert(ipc.mq.open(name, { create = true, persist = true }))
      assert.is_true(ipc.mq.unlink(name))
      assert.equal(name, q:name())
      assert.is_false(exists(name))
    end)

    it("a forked child's close and GC never remove the parent's queue", function()
      local q <close> = assert(ipc.mq.open())
      local pid = helper.fork(function()
        q:close()
        collectgarbage()
        return true
      end)
      assert.same({ "exited", 0 }, { ipc.wait(pid, 10) })
      assert.is_true(exists(q:name()))
      assert(q:send("parent still has it", 0, 0))
    end)

    it("ipc.sweep removes the generated queue of a child killed by SIGKILL", function()
      if not has_mqueue_fs() then
        pending("/dev/mqueue is not mounted: ipc.sweep cannot list queues")
        return
      end
      local back <close> = assert(ipc.mq.open())
      local name, pid = helper.fork_holding(function() return assert(ipc.mq.open()) end)
      assert.is_string(name)
      assert.is_true(exists(name))
      os.execute("kill -KILL " .. pid)
      assert.same({ "signaled", 9 }, { ipc.wait(pid, 10) })
      assert.is_true(exists(name))
      local removed = ipc.sweep()
      local found = false
      for _, item in ipairs(removed) do
        if item == "mq:" .. name then found = true end
      end
      assert.is_true(found)
      assert.is_false(exists(name))
      assert.is_true(exists(back:name()))  -- ours, alive: kept
    end)

    it("audit lists the queue with its name and ownership", function()
      local q <close> = assert(ipc.mq.open())
      local entry
      for _, e in ipairs(ipc.audit()) do
        if e.object == q then entry = e end
      end
      assert.is_table(entry)
      assert.equal("mq", entry.kind)
      assert.equal(q:name(), entry.name)
      assert.equal(q:fileno(), entry.fd)
      assert.is_true(entry.owner)
    end)
  end)

  describe("interop", function()
    it("exchanges messages with a C program using mq_open/mq_send/mq_receive", function()
      local exe, gcc_out = helper.compile_c([[
#include <mqueue.h>
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv) {
  (void)argc;
  mqd_t q = mq_open(argv[1], O_RDWR);
  if (q == (mqd_t)-1) { perror("mq_open"); return 2; }
  struct mq_attr a; mq_getattr(q, &a);
  char buf[a.mq_msgsize]; unsigned prio;
  ssize_t n = mq_receive(q, buf, sizeof buf, &prio);
  if (n < 0) { perror("mq_receive"); return 3; }
  printf("got %.*s prio %u\n", (int)n, buf, prio);
  if (mq_send(q, "reply from C", 12, 7) != 0) { perror("mq_send"); return 4; }
  mq_close(q);
  return 0;
}
]], "-lrt")
      finally(function() if exe then os.remove(exe) end end)
      assert.is_truthy(exe, gcc_out)
      local q <close> = assert(ipc.mq.open())
      assert(q:send("hello C", 4))
      local out, ran = helper.sh(exe .. " " .. q:name())
      assert.is_true(ran, out)
      assert.equal("got hello C prio 4\n", out)
      local msg, prio = q:receive(5)
      assert.equal("reply from C", msg)
      assert.equal(7, prio)
    end)
  end)

  describe("bad input", function()
    local long = "/" .. ("n"):rep(256)
    it("open rejects hostile names", function()
      for _, name in ipairs { "noslash", "/a/b", "/", "", "/a\0b", long, "/.", "/.." } do
        assert.has_error(function() ipc.mq.open(name, { create = true }) end)
      end
      assert.has_error(function() ipc.mq.open(42) end)
      assert.has_error(function() ipc.mq.open({}) end)
      -- the longest legal name works
      local q <close> = assert(ipc.mq.open("/" .. ("n"):rep(255), { create = true }))
      assert.equal(256, #q:name())
    end)

    it("open rejects bad options", function()
      assert.has_error(function() ipc.mq.open(nil, { bogus = 1 }) end, nil)
      assert.has_error(function() ipc.mq.open(nil, "create") end)
      assert.has_error(function() ipc.mq.open(nil, { [1] = true }) end)
      assert.has_error(function() ipc.mq.open(nil, { create = "yes" }) end)
      assert.has_error(function() ipc.mq.open(nil, { maxmsg = 0 }) end)
      assert.has_error(function() ipc.mq.open(nil, { maxmsg = -1 }) end)
      assert.has_error(function() ipc.mq.open(nil, { maxmsg = 1.5 }) end)
      assert.has_error(function() ipc.mq.open(nil, { msgsize = "big" }) end)
      assert.has_error(function() ipc.mq.open(nil, { mode = "999" }) end)
      assert.has_error(function() ipc.mq.open(nil, { mode = -1 }) end)
      assert.has_error(function() ipc.mq.open(nil, { access = "x" }) end)
      assert.has_error(function() ipc.mq.open(nil, { create = false }) end)
      assert.has_error(function() ipc.mq.open(helper.name(), { excl = true }) end)
      assert.has_error(function() ipc.mq.open(helper.name(), { maxmsg = 4 }) end)
      local ok, err = pcall(ipc.mq.open, nil, { maxmgs = 4 })
      assert.is_false(ok)
      assert.matches("unknown option 'maxmgs'", err)
    end)

    it("methods reject wrong types and ranges", function()
      local q <close> = assert(ipc.mq.open())
      assert.has_error(function() q:send() end)
      assert.has_error(function() q:send({}) end)
      assert.has_error(function() q:send("x", "high") end)
      assert.has_error(function() q:send("x", 1.5) end)
      assert.has_error(function() q:send("x", 0, -1) end)
      assert.has_error(function() q:send("x", 0, 0 / 0) end)
      assert.has_error(function() q:send("x", 0, "soon") end)
      assert.has_error(function() q:receive(-1) end)
      assert.has_error(function() q:receive("1") end)
      assert.has_error(function() q:setnonblock(1) end)
      assert.has_error(function() q.send(42, "x") end)
      assert.has_error(function() q.receive(io.stdout) end)
      assert.has_error(function() q.attr(nil) end)
    end)

    it("closed objects raise on every method", function()
      local q = assert(ipc.mq.open())
      q:close()
      for _, m in ipairs { "send", "receive", "attr", "setnonblock", "unlink", "name", "fileno" } do
        local ok, err = pcall(q[m], q, "x")
        assert.is_false(ok, m)
        assert.matches("attempt to use a closed lipc.mq", err)
      end
      assert.is_true(q:close())
    end)

    it("ipc.mq.unlink rejects hostile names", function()
      for _, name in ipairs { "noslash", "/a/b", "/", "/a\0b", long } do
        assert.has_error(function() ipc.mq.unlink(name) end)
      end
      assert.has_error(function() ipc.mq.unlink() end)
      local r, _, errno = ipc.mq.unlink(helper.name())
      assert.is_nil(r)
      assert.equal(ipc.errno.ENOENT, errno)
    end)
  end)
end)

-- Inside a task (ipc.go) a call waits by yielding to the loop: two tasks
-- of one process hand messages to each other, so whichever waits first can
-- only finish if its wait let the other task run.
describe("ipc.mq inside a task", function()
  local function needs_tasks()
    if not ipc.go then pending("needs ipc.go (csrc/task.c is not in this build)") return false end
    return true
  end

  it("receive and send yield while the queue is empty or full", function()
    if not needs_tasks() then return end
    local a <close> = assert(ipc.mq.open(nil, { maxmsg = 1, msgsize = 16 }))
    local b <close> = assert(ipc.mq.open(nil, { maxmsg = 1, msgsize = 16 }))
    assert(b:send("full"))
    local got = {}
    ipc.go(function()
      got.ping = { a:receive(10) }
      got.sent = b:send("pong", 0, 10)  -- b is full until the other task reads it
    end)
    ipc.go(function()
      assert(a:send("ping", 4))
      got.first = b:receive(10)
      got.second = b:receive(10)
    end)
    assert(ipc.loop(20))
    assert.same({ "ping", 4 }, got.ping)
    assert.is_true(got.sent)
    assert.equal("full", got.first)
    assert.equal("pong", got.second)
  end)

  it("a timeout inside a task is the same timeout", function()
    if not needs_tasks() then return end
    local q <close> = assert(ipc.mq.open(nil, { maxmsg = 1, msgsize = 16 }))
    local r
    ipc.go(function() r = { q:receive(0.05) } end)
    assert(ipc.loop(10))
    assert.same({ nil, "timeout", ipc.errno.ETIMEDOUT }, r)
  end)
end)
