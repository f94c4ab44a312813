-- Batched channels (doc/batching.md): values coalesced into one write, one
-- ring/queue message or one sendmmsg; the same values, in the same order,
-- with the same end-of-stream and error rules as without batching.
-- The codec's frame buffer and frame decoder are in spec/codec_spec.lua.
local ipc = require "lipc"
local helper = require "spec.helper"

local E = ipc.errno

local KINDS = { "pipe", "stream", "dgram", "seqpacket", "ring", "mq", "msg" }

-- Values of every shape and size, some larger than a 256-byte batch.
local function value(i)
  local m = i % 6
  if m == 0 then return { i = i, name = "v" .. i, list = { i, i + 1, i + 2 } } end
  if m == 1 then return i end
  if m == 2 then return ("s"):rep(i % 300) end          -- "" included
  if m == 3 then return { i = i, big = ("b"):rep(600 + i % 50) } end
  if m == 4 then return i % 4 == 0 end
  return i * 0.5
end

local N = 600

-- A pair of `kind` with batching, forked: the child runs body(ch) with its
-- channel, the parent gets its own; cleanup finally. Returns the parent's
-- channel and the child's pid.
local function forked(kind, opts, body)
  local a, b = assert(ipc.channel.pair(kind, opts))
  local pid = helper.fork(function()
    a:close()
    body(b)
  end)
  finally(function()
    ipc.signal.kill(pid, "KILL")
    ipc.wait(pid, 10)
  end)
  if kind ~= "msg" then b:close() end      -- msg: the owner's last close removes the queue
  finally(function() a:close(); b:close() end)
  return a, pid
end

