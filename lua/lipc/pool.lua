--- Worker pools: `ipc.pool(n, fn)` runs `fn(item)` for many items in `n`
-- worker processes (`ipc.spawn`), in batches.
--
-- Each worker talks to the pool over its own stream socketpair: a batch of
-- items goes out as one frame (a 4-byte big-endian length and the
-- `ipc.encode` bytes), its results come back as one frame. The pool keeps
-- up to two batches in flight per worker and never blocks on a socket: it
-- writes what fits, reads what is there, and waits for all workers at once
-- (`ipc.poller`, the workers' process handles included, so a death is seen
-- at once). Batches hold `ceil(#items / (4 * n))` items, as Python's
-- `multiprocessing.Pool.map` chooses by default.
--
-- A worker marks the item it is running in a shared anonymous mapping (one
-- 8-byte slot per worker; the loop over a batch is C, ipc._pool_run, so the
-- mark is a plain store, not a call per item). When a worker dies, that item gets the error
-- `"worker died: signaled 9"` (or `"exited 3"`), the other items of its
-- batches are run again by the other workers, and a new worker takes its
-- place.
-- @module lipc.pool

return function(ipc)
  local E = ipc.errno
  local now = ipc.clock
  local encode, decode = ipc.encode, ipc.decode
  local spack, sunpack = string.pack, string.unpack
  local tmove = table.move
  local ceil = math.ceil

  local READ = 1 << 20     -- bytes per read of results
  local INFLIGHT = 2       -- batches queued per worker

  local Pool = {}
  Pool.__index = Pool
  Pool.__name = "lipc.pool"
  ipc._methods.pool = Pool   -- beside the C classes' method tables

  local function frame(bytes) return spack(">I4", #bytes) .. bytes end

  -- ---- the worker side ----------------------------------------------------

  -- Read one frame from the socket (blocking); nil at end of stream.
  local function reader(sock)
    local buf, pos = "", 1
    return function()
      while true do
        local have = #buf - pos + 1
        if have >= 4 then
          local len = sunpack(">I4", buf, pos)
          if have >= 4 + len then
            local v = decode(buf, pos + 4, pos + 3 + len)
            pos = pos + 4 + len
            return v
          end
        end
        local data = sock:read(READ)
        if not data then return nil end
        buf, pos = buf:sub(pos) .. data, 1
      end
    end
  end

  -- Encode the results of a batch; results that cannot be encoded become errors.
  local function encode_results(out, errs, n)
    local ok, bytes = pcall(encode, { out, errs })
    if ok then return bytes end
    errs = errs or {}
    for j = 1, n do
      local fine, why = pcall(encode, out[j])
      if not fine then
        out[j] = nil
        errs[j] = "result cannot be encoded: " .. tostring(why)
      end
    end
    return encode({ out, errs })
  end

  -- The body of a worker: batches in, results out, until end of stream.
  -- pool is given without keep: then the pool's ends of every worker are closed here.
  local function worker_main(prog, slot, sock, fn, pool)
    if pool then
      for _, w in pairs(pool.workers) do
        if w.sock then w.sock:close() end
      end
    end
    local off = (slot - 1) * 8
    local next_batch = reader(sock)
    local pool_run = ipc._pool_run
    local items, n, out, errs, j
    while true do
      items = next_batch()
      if items == nil then return 0 end
      n, out, errs, j = items.n, {}, nil, 1
      -- fn(items[j]) for every j, marking j in the progress slot first (C):
      -- one pcall per batch (and one per error), not one per item
      while j <= n do
        local ok, err = pcall(pool_run, fn, items, out, j, n, prog, off)
        if ok then break end
        j = prog:load(off)            -- the item that raised
        errs = errs or {}
        errs[j] = tostring(err)
        j = j + 1
      end
      prog:store(off, 0)
      assert(sock:write(frame(encode_results(out, errs, n))))
    end
  end

  -- ---- the pool side -------------------------------------------------------

  -- Start the worker of slot (a fresh socketpair, process and registration).
  local function start(pool, slot)
    local w = { inflight = {}, inbuf = "", inpos = 1, out = nil, outpos = 1 }
    pool.workers[slot] = w
    local mine, theirs = assert(ipc.socketpair("stream"))
    w.sock = mine                 -- before the fork: the worker closes the pool's ends
    pool.prog:store((slot - 1) * 8, 0)
    local p, err, no
    if pool.keep then
      -- the user's list goes on whole: spawn walks it raw and bounded (a
      -- hostile __index must not make this loop)
      p, err, no = ipc.spawn { worker_main, pool.prog, slot, theirs, pool.fn, keep = { pool.prog, pool.keep } }
    else
      p, err, no = ipc.spawn(worker_main, pool.prog, slot, theirs, pool.fn, pool)
    end
    theirs:close()
    if not p then
      mine:close()
      pool.workers[slot] = nil
      return nil, err, no
    end
    w.proc, w.events = p, "r"
    pool.byobj[mine], pool.byobj[p] = w, w
    w.slot = slot
    assert(pool.poller:add(mine, "r"))
    assert(pool.poller:add(p, "r"))
    return w
  end

  -- Stop the worker w (with sig unless it exited), unregister it and reap it.
  local function stop(pool, w, sig)
    if not w.stopping then   -- a stop whose wait was cancelled is finished by the next one
      w.stopping = true
      pool.byobj[w.sock], pool.byobj[w.proc] = nil, nil
      pool.poller:remove(w.sock)
      pool.poller:remove(w.proc)
      w.sock:close()
      if not w.proc:status() then w.proc:kill(sig) end
    end
    local how, code = w.proc:wait()
    w.proc:close()
    pool.workers[w.slot] = nil
    return how, code
  end

  --- Start `n` worker processes, each running `fn(item)` for the items it is given.
  -- Workers are forked children (`ipc.spawn`) that inherit the script as it
  -- is, except the pool's sockets of the other workers. With `opts.keep`,
  -- every other lipc descriptor is closed in the workers (as `ipc.spawn{ keep = }`).
  -- @tparam integer n number of workers (1 to 1024)
  -- @tparam function fn called as `fn(item)` in a worker; its result must be an `ipc.encode` value
  -- @tparam[opt] table opts `{ keep = { objects } }`
  -- @treturn lipc.pool the pool: `pool:map(items, timeout)`, `pool:close()`
  -- @return or `nil, message, errno` when a worker cannot start
  -- @usage local pool <close> = ipc.pool(4, function(x) return x * x end)
  -- local squares = pool:map({ 1, 2, 3 })
  function ipc.pool(n, fn, opts)
    if math.type(n) ~= "integer" or n < 1 or n > 1024 then
      error("bad argument #1 to 'pool' (number of workers 1 to 1024 expected)", 2)
    end
    if type(fn) ~= "function" then
      error("bad argument #2 to 'pool' (function expected, got " .. type(fn) .. ")", 2)
    end
    if opts ~= nil and type(opts) ~= "table" then
      error("bad argument #3 to 'pool' (table expected, got " .. type(opts) .. ")", 2)
    end
    local keep
    for k, v in pairs(opts or {}) do
      if k ~= "keep" then error("bad argument #3 to 'pool' (unknown option '" .. tostring(k) .. "')", 2) end
      if type(v) ~= "table" then error("bad argument #3 to 'pool' (option 'keep': table expected)", 2) end
      keep = v
    end
    local prog, err, no = ipc.shm.anonymous(8 * n)
    if not prog then return nil, err, no end
    local poller
    poller, err, no = ipc.poller()
    if not poller then prog:close(); return nil, err, no end
    local pool = setmetatable({ n = n, fn = fn, keep = keep, prog = prog, poller = poller,
                                workers = {}, byobj = {} }, Pool)
    for slot = 1, n do
      local w
      w, err, no = start(pool, slot)
      if not w then pool:close(); return nil, err, no end
    end
    return pool
  end

  -- Take the results frame of w's first batch into results/errors.
  local function finish_batch(pool, w, value, results, errors)
    local b = table.remove(w.inflight, 1)
    local out, errs = value[1], value[2]
    local first = b.first
    tmove(out, 1, b.last - first + 1, first, results)
    if errs then
      for j, msg in pairs(errs) do errors[first + j - 1] = msg end
    end
    pool.left = pool.left - (b.last - first + 1)
  end

  -- Read what w's socket holds; complete frames finish batches. false at end of stream.
  local function collect(pool, w, results, errors)
    while true do
      local data, err, no = w.sock:read(READ, 0)
      if data == nil and err == nil then return false end     -- end of stream: the worker is gone
      if not data then
        if no == E.ETIMEDOUT then return true end
        return false
      end
      local buf = w.inpos > 1 and w.inbuf:sub(w.inpos) .. data or w.inbuf .. data
      local pos = 1
      while #buf - pos + 1 >= 4 do
        local len = sunpack(">I4", buf, pos)
        if #buf - pos + 1 < 4 + len then break end
        local v, derr = decode(buf, pos + 4, pos + 3 + len)
        if v == nil then error("pool: malformed results from a worker: " .. tostring(derr)) end
        finish_batch(pool, w, v, results, errors)
        pos = pos + 4 + len
      end
      w.inbuf, w.inpos = buf, pos
      if #data < READ then return true end
    end
  end

  -- A worker died: blame the item it was running, run its other items again, replace it.
  local function died(pool, w, errors)
    local slot = w.slot
    local j = pool.prog:load((slot - 1) * 8)
    local how, code = stop(pool, w, "KILL")
    local msg = ("worker died: %s %s"):format(tostring(how), tostring(code))
    for k = #w.inflight, 1, -1 do
      local b = w.inflight[k]
      if k == 1 and j >= 1 and j <= b.last - b.first + 1 then
        local bad = b.first + j - 1
        errors[bad] = msg
        pool.left = pool.left - 1
        if bad < b.last then table.insert(pool.queue, 1, { first = bad + 1, last = b.last }) end
        if bad > b.first then table.insert(pool.queue, 1, { first = b.first, last = bad - 1 }) end
      else
        table.insert(pool.queue, 1, b)
      end
    end
    local nw, err = start(pool, slot)
    if not nw then error("pool: cannot replace a dead worker: " .. tostring(err)) end
  end

  -- Write what fits of w's pending frames. false when the worker is gone.
  local function flush(pool, w)
    while w.out do
      local n, _, no = w.sock:write(w.outpos == 1 and w.out or w.out:sub(w.outpos), 0)
      if not n then
        if no == E.ETIMEDOUT then break end
        return false
      end
      w.outpos = w.outpos + n
      if w.outpos > #w.out then w.out, w.outpos = nil, 1 end
    end
    local want = w.out and "rw" or "r"
    if w.events ~= want then
      pool.poller:modify(w.sock, want)
      w.events = want
    end
    return true
  end

  -- Give each worker batches up to INFLIGHT; each frame is written at once
  -- (what fits), so a worker starts while the next batch is encoded.
  local function dispatch(pool, items)
    local queue = pool.queue
    for slot = 1, pool.n do
      local w = pool.workers[slot]
      while w and #queue > 0 and #w.inflight < INFLIGHT do
        local b = table.remove(queue, 1)
        local n = b.last - b.first + 1
        local slice = tmove(items, b.first, b.last, 1, { n = n })
        local ok, bytes = pcall(encode, slice)
        if not ok then
          for i = b.first, b.last do
            local fine, why = pcall(encode, items[i])
            if not fine then error(("bad argument #1 to 'map' (item %d: %s)"):format(i, tostring(why)), 3) end
          end
          error(bytes, 3)
        end
        w.inflight[#w.inflight + 1] = b
        local f = frame(bytes)
        if w.out then w.out = w.out:sub(w.outpos) .. f; w.outpos = 1 else w.out = f end
        if not flush(pool, w) then return w end      -- gone: the caller handles it
      end
    end
  end

  --- Run `fn(item)` for every item of the list `items`, spread over the workers.
  -- @tparam table items a list of `ipc.encode` values (1 to `#items`)
  -- @tparam[opt] number timeout seconds for the whole map
  -- @treturn table `results[i] = fn(items[i])` (nil where it raised or its worker died)
  -- @treturn ?table nil, or `{ [i] = message }` for the items that raised or whose worker died
  -- @return or `nil, "timeout", ETIMEDOUT`: the workers still busy are killed and replaced
  function Pool:map(items, timeout)
    if getmetatable(self) ~= Pool then error("bad argument #1 to 'map' (lipc.pool expected)", 2) end
    if self.closed or self.closing then error("attempt to use a closed lipc.pool", 2) end
    if type(items) ~= "table" then error("bad argument #1 to 'map' (table expected, got " .. type(items) .. ")", 2) end
    if timeout ~= nil and (math.type(timeout) == nil or timeout ~= timeout or timeout < 0) then
      error("bad argument #2 to 'map' (timeout must be a number >= 0)", 2)
    end
    local n = rawlen(items)   -- raw: a hostile __len must not size the work
    local results, errors = {}, {}
    if n == 0 then return results, nil end
    local size = ceil(n / (4 * self.n))
    local queue = {}
    for first = 1, n, size do queue[#queue + 1] = { first = first, last = math.min(n, first + size - 1) } end
    self.queue, self.left = queue, n
    local deadline = timeout and now() + timeout
    local poller, byobj = self.poller, self.byobj
    while self.left > 0 do
      local dead = dispatch(self, items)
      if dead then died(self, dead, errors) end
      for slot = 1, self.n do
        local w = self.workers[slot]
        if w.out and not flush(self, w) then died(self, w, errors) end
      end
      local left = deadline and deadline - now()
      if left and left <= 0 then
        for slot = 1, self.n do
          local w = self.workers[slot]
          if #w.inflight > 0 then
            stop(self, w, "KILL")
            start(self, slot)
          end
        end
        self.queue = nil
        return nil, "timeout", E.ETIMEDOUT
      end
      local ready = {}
      local f, ps = poller:wait(left)
      if type(f) ~= "function" then error("pool: " .. tostring(ps)) end
      for obj in f, ps do
        local w = byobj[obj]
        if w then ready[w] = true end
      end
      for w in pairs(ready) do
        if self.workers[w.slot] == w then
          local alive = collect(self, w, results, errors)
          if not alive or w.proc:status() then died(self, w, errors) end
        end
      end
    end
    self.queue = nil
    return results, next(errors) ~= nil and errors or nil
  end

  --- Stop the workers (SIGTERM: they are idle between maps) and reap them; idempotent.
  -- @treturn boolean true
  function Pool:close()
    if self.closed then return true end
    self.closing = true   -- no map from here on; closed once every worker is stopped
    for slot = 1, self.n do
      local w = self.workers[slot]
      -- idle: a worker waits for its next batch; a close cancelled while it
      -- waited is finished by the next one
      if w then stop(self, w, "TERM") end
    end
    self.closed = true
    self.poller:close()
    self.prog:close()
    return true
  end
  Pool.__close = Pool.close
  Pool.__gc = function(self)
    if self.closed then return end
    self.closed = true
    for _, w in pairs(self.workers) do
      w.sock:close()
      if not w.proc:status() then w.proc:kill("KILL") end
    end
  end

  function Pool:__tostring()
    if self.closed then return "lipc.pool(closed)" end
    return ("lipc.pool(%d workers)"):format(self.n)
  end
end
