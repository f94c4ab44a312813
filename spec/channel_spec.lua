-- ipc.channel: Lua values between real processes over every transport.
local ipc = require "lipc"
local helper = require "spec.helper"

local E = ipc.errno

local nested = {
  id = 123, name = "widget", tags = { "a", "b", "c" }, price = 9.99,
  dims = { w = 1.5, h = 2, d = 0.25 }, ok = true, items = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 },
  deep = { { { { x = "bottom", [1.5] = false, [true] = "t" } } } },
  big = math.maxinteger, neg = -0.0, unicode = "h\xc3\xa9llo\0zero",
}

local values = { nested, 42, "a string", true, false, 1.5, {}, ("x"):rep(3000), { [3] = "sparse" } }

-- Each case: a fresh transport pair; parent() and child() make each side's
-- channel after the fork (closing the other side's copies), cleanup()
-- closes whatever is left in the parent.
local cases = {}
local order = {}
local function case(name, fn) cases[name] = fn; order[#order + 1] = name end

local function closer(list)
  return function() for _, o in ipairs(list) do o:close() end end
end

case("pipe", function()
  local r1, w1 = assert(ipc.pipe())
  local r2, w2 = assert(ipc.pipe())
  return {
    parent = function() r1:close(); w2:close(); return ipc.channel(r2, w1) end,
    child = function() r2:close(); w1:close(); return ipc.channel(r1, w2) end,
    cleanup = closer { r1, w1, r2, w2 },
  }
end)

case("fifo", function()
  local f1 = assert(ipc.mkfifo(helper.path(".fifo")))
  local f2 = assert(ipc.mkfifo(helper.path(".fifo")))
  return {
    parent = function()
      local w = assert(ipc.fifo.open(f1:name(), "w", 10))
      local r = assert(ipc.fifo.open(f2:name(), "r", 10))
      return ipc.channel{ read = r, write = w }
    end,
    child = function()
      local r = assert(ipc.fifo.open(f1:name(), "r", 10))
      local w = assert(ipc.fifo.open(f2:name(), "w", 10))
      return ipc.channel(r, w)
    end,
    cleanup = closer { f1, f2 },
  }
end)

for _, kind in ipairs { "stream", "dgram", "seqpacket" } do
  case("socketpair " .. kind, function()
    local a, b = assert(ipc.socketpair(kind))
    return {
      parent = function() b:close(); return ipc.channel(a) end,
      child = function() a:close(); return ipc.channel(b) end,
      cleanup = closer { a, b },
    }
  end)
end

for _, url in ipairs { "unix:", "tcp://127.0.0.1:0" } do
  case(url:match("^%a+"), function()
    local srv = assert(ipc.listen(url))
    local addr = srv:address()
    return {
      parent = function() return ipc.channel(assert(srv:accept(10))) end,
      child = function() srv:close(); return ipc.channel(assert(ipc.connect(addr, 10))) end,
      cleanup = closer { srv },
    }
  end)
end

for _, kind in ipairs { "mq", "msg", "ring" } do
  case(kind, function()
    local a, b = assert(ipc.channel.pair(kind))
    return {
      parent = function() b:close(); return a end,
      child = function() a:close(); return b end,
      cleanup = function() b:close(); a:close() end,
    }
  end)
end

describe("ipc.channel", function()
  describe("between two processes", function()
    for _, name in ipairs(order) do
      it("carries nested tables, nil and end of stream over " .. name, function()
        local c = cases[name]()
        finally(c.cleanup)
        local pid = helper.fork(function()
          local ch = c.child()
          assert(ch:send(nil, 10))               -- an encoded nil first
          while true do
            local v, err, code = ch:recv(10)
            if err == "closed" then break end
            assert(err == nil, tostring(err) .. " " .. tostring(code))
            assert(ch:send({ echo = v }, 10))
          end
          ch:close()
        end)
        finally(function() ipc.signal.kill(pid, "KILL"); ipc.wait(pid, 5) end)
        local ch = c.parent()
        local v, err = ch:recv(10)
        assert.is_nil(v)
        assert.is_nil(err)                       -- a nil value, not the end of the stream
        for _, val in ipairs(values) do
          assert.is_true(ch:send(val, 10))
          local got, e = ch:recv(10)
          assert.is_nil(e)
          assert.same({ echo = val }, got)
        end
        if name == "msg" then
          -- the owner's close removes the queue: finish, let the child end, then close
          assert.is_true(ch:finish(10))
          assert.same({ "exited", 0 }, { ipc.wait(pid, 10) })
          ch:close()
        else
          ch:close()                              -- the child sees "closed" and exits 0
          assert.same({ "exited", 0 }, { ipc.wait(pid, 10) })
        end
      end)
    end
  end)

  describe("ipc.channel.pair", function()
    it("defaults to two pipes usable by a parent and a spawned child", function()
      local a, b = assert(ipc.channel.pair())
      finally(function() a:close(); b:close() end)
      assert.matches("stream over lipc.pipe", tostring(a))
      local p = ipc.spawn(function()
        a:close()
        local v = assert(b:recv(10))
        assert(b:send(v.x * 2, 10))
        return 0
      end)
      b:close()
      assert.is_true(a:send({ x = 21 }, 10))
      assert.equal(42, a:recv(10))
      assert.same({ "exited", 0 }, { p:wait(10) })
      p:close()
    end)

    it("offers stream, dgram and seqpacket socket pairs", function()
      for _, kind in ipairs { "stream", "dgram", "seqpacket" } do
        local a, b = assert(ipc.channel.pair(kind))
        assert.is_true(a:send({ k = kind }, 1))
        assert.same({ k = kind }, b:recv(1))
        assert.is_true(b:send("back", 1))
        assert.equal("back", a:recv(1))
        a:close(); b:close()
      end
    end)

    it("removes mq names at once (nothing left in /dev/mqueue)", function()
      local before = helper.sh("ls /dev/mqueue")
      local a, b = assert(ipc.channel.pair("mq"))
      assert.equal(before, helper.sh("ls /dev/mqueue"))
      assert.is_true(a:send(1, 1))
      assert.equal(1, b:recv(1))
      a:close(); b:close()
    end)
  end)

  describe("end of stream and dead peers", function()
    it("reports closed when a stream peer exits without sending", function()
      for _, kind in ipairs { "stream", "pipe", "seqpacket" } do
        local a, b = assert(ipc.channel.pair(kind))
        local pid = helper.fork(function() a:close(); b:close() end)
        b:close()
        local v, err = a:recv(10)
        assert.is_nil(v)
        assert.equal("closed", err)
        assert.same({ nil, "closed" }, { a:recv(0) })     -- stays closed
        assert.same({ "exited", 0 }, { ipc.wait(pid, 10) })
        a:close()
      end
    end)

    it("returns EPIPE when sending to a peer that is gone", function()
      for _, kind in ipairs { "stream", "pipe" } do
        local a, b = assert(ipc.channel.pair(kind))
        local pid = helper.fork(function() a:close(); b:close() end)
        b:close()
        assert.same({ "exited", 0 }, { ipc.wait(pid, 10) })
        local ok, msg, code = a:send({ 1, 2, 3 }, 5)
        assert.is_nil(ok)
        assert.matches("Broken pipe", msg)
        assert.equal(E.EPIPE, code)
        a:close()
      end
    end)

    it("reports a ring producer that died without closing", function()
      local a, b = assert(ipc.channel.pair("ring"))
      local pid = helper.fork(function()
        a:close()
        assert(b:send("last words", 5))
        ipc.exit(0)                               -- no close: the ring is not marked closed
      end)
      b:close()
      assert.equal("last words", a:recv(10))
      assert.same({ "exited", 0 }, { ipc.wait(pid, 10) })
      local v, err, code = a:recv(5)
      assert.is_nil(v)
      assert.equal("peer gone", err)
      assert.equal(E.EPIPE, code)
      a:close()
    end)

    it("delivers the end-of-stream marker through a full queue on close", function()
      local q = assert(ipc.mq.open(nil, { create = true, maxmsg = 1, msgsize = 64 }))
      q:unlink()
      local pid = helper.fork(function()
        local ch = ipc.channel(q)
        for i = 1, 30 do assert(ch:send(i, 10)) end
        ch:close()                               -- the queue is full right now
      end)
      local ch = ipc.channel(q)
      local n = 0
      for v in ch:values(10) do n = n + 1; assert.equal(n, v) end
      assert.equal(30, n)
      assert.same({ "exited", 0 }, { ipc.wait(pid, 10) })
      ch:close()
    end)

    it("reads several frames from one read, and frames split over reads", function()
      local r, w = assert(ipc.pipe())
      local ch = ipc.channel(r)
      local f1, f2, f3 = ipc.encode({ 1, x = "one" }, true), ipc.encode("two", true), ipc.encode(nested, true)
      assert(w:write(f1 .. f2 .. f3:sub(1, 2)))
      assert.same({ 1, x = "one" }, ch:recv(5))
      assert.is_true(ch:buffered())                     -- f2 waits in the channel's buffer
      assert.equal("two", ch:recv(5))
      assert.is_false(ch:buffered())
      assert.same({ nil, "timeout", E.ETIMEDOUT }, { ch:recv(0) })
      assert(w:write(f3:sub(3, 40)))
      assert.same({ nil, "timeout", E.ETIMEDOUT }, { ch:recv(0.02) })
      assert(w:write(f3:sub(41) .. string.pack(">s4", ipc.encode(7))))
      assert.same(nested, ch:recv(5))
      assert.equal(7, ch:recv(5))
      w:close()
      assert.same({ nil, "closed" }, { ch:recv(5) })
      ch:close()
    end)

    it("reports end of stream inside a frame", function()
      local r, w = assert(ipc.pipe())
      local ch = ipc.channel(r)
      assert(w:write(string.pack(">I4", 100) .. "abc"))
      w:close()
      local v, err, code = ch:recv(5)
      assert.is_nil(v)
      assert.matches("inside a frame", err)
      assert.equal(E.EPROTO, code)
      ch:close()
    end)

    it("reports malformed bytes", function()
      local r, w = assert(ipc.pipe())
      local ch = ipc.channel(r)
      assert(w:write(string.pack(">s4", "\255\255\255")))
      local v, err, code = ch:recv(5)
      assert.is_nil(v)
      assert.matches("malformed", err)
      assert.equal(E.EBADMSG, code)
      ch:close(); w:close()
    end)
  end)

  describe("stream sendv / recvv (values encoded and decoded in place)", function()
    it("round-trips values as the channel's frames, both ways compatible", function()
      for _, mk in ipairs({ ipc.pipe, function() return ipc.socketpair("stream") end }) do
        local r, w = assert(mk())
        for _, v in ipairs(values) do
          assert.is_true(w:sendv(v, 5))
          assert.same(v, r:recvv(5))
        end
        assert.is_true(w:sendv(nil))
        local v, err = r:recvv(5)
        assert.is_nil(v); assert.is_nil(err)              -- an encoded nil: one nil
        assert(w:write(ipc.encode(nested, true)))         -- the old framing reads back
        assert.same(nested, r:recvv(5))
        assert.is_true(w:sendv(nested))
        assert.equal(ipc.encode(nested, true), r:read(#ipc.encode(nested, true), 5))
        assert.same({ nil, nil, nil, #ipc.encode(("y"):rep(100)) }, { w:sendv(("y"):rep(100), 5, 50) })
        assert.same({ nil, "timeout", E.ETIMEDOUT }, { r:recvv(0) })  -- nothing was written
        r:close(); w:close()
      end
    end)

    it("puts a frame together from a writer writing byte by byte", function()
      local r, w = assert(ipc.pipe())
      local go_r, go_w = assert(ipc.pipe())
      local frame = ipc.encode(nested, true) .. ipc.encode("two", true)
      local pid = helper.fork(function()
        r:close(); go_w:close()
        for i = 1, #frame do
          assert(w:write(frame:sub(i, i)))
          if i == 2 then assert(go_r:read(1, 10)) end   -- the reader waits inside the header
        end
        w:close()
      end)
      w:close(); go_r:close()
      assert.same({ nil, "timeout", E.ETIMEDOUT }, { r:recvv(0.01) })
      assert.is_false(r:framed())
      assert(go_w:write("g"))
      assert.same(nested, r:recvv(10))
      assert.equal("two", r:recvv(10))
      assert.same({ nil, "closed" }, { r:recvv(10) })
      assert.same({ "exited", 0 }, { ipc.wait(pid, 10) })
      r:close(); go_w:close()
    end)

    it("keeps a partial frame on timeout, and says end of stream inside a frame", function()
      local r, w = assert(ipc.pipe())
      local f = ipc.encode({ 1, x = "one" }, true)
      assert(w:write(f:sub(1, 3)))
      assert.same({ nil, "timeout", E.ETIMEDOUT }, { r:recvv(0) })
      assert(w:write(f:sub(4, 6)))
      assert.same({ nil, "timeout", E.ETIMEDOUT }, { r:recvv(0.02) })
      assert(w:write(f:sub(7) .. f))
      assert.same({ 1, x = "one" }, r:recvv(5))
      assert.is_true(r:framed())
      assert.same({ 1, x = "one" }, r:recvv(5))
      assert.is_false(r:framed())
      assert(w:write(f:sub(1, 5)))
      w:close()
      assert.same({ nil, "partial" }, { r:recvv(5) })
      r:close()
    end)

    it("skips a malformed frame with the decoder's message, and refuses a frame over the limit", function()
      local r, w = assert(ipc.pipe())
      assert(w:write(string.pack(">s4", "\255\255garbage")))
      assert(w:sendv(7))
      local v, err, code, size, msg = r:recvv(5)
      assert.is_nil(v); assert.equal("malformed", err); assert.is_nil(code); assert.is_nil(size)
      assert.equal(select(2, ipc.decode("\255\255garbage")), msg)
      assert.equal(7, r:recvv(5))
      assert(w:write(string.pack(">I4", 1000)))
      assert.same({ nil, "toobig", nil, 1000 }, { r:recvv(5, 999) })
      r:close(); w:close()
    end)

    it("reports a frame cut by a timeout, and waits with its own copy of the frame", function()
      local r, w = assert(ipc.pipe())
      local big = ("z"):rep(200000)                      -- more than the pipe holds
      local v, err, code, size, written = w:sendv(big, 0.05)
      assert.is_nil(v); assert.equal("timeout", err); assert.equal(E.ETIMEDOUT, code); assert.is_nil(size)
      assert.is_true(written > 0 and written < #big)
      local got = 0                                       -- drain exactly what went out
      while got < written do got = got + #assert(r:read(written - got, 5)) end
      assert.same({ nil, "timeout", E.ETIMEDOUT }, { r:read(1, 0) })
      -- a blocking sendv that must wait for the reader writes the whole frame
      local pid = helper.fork(function()
        w:close()
        assert(ipc.sleep(0.05))
        local back = r:recvv(10)
        os.exit(back == big and 0 or 1)
      end)
      r:close()
      assert.is_true(w:sendv(big))
      assert.same({ "exited", 0 }, { ipc.wait(pid, 10) })
      w:close()
    end)

    it("is what an unbatched stream channel uses: malformed and too big as before", function()
      local a, b = ipc.channel.pair()
      local r, w = b:transport()
      assert.is_true(a:send({ 1, 2 }))
      assert.same({ 1, 2 }, b:recv(5))
      local _, aw = a:transport()
      assert(aw:write(string.pack(">s4", "\255\255garbage")))
      local v, err, code = b:recv(5)
      assert.is_nil(v); assert.matches("malformed value", err); assert.equal(E.EBADMSG, code)
      assert.is_true(a:send("ok"))
      assert.equal("ok", b:recv(5))
      assert.truthy(r.recvv and w)
      a:close(); b:close()
    end)
  end)

  describe("over a ring (values encoded and decoded in place)", function()
    it("reports a malformed message, a batch, maxsize, the end marker and works in tasks", function()
      local r <close> = assert(ipc.ring.create(4096))
      local tx = ipc.channel.new(nil, r, { own = false })
      local rx = ipc.channel.new(r, nil, { own = false })
      assert(r:send("\7garbage"))                      -- not lipc-encoded
      assert.is_true(tx:send({ after = true }))
      local v, err, code = rx:recv(1)
      assert.is_nil(v)
      assert.equal(E.EBADMSG, code)
      assert.matches("^channel: malformed value %(ipc%.decode: ", err)
      assert.same({ after = true }, rx:recv(1))          -- the bad message was consumed
      -- a batch message (one ring message, several frames) is split by recv
      tx:batch(true)
      for i = 1, 5 do assert.is_true(tx:send({ i })) end
      assert.is_true(tx:flush())
      for i = 1, 5 do assert.same({ i }, rx:recv(1)) end
      tx:batch(false)
      -- a maxsize below the ring's limit: EMSGSIZE, nothing sent
      local small = ipc.channel.new(nil, r, { own = false, maxsize = 16 })
      local n = #ipc.encode(("q"):rep(40))
      assert.same({ nil, ("channel send: value of %d bytes exceeds the lipc.ring message limit 16"):format(n),
        E.EMSGSIZE }, { small:send(("q"):rep(40)) })
      assert.equal(0, r:pending())
      small:close()
      -- tasks: a receiver waits in the loop while a sender fills the ring
      local got = {}
      local t1 = ipc.go(function()
        for _ = 1, 200 do got[#got + 1] = rx:recv(10) end
        return true
      end)
      local t2 = ipc.go(function()
        for i = 1, 200 do assert(tx:send({ i = i, pad = ("p"):rep(100) }, 10)) end
        return true
      end)
      assert.same({ true, true }, { t2:join(20) })
      assert.same({ true, true }, { t1:join(20) })
      for i = 1, 200 do assert.equal(i, got[i].i) end
      -- the end marker
      assert.is_true(tx:finish(1))
      assert.same({ nil, "closed" }, { rx:recv(1) })
      assert.same({ nil, "closed" }, { rx:recv(1) })   -- stays closed
      tx:close(); rx:close()
    end)
  end)

  describe("timeouts", function()
    it("times out receiving from every kind of transport", function()
      for _, kind in ipairs { "stream", "pipe", "dgram", "seqpacket", "mq", "msg", "ring" } do
        local a, b = assert(ipc.channel.pair(kind))
        for _, t in ipairs { 0, 0.05 } do
          local v, err, code = a:recv(t)
          assert.is_nil(v)
          assert.equal("timeout", err, kind)
          assert.equal(E.ETIMEDOUT, code, kind)
        end
        b:close(); a:close()
      end
    end)

    it("times out on a partial frame and keeps the bytes for later", function()
      local r, w = assert(ipc.pipe())
      local ch = ipc.channel(r)
      local frame = string.pack(">s4", ipc.encode({ 1, 2, 3 }))
      assert(w:write(frame:sub(1, 3)))
      assert.same({ nil, "timeout", E.ETIMEDOUT }, { ch:recv(0.05) })
      assert(w:write(frame:sub(4)))
      assert.same({ 1, 2, 3 }, ch:recv(1))
      ch:close(); w:close()
    end)

    it("marks a stream broken after a send timed out part-way, and never resends a frame's start", function()
      local r, w = assert(ipc.pipe())
      local ch = ipc.channel(w)
      local big = ("b"):rep(4 * 1024 * 1024)            -- far more than the pipe holds
      local frame = ipc.encode(big, true)
      local ok, err, code = ch:send(big, 0.1)
      assert.is_nil(ok)
      assert.equal("timeout", err)
      assert.equal(E.ETIMEDOUT, code)
      ok, err, code = ch:send("small", 1)
      assert.is_nil(ok)
      assert.matches("broken", err)
      assert.equal(E.EPIPE, code)
      ch:close()                                         -- closes w: the reader sees the end
      local got = {}
      while true do
        local data = r:read(65536, 5)
        if not data then break end
        got[#got + 1] = data
      end
      got = table.concat(got)
      assert.is_true(#got > 4 and #got < #frame)
      assert.equal(frame:sub(1, #got), got)             -- one frame's prefix, nothing after it
      r:close()
    end)

    it("times out sending to a full queue", function()
      local q = assert(ipc.mq.open(nil, { create = true, maxmsg = 1, msgsize = 64 }))
      local ch = ipc.channel(q)
      assert.is_true(ch:send("fills it", 0))
      local t0 = ipc.channel._now()
      assert.same({ nil, "timeout", E.ETIMEDOUT }, { ch:send("no room", 0.1) })
      assert.is_true(ipc.channel._now() - t0 >= 0.09)
      assert.equal("fills it", ch:recv(0))
      ch:close()
    end)
  end)

  describe("limits", function()
    it("refuses a value bigger than the transport's message size", function()
      local q = assert(ipc.mq.open(nil, { create = true, maxmsg = 2, msgsize = 128 }))
      local ch = ipc.channel(q)
      local ok, msg, code = ch:send(("y"):rep(200))
      assert.is_nil(ok)
      assert.matches("exceeds the lipc.mq message limit 128", msg)
      assert.equal(E.EMSGSIZE, code)
      assert.is_true(ch:send(("y"):rep(100), 1))      -- smaller values still pass
      assert.equal(("y"):rep(100), ch:recv(1))
      ch:close()

      local a, b = assert(ipc.channel.pair("dgram"))
      local s = a:transport()
      local da = ipc.channel.new(s, s, { maxsize = 1000, own = false })
      assert.same(E.EMSGSIZE, select(3, da:send(("z"):rep(2000))))
      a:close(); b:close()

      local ra, rb = assert(ipc.channel.pair("ring", { size = 256 }))
      assert.same(E.EMSGSIZE, select(3, ra:send(("r"):rep(300))))
      ra:close(); rb:close()
    end)

    it("carries a value larger than a pipe buffer over a stream", function()
      local a, b = assert(ipc.channel.pair("stream"))
      local big = { blob = ("0123456789"):rep(100000), n = 1 }
      local pid = helper.fork(function() a:close(); assert(b:send(big, 10)); b:close() end)
      b:close()
      assert.same(big, a:recv(10))
      assert.same({ nil, "closed" }, { a:recv(10) })
      assert.same({ "exited", 0 }, { ipc.wait(pid, 10) })
      a:close()
    end)
  end)

  describe("values iterator and finish", function()
    it("iterates until the peer finishes", function()
      local a, b = assert(ipc.channel.pair("seqpacket"))
      for i = 1, 5 do assert(a:send(i, 1)) end
      assert.is_true(a:finish())
      local got = {}
      for v in b:values(1) do got[#got + 1] = v end
      assert.same({ 1, 2, 3, 4, 5 }, got)
      a:close(); b:close()
    end)

    it("raises from the iterator on a timeout", function()
      local a, b = assert(ipc.channel.pair("pipe"))
      assert.has_error(function() for _ in b:values(0) do end end)
      a:close(); b:close()
    end)
  end)

  describe("bad input", function()
    it("rejects what is not a transport", function()
      assert.has_error(function() ipc.channel() end)
      assert.has_error(function() ipc.channel(42) end)
      assert.has_error(function() ipc.channel("pipe") end)
      assert.has_error(function() ipc.channel({}) end)
      assert.has_error(function() ipc.channel{ read = 1 } end)
      assert.has_error(function() ipc.channel(setmetatable({}, { __name = "lipc.pipe" })) end)
      local region = assert(ipc.shm.anonymous(4096))
      assert.has_error(function() ipc.channel(region) end,
        "bad argument #1 to 'channel' (lipc.region cannot carry a channel)")
      region:close()
    end)

    it("rejects closed transports, unknown options and mixed kinds", function()
      local r, w = assert(ipc.pipe())
      local q = assert(ipc.mq.open(nil, { create = true }))
      assert.has_error(function() ipc.channel(r, { bogus = true }) end,
        "bad argument #2 to 'channel' (unknown option 'bogus')")
      assert.has_error(function() ipc.channel(r, w, 5) end)
      assert.has_error(function() ipc.channel(r, q) end)
      assert.has_error(function() ipc.channel(q, { priority = -1 }) end)
      assert.has_error(function() ipc.channel(q, { maxsize = 0 }) end)
      assert.has_error(function() ipc.channel(q, { send_type = 0 }) end)
      assert.has_error(function() ipc.channel(q, { maxsize = 1.5 }) end)
      assert.has_error(function() ipc.channel(q, { linger = -1 }) end)
      assert.has_error(function() ipc.channel(q, { linger = "1" }) end)
      r:close()
      assert.has_error(function() ipc.channel(r, w) end, "attempt to use a closed lipc.pipe")
      w:close(); q:close()
    end)

    it("rejects bad timeouts, wrong directions, unencodable values and use after close", function()
      local a, b = assert(ipc.channel.pair("pipe"))
      for _, t in ipairs { -1, 0 / 0, "1", {} } do
        assert.has_error(function() a:recv(t) end)
        assert.has_error(function() a:send(1, t) end)
      end
      assert.has_error(function() a:recv(-1) end, "bad argument #1 to 'recv' (timeout must be >= 0 and not NaN)")
      assert.has_error(function() a:send(1, "x") end,
        "bad argument #2 to 'send' (timeout: number expected, got string)")
      assert.has_error(function() a:finish(-1) end)
      assert.has_error(function() a:send(print) end)
      assert.has_error(function() a:send({ f = coroutine.create(print) }) end)
      local r, w = assert(ipc.pipe())
      local ro, wo = ipc.channel(r), ipc.channel(w)
      assert.has_error(function() ro:send(1) end, "this lipc.channel has no write side")
      assert.has_error(function() wo:recv() end, "this lipc.channel has no read side")
      ro:close(); wo:close()
      a:close(); b:close()
      assert.is_true(a:close())                      -- idempotent
      assert.has_error(function() a:send(1) end, "attempt to use a closed lipc.channel")
      assert.has_error(function() a:recv() end, "attempt to use a closed lipc.channel")
      assert.equal("lipc.channel(closed)", tostring(a))
    end)

    it("rejects bad pair kinds and options", function()
      assert.has_error(function() ipc.channel.pair("carrier-pigeon") end)
      assert.has_error(function() ipc.channel.pair(42) end)
      assert.has_error(function() ipc.channel.pair("ring", 5) end)
      assert.has_error(function() ipc.channel.pair("ring", { size = -1 }) end)
    end)

    it("leaves transports open with own = false", function()
      local r, w = assert(ipc.pipe())
      local ch = ipc.channel(r, w, { own = false })
      ch:close()
      assert.equal(5, w:write("still"))
      assert.equal("still", r:read(5, 1))
      r:close(); w:close()
    end)
  end)
end)
