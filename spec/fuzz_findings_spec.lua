-- Minimised findings of the API fuzzer (fuzz/api.lua) whose fix belongs to
-- C code outside the fuzzer's work: each is written as the test the fix must
-- pass and kept pending until the fix is merged (then `pending` becomes `it`).
local ipc = require "lipc"
local helper = require "spec.helper"

describe("fuzz findings", function()
  describe("lipc.ring close", function()
    -- FUZZ_SEED=42 FUZZ_CASE=36 make fuzz (minimised: steps 5 and 21):
    --   o1 = ipc.ring.create(65536, { name = "/lipcfz.8.1", spin = 7 })
    --   ipc.ring.unlink("/lipcfz.8.1")
    --   o1:close()  --> nil, "close ring: No such file or directory", 2
    -- mq, shm and sem owners close with true once their name was removed;
    -- the ring's release (csrc/ring.c ring_release) does not ignore ENOENT.
    it("returns true when its name was already unlinked", function()
      local name = helper.name()
      local r = assert(ipc.ring.create(4096, { name = name }))
      assert.is_true(ipc.ring.unlink(name))
      local ok, err, code = r:close()
      assert.is_true(ok, tostring(err) .. " " .. tostring(code))
    end)

    -- The same path, with another owner's ring made under the name meanwhile
    -- (as the FIFO's known defect): the first owner's close must not remove
    -- the second one's name.
    it("does not remove a ring another owner made under its unlinked name", function()
      local name = helper.name()
      local first = assert(ipc.ring.create(4096, { name = name }))
      assert.is_true(ipc.ring.unlink(name))
      local second = assert(ipc.ring.create(4096, { name = name }))
      first:close()
      local again, err = ipc.ring.open(name)
      assert.truthy(again, err)
      again:close()
      second:close()
    end)
  end)

  -- FUZZ_DEBUG=1 FUZZ_SEED=9 make fuzz swaps metatables: lipc_checkclass
  -- (csrc/core.c) takes a userdata whose metatable is lipc.region's as a
  -- region even when its handle is of another class (h->cls), so region
  -- methods read a ring's struct as a region's (#o is a pointer value) and
  -- o:read(1 << 40, 16) dies of SIGSEGV.  Only the debug library can do
  -- this, but "never a crash, whatever a script passes".
  describe("a handle under another class's metatable", function()
    it("raises instead of being used as that class", function()
      local ok, code, out = helper.run_lua([[
        local ipc = require "lipc"
        local o = assert(ipc.ring.create(4096))
        debug.setmetatable(o, getmetatable(assert(ipc.shm.anonymous(64))))
        local okr, err = pcall(o.read, o, 1 << 40, 16)
        assert(not okr and type(err) == "string", "expected an argument error")
        debug.setmetatable(o, nil)   -- (its own __gc would be the region's)
      ]])
      assert.is_true(ok, ("exit %s: %s"):format(tostring(code), out))
    end)
  end)

  -- The same for every POSIX name: an owner whose name was unlinked by name
  -- (ipc.<kind>.unlink, another process, a sweep) and then made again by
  -- another owner removes the new object's name when it closes.  Seen by the
  -- fuzzer as "foreign-removed removed:replaced-posix-name" (an outside file
  -- put under /dev/shm/<name> after lipc's owner made it).
  describe("an owner's close after its name was unlinked and made again", function()
    local kinds = {
      mq = { open = function(n, c) return ipc.mq.open(n, c and { create = true } or nil) end,
             unlink = ipc.mq.unlink },
      shm = { open = function(n, c) return ipc.shm.open(n, c and { create = true, size = 64 } or nil) end,
              unlink = ipc.shm.unlink },
      sem = { open = function(n, c) return ipc.sem.open(n, c and { create = true } or nil) end,
              unlink = ipc.sem.unlink },
    }
    for kind, k in pairs(kinds) do
      -- every kind checks the name's identity before unlinking (csrc/mq.c,
      -- shm.c, sem.c)
      local test = it
      test(("leaves the new %s's name alone"):format(kind), function()
        local name = helper.name()
        local first = assert(k.open(name, true))
        assert.is_true(k.unlink(name))
        local second = assert(k.open(name, true))
        finally(function() second:close() end)
        first:close()
        local again, err = k.open(name, false)
        assert.truthy(again, err)
        again:close()
      end)
    end
  end)
  -- The mq part of the finding above, through the other ways in: the
  -- handle's own unlink, a process with no mqueue mount of its IPC
  -- namespace, and an owner whose queue's mode denies it both directions
  -- (not root: the check goes through the mqueue mount instead).
  describe("a POSIX queue whose name was unlinked and made again", function()
    it("q:unlink() reports the name gone and leaves the new queue", function()
      local name = helper.name()
      local first = assert(ipc.mq.open(name, { create = true }))
      finally(function() first:close() end)
      assert.is_true(ipc.mq.unlink(name))
      local second = assert(ipc.mq.open(name, { create = true }))
      finally(function() second:close() end)
      local ok, err, code = first:unlink()
      assert.is_nil(ok)
      assert.matches("mq_unlink", err)
      assert.equals(ipc.errno.ENOENT, code)
      local again = assert(ipc.mq.open(name))
      again:close()
    end)

    local root = helper.sh("id -u") == "0\n"
    local function script(body)
      return ([[
        local ipc = require "lipc"
        local name = %q
        local first = assert(ipc.mq.open(name, { create = true, mode = MODE }))
        assert(ipc.mq.unlink(name))
        local second = assert(ipc.mq.open(name, { create = true, mode = MODE }))
        assert(first:close())
        %s
        assert(second:close())
        local gone, _, code = ipc.mq.open(name)
        assert(gone == nil and code == ipc.errno.ENOENT, "the name is left")
        io.write("ok")
      ]]):format(helper.name(), body)
    end
    local check = [[
      local ok, err = ipc.mq.unlink(name)   -- the name is still there
      assert(ok, "first's close removed the new queue's name: " .. tostring(err))
    ]]

    it("leaves the new queue's name in an IPC namespace with no mqueue mount", function()
      if not root then return pending("needs root (unshare --ipc)") end
      local file = helper.path(".lua")
      local f = assert(io.open(file, "w"))
      f:write("local MODE = 384\n", script(check))
      f:close()
      local out = helper.sh("unshare --ipc env " .. helper.lua_cmd() .. " " .. file .. " 2>&1")
      os.remove(file)
      assert.equals("ok", out)
    end)

    it("leaves the new queue's name when the owner may neither read nor write it", function()
      if not root then return pending("needs root (setpriv to another user)") end
      local file = helper.path(".lua")
      local f = assert(io.open(file, "w"))
      f:write("local MODE = 0\n", script(check))
      f:close()
      local cmd, uncopy = helper.lua_cmd_as(65534)
      finally(uncopy)
      os.execute("chmod 644 " .. file)
      local out = helper.sh(cmd .. " " .. file .. " 2>&1")
      os.remove(file)
      assert.equals("ok", out)
    end)
  end)
  -- FUZZ_SEED=508391984 FUZZ_CASE=465 make fuzz (minimised):
  --   o4 = ipc.shm.sysv(0, 8192, {})   o4:fill(142)
  --   o5 = ipc.sem.attach(o4, 7392)    o5:post()
  --   --> "The futex facility returned an unexpected error code." and SIGABRT
  -- glibc's sem_t keeps a futex flag word after the value (private: 0 for a
  -- process-shared semaphore); a garbage one makes sem_post's and
  -- sem_clockwait's futex calls fail with an error glibc treats as fatal.
  -- attach (csrc/sem.c) takes any bytes, and the bytes may be overwritten
  -- after attach (r:fill): each call must refuse a word that is not 0.
  describe("a semaphore attached over bytes no sem_init wrote", function()
    -- post with waiters to wake (all bytes 0x8e), wait on a zero value
    for call, bytes in pairs { post = "r:fill(142)", wait = "r:fill(0) r:fill(142, 8, 4)" } do
      it(("raises or fails in %s instead of aborting the process"):format(call), function()
        local ok, code, out = helper.run_lua(([[
          local ipc = require "lipc"
          local r = assert(ipc.shm.anonymous(64))
          %s                         -- (offset 8: the flag word of glibc's sem_t)
          local s = assert(ipc.sem.attach(r, 0))
          print(pcall(function() return s:%s end))
        ]]):format(bytes, call == "wait" and "wait(0.05)" or "post()"))
        assert.is_true(ok, ("exit %s: %s"):format(tostring(code), out))
      end)
    end
  end)
  -- FUZZ_SEED=226272737 FUZZ_CASE=6 make fuzz (minimised):
  --   ipc.pool(1, function() return "x" end, { keep = hostile_index_all })
  -- where hostile_index_all's __index answers every integer index: the
  -- pool copies keep with ipairs (lua/lipc/pool.lua, start) and never ends.
  -- ipc.spawn's own keep walk is raw (csrc/proc.c keep_collect); handing
  -- the list on as one element ({ pool.prog, pool.keep }) would do.
  -- FUZZ_SEED=3329221189 FUZZ_CASE=146 make fuzz (minimised to):
  --   o5 = ipc.pool(2, function() error({}) end)   o5:map(hostile_len_huge, 0)
  -- map takes #items (__len: math.maxinteger) and builds batches of
  -- maxinteger / 8 items before it looks at its timeout (lua/lipc/pool.lua
  -- Pool:map); a raw length (rawlen) or a bound on n would do.
  describe("pool:map of a list whose __len claims math.maxinteger items", function()
    it("returns or raises in bounded time", function()
      local _, _, out = helper.run_lua([[
        local ipc = require "lipc"
        local p <close> = assert(ipc.pool(1, function(x) return x end))
        local items = setmetatable({}, { __len = function() return math.maxinteger end })
        pcall(p.map, p, items, 0)
        io.write("returned")
      ]], 20)
      assert.equals("returned", out)
    end)
  end)

  describe("ipc.pool with a keep list whose __index answers every index", function()
    it("returns or raises instead of looping forever", function()
      local _, _, out = helper.run_lua([[
        local ipc = require "lipc"
        local keep = setmetatable({}, { __index = function(_, k) return math.type(k) and true end })
        local ok, p = pcall(ipc.pool, 1, function() return 1 end, { keep = keep })
        if ok and p then p:close() end
        io.write("returned")
      ]], 20)
      assert.equals("returned", out)
    end)
  end)
  -- FUZZ_DEBUG=1 FUZZ_SEED=4005749737 FUZZ_CASE=66 (and 70) make fuzz:
  --   o2 = a lipc.pipe   debug.setmetatable(o2, getmetatable(a lipc.task))
  --   o2:cancel()  (or o2:join(0))  --> SIGSEGV
  -- csrc/task.c's check_task takes any userdata under the task metatable
  -- (luaL_checkudata) and reads the pipe's struct as a task: the same
  -- defect as lipc_checkclass had, fixed there with the class check.
  describe("a handle under lipc.task's metatable", function()
    for _, m in ipairs { "cancel", "join", "status" } do
      it(("raises in %s instead of being used as a task"):format(m), function()
        local ok, code, out = helper.run_lua(([[
          local ipc = require "lipc"
          local r, w = assert(ipc.pipe())
          local t = ipc.go(function() end)
          debug.setmetatable(r, getmetatable(t))
          local okc, err = pcall(function() return r:%s(0) end)
          assert(not okc and type(err) == "string", "expected an argument error")
          debug.setmetatable(r, getmetatable(w))
          ipc.loop(5)
        ]]):format(m))
        assert.is_true(ok, ("exit %s: %s"):format(tostring(code), out))
      end)
    end
  end)

  -- FUZZ_DEBUG=1 FUZZ_SEED=4005749737 FUZZ_CASE=229 make fuzz (child-left):
  -- a task's pool:close() whose wait for a stopping worker is cancelled
  -- raises "cancelled" after the pool marked itself closed, so a second
  -- close returns true at once and the worker (already sent SIGTERM) is
  -- never reaped (lua/lipc/pool.lua Pool:close: mark it closed after every
  -- worker is stopped, or let a second close finish the stops).
  describe("pool:close interrupted by a cancel", function()
    it("leaves no worker behind once close is called again", function()
      local ok, code, out = helper.run_lua([[
        local ipc = require "lipc"
        local pool = assert(ipc.pool(1, function(x) return x end))
        local a
        a = ipc.go(function() pool:close() end)
        ipc.go(function() a:cancel() end)
        assert(ipc.loop(10))
        assert(pool:close())
        local deadline, left = ipc.clock() + 10
        repeat   -- (a zombie stays a child until it is reaped)
          left = ipc.children()
          if #left > 0 then ipc.sleep(0.05) end
        until #left == 0 or ipc.clock() > deadline
        assert(#left == 0, "worker left: " .. table.concat(left, ","))
      ]])
      assert.is_true(ok, ("exit %s: %s"):format(tostring(code), out))
    end)
  end)
  -- FUZZ_SEED=4278194659 FUZZ_CASE=324 make fuzz (minimised):
  --   r, w = ipc.pipe{ nonblock = true }; d = r:dup(); r:setnonblock(false); d:recvv(0.01)
  -- the duplicate shares the open file description, so clearing O_NONBLOCK
  -- through r made d's reads block while d still believed the descriptor
  -- nonblocking: the read ignored its timeout (csrc/stream.c raw_read).
  describe("a duplicate whose shared description was made blocking", function()
    it("keeps its timeout on read and recvv", function()
      -- (the old code blocked for good: the chunk runs under `timeout 30`)
      local ok, _, out = helper.run_lua([[
        local ipc = require "lipc"
        local r, w = assert(ipc.pipe { nonblock = true })
        local d = assert(r:dup())
        assert(r:setnonblock(false))
        for _, call in ipairs { "read", "recvv" } do
          local t0 = ipc.clock()
          local a, b, c = d[call](d, call == "read" and 1 or 0.05, call == "read" and 0.05 or nil)
          assert(a == nil and b == "timeout" and c == ipc.errno.ETIMEDOUT, call .. ": " .. tostring(b))
          assert(ipc.clock() - t0 < 5, call .. " overran its timeout")
        end
      ]], 30)
      assert.is_true(ok, out)
    end)
  end)
end)