describe("ipc.channel batching", function()
  describe("keep every value, in order, with its boundaries", function()
    for _, kind in ipairs(KINDS) do
      it("over " .. kind .. " (sent by a child that closes without flushing)", function()
        local opts = { batch = 256, delay = 60 }
        if kind == "mq" then opts.msgsize = 2048 end
        local ch = forked(kind, opts, function(c)
          assert(c:send(nil, 10))                  -- an encoded nil first
          for i = 1, N do assert(c:send(value(i), 10)) end
          c:close()                                -- flushes, then the end-of-stream
        end)
        local v, err = ch:recv(10)
        assert.is_nil(v)
        assert.is_nil(err)                         -- a nil value, not the end
        for i = 1, N do
          local got, e, code = ch:recv(10)
          assert(e == nil, ("value %d: %s %s"):format(i, tostring(e), tostring(code)))
          assert.same(value(i), got)
        end
        assert.same({ nil, "closed" }, { ch:recv(10) })
        assert.same({ nil, "closed" }, { ch:recv(10) })
      end)
    end
  end)

  it("holds values until the batch fills, then sends them with one write", function()
    local r, w = assert(ipc.pipe())
    local size = #ipc.encode({ seq = 1, pad = ("p"):rep(80) }, true)
    local ch = ipc.channel(w, { batch = 10 * size - size // 2, delay = 60 })   -- full at the 10th
    finally(function() ch:close(); r:close() end)
    for i = 1, 9 do assert.is_true(ch:send({ seq = i, pad = ("p"):rep(80) })) end
    assert.equal(9, ch:pending())
    assert.same({ nil, "timeout", E.ETIMEDOUT }, { r:read(65536, 0) })   -- nothing written yet
    assert.is_true(ch:send({ seq = 10, pad = ("p"):rep(80) }))             -- past the batch size
    assert.equal(0, ch:pending())
    local bytes = assert(r:read(65536, 5))                                  -- all ten, one write
    local t, n, nxt = ipc.decodeframes(bytes)
    assert.equal(10, n)
    assert.equal(#bytes + 1, nxt)
    for i = 1, 10 do assert.equal(i, t[i].seq) end
    assert.same({ nil, "timeout", E.ETIMEDOUT }, { r:read(65536, 0) })
  end)

  it("encodes at send time: changing a value after send changes nothing", function()
    local a, b = assert(ipc.channel.pair("pipe", { batch = true, delay = 60 }))
    finally(function() a:close(); b:close() end)
    local t = { n = 1 }
    assert(a:send(t)); t.n = 2
    assert(a:send(t)); t.n = 3
    assert.is_true(a:flush(5))
    assert.same({ n = 1 }, b:recv(5))
    assert.same({ n = 2 }, b:recv(5))
  end)

  it("flushes before recv: a request/response needs no explicit flush", function()
    for _, kind in ipairs(KINDS) do
      local ch = forked(kind, { batch = true, delay = 60 }, function(c)
        while true do
          local v, err = c:recv(10)
          if err then return err == "closed" end
          assert(c:send({ echo = v }, 10))          -- the child's recv flushes this too
        end
      end)
      for i = 1, 20 do
        assert.is_true(ch:send({ q = i }, 10))
        assert.same({ echo = { q = i } }, ch:recv(10), kind)
      end
      assert.is_true(ch:finish(10))
    end
  end)

  it("flushes at the next send once the oldest value is delay seconds old", function()
    local a, b = assert(ipc.channel.pair("pipe", { batch = 1 << 20, delay = 0.05 }))
    finally(function() a:close(); b:close() end)
    assert.is_true(a:send("first"))
    assert.same({ nil, "timeout", E.ETIMEDOUT }, { b:recv(0) })
    ipc.sleep(0.1)                    -- the time under test passes (no peer to wait for)
    assert.is_true(a:send("second"))  -- older than delay: both go out now
    assert.equal(0, a:pending())
    assert.equal("first", b:recv(5))
    assert.equal("second", b:recv(5))
  end)

  it("sends a value larger than the batch at once, after the ones before it", function()
    for _, kind in ipairs { "pipe", "ring", "mq", "dgram" } do
      local opts = { batch = 100, delay = 60 }
      if kind == "mq" then opts.msgsize = 8192 end
      local a, b = assert(ipc.channel.pair(kind, opts))
      assert.is_true(a:send("small"))
      assert.equal(1, a:pending())
      local big = ("B"):rep(5000)
      assert.is_true(a:send(big))
      assert.equal(0, a:pending(), kind)
      assert.equal("small", b:recv(5))
      assert.equal(big, b:recv(5))
      a:close(); b:close()
    end
  end)

  it("refuses a value over the transport's limit without touching what is held", function()
    local a, b = assert(ipc.channel.pair("mq", { batch = true, delay = 60, msgsize = 1024 }))
    finally(function() a:close(); b:close() end)
    assert.is_true(a:send("kept"))
    local ok, err, code = a:send(("x"):rep(2000))
    assert.is_nil(ok)
    assert.equal(E.EMSGSIZE, code)
    assert.matches("exceeds", err)
    assert.equal(1, a:pending())
    -- a batch of many values stays within one message of the queue
    for i = 1, 300 do assert.is_true(a:send(i)) end
    assert.is_true(a:flush(5))
    assert.equal("kept", b:recv(5))
    for i = 1, 300 do assert.equal(i, b:recv(5)) end
  end)

  it("a flush that times out with nothing sent keeps the values", function()
    local a, b = assert(ipc.channel.pair("mq", { batch = true, delay = 60, maxmsg = 1 }))
    finally(function() a:close(); b:close() end)
    assert.is_true(a:send("one"))
    assert.is_true(a:flush(5))                        -- the queue is now full
    assert.is_true(a:send("two"))
    assert.same({ nil, "timeout", E.ETIMEDOUT }, { a:flush(0) })
    assert.equal(1, a:pending())
    assert.is_true(a:send("three", 0))                -- under batch and delay: held, no flush
    assert.equal(2, a:pending())
    assert.equal("one", b:recv(5))
    assert.is_true(a:flush(5))
    assert.equal("two", b:recv(5))
    assert.equal("three", b:recv(5))
  end)

  describe("a peer killed mid-batch", function()
    for _, kind in ipairs { "pipe", "stream", "ring" } do
      it("over " .. kind .. ": the flushed values arrive, the held ones are lost, then the end", function()
        local ch, pid = forked(kind, { batch = true, delay = 60 }, function(c)
          for i = 1, 10 do assert(c:send(i)) end
          assert(c:flush(10))
          for i = 11, 15 do assert(c:send(i)) end      -- held, never flushed
          ipc.signal.kill(ipc.getpid(), "KILL")
        end)
        for i = 1, 10 do assert.equal(i, ch:recv(10)) end
        assert.same({ "signaled", 9 }, { ipc.wait(pid, 10) })
        local v, err, code = ch:recv(10)
        assert.is_nil(v)
        if kind == "ring" then
          assert.is_true(err == "closed" or code == E.EPIPE, tostring(err))
        else
          assert.equal("closed", err)
        end
      end)
    end

    it("a sender whose reader died gets EPIPE from the flush, not SIGPIPE", function()
      local a, b = assert(ipc.channel.pair("pipe", { batch = true, delay = 60 }))
      finally(function() a:close(); b:close() end)
      local pid = helper.fork(function() a:close(); b:close(); ipc.signal.kill(ipc.getpid(), "KILL") end)
      b:close()
      assert.same({ "signaled", 9 }, { ipc.wait(pid, 10) })
      for i = 1, 5 do assert.is_true(a:send(i)) end
      local ok, _, code = a:flush(5)
      assert.is_nil(ok)
      assert.equal(E.EPIPE, code)
      assert.equal(0, a:pending())
    end)
  end)

  it("an unbatched receiver splits batch messages too", function()
    local r1 = assert(ipc.ring.create(65536))
    finally(function() r1:close() end)
    local tx = ipc.channel.new(nil, r1, { own = false, batch = true, delay = 60 })
    local rx = ipc.channel.new(r1, nil, { own = false })
    for i = 1, 50 do assert(tx:send({ i = i })) end
    assert.is_true(tx:flush(5))
    assert.is_true(rx:buffered() == false)
    assert.same({ i = 1 }, rx:recv(5))
    assert.is_true(rx:buffered())                    -- the other 49 are held by rx
    for i = 2, 50 do assert.same({ i = i }, rx:recv(5)) end
    assert.is_false(rx:buffered())
    -- a truncated batch message is malformed, not a crash
    assert(r1:send("\xC1\0\0\0\9\xB1\x85"))
    local v, err, code = rx:recv(5)
    assert.is_nil(v)
    assert.matches("malformed", err)
    assert.equal(E.EBADMSG, code)
    tx:close(); rx:close()
  end)

  it("finish flushes, then ends the stream", function()
    local ch = forked("seqpacket", { batch = true, delay = 60 }, function(c)
      for i = 1, 100 do assert(c:send(i)) end
      assert(c:finish(10))
      assert(c:pending() == 0)
      c:close()
    end)
    for i = 1, 100 do assert.equal(i, ch:recv(10)) end
    assert.same({ nil, "closed" }, { ch:recv(10) })
  end)

  it("ch:batch turns batching on, changes it and off (flushing)", function()
    local a, b = assert(ipc.channel.pair("pipe"))
    finally(function() a:close(); b:close() end)
    assert.equal(0, a:pending())
    assert.is_true(a:flush())                       -- nothing to do without batching
    assert.is_true(a:batch(1 << 16, 60))
    assert.is_true(a:send(1))
    assert.equal(1, a:pending())
    assert.is_true(a:batch(1 << 20))                -- new limits, the value still held
    assert.equal(1, a:pending())
    assert.is_true(a:batch(false))                  -- off: flushed
    assert.equal(0, a:pending())
    assert.equal(1, b:recv(5))
    assert.is_true(a:send(2))                       -- unbatched again
    assert.equal(2, b:recv(5))
    assert.is_true(b:batch(true))
    assert.is_true(b:send(3))
    b:close()                                       -- close flushes
    assert.equal(3, a:recv(5))
    assert.has_error(function() b:send(4) end, "attempt to use a closed lipc.channel")
    assert.has_error(function() b:recv() end, "attempt to use a closed lipc.channel")
    assert.has_error(function() b:flush() end, "attempt to use a closed lipc.channel")
  end)

  it("checks its options", function()
    local r, w = assert(ipc.pipe())
    finally(function() r:close(); w:close() end)
    assert.has_error(function() ipc.channel(w, { batch = -1 }) end)
    assert.has_error(function() ipc.channel(w, { batch = "big" }) end)
    assert.has_error(function() ipc.channel(w, { batch = 1.5 }) end)
    assert.has_error(function() ipc.channel(w, { batch = true, delay = -1 }) end)
    assert.has_error(function() ipc.channel(w, { batch = true, delay = 0 / 0 }) end)
    assert.has_error(function() ipc.channel.pair("pipe", { batch = {} }) end)
    local ch = ipc.channel(w, { own = false })
    assert.has_error(function() ch:batch("x") end)
    assert.has_error(function() ch:flush(-1) end)
    local bch = ipc.channel(w, { own = false, batch = true })
    assert.has_error(function() bch:send(1, -1) end)
    assert.has_error(function() bch:send(function() end) end, nil)
    assert.equal(0, bch:pending())                  -- the value that raised is not held
    ch:close(); bch:close()
  end)

  describe("socket sendmany / recvmany", function()
    it("send and receive many datagrams per call", function()
      for _, kind in ipairs { "dgram", "seqpacket" } do
        local a, b = assert(ipc.socketpair(kind))
        local list = {}
        for i = 1, 150 do list[i] = ("m"):rep(i) end
        assert.equal(150, a:sendmany(list, 5))
        local got = {}
        while #got < 150 do
          local l = assert(b:recvmany(64, 1000, 5))
          assert.is_true(#l >= 1 and #l <= 64)
          for _, s in ipairs(l) do got[#got + 1] = s end
        end
        assert.same(list, got)
        assert.same({ nil, "timeout", E.ETIMEDOUT }, { b:recvmany(64, 1000, 0) })
        assert.equal(1, a:sendmany({ "abcdef" }))
        assert.same({ "abc" }, b:recvmany(8, 3, 5))      -- cut to size bytes
        a:close()
        if kind == "seqpacket" then assert.is_nil(b:recvmany(8, 100, 5)) end   -- the end
        b:close()
      end
    end)

    it("never drops the messages after an empty one on seqpacket", function()
      local a, b = assert(ipc.socketpair("seqpacket"))
      finally(function() a:close(); b:close() end)
      assert.equal(4, a:sendmany({ "a", "", "b", "c" }, 5))
      local got = {}
      while #got < 4 do
        for _, m in ipairs(assert(b:recvmany(64, 100, 5))) do got[#got + 1] = m end
      end
      assert.same({ "a", "", "b", "c" }, got)
      a:close()
      local l = b:recvmany(64, 100, 5)
      assert.is_nil(l)
    end)

    it("returns the count sent when it stops early", function()
      local a, b = assert(ipc.socketpair("dgram"))
      finally(function() a:close(); b:close() end)
      local list = {}
      for i = 1, 5000 do list[i] = ("x"):rep(200) end
      local n, err, code = a:sendmany(list, 0)       -- the receiver's queue fills
      assert.is_true(n > 0 and n < 5000)
      assert.equal("timeout", err)
      assert.equal(E.ETIMEDOUT, code)
    end)

    it("checks its arguments", function()
      local s1, s2 = assert(ipc.socketpair("stream"))
      local d1, d2 = assert(ipc.socketpair("dgram"))
      finally(function() s1:close(); s2:close(); d1:close(); d2:close() end)
      assert.has_error(function() s1:sendmany({ "a" }) end)
      assert.has_error(function() s1:recvmany() end)
      assert.has_error(function() d1:sendmany("a") end)
      assert.has_error(function() d1:sendmany({ "a", 2 }) end)
      assert.has_error(function() d1:recvmany(0) end)
      assert.has_error(function() d1:sendmany({ "a" }, -1) end)
      assert.equal(0, d1:sendmany({}))
    end)
  end)
end)
