--- Channels: Lua values across processes over any lipc transport.
--
-- A channel sends and receives whole Lua values (nil, booleans, numbers,
-- strings and nested tables, as `ipc.encode` accepts) over a transport that
-- already exists:
--
-- * byte streams (pipe and FIFO ends, stream sockets, received `lipc.fd`
--   descriptors): each value is one frame, a 4-byte big-endian length and
--   the `ipc.encode` bytes;
-- * message transports (POSIX `lipc.mq`, System V `lipc.msg`, datagram and
--   seqpacket sockets, `lipc.ring`): each value is one message.
--
-- With `batch` (an option, or `ch:batch(bytes)`), sends are coalesced: many
-- values go out in one write, one ring/queue message or one sendmmsg, and
-- the receiver hands them out one by one (doc/batching.md).
--
-- `ch:recv()` returns the value, or `nil, "closed"` at the end of the
-- stream, so `local v, err = ch:recv()` tells an encoded `nil` (err is nil)
-- from the end (err == "closed") and from a failure (nil, message, errno).
-- @module lipc.channel
-- @usage
-- local a, b = ipc.channel.pair()
-- local p = ipc.spawn(function() a:close(); b:send(b:recv() * 2) end)
-- b:close(); a:send(21); print(a:recv())   --> 42

