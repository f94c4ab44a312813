local ipc = require "lipc"
local helper = require "spec.helper"

describe("ipc core", function()
  it("exports every errno name with the kernel's value", function()
    assert.equal(11, ipc.errno.EAGAIN)
    assert.equal(110, ipc.errno.ETIMEDOUT)
    assert.equal(32, ipc.errno.EPIPE)
    assert.equal(2, ipc.errno.ENOENT)
  end)

  it("reports kernel limits", function()
    local l = ipc.limits()
    assert.is_true(l.nofile > 0)
    assert.is_true(l.pipe_buf >= 512)
    assert.is_true(l.shm_free >= 0)
    assert.is_number(l.mq_maxmsg)
  end)

  it("lists this process's descriptors and no children at rest", function()
    local fds = ipc.descriptors()
    assert.is_true(#fds >= 3)
    assert.same({}, ipc.children())
  end)

  it("has a working leak snapshot", function()
    local before = helper.snapshot()
    local path = helper.path(".tmp")
    local f = assert(io.open(path, "w"))
    local leaks = helper.leaks(before)
    f:close()
    os.remove(path)
    local text = table.concat(leaks, "\n")
    assert.matches("fds: %d+ %-> " .. path:gsub("%p", "%%%0"), text)
    assert.matches("tmp: " .. path:match("[^/]+$"):gsub("%p", "%%%0"), text)
    assert.same({}, helper.leaks(before))
  end)
end)

describe("ipc.type", function()
  -- one object of every class, made here and closed in order (children of a
  -- region before the region)
  local function every_class()
    local objs = {}
    local r, w = assert(ipc.pipe())
    objs.pipe = r
    local a, b = assert(ipc.socketpair())
    objs.socket = a
    local ev = assert(ipc.eventfd(0))
    assert(a:sendfd(ev, "x"))                -- neither a pipe nor a socket: a lipc.fd
    ev:close()
    objs.fd = assert(b:recvfd(10))
    objs.fifo = assert(ipc.mkfifo(helper.path(".fifo")))
    objs.mq = assert(ipc.mq.open(nil, { create = true }))
    objs.msg = assert(ipc.msg.get(ipc.IPC_PRIVATE, { create = true }))
    local region = assert(ipc.shm.anonymous(4096))
    objs.sem = assert(ipc.sem.new(region, 0, 1))
    objs.mutex = assert(ipc.mutex.new(region, 64))
    objs.cond = assert(ipc.cond.new(region, 128))
    objs.region = region
    objs.semset = assert(ipc.semset.get(ipc.IPC_PRIVATE, 1, { create = true }))
    objs.eventfd = assert(ipc.eventfd(0))
    objs.sigwatch = assert(ipc.signal.watch { "USR2" })
    objs.poller = assert(ipc.poller())
    local p = assert(ipc.spawn(function() return 0 end))
    assert(p:wait(30))
    objs.process = p
    objs.ring = assert(ipc.ring.create(4096))
    local ca, cb = assert(ipc.channel.pair())
    objs.channel = ca
    return objs, { w, b, cb }
  end

  local ORDER = { "pipe", "socket", "fd", "fifo", "mq", "msg", "sem", "mutex", "cond", "region", "semset",
                  "eventfd", "sigwatch", "poller", "process", "ring", "channel" }

  it("names every class, open and closed, like io.type", function()
    local objs, others = every_class()
    for _, kind in ipairs(ORDER) do
      assert.equal(kind, ipc.type(objs[kind]), kind)
    end
    for _, kind in ipairs(ORDER) do
      objs[kind]:close()
      assert.equal("closed " .. kind, ipc.type(objs[kind]), kind)
    end
    for _, o in ipairs(others) do o:close() end
  end)

  it("answers nil for anything that is not a lipc object", function()
    for _, v in ipairs { false, 0, "pipe", {}, print, io.stdout, coroutine.create(print),
                         setmetatable({}, { __name = "lipc.pipe" }) } do
      assert.is_nil(ipc.type(v))
    end
    assert.is_nil(ipc.type(nil))
  end)
end)

describe("asking objects what they are", function()
  it("s:type() gives the socket type", function()
    for _, t in ipairs { "stream", "dgram", "seqpacket" } do
      local a, b = assert(ipc.socketpair(t))
      assert.equal(t, a:type())
      assert.equal(t, b:type())
      a:close(); b:close()
    end
    local u <close> = assert(ipc.listen("udp://127.0.0.1:0"))
    assert.equal("dgram", u:type())
    local srv <close> = assert(ipc.listen("tcp://127.0.0.1:0"))
    assert.equal("stream", srv:type())
    srv:close()
    assert.has_error(function() srv:type() end, "attempt to use a closed lipc.socket")
  end)

  it("s:direction() gives the direction of a byte stream", function()
    local r, w = assert(ipc.pipe())
    assert.equal("read", r:direction())
    assert.equal("write", w:direction())
    local path = helper.path(".fifo")
    local fifo <close> = assert(ipc.mkfifo(path))
    local rw <close> = assert(ipc.fifo.open(path, "rw", 10))
    assert.equal("fifo", ipc.type(fifo))
    assert.equal("rw", rw:direction())
    local a, b = assert(ipc.socketpair())
    assert.equal("rw", a:direction())
    assert(a:sendfd(w, "x"))
    local fd = assert(b:recvfd(10))
    assert.equal("write", fd:direction())     -- received typed: a pipe's write end
    for _, o in ipairs { r, w, a, b, fd } do o:close() end
    assert.has_error(function() r:direction() end, "attempt to use a closed lipc.pipe")
  end)
end)

describe("argument errors", function()
  local function err(f, ...)
    local ok, e = pcall(f, ...)
    assert.is_false(ok)
    return (tostring(e):gsub("^[^:]*:%d+: ", ""))
  end

  it("name a sub-table function however it is called", function()
    local want = "bad argument #1 to 'mq.open' (name must be '/' followed by at least one character)"
    assert.equal(want, err(ipc.mq.open, "x"))
    assert.equal(want, err(function() ipc.mq.open("x") end))
    local open = ipc.mq.open
    assert.equal(want, err(function() open("x") end))
    assert.equal("bad argument #1 to 'signal.kill' (integer expected, got table)", err(ipc.signal.kill, {}))
    assert.equal("bad argument #1 to 'shm.anonymous' (integer expected, got string)",
      err(function() ipc.shm.anonymous("big") end))
  end)

  it("name a top-level function however it is called", function()
    local want = "bad argument #1 to 'exec' (table expected, got number)"
    assert.equal(want, err(ipc.exec, 1))
    assert.equal(want, err(function() ipc.exec(1) end))
    local exec = ipc.exec
    assert.equal(want, err(function() exec(1) end))
    assert.equal("bad argument #1 to 'pipe' (table expected, got number)", err(ipc.pipe, 1))
  end)

  it("keep Lua's naming for a method called with ':' (self not counted)", function()
    local r, w = assert(ipc.pipe())
    local why = '(invalid format (expected a size, "a", "l" or "L"))'
    assert.equal("bad argument #1 to 'read' " .. why, err(function() r:read("x") end))
    assert.equal("bad argument #2 to 'read' " .. why, err(r.read, r, "x"))
    r:close(); w:close()
  end)

  it("have one format for options", function()
    assert.equal("bad argument #2 to 'mq.open' (unknown option 'bogus')", err(ipc.mq.open, "/x", { bogus = 1 }))
    assert.equal("bad argument #2 to 'mq.open' (option 'create': boolean expected, got string)",
      err(ipc.mq.open, "/x", { create = "yes" }))
    assert.equal("bad argument #2 to 'mq.open' (option 'maxmsg': out of range (1 to 9223372036854775807))",
      err(ipc.mq.open, "/x", { create = true, maxmsg = 0 }))
    assert.equal("bad argument #1 to 'exec' (option 'cwd': string expected, got number)",
      err(ipc.exec, { "/bin/true", cwd = 1 }))
    assert.equal("bad argument #1 to 'exec' (unknown option 'bogus')", err(ipc.exec, { "/bin/true", bogus = 1 }))
    local r, w = assert(ipc.pipe())
    assert.equal("bad argument #2 to 'channel' (unknown option 'bogus')", err(ipc.channel, r, { bogus = 1 }))
    assert.equal("bad argument #2 to 'channel' (option 'maxsize': integer in 1..2147483647 expected, got 0)",
      err(ipc.channel, r, { maxsize = 0 }))
    r:close(); w:close()
    local g = require("lipc.topology").graph()
    assert.equal("bad argument #3 to 'node' (unknown option 'bogus')", err(g.node, g, "a", print, { bogus = 1 }))
  end)
end)

describe("one vocabulary", function()
  it("queues have recv beside receive", function()
    local q <close> = assert(ipc.mq.open(nil, { create = true }))
    assert.equal(q.receive, q.recv)
    assert(q:send("hello", 3))
    assert.same({ "hello", 3 }, { q:recv(5) })
    assert.same({ nil, "timeout", ipc.errno.ETIMEDOUT }, { q:recv(0) })
    local m <close> = assert(ipc.msg.get(ipc.IPC_PRIVATE, { create = true }))
    assert.equal(m.receive, m.recv)
    assert(m:send(7, "there"))
    assert.same({ "there", 7 }, { m:recv(0, 5) })
  end)

  it("ipc.mmap takes access = 'r' | 'rw' (mode kept as an alias)", function()
    local path = helper.path(".map")
    local f = assert(io.open(path, "w"))
    f:write(string.rep("\0", 4096))
    f:close()
    local rw <close> = assert(ipc.mmap(path, { access = "rw" }))
    assert.equal(5, rw:write(0, "hello"))
    local ro <close> = assert(ipc.mmap(path, { access = "r" }))
    assert.equal("hello", ro:read(0, 5))
    assert.has_error(function() ro:write(0, "x") end, "lipc.region is mapped read-only")
    local old <close> = assert(ipc.mmap(path, { mode = "rw" }))
    assert.equal(1, old:write(0, "j"))
    assert.equal("jello", ro:read(0, 5))
    assert.has_error(function() ipc.mmap(path, { access = "w" }) end,
      "bad argument #2 to 'mmap' (option 'access': \"r\" or \"rw\" expected)")
    assert.has_error(function() ipc.mmap(path, { access = "r", mode = "r" }) end,
      "bad argument #2 to 'mmap' (option 'mode': alias of 'access': give one of them)")
    os.remove(path)
  end)

  it("lines takes (fmt, timeout) as read does, and (timeout, fmt) as before", function()
    for _, order in ipairs { "fmt first", "timeout first" } do
      local r, w = assert(ipc.pipe())
      assert(w:write("a\nb\n"))
      w:close()
      local got = {}
      local it = order == "fmt first" and r:lines("L", 10) or r:lines(10, "L")
      for line in it do got[#got + 1] = line end
      assert.same({ "a\n", "b\n" }, got, order)
      r:close()
    end
  end)
end)

describe("region:pack and region:unpack (lua/lipc/region.lua)", function()
  it("unpack grows its window past 4096 bytes for a variable-length format", function()
    local r <close> = assert(ipc.shm.anonymous(65536))
    local big = string.rep("x", 20000) .. "end"
    assert.equal(100 + 4 + #big, r:pack(100, "<s4", big))
    local s, after = r:unpack(100, "<s4")
    assert.equal(big, s)
    assert.equal(100 + 4 + #big, after)
    r:fill(0x41)
    assert.has_error(function() r:unpack(0, "z") end)   -- no terminator before the end
  end)

  it("keeps the bounds errors of the C version", function()
    local r <close> = assert(ipc.shm.anonymous(4096))
    assert.has_error(function() r:pack(4094, "i4", 1) end,
      "bad argument #1 to 'pack' (offset 4094 + 4 packed bytes outside the region (4096 bytes))")
    assert.has_error(function() r:unpack(4094, "i4") end,
      "bad argument #1 to 'unpack' (offset 4094 + 4 bytes outside the region (4096 bytes))")
    assert.has_error(function() r:unpack(0, "i4", 9) end,
      "bad argument #3 to 'unpack' (no more arguments expected (the offset is the position))")
    r:close()
    assert.has_error(function() r:pack(0, "i4", 1) end, "attempt to use a closed lipc.region")
  end)
end)
