--- ipc.ring: shared-memory message rings between processes.
local ipc = require "lipc"
local helper = require "spec.helper"

local ETIMEDOUT = ipc.errno.ETIMEDOUT
local EPIPE = ipc.errno.EPIPE

--- The message number i of a stream: a 4-byte sequence number, then
-- filler derived from i, size bytes in all (>= 8), ending in a checksum.
local function message(i, size)
  local body = string.pack("<I4", i) .. string.char(i % 251):rep(size - 8)
  local sum = 0
  for k = 1, #body, 97 do sum = (sum + body:byte(k) * k) % 0x7FFFFFFF end
  return body .. string.pack("<I4", sum)
end

--- Check a received message against message(i, #m).
local function check(m, i)
  return m ~= nil and #m >= 8 and m == message(i, #m)
end

local reap = helper.reap   -- wait for pid and assert that it exited with 0

describe("ipc.ring", function()
  describe("create", function()
    it("makes an anonymous ring with a capacity and a tostring", function()
      local r <close> = assert(ipc.ring.create(1000))
      assert.equal(1000, #r)
      assert.equal(1000, r:capacity())
      assert.is_nil(r:name())
      assert.matches("^lipc%.ring%(anonymous, 1000 bytes%)$", tostring(r))
      assert.equal(0, r:pending())
      local r2 <close> = assert(ipc.ring.create(65))
      assert.equal(72, #r2)   -- rounded up to a multiple of 8
    end)

    it("sends and receives in order within one process", function()
      local r <close> = assert(ipc.ring.create(4096))
      for i = 1, 10 do assert.is_true(r:send(message(i, 8 + i * 10))) end
      assert.equal(true, r:pending() > 0)
      for i = 1, 10 do assert.is_true(check(r:recv(), i)) end
      assert.is_true(r:send(""))
      assert.equal("", r:recv())
    end)

    it("wraps around a small ring with every message size", function()
      local r <close> = assert(ipc.ring.create(64))
      for i = 1, 2000 do
        local size = 8 + i % 49          -- up to 56 = 64 - 8, the largest message
        assert.is_true(r:send(message(i, size), 0))
        assert.is_true(check(r:recv(0), i))
      end
      -- two messages in flight, split across the end
      for i = 1, 500 do
        assert.is_true(r:send(message(i, 8 + i % 17), 0))
        assert.is_true(r:send(message(i + 1, 8 + i % 13), 0))
        assert.is_true(check(r:recv(0), i))
        assert.is_true(check(r:recv(0), i + 1))
      end
    end)

    it("rejects a message larger than capacity minus the 8-byte header", function()
      local r <close> = assert(ipc.ring.create(128))
      assert.is_true(r:send(("x"):rep(120)))
      assert.equal(120, #r:recv())
      assert.has_error(function() r:send(("x"):rep(121)) end,
        "bad argument #1 to 'send' (message of 121 bytes larger than the ring allows (120))")
    end)

    it("names a ring, with a generated name, and removes it on close", function()
      local r = assert(ipc.ring.create(256, { name = true }))
      local name = r:name()
      assert.matches("^/lipc%.%d+%.[%x%-]+$", name)
      local f = io.open("/dev/shm" .. name)
      assert.is_not_nil(f)
      f:close()
      local found = false
      for _, a in ipairs(ipc.audit()) do
        if a.kind == "ring" and a.name == name then found = a.owner end
      end
      assert.is_true(found)
      assert.is_true(r:close())
      assert.is_true(r:close())
      assert.is_nil(io.open("/dev/shm" .. name))
    end)

    it("keeps a persistent name until unlinked", function()
      local name = helper.name()
      local r = assert(ipc.ring.create(256, { name = name, persist = true, mode = "600" }))
      assert.equal(name, r:name())
      finally(function() r:close(); ipc.ring.unlink(name) end)
      assert.equal(name, r:name())
      r:close()
      local again <close> = assert(ipc.ring.open(name))
      assert.equal(256, #again)
      assert.is_true(again:unlink())
      assert.is_nil(io.open("/dev/shm" .. name))
    end)

    it("fails with EEXIST on an existing name", function()
      local name = helper.name()
      local held <close> = assert(ipc.ring.create(256, { name = name }))
      assert.equal(name, held:name())
      local r2, err, errno = ipc.ring.create(256, { name = name })
      assert.is_nil(r2)
      assert.matches("File exists", err)
      assert.equal(ipc.errno.EEXIST, errno)
    end)
  end)

  describe("between processes", function()
    it("moves 100000 messages of 8..capacity/2 bytes in order, intact", function()
      local cap = 4096
      local r <close> = assert(ipc.ring.create(cap))
      local pid = helper.fork(function()
        math.randomseed(7)
        for i = 1, 100000 do
          assert(r:send(message(i, math.random(8, cap // 2)), 10))
        end
        r:close()
      end)
      local got = 0
      while true do
        local m, err = r:recv(10)
        if m == nil then assert.is_nil(err); break end
        got = got + 1
        if not check(m, got) then error("message " .. got .. " lost, reordered or damaged") end
      end
      assert.equal(100000, got)
      reap(pid)
    end)

    it("recv blocks until a child sends", function()
      local r <close> = assert(ipc.ring.create(256))
      local start = os.clock()
      local pid = helper.fork(function()
        local nap = io.popen("sleep 0.3; echo done")   -- let the parent block first
        nap:read("a"); nap:close()
        return r:send("late", 5)
      end)
      local m = r:recv(10)
      assert.equal("late", m)
      assert.is_true(os.clock() - start < 0.25)   -- slept, did not spin
      reap(pid)
    end)

    it("send blocks while full until the consumer drains", function()
      local r <close> = assert(ipc.ring.create(128))
      local go <close> = assert(ipc.ring.create(64))
      assert.is_true(r:send(("a"):rep(56)))
      assert.is_true(r:send(("b"):rep(56)))
      local m, err, errno = r:send("c", 0)
      assert.is_nil(m)
      assert.equal("timeout", err)
      assert.equal(ETIMEDOUT, errno)
      local pid = helper.fork(function()
        assert(go:recv(10) == "go")
        assert(r:recv(10) == ("a"):rep(56))
        assert(r:recv(10) == ("b"):rep(56))
        assert(r:recv(10) == "c")
      end)
      assert.is_true(go:send("go"))
      assert.is_true(r:send("c", 10))   -- blocks until the child took "a"
      reap(pid)
    end)

    it("reports end of stream after the producer closes", function()
      local r <close> = assert(ipc.ring.create(256))
      local pid = helper.fork(function()
        assert(r:send("one"))
        assert(r:send("two"))
        r:close()
      end)
      assert.equal("one", r:recv(10))
      assert.equal("two", r:recv(10))
      local m, err = r:recv(10)
      assert.is_nil(m)
      assert.is_nil(err)
      reap(pid)
    end)

    it("reports a dead producer as peer gone (no hang)", function()
      local r <close> = assert(ipc.ring.create(256))
      local pid = helper.fork(function()
        assert(r:send("last words"))
        ipc.exit(0)                       -- dies without closing
      end)
      assert.equal("last words", r:recv(10))
      local m, err, errno = r:recv(10)   -- the child is a zombie here, or gone
      assert.is_nil(m)
      assert.equal("peer gone", err)
      assert.equal(EPIPE, errno)
      reap(pid)
    end)

    it("reports a killed consumer as peer gone to a blocked sender", function()
      local r <close> = assert(ipc.ring.create(64))
      local ready <close> = assert(ipc.ring.create(64))
      local hold <close> = assert(ipc.ring.create(64))   -- nobody sends on it
      local pid = helper.fork(function()
        assert(r:recv(10) == "first")
        assert(ready:send("ok"))
        for _ = 1, 30 do hold:recv(1) end   -- blocks until killed (30 s at most)
      end)
      local killed = false
      finally(function()
        if not killed then helper.sh("kill -9 " .. pid); ipc.wait(pid, 10) end
      end)
      assert.is_true(r:send("first"))
      assert.equal("ok", ready:recv(10))
      helper.sh("kill -9 " .. pid)
      local ok, err, errno
      for _ = 1, 100 do
        ok, err, errno = r:send(("x"):rep(56), 10)
        if not ok then break end
      end
      assert.is_nil(ok)
      assert.equal("peer gone", err)
      assert.equal(EPIPE, errno)
      local how, sig = ipc.wait(pid, 10)
      killed = true
      assert.equal("signaled", how)
      assert.equal(9, sig)
    end)

    it("send fails with EPIPE when every consumer closed", function()
      local r <close> = assert(ipc.ring.create(64))
      local pid = helper.fork(function()
        assert(r:recv(10) == "x")
        r:close()
      end)
      assert.is_true(r:send("x"))
      reap(pid)
      local ok, err, errno
      for _ = 1, 10 do
        ok, err, errno = r:send(("y"):rep(56), 5)
        if not ok then break end
      end
      assert.is_nil(ok)
      assert.matches("consumer", err)
      assert.equal(EPIPE, errno)
    end)

    it("is safe with 3 producers and exact counts", function()
      local r <close> = assert(ipc.ring.create(1024))
      local N = 10000
      local pids = {}
      for p = 1, 3 do
        pids[p] = helper.fork(function()
          for i = 1, N do assert(r:send(string.pack("<I1I4", p, i) .. ("z"):rep(i % 40), 10)) end
          r:close()
        end)
      end
      local last = { 0, 0, 0 }
      local total = 0
      while true do
        local m = r:recv(10)
        if m == nil then break end
        local p, i = string.unpack("<I1I4", m)
        assert.equal(last[p] + 1, i)   -- in order per producer
        last[p] = i
        total = total + 1
      end
      assert.same({ N, N, N }, last)
      assert.equal(3 * N, total)
      for _, pid in ipairs(pids) do reap(pid) end
    end)

    it("is safe with 3 consumers: every message taken exactly once", function()
      local r <close> = assert(ipc.ring.create(512))
      local results = {}
      for c = 1, 3 do results[c] = assert(ipc.ring.create(64)) end
      finally(function() for _, x in ipairs(results) do x:close() end end)
      local N = 9000
      local pids = {}
      for c = 1, 3 do
        pids[c] = helper.fork(function()
          local count, sum = 0, 0
          while true do
            local m = r:recv(10)
            if m == nil or m == "stop" then break end
            count = count + 1
            sum = sum + string.unpack("<I4", m)
          end
          assert(results[c]:send(string.pack("<I4I8", count, sum), 10))
        end)
      end
      for i = 1, N do assert.is_true(r:send(string.pack("<I4", i), 10)) end
      for _ = 1, 3 do assert.is_true(r:send("stop", 10)) end
      local count, sum = 0, 0
      for c = 1, 3 do
        local n, s = string.unpack("<I4I8", assert(results[c]:recv(10)))
        count, sum = count + n, sum + s
      end
      assert.equal(N, count)
      assert.equal(N * (N + 1) // 2, sum)
      for _, pid in ipairs(pids) do reap(pid) end
    end)

    it("connects unrelated processes through a name", function()
      local name = helper.name()
      local r <close> = assert(ipc.ring.create(4096, { name = name }))
      local ok, code, out = helper.run_lua(([[
        local ipc = require "lipc"
        local r = assert(ipc.ring.open(%q))
        assert(#r == 4096)
        for i = 1, 50 do assert(r:send("msg " .. i, 5)) end
        r:close()
        print("sent")
      ]]):format(name))
      assert.is_true(ok, tostring(code) .. " " .. out)
      for i = 1, 50 do assert.equal("msg " .. i, r:recv(5)) end
      local m, err = r:recv(5)
      assert.is_nil(m)
      assert.is_nil(err)
      -- and the other way, with lua5.4 reading what we send
      local name2 = helper.name()
      local r2 <close> = assert(ipc.ring.create(4096, { name = name2, persist = true }))
      finally(function() ipc.ring.unlink(name2) end)
      for i = 1, 20 do assert.is_true(r2:send(ipc.encode { n = i })) end
      r2:close()
      ok, code, out = helper.run_lua(([[
        local ipc = require "lipc"
        local r = assert(ipc.ring.open(%q))
        local sum = 0
        while true do
          local m = r:recv(5)
          if not m then break end
          sum = sum + ipc.decode(m).n
        end
        r:close()
        ipc.ring.unlink(%q)
        print("sum", sum)
      ]]):format(name2, name2))
      assert.is_true(ok, tostring(code) .. " " .. out)
      assert.matches("sum%s210", out)
    end)
  end)

  describe("timeouts", function()
    it("recv on an empty ring: 0 and 0.2 s give nil, timeout, ETIMEDOUT", function()
      local r <close> = assert(ipc.ring.create(256))
      local m, err, errno = r:recv(0)
      assert.is_nil(m)
      assert.equal("timeout", err)
      assert.equal(ETIMEDOUT, errno)
      local before = os.time()
      local t0 = os.clock()
      m, err, errno = r:recv(0.2)
      assert.is_nil(m)
      assert.equal("timeout", err)
      assert.equal(ETIMEDOUT, errno)
      assert.is_true(os.clock() - t0 < 0.1)   -- slept, did not spin
      assert.is_true(os.time() - before <= 2)
    end)

    it("send on a full ring: 0 and 0.2 s give nil, timeout, ETIMEDOUT", function()
      local r <close> = assert(ipc.ring.create(64))
      assert.is_true(r:send(("x"):rep(56)))
      for _, t in ipairs { 0, 0.2 } do
        local ok, err, errno = r:send("y", t)
        assert.is_nil(ok)
        assert.equal("timeout", err)
        assert.equal(ETIMEDOUT, errno)
      end
    end)

    it("spins before sleeping when asked", function()
      local r <close> = assert(ipc.ring.create(256, { spin = 1000 }))
      local m, err = r:recv(0.05)
      assert.is_nil(m)
      assert.equal("timeout", err)
    end)
  end)

  describe("adaptive spin (spin = \"auto\")", function()
    -- a round trip between a parent and its forked child; returns nothing
    -- or raises.  The times go to bench/ring_spin.lua, not here.
    local pingpong = [[
      local ipc = require "lipc"
      local n = %d
      local a = assert(ipc.ring.create(4096, { spin = "auto" }))
      local b = assert(ipc.ring.create(4096, { name = true, spin = "auto" }))
      local pid = assert(ipc.fork())
      if pid == 0 then
        local back = assert(ipc.ring.open(b:name(), { spin = "auto" }))
        while true do
          local m = a:recv(30)
          if m == "" or m == nil then ipc.exit(0) end
          assert(back:send(m, 30))
        end
      end
      for i = 1, n do
        assert(a:send(tostring(i), 30))
        assert(b:recv(30) == tostring(i), "reply " .. i)
      end
      assert(a:send(""))
      local how, code = ipc.wait(pid)
      assert(how == "exited" and code == 0, how .. " " .. tostring(code))
      b:close(); a:close()
    ]]

    it("completes round trips with both processes on one CPU", function()
      local file = helper.path(".lua")
      local f = assert(io.open(file, "w"))
      f:write(pingpong:format(3000))
      f:close()
      finally(function() os.remove(file) end)
      local out, ok = helper.sh("taskset -c 0 env " .. helper.lua_cmd() .. " " .. file .. " 2>&1")
      assert.is_true(ok, out)
    end)

    it("completes round trips with the processes on any CPUs", function()
      local ok, code, out = helper.run_lua(pingpong:format(20000))
      assert.is_true(ok, ("exit %s: %s"):format(tostring(code), out))
    end)

    it("sleeps through a timeout instead of spinning it away", function()
      local r <close> = assert(ipc.ring.create(256, { spin = "auto" }))
      local t0 = os.clock()
      for _ = 1, 5 do
        local m, err = r:recv(0.02)
        assert.is_nil(m)
        assert.equal("timeout", err)
      end
      assert.is_true(os.clock() - t0 < 0.05)
    end)

    it("is the default, and ipc.audit shows each ring's setting", function()
      local function spin_of(r)
        for _, o in ipairs(ipc.audit()) do
          if o.kind == "ring" and o.object == r then return o.spin end
        end
      end
      local d <close> = assert(ipc.ring.create(256))
      local z <close> = assert(ipc.ring.create(256, { spin = 0 }))
      local n <close> = assert(ipc.ring.create(256, { spin = 300 }))
      assert.equal("auto", spin_of(d))
      assert.equal(0, spin_of(z))
      assert.equal(300, spin_of(n))
    end)

    it("takes only \"auto\" as a string", function()
      assert.has_error(function() ipc.ring.create(256, { spin = "fast" }) end,
        "bad argument #2 to 'ring.create' (option 'spin': a number of polls or \"auto\" expected)")
      assert.has_error(function() ipc.ring.open("/x", { spin = "" }) end)
    end)
  end)

  describe("sendv and recvv (values encoded in place)", function()
    local EMSGSIZE, EBADMSG = ipc.errno.EMSGSIZE, ipc.errno.EBADMSG

    it("round-trips nested values, nil and false, in order", function()
      local r <close> = assert(ipc.ring.create(4096))
      local values = {
        { 1, 2, { 3, { 4, "five" } }, name = "x", [2.5] = true, nested = { a = { b = { c = {} } } } },
        "plain", 42, -7, 1.5, true, false, ("s"):rep(300),
      }
      for _, v in ipairs(values) do assert.is_true(r:sendv(v)) end
      assert.is_true(r:sendv(nil))
      for _, v in ipairs(values) do assert.same(v, r:recvv()) end
      local v, err = r:recvv(0)
      assert.is_nil(v)
      assert.is_nil(err)                 -- a nil value, not an error
      -- interoperates with send/recv and ipc.encode/decode
      assert.is_true(r:send(ipc.encode({ k = "v" })))
      assert.same({ k = "v" }, r:recvv())
      assert.is_true(r:sendv({ 9, 8 }))
      assert.same({ 9, 8 }, ipc.decode(r:recv()))
    end)

    it("decodes messages split across the end of the ring", function()
      local r <close> = assert(ipc.ring.create(64))
      for i = 1, 500 do
        local v = { i, ("y"):rep(i % 30) }
        assert.is_true(r:sendv(v, 0))
        assert.same(v, r:recvv(0))
      end
    end)

    it("refuses a value larger than the ring's message limit as send does", function()
      local r <close> = assert(ipc.ring.create(128))
      local big = ("x"):rep(200)
      local n = #ipc.encode(big)
      assert.has_error(function() r:sendv(big) end,
        ("bad argument #1 to 'sendv' (message of %d bytes larger than the ring allows (120))"):format(n))
      assert.equal(0, r:pending())       -- nothing sent
      -- with a limit: nil, message, EMSGSIZE and the size, nothing sent
      local ok, err, code, size = r:sendv(("x"):rep(50), nil, 40)
      assert.is_nil(ok)
      assert.equal(EMSGSIZE, code)
      assert.equal(#ipc.encode(("x"):rep(50)), size)
      assert.matches("exceeds the limit 40", err)
      assert.equal(0, r:pending())
      assert.has_error(function() r:sendv(print) end)   -- the encoder's error
      assert.has_error(function() r:sendv() end)
      assert.is_true(r:sendv("still works"))
      assert.equal("still works", r:recvv())
    end)

    it("gives nil, closed at the end marker and after every producer closed", function()
      local r <close> = assert(ipc.ring.create(256))
      assert.is_true(r:send(""))
      assert.same({ nil, "closed" }, { r:recvv() })
      local r2 <close> = assert(ipc.ring.create(256))   -- this process never sends on it
      local pid = helper.fork(function()
        assert(r2:sendv({ "last" }))
        r2:close()
      end)
      assert.same({ "last" }, r2:recvv(10))
      assert.same({ nil, "closed" }, { r2:recvv(10) })
      reap(pid)
    end)

    it("gives a message that does not decode back as bytes, with EBADMSG", function()
      local r <close> = assert(ipc.ring.create(256))
      assert.is_true(r:send("\1not encoded"))
      assert.is_true(r:sendv("next"))
      local v, err, code, bytes = r:recvv()
      assert.is_nil(v)
      assert.equal(EBADMSG, code)
      assert.matches("^ipc%.decode: ", err)
      assert.equal("\1not encoded", bytes)
      assert.equal("next", r:recvv())     -- the bad message was released
      assert.equal(0, r:pending())
    end)

    it("times out on an empty and on a full ring", function()
      local r <close> = assert(ipc.ring.create(64))
      for _, t in ipairs { 0, 0.2 } do
        assert.same({ nil, "timeout", ETIMEDOUT }, { r:recvv(t) })
      end
      assert.is_true(r:sendv(("x"):rep(50)))
      for _, t in ipairs { 0, 0.2 } do
        assert.same({ nil, "timeout", ETIMEDOUT }, { r:sendv({ 1, 2, 3 }, t) })
      end
      assert.equal(("x"):rep(50), r:recvv(0))
      for _, t in ipairs { -1, 0 / 0, "soon" } do
        assert.has_error(function() r:sendv(1, t) end)
        assert.has_error(function() r:recvv(t) end)
      end
    end)

    it("blocks between processes until the other side moves", function()
      local r <close> = assert(ipc.ring.create(128))
      local pid = helper.fork(function()
        for i = 1, 2000 do assert(r:sendv({ i, tostring(i) }, 10)) end
        assert(r:send(""))
      end)
      for i = 1, 2000 do assert.same({ i, tostring(i) }, r:recvv(10)) end
      assert.same({ nil, "closed" }, { r:recvv(10) })
      reap(pid)
    end)

    it("waits inside tasks while other tasks use the same handle", function()
      local r <close> = assert(ipc.ring.create(64))
      local got = {}
      local consumer = ipc.go(function()
        for _ = 1, 60 do got[#got + 1] = r:recvv(10) end
        return true
      end)
      local producers = {}
      for p = 1, 3 do
        producers[p] = ipc.go(function()
          for i = 1, 20 do assert(r:sendv({ p, i, ("z"):rep(20) }, 10)) end   -- two fill the ring
          return true
        end)
      end
      assert.same({ true, true }, { consumer:join(20) })
      for p = 1, 3 do assert.same({ true, true }, { producers[p]:join(20) }) end
      local last = {}
      for _, v in ipairs(got) do
        assert.equal(("z"):rep(20), v[3])
        assert.equal((last[v[1]] or 0) + 1, v[2])     -- in order per producer, none lost
        last[v[1]] = v[2]
      end
      assert.same({ 20, 20, 20 }, last)
    end)

    it("raise on a closed ring", function()
      local r = assert(ipc.ring.create(256))
      assert.is_true(r:close())
      assert.has_error(function() r:sendv(1) end, "attempt to use a closed lipc.ring")
      assert.has_error(function() r:recvv() end, "attempt to use a closed lipc.ring")
    end)
  end)

  describe("open", function()
    it("refuses a segment that is not a ring", function()
      local name = helper.name()
      local f = assert(io.open("/dev/shm" .. name, "w"))
      finally(function() os.remove("/dev/shm" .. name) end)
      f:write(("\0"):rep(4096))
      f:close()
      local r, err, errno = ipc.ring.open(name)
      assert.is_nil(r)
      assert.matches("not a lipc ring", err)
      assert.equal(ipc.errno.EINVAL, errno)
      local f2 = assert(io.open("/dev/shm" .. name, "w"))
      f2:write("tiny")
      f2:close()
      r, err = ipc.ring.open(name)
      assert.is_nil(r)
      assert.is_string(err)
    end)

    it("fails with ENOENT on a missing name", function()
      local r, err, errno = ipc.ring.open(helper.name())
      assert.is_nil(r)
      assert.matches("No such file", err)
      assert.equal(ipc.errno.ENOENT, errno)
    end)
  end)

  describe("bad input", function()
    it("create checks size, options and names", function()
      for _, v in ipairs { "x", {}, true, 1.5, -1, 0, 63, 2 ^ 40, math.maxinteger, 0 / 0 } do
        assert.has_error(function() ipc.ring.create(v) end)
      end
      assert.has_error(function() ipc.ring.create() end)
      assert.has_error(function() ipc.ring.create(256, { bogus = 1 }) end,
        "bad argument #2 to 'ring.create' (unknown option 'bogus')")
      assert.has_error(function() ipc.ring.create(256, 5) end)
      for _, n in ipairs { "noslash", "/a/b", "/", "/x\0y", ("/" .. ("n"):rep(300)), 5, {} } do
        assert.has_error(function() ipc.ring.create(256, { name = n }) end)
      end
      assert.has_error(function() ipc.ring.create(256, { mode = "999" }) end)
      assert.has_error(function() ipc.ring.create(256, { persist = "yes" }) end)
      assert.has_error(function() ipc.ring.create(256, { spin = -1 }) end)
      assert.has_error(function() ipc.ring.create(256, { spin = 1.5 }) end)
    end)

    it("open and unlink check names and options", function()
      for _, n in ipairs { "noslash", "/a/b", "", 5, {}, nil } do
        assert.has_error(function() ipc.ring.open(n) end)
        assert.has_error(function() ipc.ring.unlink(n) end)
      end
      assert.has_error(function() ipc.ring.open("/x", { name = "/y" }) end)
      local ok, _, errno = ipc.ring.unlink(helper.name())
      assert.is_nil(ok)
      assert.equal(ipc.errno.ENOENT, errno)
    end)

    it("send and recv check their arguments", function()
      local r <close> = assert(ipc.ring.create(256))
      for _, v in ipairs { {}, true, print } do
        assert.has_error(function() r:send(v) end)
      end
      assert.has_error(function() r:send() end)
      for _, t in ipairs { -1, 0 / 0, "soon", {} } do
        assert.has_error(function() r:send("x", t) end)
        assert.has_error(function() r:recv(t) end)
      end
      assert.has_error(function() r.send({}, "x") end)
      assert.has_error(function() r.recv(io.stdout) end)
      assert.has_error(function() r:unlink() end, "an anonymous lipc.ring has no name to unlink")
    end)

    it("every method raises on a closed ring", function()
      local r = assert(ipc.ring.create(256))
      assert.is_true(r:close())
      assert.equal("lipc.ring(closed)", tostring(r))
      for _, f in ipairs { "send", "recv", "capacity", "name", "pending", "unlink" } do
        assert.has_error(function() r[f](r, "x") end, "attempt to use a closed lipc.ring")
      end
      assert.has_error(function() return #r end, "attempt to use a closed lipc.ring")
      assert.is_true(r:close())
    end)
  end)
end)