return function(ipc)
  local sunpack = string.unpack
  local sbyte = string.byte

  local STREAM_KINDS = { pipe = true, fd = true }
  local MESSAGE_KINDS = { mq = true, msg = true, ring = true }
  local READ_CHUNK = 65536
  local DEFAULT_STREAM_MAX = 0x7fffffff      -- largest frame accepted from a stream
  local DEFAULT_DGRAM_MAX = 65536            -- default largest datagram/seqpacket value
  local DEFAULT_BATCH = 65536                -- batch = true: flush at this many bytes
  local DEFAULT_DELAY = 0.001                -- a send flushes values older than this (seconds)
  local BATCH_TAG = 0xC1                     -- first byte of a message holding several frames
  local RECVMANY = 64                        -- datagrams a batched receiver takes per call
  local DECODE_AHEAD = 32                    -- frames of a stream decoded per call (fewer live tables)

  local E = ipc.errno
  local core_type = ipc.type

  -- The metatable name of a lipc object, open or closed ("lipc.pipe"), or nil.
  local function kindof(obj)
    local t = core_type(obj)
    return t and "lipc." .. t:gsub("^closed ", "")
  end

  -- A monotonic clock in seconds.
  local now = ipc.clock

  local function check_timeout(t, argn, fname)
    if t == nil then return nil end
    if math.type(t) == nil then
      error(("bad argument #%d to '%s' (timeout: number expected, got %s)"):format(argn, fname, type(t)), 3)
    end
    if t ~= t or t < 0 then
      error(("bad argument #%d to '%s' (timeout must be >= 0 and not NaN)"):format(argn, fname), 3)
    end
    return t
  end

  local encode = ipc.encode
  local raw_decode = ipc.decode
  local decodeframes = ipc.decodeframes
  ipc._methods.framebuf = getmetatable(ipc.framebuf()).__index   -- beside the other classes' methods

  local function malformed(err)
    return nil, "channel: malformed value (" .. tostring(err) .. ")", E.EBADMSG
  end

  -- Decode one message (bytes i..j of s); nil, message, EBADMSG when malformed.
  local function decode(s, i, j)
    local v, err = raw_decode(s, i, j)
    if v == nil and err ~= nil then return malformed(err) end
    return v
  end

  local Channel = {}
  Channel.__index = Channel
  Channel.__name = "lipc.channel"

  local function closed_error()
    error("attempt to use a closed lipc.channel", 3)
  end

  -- ---- byte streams: 4-byte length frames --------------------------------

  -- Finish writing s from byte off on (after a short write) before the deadline.
  local function write_rest(self, s, off, timeout, deadline)
    local w = self.wr
    while true do
      if deadline then
        timeout = deadline - now()
        if timeout <= 0 then
          self.broken = true
          return nil, "timeout", E.ETIMEDOUT
        end
      end
      local n, err, code = w:write(s:sub(off), timeout)
      if not n then
        self.broken = true
        return nil, err, code
      end
      off = off + n
      if off > #s then return true end
    end
  end

  -- One frame per value: ipc.encode(v, true) puts the 4-byte big-endian
  -- length in front, so a send is one string and (normally) one write.
  local function stream_send(self, v, timeout)
    local frame = encode(v, true)
    local size = #frame - 4
    if size > self.maxsize then
      return nil, ("channel send: value of %d bytes exceeds the frame limit %d"):format(size, self.maxsize),
        E.EMSGSIZE
    end
    if self.broken then
      return nil, "channel send: stream broken by an earlier partial write", E.EPIPE
    end
    local deadline = timeout and timeout > 0 and now() + timeout
    local put, err, code = self.wr:write(frame, timeout)
    if put == #frame then return true end
    if not put then return nil, err, code end         -- nothing was written
    return write_rest(self, frame, put + 1, timeout, deadline)   -- a short write (timeout, signal)
  end

  -- Read frames until one is complete (buf, pos: what is buffered; deadline
  -- when the wait already started).  Every complete frame buffered is
  -- decoded at once (ipc.decodeframes); the values after the first wait in
  -- self.q (self.qi next, self.qn last) for the next recv calls.
  local function stream_recv_more(self, timeout, buf, pos, deadline)
    while true do
      local avail = #buf - pos + 1
      local need = 4
      if avail >= 4 then
        local t, n, nxt, err, size = decodeframes(buf, pos, self.maxsize, DECODE_AHEAD)
        if n > 0 then
          if nxt > #buf then self.buf, self.pos = "", 1 else self.buf, self.pos = buf, nxt end
          if n > 1 then self.q, self.qi, self.qn = t, 2, n end
          return t[1]
        end
        if size then
          self.eof = true
          self.buf, self.pos = "", 1
          return nil, ("channel recv: frame of %d bytes exceeds the limit %d"):format(size, self.maxsize),
            E.EMSGSIZE
        end
        local len = sunpack(">I4", buf, pos)
        if err then                      -- a malformed frame: skip it
          local last = pos + 3 + len
          if last == #buf then self.buf, self.pos = "", 1 else self.buf, self.pos = buf, last + 1 end
          return malformed(err)
        end
        need = 4 + len
      end
      local t = timeout
      if timeout and timeout > 0 then
        if deadline then
          t = deadline - now()
          if t <= 0 then
            self.buf, self.pos = buf, pos
            return nil, "timeout", E.ETIMEDOUT
          end
        else
          deadline = now() + timeout
        end
      end
      local want = need - avail
      local data, err, code = self.rd:read(want > READ_CHUNK and want or READ_CHUNK, t)
      if data == nil then
        self.buf, self.pos = buf, pos
        if err ~= nil then return nil, err, code end
        self.eof = true
        if avail > 0 then
          return nil, "channel recv: end of stream inside a frame", E.EPROTO
        end
        return nil, "closed"
      end
      if avail == 0 then buf, pos = data, 1
      else buf, pos = buf:sub(pos) .. data, 1 end
    end
  end

  -- Receive one frame.  The common case (nothing buffered, one read brings
  -- exactly one frame) decodes straight from the string read, without copying
  -- the frame out or touching the channel's buffer.
  local function stream_recv(self, timeout)
    local q = self.q
    if q then                            -- decoded ahead
      local i = self.qi
      if i >= self.qn then self.q = nil else self.qi = i + 1 end
      return q[i]
    end
    if self.eof then return nil, "closed" end
    local buf, pos = self.buf, self.pos
    if pos <= #buf then return stream_recv_more(self, timeout, buf, pos, nil) end
    local deadline = timeout and timeout > 0 and now() + timeout or nil
    local data, err, code = self.rd:read(READ_CHUNK, timeout)
    if data == nil then
      if err ~= nil then return nil, err, code end
      self.eof = true
      return nil, "closed"
    end
    local n = #data
    if n >= 4 and n == sunpack(">I4", data) + 4 and n - 4 <= self.maxsize then
      local v, derr = raw_decode(data, 5, n)
      if v == nil and derr ~= nil then return malformed(derr) end
      return v
    end
    return stream_recv_more(self, timeout, data, 1, deadline)
  end

  -- The fast path of an unbatched stream: sendv encodes v into a C buffer
  -- and writes the frame; recvv decodes the next frame straight from the
  -- stream's read-ahead buffer (no Lua string on either side).
  local function stream_sendv(self, v, timeout)
    if self.broken then
      return nil, "channel send: stream broken by an earlier partial write", E.EPIPE
    end
    local ok, err, code, size, put = self.wr:sendv(v, timeout, self.maxsize)
    if ok then return true end
    if size then
      return nil, ("channel send: value of %d bytes exceeds the frame limit %d"):format(size, self.maxsize),
        E.EMSGSIZE
    end
    if put then self.broken = true end
    return nil, err, code
  end

  local function stream_recvv(self, timeout)
    if self.q or self.pos <= #self.buf then return stream_recv(self, timeout) end
    if self.eof then return nil, "closed" end
    local v, err, code, size, msg = self.rd:recvv(timeout, self.maxsize)
    if err == nil then return v end
    if err == "closed" then self.eof = true; return nil, "closed" end
    if err == "partial" then
      self.eof = true
      return nil, "channel recv: end of stream inside a frame", E.EPROTO
    end
    if err == "toobig" then
      self.eof = true
      return nil, ("channel recv: frame of %d bytes exceeds the limit %d"):format(size, self.maxsize), E.EMSGSIZE
    end
    if err == "malformed" then return malformed(msg) end
    return nil, err, code
  end

  -- ---- message transports: one value per message -----------------------

  local function too_big(self, n)
    return nil, ("channel send: value of %d bytes exceeds the %s message limit %d"):format(
      n, self.kind, self.maxsize), E.EMSGSIZE
  end

  local function msg_limit(self)
    if self.maxsize then return self.maxsize end
    local k, t, lim = self.kind, self.wr, nil
    if k == "lipc.mq" then
      local a = t:attr()
      lim = a and a.msgsize
    elseif k == "lipc.msg" then
      lim = ipc.limits().msgmax
      local st = t:stat()
      if st and (not lim or st.qbytes < lim) then lim = st.qbytes end
    elseif k == "lipc.ring" then
      lim = t:capacity() - 8                   -- one 8-byte record header per message
    end
    self.maxsize = lim or math.maxinteger
    return self.maxsize
  end

  -- Send one raw message (the empty string is the end-of-stream marker).
  local function raw_send(self, bytes, timeout)
    local k, t = self.kind, self.wr
    local ok, err, code
    if k == "lipc.mq" then ok, err, code = t:send(bytes, self.priority, timeout)
    elseif k == "lipc.msg" then ok, err, code = t:send(self.send_type, bytes, timeout)
    else ok, err, code = t:send(bytes, timeout) end   -- lipc.socket (dgram, seqpacket), lipc.ring
    if not ok then return nil, err, code end
    return true
  end

  local function message_send(self, v, timeout)
    local bytes = encode(v)
    if #bytes > (self.maxsize or msg_limit(self)) then return too_big(self, #bytes) end
    self.sent = true
    return raw_send(self, bytes, timeout)
  end

  -- The ring's fast path: sendv encodes v straight into the ring (no Lua
  -- string); it returns true or nil, message, errno (and the size when
  -- the encoding is longer than the limit).
  local function ring_send(self, v, timeout)
    local ok, err, code, size = self.wr:sendv(v, timeout, self.maxsize or msg_limit(self))
    if size then return too_big(self, size) end
    self.sent = true
    return ok, err, code
  end

  -- The next value of a batch message (self.mb, frames from self.mpos on;
  -- the first byte of the message is BATCH_TAG).
  local function batch_next(self)
    local buf, pos = self.mb, self.mpos
    local len = #buf
    if pos + 3 > len then
      self.mb = nil
      return malformed("batch message ends inside a frame header")
    end
    local n = sunpack(">I4", buf, pos)
    local last = pos + 3 + n
    if n == 0 or last > len then
      self.mb = nil
      return malformed("batch message ends inside a frame")
    end
    if last == len then self.mb = nil else self.mpos = last + 1 end
    return decode(buf, pos + 4, last)
  end

  -- Bytes that did not decode: a batch message (split it), or malformed.
  local function undecoded(self, data, derr)
    if sbyte(data, 1) == BATCH_TAG and #data > 1 then
      self.mb, self.mpos = data, 2
      return batch_next(self)
    end
    return malformed(derr)
  end

  -- What a message recv got: a value, the end of the stream or an error.
  local function got_message(self, data, err, code)
    if data == nil then
      if err ~= nil and type(err) == "string" then return nil, err, code end
      self.eof = true          -- a seqpacket or ring peer closed
      return nil, "closed"
    end
    if data == "" then
      self.eof = true          -- the sender's end-of-stream marker
      return nil, "closed"
    end
    if self.kind == "lipc.socket" and #data > self.maxsize then
      return nil, ("channel recv: datagram longer than the limit %d"):format(self.maxsize), E.EMSGSIZE
    end
    local v, derr = raw_decode(data)
    if v == nil and derr ~= nil then return undecoded(self, data, derr) end
    return v
  end

  local function message_recv(self, timeout)
    if self.mb then return batch_next(self) end
    if self.eof then return nil, "closed" end
    local k, t = self.kind, self.rd
    if k == "lipc.mq" then return got_message(self, t:receive(timeout))
    elseif k == "lipc.msg" then return got_message(self, t:receive(self.recv_type, timeout))
    elseif k == "lipc.ring" then return got_message(self, t:recv(timeout)) end
    return got_message(self, t:recv(self.maxsize + 1, timeout))
  end

  -- The ring's fast path: recvv decodes straight out of the ring's memory;
  -- nil, "closed" at the end marker or end of stream; a message that does
  -- not decode comes back as bytes (a batch, or malformed).
  local function ring_recv(self, timeout)
    if self.mb then return batch_next(self) end
    if self.eof then return nil, "closed" end
    local v, err, code, data = self.rd:recvv(timeout)
    if v ~= nil or err == nil then return v end
    if data then return undecoded(self, data, err) end
    if code == nil then self.eof = true; return nil, "closed" end
    return nil, err, code
  end

  -- A batched datagram/seqpacket receiver: recvmany takes every datagram
  -- that is ready (one recvmmsg), recv hands them out one by one.
  local function dgram_recv_many(self, timeout)
    if self.mb then return batch_next(self) end
    local q, i = self.rq, self.rqi
    if q then
      local data = q[i]
      if i >= #q then self.rq = nil else self.rqi = i + 1 end
      return got_message(self, data)
    end
    if self.eof then return nil, "closed" end
    local list, err, code = self.rd:recvmany(RECVMANY, self.maxsize + 1, timeout)
    if not list then return got_message(self, nil, err, code) end
    if #list > 1 then self.rq, self.rqi = list, 2 end
    return got_message(self, list[1])
  end

  -- ---- batching: several values per write / message / sendmmsg ------------
  --
  -- Streams and message transports keep the encoded frames in a C frame
  -- buffer (ipc.framebuf: no Lua string per value); datagram sockets keep
  -- a list of encodings for sendmmsg.

  -- Values held, not yet sent.
  local function held(self)
    local fb = self.fb
    if fb then return fb:count() end
    return self.bn
  end

  -- A stream: every buffered frame in one write.
  local function flush_stream(self, timeout)
    local fb = self.fb
    if self.broken then
      fb:clear()
      return nil, "channel send: stream broken by an earlier partial write", E.EPIPE
    end
    local s = fb:bytes()
    local deadline = timeout and timeout > 0 and now() + timeout
    local put, err, code = self.wr:write(s, timeout)
    if put == #s then fb:clear(); return true end
    if not put then
      if code ~= E.ETIMEDOUT then fb:clear() end   -- a timeout wrote nothing: the values wait
      return nil, err, code
    end
    fb:clear()
    return write_rest(self, s, put + 1, timeout, deadline)   -- a short write (timeout, signal)
  end

  -- A ring or queue: one message, the value alone or BATCH_TAG and the frames.
  local function flush_message(self, timeout)
    local fb = self.fb
    local s = fb:bytes(fb:count() == 1 and 6 or 1)   -- one value: skip the tag and its length
    local ok, err, code = raw_send(self, s, timeout)
    if ok then fb:clear(); return true end
    if code ~= E.ETIMEDOUT then fb:clear() end       -- a timeout sent nothing: the values wait
    return nil, err, code
  end

  -- A datagram or seqpacket socket: one datagram per value, one sendmmsg.
  local function flush_dgram(self, timeout)
    local n, q = self.bn, self.bq
    local sent, err, code
    if n == 1 then
      sent, err, code = self.wr:send(q[1], timeout)
      if sent then sent = 1 end
    else
      sent, err, code = self.wr:sendmany(q, timeout)
    end
    if sent == n then self.bq, self.bn, self.bbytes = {}, 0, 0; return true end
    if not sent then
      if code ~= E.ETIMEDOUT then self.bq, self.bn, self.bbytes = {}, 0, 0 end
      return nil, err, code
    end
    local left, bytes = {}, 0          -- the first `sent` went out; the rest waits
    for i = sent + 1, n do left[#left + 1] = q[i]; bytes = bytes + #q[i] end
    self.bq, self.bn, self.bbytes = left, #left, bytes
    return nil, err, code
  end

  -- Send what is held; true, or the flush's failure (a timeout that sent
  -- nothing keeps the values; any other failure drops them).
  local function flush(self, timeout)
    if held(self) == 0 then return true end
    return self._flush(self, timeout)
  end

  -- The failure of a value too big for the channel.
  local function oversize(self, size)
    if self.framing == "stream" then
      return nil, ("channel send: value of %d bytes exceeds the frame limit %d"):format(size, self.maxsize),
        E.EMSGSIZE
    end
    return too_big(self, size)
  end

  -- The send of a batched stream or message channel: encode now into the
  -- frame buffer (later changes to the value do not matter), flush past
  -- `batch` bytes or `delay` seconds.
  local function fb_send(self, v, timeout)
    if timeout ~= nil then check_timeout(timeout, 2, "send") end   -- also the instance's ch:send
    if self.broken then
      return nil, "channel send: stream broken by an earlier partial write", E.EPIPE
    end
    local fb = self.fb
    local bytes, prev, due = fb:put(v, self.maxsize or msg_limit(self), self.bsize, self.delay)
    if not bytes then return oversize(self, prev) end
    self.dirty, self.sent = true, true
    local cap = self.bcap
    if cap and bytes > cap and prev > 0 then   -- a message holds the batch: send the others first
      fb:unput(prev)
      local ok, err, code = self._flush(self, timeout)
      if not ok then return nil, err, code end
      prev, due = select(2, fb:put(v, nil, self.bsize, self.delay))
    end
    if due then
      local ok, err, code = self._flush(self, timeout)
      if not ok then
        if code == E.ETIMEDOUT then fb:unput(prev) end   -- this value was not sent (if still held)
        return nil, err, code
      end
    end
    return true
  end

  -- The send of a batched datagram channel: a list of encodings.
  local function dgram_send(self, v, timeout)
    local item = encode(v)
    local len = #item
    if len > self.maxsize then return too_big(self, len) end
    local n = self.bn + 1
    self.bq[n] = item
    self.bn = n
    self.dirty = true
    local bytes = self.bbytes + len
    self.bbytes = bytes
    self.sent = true
    local t = now()
    if n == 1 then self.bt0 = t end
    if bytes >= self.bsize or t - self.bt0 >= self.delay then
      local ok, err, code = flush_dgram(self, timeout)
      if not ok then
        if self.bq[n] == item and self.bn == n then   -- still held: this value was not sent
          self.bq[n] = nil
          self.bn = n - 1
          self.bbytes = bytes - len
        end
        return nil, err, code
      end
    end
    return true
  end

  -- ch:recv of a batched channel (an instance field, one call less than
  -- Channel.recv): values decoded ahead first, then batched_recv.
  local batched_recv
  local function recv_method(self, timeout)
    if timeout ~= nil then check_timeout(timeout, 1, "recv") end
    local q = self.q
    if q and not self.dirty then
      local i = self.qi
      if i >= self.qn then self.q = nil else self.qi = i + 1 end
      return q[i]
    end
    return batched_recv(self, timeout)
  end

  -- The recv of a batched channel: flush first (a request goes out before
  -- its response is awaited), with the same deadline.
  function batched_recv(self, timeout)
    if self.dirty then
      local deadline = timeout and timeout > 0 and now() + timeout
      local ok, err, code = flush(self, timeout)
      if not ok then return nil, err, code end
      self.dirty = false
      if deadline then timeout = math.max(0, deadline - now()) end
    end
    return self._recv1(self, timeout)
  end

  -- ---- the channel object -------------------------------------------------

  --- Send one value.
  -- @param value any value `ipc.encode` accepts
  -- @tparam[opt] number timeout seconds (nil blocks)
  -- @treturn boolean true, or nil, message, errno (EPIPE when the peer is gone,
  -- ETIMEDOUT, EMSGSIZE when the value is too big for the transport)
  function Channel:send(value, timeout)
    if timeout ~= nil then check_timeout(timeout, 2, "send") end
    local f = self._send                  -- nil once closed, or without a write side
    if not f then
      if self.closed then closed_error() end
      error("this lipc.channel has no write side", 2)
    end
    return f(self, value, timeout)
  end

  --- Receive one value.
  -- @tparam[opt] number timeout seconds (nil blocks)
  -- @return the value (nil for an encoded nil), or nil, "closed" at the end of
  -- the stream, or nil, message, errno ("timeout" and ETIMEDOUT on timeout)
  function Channel:recv(timeout)
    if timeout ~= nil then check_timeout(timeout, 1, "recv") end
    local f = self._recv                  -- nil once closed, or without a read side
    if not f then
      if self.closed then closed_error() end
      error("this lipc.channel has no read side", 2)
    end
    return f(self, timeout)
  end

  --- Send the values a batched channel holds (see `batch`); true on a
  -- channel without batching or with nothing held.
  -- @tparam[opt] number timeout seconds (nil blocks)
  -- @treturn boolean true, or nil, message, errno (a timeout keeps the
  -- values for the next flush; any other failure drops them)
  function Channel:flush(timeout)
    if self.closed then closed_error() end
    if timeout ~= nil then check_timeout(timeout, 1, "flush") end
    if not self._flush or not self.wr then return true end
    return flush(self, timeout)
  end

  --- The number of values sent but not yet flushed (0 without batching).
  function Channel:pending()
    if self.closed then closed_error() end
    if not self._flush then return 0 end
    return held(self)
  end

  -- Turn batching on (bytes > 0), change it, or off (false: flushes first).
  local function set_batch(self, bytes, delay)
    if not bytes then
      if self.bsize and self.wr and held(self) > 0 then
        local ok, err, code = flush(self)
        if not ok then return nil, err, code end
      end
      if self._recv1 then self._recv = self._recv1 == stream_recv and self.rd.recvv and stream_recvv or self._recv1 end
      if self._send1 then self._send = self._send1 end
      self.send, self.recv = nil, nil             -- the class's methods again
      self.fb, self.bq, self.bn, self.bbytes, self._recv1, self._send1, self._flush = nil, nil, nil, nil, nil, nil,
        nil
      self.bsize, self.bcap = nil, nil
      return true
    end
    self.bsize = bytes
    self.delay = delay or self.delay or DEFAULT_DELAY
    if self._flush then return true end      -- already batching: new limits only
    self.bt0 = 0
    local dgram = self.framing == "message" and self.kind == "lipc.socket"
    local send
    if self.framing == "stream" then
      self._flush, self.fb, send = flush_stream, ipc.framebuf(), fb_send
    elseif dgram then
      self._flush, self.bq, self.bn, self.bbytes, send = flush_dgram, {}, 0, 0, dgram_send
    else
      self._flush, self.fb, send = flush_message, ipc.framebuf(string.char(BATCH_TAG)), fb_send
    end
    if self.wr and self._send then
      self._send1 = self._send
      self._send = send
      if send == fb_send then self.send = fb_send end   -- ch:send straight to it
      if self.framing == "message" and not dgram then self.bcap = msg_limit(self) end
    end
    if self.rd and self._recv then
      -- a batched stream decodes ahead (decodeframes), not one recvv a value
      self._recv1 = dgram and dgram_recv_many or self._recv == stream_recvv and stream_recv or self._recv
      self._recv = batched_recv
      self.recv = recv_method
    end
    return true
  end

  -- Check a batch size (true: the default) and a delay; bytes or false.
  local function check_batch(bytes, delay, argn, fname, level)
    if bytes == true then bytes = DEFAULT_BATCH
    elseif bytes == 0 or bytes == nil then bytes = false
    elseif bytes ~= false and (math.type(bytes) ~= "integer" or bytes < 0 or bytes > 0x7fffffff) then
      error(("bad argument #%d to '%s' (batch: bytes 0..2^31-1, true or false expected, got %s)"):format(
        argn, fname, tostring(bytes)), level + 1)
    end
    if delay ~= nil and (type(delay) ~= "number" or delay ~= delay or delay < 0) then
      error(("bad argument #%d to '%s' (delay: seconds >= 0 expected, got %s)"):format(
        argn, fname, tostring(delay)), level + 1)
    end
    return bytes, delay
  end

  --- Coalesce sends: values wait in the channel until `bytes` of them are
  -- buffered, the oldest is `delay` seconds old at the next send (default
  -- 0.001), or `flush`, `recv`, `finish` or `close` is called; then they go
  -- out in one write (streams), one message (rings, queues) or one
  -- sendmmsg (datagram and seqpacket sockets, whose receiver then takes up
  -- to 64 ready datagrams per recvmmsg). `false` or 0 flushes and turns it off.
  -- @tparam integer|boolean bytes batch size (true: 65536)
  -- @tparam[opt] number delay seconds
  -- @treturn boolean true (or the failure of the flush that turning off makes)
  function Channel:batch(bytes, delay)
    if self.closed then closed_error() end
    bytes, delay = check_batch(bytes, delay, 1, "batch", 2)
    return set_batch(self, bytes, delay)
  end

  --- Iterate over received values until the end of the stream.
  -- Raises on a failure or timeout; stops at "closed". A nil value ends a
  -- generic `for` loop, so send sentinels other than nil through it.
  -- @tparam[opt] number timeout per value
  function Channel:values(timeout)
    return function()
      local v, err, code = self:recv(timeout)
      if v == nil and err and err ~= "closed" then
        error(("channel recv: %s (%s)"):format(err, tostring(code)), 2)
      end
      return v
    end
  end

  --- Tell the peer no more values come: closes the write side of a stream
  -- (shutdown("w") on a socket), sends the end-of-stream marker (an empty
  -- message) on a message transport.
  -- @tparam[opt] number timeout
  -- @treturn boolean true or nil, message, errno
  function Channel:finish(timeout)
    if self.closed then closed_error() end
    check_timeout(timeout, 1, "finish")
    if self.finished or not self.wr then return true end
    if self._flush and held(self) > 0 then
      local deadline = timeout and timeout > 0 and now() + timeout
      local ok, err, code = flush(self, timeout)
      if not ok then return nil, err, code end
      if deadline then timeout = math.max(0, deadline - now()) end
    end
    self.finished = true
    if self.framing == "stream" then
      if self.wr == self.rd then
        if core_type(self.wr) == "socket" then return self.wr:shutdown("w") end
        return true
      end
      return self.wr:close()
    end
    return raw_send(self, "", timeout)
  end

  --- The descriptor to poll for readability (of the read side).
  -- Note: frames already buffered by recv are not seen by poll; see `buffered`.
  function Channel:fileno()
    if self.closed then closed_error() end
    return self.rd:fileno()
  end

  --- True when a complete value waits in the channel's own read buffer.
  function Channel:buffered()
    if self.mb or self.rq or self.q then return true end   -- values held from one read / message
    if self.framing ~= "stream" then return false end
    local avail = #self.buf - self.pos + 1
    if avail == 0 and self.rd and self.rd.framed then return self.rd:framed() end
    return avail >= 4 and avail >= 4 + sunpack(">I4", self.buf, self.pos)
  end

  --- The underlying transports: read side, write side.
  function Channel:transport()
    return self.rd, self.wr
  end

  --- Whether close() will send the end-of-stream marker (message transports).
  function Channel:owes_eof()
    if self.closed or self.finished or not self.wr then return false end
    if self._flush and held(self) > 0 then return true end   -- held values: finish flushes them
    if self.framing ~= "message" then return false end
    local eof = self.eof_on_close
    if eof == nil then eof = self.sent end
    return eof and true or false
  end

  --- Close the channel (idempotent). Values a batched channel still holds
  -- are flushed first (waiting at most `linger` seconds). A message channel that sent a value
  -- (or was made with `eof = true`) first sends the end-of-stream marker,
  -- waiting at most `linger` seconds (default 1) for room. The transports are closed when the channel owns them (the
  -- default; `own = false` leaves them open).
  -- @treturn boolean true
  function Channel:close()
    if self.closed then return true end
    if self._flush and self.wr and not self.finished and held(self) > 0 then
      pcall(flush, self, self.linger)        -- buffered values go out first (at most linger seconds)
    end
    if self:owes_eof() then
      self.finished = true
      pcall(raw_send, self, "", self.linger)
    end
    self.closed = true
    self._send, self._recv = nil, nil
    self.send, self.recv = nil, nil       -- a batched channel's own: the class's raise now
    local group = self.group
    if group then
      group.n = group.n - 1           -- a pair sharing its transports: the last close closes them
      if group.n > 0 then self.buf = ""; return true end
    end
    if self.own then
      if self.rd then pcall(self.rd.close, self.rd) end
      if self.wr and self.wr ~= self.rd then pcall(self.wr.close, self.wr) end
    end
    self.buf = ""
    return true
  end
  Channel.__close = Channel.close

  function Channel:__tostring()
    if self.closed then return "lipc.channel(closed)" end
    return ("lipc.channel(%s over %s)"):format(self.framing, self.kind)
  end

  local OPTIONS = { read = true, write = true, own = true, maxsize = true, priority = true,
                    send_type = true, recv_type = true, type = true, eof = true, linger = true,
                    batch = true, delay = true }

  -- Raise the option error of the options at argument argn of ipc.channel,
  -- level levels above the caller of opterror.
  local function opterror(argn, key, why, level)
    error(("bad argument #%d to 'channel' (option '%s': %s)"):format(argn, key, why), level + 1)
  end

  local function checkint(v, what, lo, hi, argn)
    if math.type(v) ~= "integer" or v < lo or v > hi then
      opterror(argn, what, ("integer in %d..%d expected, got %s"):format(lo, hi, tostring(v)), 4)
    end
    return v
  end

  -- Build a channel from a read transport, a write transport and options
  -- (given as argument argn of ipc.channel).
  local function new(rd, wr, opts, argn)
    opts = opts or {}
    argn = argn or 1
    for k in next, opts do
      if not OPTIONS[k] then
        error(("bad argument #%d to 'channel' (unknown option '%s')"):format(argn, tostring(k)), 3)
      end
    end
    local objs = {}
    if rd ~= nil then objs[#objs + 1] = rd end
    if wr ~= nil and wr ~= rd then objs[#objs + 1] = wr end
    if #objs == 0 then error("bad argument #1 to 'channel' (lipc transport expected, got no value)", 3) end
    local framing, kind
    for i, o in ipairs(objs) do
      local k = kindof(o)
      if not k then
        error(("bad argument #%d to 'channel' (lipc transport expected, got %s)"):format(i,
          kindof(o) or type(o)), 3)
      end
      local f
      local short = k:sub(6)
      if STREAM_KINDS[short] then f = "stream"
      elseif MESSAGE_KINDS[short] then f = "message"
      elseif short == "socket" then f = o:type() == "stream" and "stream" or "message"
      else
        error(("bad argument #%d to 'channel' (%s cannot carry a channel)"):format(i, k), 3)
      end
      if framing and f ~= framing then
        error("bad argument #2 to 'channel' (read and write sides must both be streams or both message transports)", 3)
      end
      framing, kind = f, k
    end
    if wr ~= nil and rd ~= nil and wr ~= rd and kindof(wr) ~= kindof(rd) and framing == "message" then
      error("bad argument #2 to 'channel' (read and write sides must be the same kind of transport)", 3)
    end
    for _, o in ipairs(objs) do
      if core_type(o):find("^closed ") then error("attempt to use a closed " .. kindof(o), 3) end
    end
    local self = setmetatable({
      rd = rd, wr = wr, kind = kind, framing = framing, own = opts.own ~= false,
      buf = "", pos = 1, eof = false, sent = false, eof_on_close = opts.eof, linger = 1,
    }, Channel)
    if opts.linger ~= nil then
      local l = opts.linger
      if type(l) ~= "number" or l ~= l or l < 0 then opterror(argn, "linger", "seconds >= 0 expected", 3) end
      self.linger = l
    end
    if opts.maxsize ~= nil then self.maxsize = checkint(opts.maxsize, "maxsize", 1, 0x7fffffff, argn) end
    if framing == "stream" then
      self.maxsize = self.maxsize or DEFAULT_STREAM_MAX
      self._send, self._recv = stream_send, stream_recv
      if wr ~= nil and wr.sendv then self._send = stream_sendv end
      if rd ~= nil and rd.recvv then self._recv = stream_recvv end
    else
      if kind == "lipc.ring" then self._send, self._recv = ring_send, ring_recv
      else self._send, self._recv = message_send, message_recv end
      if kind == "lipc.socket" then self.maxsize = self.maxsize or DEFAULT_DGRAM_MAX end
      self.priority = opts.priority ~= nil and checkint(opts.priority, "priority", 0, 32767, argn) or 0
      local t = opts.type ~= nil and checkint(opts.type, "type", 1, math.maxinteger, argn) or nil
      self.send_type = opts.send_type ~= nil and checkint(opts.send_type, "send_type", 1, math.maxinteger, argn)
        or t or 1
      self.recv_type = opts.recv_type ~= nil and checkint(opts.recv_type, "recv_type", 0, math.maxinteger, argn)
        or t or 0
    end
    if wr == nil then self._send = nil end
    if rd == nil then self._recv = nil end
    local bytes, delay = check_batch(opts.batch, opts.delay, argn, "channel", 3)
    if bytes then set_batch(self, bytes, delay) end
    return self
  end

  --- Make a channel.
  -- `ipc.channel(t)` over one bidirectional transport (a socket, a FIFO opened
  -- "rw", a queue, a ring), `ipc.channel(r, w)` over a read end and a write end,
  -- `ipc.channel{read = r, write = w, ...}` with options:
  -- `own` (default true: ch:close() closes the transports), `maxsize` (largest
  -- encoded value, bytes), `priority` (mq send priority), `type`, `send_type`,
  -- `recv_type` (SysV message types; default send 1, receive any), `eof`
  -- (send the end-of-stream marker on close: default when something was sent),
  -- `linger` (seconds close waits to send that marker; default 1),
  -- `batch` (coalesce sends: bytes, or true for 65536; see `Channel:batch`),
  -- `delay` (seconds a batched value may wait for more; default 0.001).
  -- A lone pipe end is read-only or write-only as its direction says.
  -- @function ipc.channel
  local function channel(_, a, b, c)
    if type(a) == "table" and getmetatable(a) == nil then
      local opts = {}
      for k, v in next, a do opts[k] = v end
      local r, w = opts.read, opts.write
      opts.read, opts.write = nil, nil
      if r == nil and w == nil then
        error("bad argument #1 to 'channel' (table needs a 'read' or 'write' transport)", 2)
      end
      return new(r, w, opts, 1)
    end
    local opts, argn
    if type(b) == "table" and getmetatable(b) == nil then opts, b, argn = b, nil, 2
    elseif c ~= nil then
      if type(c) ~= "table" then error("bad argument #3 to 'channel' (options table expected)", 2) end
      opts, argn = c, 3
    end
    if b == nil then
      local t = core_type(a)
      if t == "pipe" or t == "fd" then
        local dir = a:direction()         -- a pipe end is one-way
        if dir == "write" then return new(nil, a, opts, argn) end
        if dir == "read" then return new(a, nil, opts, argn) end
      end
      return new(a, a, opts, argn)
    end
    return new(a, b, opts, argn)
  end

  local pair_count = 0

  -- Two channels over the same transports: closing one leaves them open
  -- for the other; the second close (in the same process) closes them.
  local function shared(a, b)
    local group = { n = 2 }
    a.group, b.group = group, group
    return a, b
  end

  --- A connected pair of channels for a parent and its child: a, b.
  -- After fork, each process closes the end it does not use.
  -- @tparam[opt="stream"] string kind "stream" (socketpair), "dgram",
  -- "seqpacket", "pipe" (two pipes), "ring" (two rings), "mq" (two
  -- POSIX queues, unlinked at once), "msg" (one private SysV queue; call
  -- a:close() / b:close() in the creating process to remove it... see doc)
  -- @tparam[opt] table opts { size = ring bytes, spin = a ring's spin (polls
  -- or "auto"), maxmsg =, msgsize = (mq) }
  -- @return channel a, channel b (or nil, message, errno)
  local function pair(kind, opts)
    if kind ~= nil and type(kind) ~= "string" then
      error(("bad argument #1 to 'pair' (string expected, got %s)"):format(type(kind)), 2)
    end
    if opts ~= nil and type(opts) ~= "table" then
      error(("bad argument #2 to 'pair' (table expected, got %s)"):format(type(opts)), 2)
    end
    opts = opts or {}
    kind = kind or "pipe"   -- the fastest byte stream between two processes
    local bytes, delay = check_batch(opts.batch, opts.delay, 2, "pair", 2)
    local co = bytes and { batch = bytes, delay = delay } or nil   -- both channels' options
    if kind == "stream" or kind == "socketpair" or kind == "dgram" or kind == "seqpacket" then
      local a, b, code = ipc.socketpair(kind == "socketpair" and "stream" or kind)
      if not a then return nil, b, code end
      return new(a, a, co), new(b, b, co)
    elseif kind == "pipe" then
      local r1, w1, c1 = ipc.pipe()
      if not r1 then return nil, w1, c1 end
      local r2, w2, c2 = ipc.pipe()
      if not r2 then r1:close(); w1:close(); return nil, w2, c2 end
      return new(r1, w2, co), new(r2, w1, co)
    elseif kind == "ring" then
      local size = opts.size or 65536
      local ro = opts.spin ~= nil and { spin = opts.spin } or nil   -- ring.create checks it
      local r1, e1, c1 = ipc.ring.create(size, ro)
      if not r1 then return nil, e1, c1 end
      local r2, e2, c2 = ipc.ring.create(size, ro)
      if not r2 then r1:close(); return nil, e2, c2 end
      return shared(new(r2, r1, co), new(r1, r2, co))
    elseif kind == "mq" then
      local qs = {}
      for i = 1, 2 do
        local q, err, code
        for _ = 1, 100 do
          pair_count = pair_count + 1
          local name = ("/lipc.%d.%d"):format(ipc.getpid(), 900000 + pair_count)
          q, err, code = ipc.mq.open(name, { create = true, excl = true,
            maxmsg = opts.maxmsg or 10, msgsize = opts.msgsize or 8192 })
          if q or code ~= E.EEXIST then break end
        end
        if not q then
          if qs[1] then qs[1]:close() end
          return nil, err, code
        end
        q:unlink()              -- nothing left behind: the descriptors stay valid
        qs[i] = q
      end
      return shared(new(qs[2], qs[1], co), new(qs[1], qs[2], co))
    elseif kind == "msg" then
      local m, err, code = ipc.msg.get(ipc.IPC_PRIVATE, { create = true })
      if not m then return nil, err, code end
      return shared(new(m, m, { send_type = 1, recv_type = 2, batch = bytes, delay = delay }),
        new(m, m, { send_type = 2, recv_type = 1, batch = bytes, delay = delay }))
    end
    error(("bad argument #1 to 'pair' (unknown kind '%s')"):format(kind), 2)
  end

  ipc.channel = setmetatable({ pair = pair, new = function(r, w, o) return new(r, w, o) end,
                               Channel = Channel, _now = now },
                             { __call = channel })

  --- Like `io.type`: "pipe", "closed pipe", "channel", "closed channel"...
  -- (the kind after "lipc."), or nil for anything that is not a lipc object.
  -- @param x any value
  -- @treturn ?string
  -- @function ipc.type
  function ipc.type(x)
    if rawequal(getmetatable(x), Channel) then
      return x.closed and "closed channel" or "channel"
    end
    return core_type(x)
  end
end
