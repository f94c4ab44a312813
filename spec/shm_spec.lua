--- Specs for ipc.shm.* and ipc.mmap (lipc.region), with real processes.
local ipc = require "lipc"
local helper = require "spec.helper"

local join = helper.reap
local exists = helper.exists

-- Is the SysV shm id listed by the kernel?
local function shmid_exists(id) return helper.sysv_exists("shm", id) end

local function readfile(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

describe("ipc.shm", function()
  describe("anonymous", function()
    it("is shared with a forked child", function()
      local r <close> = assert(ipc.shm.anonymous(4096))
      assert.equal(4096, #r)
      assert.equal("lipc.region(anonymous, 4096 bytes)", tostring(r))
      r:write(0, "from parent")
      join(helper.fork(function()
        assert(r:read(0, 11) == "from parent")
        r:write(100, "from child")
      end))
      assert.equal("from child", r:read(100, 10))
      assert.is_nil(r:name())
      assert.is_nil(r:id())
    end)
  end)

  describe("open (POSIX)", function()
    it("creates, is shared by name with a child, and the owner's close removes it", function()
      local name = helper.name()
      local r = assert(ipc.shm.open(name, { create = true, size = 8192 }))
      assert.equal(8192, #r)
      assert.equal(name, r:name())
      assert.equal("lipc.region(" .. name .. ", 8192 bytes)", tostring(r))
      assert.is_true(exists("/dev/shm" .. name))
      join(helper.fork(function()
        local c = assert(ipc.shm.open(name))
        assert(#c == 8192, "takes the existing size")
        c:write(10, "child wrote this")
        c:close()
      end))
      assert.equal("child wrote this", r:read(10, 16))
      assert.is_true(exists("/dev/shm" .. name), "a child's close never removes")
      assert.is_true(r:close())
      assert.is_true(r:close())
      assert.is_false(exists("/dev/shm" .. name))
    end)

    it("reserves the space: a segment bigger than /dev/shm fails with ENOSPC at creation", function()
      local free = assert(ipc.limits().shm_free)
      local name = helper.name()
      local r, msg, err = ipc.shm.open(name, { create = true, size = free + 1024 * 1024, persist = true })
      assert.is_nil(r)
      assert.equal(ipc.errno.ENOSPC, err)
      assert.matches("posix_fallocate", msg)
      assert.matches("shm_free", msg)
      assert.is_false(exists("/dev/shm" .. name))
    end)

    it("on a full /dev/shm, segment and named ring creation name posix_fallocate and shm_free", function()
      -- a private 1 MiB tmpfs over /dev/shm, in a mount namespace of a child
      if not helper.sh("id -u"):match("^0\n") or not helper.sh("command -v unshare") :match("unshare") then
        print("skipped: a private tmpfs on /dev/shm needs root and unshare(1)")
        pending("needs root and unshare(1)")
        return
      end
      local script = helper.script([[
local ipc = require "lipc"
local function show(label, ok, msg, err) print(label, tostring(ok), msg, err) end
show("shm", ipc.shm.open(nil, { create = true, size = 4 * 1024 * 1024 }))
show("ring", ipc.ring.create(4 * 1024 * 1024, { name = "/lipcspec.full.ring" }))
print("free", ipc.limits().shm_free)
]], ".lua")
      local out, ok = helper.sh(("unshare --mount --propagation private sh -c %s 2>&1"):format(helper.shquote(
        "mount -t tmpfs -o size=1m tmpfs /dev/shm && " .. helper.lua_cmd() .. " " .. script)))
      os.remove(script)
      assert.is_true(ok, out)
      local free = out:match("free\t(%d+)")
      assert.is_truthy(free, out)
      local enospc = "\t" .. ipc.errno.ENOSPC .. "\n"
      assert.matches("shm\tnil\tposix_fallocate /lipc%.[%w.%-]+ %(size 4194304 bytes; shm_free: " .. free ..
                     " bytes left in /dev/shm%): No space left on device" .. enospc, out)
      assert.matches("ring\tnil\tposix_fallocate /lipcspec%.full%.ring %(size %d+ bytes; shm_free: " .. free ..
                     " bytes left in /dev/shm%): No space left on device" .. enospc, out)
    end)

    it("opening an existing segment takes its size and never resizes", function()
      local name = helper.name()
      local r <close> = assert(ipc.shm.open(name, { create = true, size = 5000 })) -- luacheck: ignore
      local o <close> = assert(ipc.shm.open(name, { create = true, size = 100 }))
      assert.equal(5000, #o)
      local nr, msg, err = ipc.shm.open(name, { size = 6000 })
      assert.is_nil(nr)
      assert.equal(ipc.errno.EINVAL, err)
      assert.matches("5000 bytes", msg)
      local f = assert(io.open("/dev/shm" .. name))
      assert.equal(5000, f:seek("end"))
      f:close()
    end)

    it("create + excl fails on an existing name; a missing name without create is ENOENT", function()
      local name = helper.name()
      local r <close> = assert(ipc.shm.open(name, { create = true, size = 64 })) -- luacheck: ignore
      local x, _, err = ipc.shm.open(name, { create = true, excl = true, size = 64 })
      assert.is_nil(x)
      assert.equal(ipc.errno.EEXIST, err)
      local y, msg, err2 = ipc.shm.open(helper.name())
      assert.is_nil(y)
      assert.equal(ipc.errno.ENOENT, err2)
      assert.matches("shm_open", msg)
    end)

    it("uses mode 0600 by default and the given mode otherwise", function()
      local a, b = helper.name(), helper.name()
      local ra <close> = assert(ipc.shm.open(a, { create = true, size = 64 })) -- luacheck: ignore
      local rb <close> = assert(ipc.shm.open(b, { create = true, size = 64, mode = "640" })) -- luacheck: ignore
      assert.equal(helper.masked(tonumber("600", 8)), helper.sh("stat -c %a /dev/shm" .. a):match("%d+"))
      assert.equal(helper.masked(tonumber("640", 8)), helper.sh("stat -c %a /dev/shm" .. b):match("%d+"))
    end)

    it("generates a name when none is given and removes it on close", function()
      local r = assert(ipc.shm.open { size = 4096 })
      local name = r:name()
      assert.matches("^/lipc%." .. ipc.getpid() .. "%.[%x%-]+$", name)
      assert.is_true(exists("/dev/shm" .. name))
      r:close()
      assert.is_false(exists("/dev/shm" .. name))
      local r2 = assert(ipc.shm.open(nil, { create = true, size = 16 }))
      assert.matches("^/lipc%.", r2:name())
      r2:close()
    end)

    it("persist keeps the name; unlink removes it explicitly", function()
      local name = helper.name()
      local r = assert(ipc.shm.open(name, { create = true, size = 64, persist = true }))
      r:close()
      assert.is_true(exists("/dev/shm" .. name))
      local o = assert(ipc.shm.open(name))
      assert.is_true(o:unlink())
      assert.is_false(exists("/dev/shm" .. name))
      o:write(0, "still mapped")
      assert.equal("still mapped", o:read(0, 12))
      o:close()
      assert.is_nil((ipc.shm.unlink(name)))
    end)

    it("a forked child that collects an inherited owner handle never removes the name", function()
      local name = helper.name()
      local r <close> = assert(ipc.shm.open(name, { create = true, size = 64 }))
      join(helper.fork(function()
        r:close()
        collectgarbage()
      end))
      assert.is_true(exists("/dev/shm" .. name))
    end)

    it("readonly maps without write access: writes raise", function()
      local name = helper.name()
      local w <close> = assert(ipc.shm.open(name, { create = true, size = 64 }))
      w:write(0, "abc")
      local r <close> = assert(ipc.shm.open(name, { readonly = true }))
      assert.equal("abc", r:read(0, 3))
      assert.matches("read%-only", tostring(r))
      assert.has_error(function() r:write(0, "x") end)
      assert.has_error(function() r:fill(0) end)
      assert.has_error(function() r:pack(0, "i4", 1) end)
      assert.has_error(function() r:add(0, 1) end)
      assert.has_error(function() r:store(0, 1) end)
      assert.has_error(function() r:cas(0, 1, 2) end)
      assert.has_error(function() ipc.sem.new(r, 0, 1) end)
      assert.equal(string.unpack("<i8", "abc\0\0\0\0\0"), r:load(0))
    end)

    it("skips a generated name held by a leftover of a process with our pid", function()
      join(helper.fork(function()
        -- what a counter once made the first generated name: never used now
        local stale = "/lipc." .. ipc.getpid() .. ".1"
        local old = assert(ipc.shm.open(stale, { create = true, size = 4096 }))
        local r = assert(ipc.shm.open { size = 4096 })
        local name = r:name()
        assert(name ~= stale and name:match("^/lipc%." .. ipc.getpid() .. "%.[%x%-]+$"), name)
        assert(r:close() and old:close())
        assert(not exists("/dev/shm" .. stale) and not exists("/dev/shm" .. name))
      end))
    end)

    it("interoperates with a Python peer mapping /dev/shm/<name>", function()
      local name = helper.name()
      local r <close> = assert(ipc.shm.open(name, { create = true, size = 4096 }))
      r:write(0, "lua says hi")
      local out, ok = helper.python(([[
import mmap, os
fd = os.open("/dev/shm%s", os.O_RDWR)
m = mmap.mmap(fd, 4096)
print(m[0:11].decode())
m[100:115] = b"python says hi!"
m.close(); os.close(fd)
]]):format(name))
      assert.is_true(ok)
      assert.equal("lua says hi\n", out)
      assert.equal("python says hi!", r:read(100, 15))
    end)
  end)

  describe("sysv", function()
    it("IPC_PRIVATE is shared with a forked child and removed by the owner", function()
      local r = assert(ipc.shm.sysv(ipc.IPC_PRIVATE or 0, 10000))
      assert.equal(10000, #r)
      local id = r:id()
      assert.equal("lipc.region(shmid=" .. id .. ", 10000 bytes)", tostring(r))
      join(helper.fork(function() r:write(0, "sysv child") end))
      assert.equal("sysv child", r:read(0, 10))
      assert.is_true(shmid_exists(id))
      r:close()
      assert.is_false(shmid_exists(id))
    end)

    it("a keyed segment is found by key with its size, persist and remove work", function()
      local key = 0x4c000000 + ipc.getpid() % 65536
      local r = assert(ipc.shm.sysv(key, 6000, { create = true, excl = true, persist = true }))
      local o = assert(ipc.shm.sysv(key))
      assert.equal(6000, #o)
      assert.equal(r:id(), o:id())
      local x, _, err = ipc.shm.sysv(key, 6000, { create = true, excl = true })
      assert.is_nil(x)
      assert.equal(ipc.errno.EEXIST, err)
      r:close()
      local id = o:id()
      assert.is_true(shmid_exists(id))
      assert.is_true(o:remove())
      o:close()
      assert.is_false(shmid_exists(id))
      local y, _, err2 = ipc.shm.sysv(key)
      assert.is_nil(y)
      assert.equal(ipc.errno.ENOENT, err2)
    end)

    it("accepts a key written unsigned (0xfff0xxxx) as the same 32-bit key", function()
      local key = 0xfff00000 + ipc.getpid() % 65536
      local r <close> = assert(ipc.shm.sysv(key, 64, { create = true }))
      local o <close> = assert(ipc.shm.sysv(key - 0x100000000))
      assert.equal(r:id(), o:id())
      local line = helper.sh("ipcs -m | grep -i " .. ("0x%08x"):format(key))
      assert.matches(tostring(r:id()), line)
    end)

    it("interoperates with Python sysv_ipc", function()
      local key = 0x4c100000 + ipc.getpid() % 65536
      local r <close> = assert(ipc.shm.sysv(key, 4096, { create = true }))
      r:write(0, "hello python")
      local out, ok = helper.python(([[
import sysv_ipc
m = sysv_ipc.SharedMemory(%d)
print(m.read(12, 0).decode())
m.write(b"hello lua", 200)
m.detach()
]]):format(key))
      assert.is_true(ok)
      assert.equal("hello python\n", out)
      assert.equal("hello lua", r:read(200, 9))
    end)
  end)

  describe("mmap (files)", function()
    it("maps a real file read-write; the file holds what was written", function()
      local path = helper.path(".dat")
      local f = assert(io.open(path, "wb"))
      f:write(string.rep("-", 100))
      f:close()
      local r = assert(ipc.mmap(path, { mode = "rw" }))
      assert.equal(100, #r)
      assert.equal(path, r:name())
      r:write(10, "written via mmap")
      join(helper.fork(function() r:write(50, "child") end))
      assert.is_true(r:sync())
      r:close()
      assert.equal(string.rep("-", 10) .. "written via mmap" .. string.rep("-", 24) .. "child" ..
                   string.rep("-", 45), readfile(path))
      os.remove(path)
    end)

    it("maps read-only by default, honours page-aligned offsets and refuses past the end", function()
      local path = helper.path(".dat")
      local f = assert(io.open(path, "wb"))
      f:write(string.rep("a", 4096) .. string.rep("b", 4096))
      f:close()
      local r <close> = assert(ipc.mmap(path))
      assert.has_error(function() r:write(0, "x") end)
      local part <close> = assert(ipc.mmap(path, { offset = 4096 }))
      assert.equal(4096, #part)
      assert.equal("bbbb", part:read(0, 4))
      local small <close> = assert(ipc.mmap(path, { offset = 4096, size = 10 }))
      assert.equal(10, #small)
      assert.has_error(function() ipc.mmap(path, { offset = 100 }) end, "bad argument #2 to 'mmap' " ..
        "(option 'offset': a multiple of the page size (4096) expected)")
      local x, _, err = ipc.mmap(path, { size = 9000 })
      assert.is_nil(x)
      assert.equal(ipc.errno.EINVAL, err)
      local y, _, err2 = ipc.mmap(path .. ".missing")
      assert.is_nil(y)
      assert.equal(ipc.errno.ENOENT, err2)
      os.remove(path)
    end)
    it("refuses what cannot be mapped (FIFO, directory, socket, character device) without blocking", function()
      -- open() of a FIFO without a writer blocked forever, and Ctrl-C
      -- could not end it (the open restarts)
      local fifo = helper.path(".fifo")
      local made = assert(ipc.mkfifo(fifo))
      local srv = assert(ipc.listen("unix:" .. helper.path(".sock")))
      local sock = srv:address():sub(#"unix:" + 1)
      local pid = helper.fork(function()
        for _, case in ipairs { { fifo, "a FIFO" }, { helper.tmpdir(), "a directory" }, { sock, "a socket" },
                                { "/dev/null", "a character device" }, { "/dev/zero", "a character device" } } do
          for _, mode in ipairs { "r", "rw" } do
            local r, msg, err = ipc.mmap(case[1], { mode = mode, size = 4096 })
            assert(r == nil, case[1])
            if case[2] ~= "a socket" or err == ipc.errno.ENODEV then   -- open of a socket is ENXIO
              assert(err == ipc.errno.ENODEV or (case[2] == "a directory" and err == ipc.errno.EISDIR),
                     case[1] .. ": " .. tostring(msg))
              assert(err ~= ipc.errno.ENODEV or msg:find("mmap " .. case[1] .. " (" .. case[2], 1, true), msg)
            end
          end
        end
        assert(#ipc.descriptors() > 0)
      end)
      local how, code = ipc.wait(pid, 20)
      if not how then ipc.signal.kill(pid, "KILL"); ipc.wait(pid, 10) end
      assert.same({ "exited", 0 }, { how, code })
      srv:close()
      made:close()    -- removes the FIFO
    end)
  end)

  describe("region access", function()
    local r
    before_each(function() r = assert(ipc.shm.anonymous(4096)) end)
    after_each(function() r:close() end)

    it("packs more values than a C function's stack holds", function()
      -- pack used to copy its arguments onto a stack sized for them once,
      -- overflowing it (memory corruption) with many thousands of values
      local ok, _, out = helper.run_lua([[
        local ipc = require "lipc"
        local r <close> = ipc.shm.anonymous(1 << 20)
        local big = {}
        for i = 1, 300000 do big[i] = 1 end
        local function grow() local x = { table.unpack(big) } return #x end
        grow()  -- a big stack, so that the call below does not grow it again
        local t = {}
        for i = 1, 200000 do t[i] = i % 100 end
        print(r:pack(0, ("b"):rep(200000), table.unpack(t)))
        print(r:unpack(199998, "b"))
      ]])
      assert.is_true(ok, out)
      assert.equal("200000\n99\t199999\n", out)
    end)

    it("reads, writes and fills within bounds", function()
      assert.equal(4096, #r:read())
      assert.equal(string.rep("\0", 8), r:read(0, 8))
      assert.equal(5, r:write(0, "hello"))
      assert.equal(4096, r:write(4091, "world"))
      assert.equal("world", r:read(4091))
      assert.equal("", r:read(4096, 0))
      assert.equal(30, r:fill(0x41, 10, 20))
      assert.equal(string.rep("A", 20), r:read(10, 20))
      r:fill(0)
      assert.equal(string.rep("\0", 4096), r:read(0, 4096))
    end)

    it("raises on anything outside the mapping, overflow included", function()
      assert.has_error(function() r:read(4097, 0) end)
      assert.has_error(function() r:read(4090, 7) end)
      assert.has_error(function() r:read(-1, 1) end)
      assert.has_error(function() r:read(1, math.maxinteger) end)
      assert.has_error(function() r:read(math.maxinteger, 1) end)
      assert.has_error(function() r:write(4095, "ab") end)
      assert.has_error(function() r:write(math.maxinteger, "a") end)
      assert.has_error(function() r:fill(1, 4000, 97) end)
      assert.has_error(function() r:fill(256) end)
      assert.has_error(function() r:pack(4094, "i4", 1) end)
      assert.has_error(function() r:unpack(4094, "i4") end)
      assert.has_error(function() r:unpack(4097, "b") end)
      assert.has_error(function() r:load(4096) end)
      assert.has_error(function() r:add(4, 1) end, "bad argument #1 to 'add' (offset 4 is not a multiple of 8)")
      assert.has_error(function() r:add(4096, 1) end)
      assert.has_error(function() r:read(1.5, 1) end)
    end)

    it("packs and unpacks in place with string.pack formats", function()
      assert.equal(4 + 4 + 8 + 6, r:pack(4, "<i4 d z", -7, 2.5, "hello"))
      local a, b, c, nxt = r:unpack(4, "<i4 d z")
      assert.same({ -7, 2.5, "hello", 22 }, { a, b, c, nxt })
      local big = string.rep("x", 3000) .. string.rep("y", 1000)
      assert.equal(50 + 2 + 4000, r:pack(50, "<s2", big))
      local s, after = r:unpack(50, "<s2")
      assert.equal(big, s)
      assert.equal(4052, after)
      assert.has_error(function() r:pack(0, "i17", 1) end)
      assert.has_error(function() r:pack(0, "i4", "x") end)
      r:fill(0x41)
      assert.has_error(function() r:unpack(0, "z") end)  -- no terminator before the end
      assert.has_error(function() r:unpack(0, "i4", 9) end)
    end)

    it("does 64-bit atomics: add, load, store, cas", function()
      assert.equal(5, r:add(8, 5))
      assert.equal(2, r:add(8, -3))
      assert.equal(2, r:load(8))
      assert.is_true(r:store(16, math.maxinteger))
      assert.equal(math.mininteger, r:add(16, 1))
      assert.is_true(r:cas(8, 2, 40))
      local ok, cur = r:cas(8, 2, 50)
      assert.is_false(ok)
      assert.equal(40, cur)
      assert.equal(40, select(1, string.unpack("<i8", r:read(8, 8))))
    end)

    it("counts exactly with r:add from 4 processes x 10000", function()
      local pids = {}
      for i = 1, 4 do
        pids[i] = helper.fork(function()
          for _ = 1, 10000 do r:add(0, 1) end
        end)
      end
      for i = 1, 4 do join(pids[i]) end
      assert.equal(40000, r:load(0))
    end)

    it("defers the unmap while a semaphore placed inside lives", function()
      local name = helper.name()
      local p = assert(ipc.shm.open(name, { create = true, size = 4096 }))
      local s = assert(ipc.sem.new(p, 64, 0))
      local function mapped()
        local n = 0
        for line in io.lines("/proc/self/maps") do
          if line:find("/dev/shm" .. name, 1, true) then n = n + 1 end
        end
        return n
      end
      assert.is_true(mapped() > 0)
      p:close()
      assert.is_false(exists("/dev/shm" .. name))
      assert.has_error(function() p:read(0, 1) end, "attempt to use a closed lipc.region")
      assert.is_true(s:post())
      assert.equal(1, s:value())
      assert.is_true(mapped() > 0)
      s:close()
      assert.equal(0, mapped())
    end)
  end)

  describe("audit", function()
    it("lists regions and the objects inside them while they are open", function()
      local function find(obj)
        for _, item in ipairs(ipc.audit()) do
          if item.object == obj then return item end
        end
      end
      local name = helper.name()
      local r = assert(ipc.shm.open(name, { create = true, size = 4096 }))
      local s = assert(ipc.sem.new(r, 64, 0))
      local mu = assert(ipc.mutex.new(r, 128))
      local a = find(r)
      assert.same({ "region", name, true, 4096 }, { a.kind, a.name, a.owner, a.size })
      assert.same({ "sem", 64 }, { find(s).kind, find(s).offset })
      assert.same({ "mutex", 128 }, { find(mu).kind, find(mu).offset })
      r:close(); s:close(); mu:close()
      assert.is_nil(find(r))
      assert.is_nil(find(s))
      assert.is_nil(find(mu))
    end)
  end)

  describe("sweep", function()
    it("removes a generated segment left by a SIGKILLed child", function()
      local name, pid = helper.fork_holding(function() return assert(ipc.shm.open { size = 4096 }) end)
      assert.is_string(name)
      assert.matches("^/lipc%." .. pid .. "%.", name)
      assert.is_true(exists("/dev/shm" .. name))
      assert.is_true(os.execute("kill -KILL " .. pid))
      local how, sig = ipc.wait(pid, 20)
      assert.equal("signaled", how)
      assert.equal(9, sig)
      local removed = ipc.sweep()
      local found = false
      for _, item in ipairs(removed) do found = found or item == "shm:" .. name end
      assert.is_true(found)
      assert.is_false(exists("/dev/shm" .. name))
    end)
  end)

  describe("bad input", function()
    it("rejects wrong types, ranges, hostile names and unknown options", function()
      assert.has_error(function() ipc.shm.open("noslash", { create = true, size = 1 }) end)
      assert.has_error(function() ipc.shm.open("/a/b", { create = true, size = 1 }) end)
      assert.has_error(function() ipc.shm.open("/a\0b", { create = true, size = 1 }) end)
      assert.has_error(function() ipc.shm.open("/" .. string.rep("x", 300), { create = true, size = 1 }) end)
      assert.has_error(function() ipc.shm.open("/..", { create = true, size = 1 }) end)
      assert.has_error(function() ipc.shm.open(42) end)
      assert.has_error(function() ipc.shm.open("/x", { create = true }) end, "bad argument #2 to 'shm.open' " ..
        "(option 'size': > 0 required with create = true)")
      assert.has_error(function() ipc.shm.open("/x", { create = true, size = 0 }) end)
      assert.has_error(function() ipc.shm.open("/x", { create = true, size = -1 }) end)
      assert.has_error(function() ipc.shm.open("/x", { create = true, size = 1.5 }) end)
      assert.has_error(function() ipc.shm.open("/x", { create = true, size = 1, sise = 2 }) end,
        "bad argument #2 to 'shm.open' (unknown option 'sise')")
      assert.has_error(function() ipc.shm.open("/x", { create = "yes", size = 1 }) end)
      assert.has_error(function() ipc.shm.open("/x", { create = true, size = 1, mode = "999" }) end)
      assert.has_error(function() ipc.shm.open("/x", { create = true, size = 1, readonly = true }) end)
      assert.has_error(function() ipc.shm.open("/x", "opts") end)
      assert.has_error(function() ipc.shm.unlink("bad") end)
      assert.has_error(function() ipc.shm.anonymous() end)
      assert.has_error(function() ipc.shm.anonymous(0) end)
      assert.has_error(function() ipc.shm.anonymous(-5) end)
      assert.has_error(function() ipc.shm.anonymous("big") end)
      local huge, _, enomem = ipc.shm.anonymous(math.maxinteger)
      assert.is_nil(huge)
      assert.equal(ipc.errno.ENOMEM, enomem)
      assert.has_error(function() ipc.shm.sysv("key", 10) end)
      assert.has_error(function() ipc.shm.sysv(2 ^ 40, 10) end)
      assert.has_error(function() ipc.shm.sysv(0, 0) end)
      assert.has_error(function() ipc.shm.sysv(0, -1) end)
      assert.has_error(function() ipc.shm.sysv(0, 10, { create = false }) end)
      assert.has_error(function() ipc.shm.sysv(0, 10, { bogus = 1 }) end)
      assert.has_error(function() ipc.mmap() end)
      assert.has_error(function() ipc.mmap("") end)
      assert.has_error(function() ipc.mmap("/etc/hostname", { mode = "w" }) end)
      assert.has_error(function() ipc.mmap("/etc/hostname", { size = 0 }) end)
      assert.has_error(function() ipc.mmap("/etc/hostname", { offset = -4096 }) end)
      assert.has_error(function() ipc.mmap("/etc/hostname", { extra = true }) end)
      local x, _, err = ipc.mmap("/dev/null")
      assert.is_nil(x)
      assert.equal(ipc.errno.ENODEV, err)
    end)

    it("rejects bad method arguments and use after close", function()
      local r = assert(ipc.shm.anonymous(64))
      assert.has_error(function() r:read("a", 1) end)
      assert.has_error(function() r:read(0, -1) end)
      assert.has_error(function() r:write(0) end)
      assert.has_error(function() r:write(0, {}) end)
      assert.has_error(function() r:fill("x") end)
      assert.has_error(function() r:fill(-1) end)
      assert.has_error(function() r:pack(0) end)
      assert.has_error(function() r:unpack(0) end)
      assert.has_error(function() r:add(0, 1.5) end)
      assert.has_error(function() r:add(0, "1x") end)
      assert.has_error(function() r:cas(0, 1) end)
      assert.has_error(function() r:store(0) end)
      assert.has_error(function() r:unlink() end)
      assert.has_error(function() r:remove() end)
      assert.has_error(function() r.read(io.stdout, 0, 1) end)
      r:close()
      assert.equal("lipc.region(closed)", tostring(r))
      for _, m in ipairs { "read", "write", "fill", "pack", "unpack", "add", "load", "store", "cas", "sync",
                           "name", "id" } do
        assert.has_error(function() r[m](r, 0, "x") end, "attempt to use a closed lipc.region")
      end
      assert.has_error(function() return #r end, "attempt to use a closed lipc.region")
    end)
  end)
end)
