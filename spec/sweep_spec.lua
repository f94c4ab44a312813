-- Generated names and ipc.sweep: a generated name records its creator (pid,
-- start time, pid namespace, boot) and random bytes; sweep removes what lipc
-- made for a process that is provably gone, and nothing else: not a file of
-- another type or of another user under a generated-looking name, not a live
-- or unreaped creator's object, not the object of a process in another pid
-- namespace.  Real processes, real files; the root-only parts say why they
-- skip.
local ipc = require "lipc"
local helper = require "spec.helper"

local E = ipc.errno
local exists = helper.exists
local is_root = helper.sh("id -u") == "0\n"

local function read_file(path)
  local f = io.open(path)
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return text
end

local function mqueue_at_dev_mqueue()
  return (read_file("/proc/self/mountinfo") or ""):find(" /dev/mqueue [^\n]* %- mqueue ") ~= nil
end

-- ipc.sweep() as a set of its "<kind>:<name>" items.
local function sweep()
  local set = {}
  for _, item in ipairs(ipc.sweep()) do set[item] = true end
  return set
end

-- One object of every family that generates names.
local function make_all()
  return {
    mq = assert(ipc.mq.open()),
    shm = assert(ipc.shm.open { size = 4096 }),
    sem = assert(ipc.sem.open { value = 0 }),
    ring = assert(ipc.ring.create(256, { name = true })),
    fifo = assert(ipc.mkfifo()),
    unix = assert(ipc.listen("unix:")),
  }
end

-- The generated name of an object of make_all (a path for fifo and unix).
local function name_of(kind, obj)
  return kind == "unix" and obj:address():match("^unix:(.*)$") or obj:name()
end

-- Where the object of that kind and name lives, and sweep's item for it.
local function where(kind, name)
  if kind == "mq" then return "/dev/mqueue" .. name, "mq:" .. name end
  if kind == "shm" or kind == "ring" then return "/dev/shm" .. name, "shm:" .. name end
  if kind == "sem" then return "/dev/shm/sem." .. name:sub(2), "sem:" .. name end
  return name, kind .. ":" .. name
end

-- Remove what may be left of the objects named in names (kind -> name).
local function remove_all(names)
  for kind, name in pairs(names) do os.remove((where(kind, name))) end
end

-- A pid that no process has now: a forked child's, after it was reaped.
local function dead_pid()
  local pid = helper.fork(function() end)
  helper.reap(pid)
  return pid
end

-- Start a child that makes one object of every family and reports their
-- names; it blocks until killed, or until the returned pipe is closed (then
-- it closes them and exits 0).
local function child_holding_all()
  local r, w = assert(ipc.pipe())
  local hold_r, hold_w = assert(ipc.pipe())
  local child = ipc.spawn(function()
    hold_w:close()
    local objs = make_all()
    local out = {}
    for kind, o in pairs(objs) do out[#out + 1] = kind .. "=" .. name_of(kind, o) end
    assert(w:write(table.concat(out, " ") .. "\n"))
    hold_r:read(1)
    for _, o in pairs(objs) do o:close() end
  end)
  w:close()
  hold_r:close()
  local line = r:read("l", 30)
  r:close()
  local names = {}
  for k, v in (line or ""):gmatch("(%w+)=(%S+)") do names[k] = v end
  return child, names, hold_w
end

describe("generated names", function()
  it("are lipc.<pid>.<start>-<pidns>-<boot>-<8 random hex digits> in every family", function()
    local objs = make_all()
    finally(function() for _, o in pairs(objs) do o:close() end end)
    local stat = assert(read_file("/proc/self/stat"))
    local fields = {}
    for f in stat:match("%) (.*)$"):gmatch("%S+") do fields[#fields + 1] = f end
    local start = math.tointeger(tonumber(fields[20]))   -- field 22; the list starts at field 3
    local pidns = math.tointeger(tonumber((helper.sh("stat -L -c %i /proc/" .. ipc.getpid() .. "/ns/pid"))))
    local boot = assert(read_file("/proc/sys/kernel/random/boot_id")):sub(1, 4)
    local creator = ("lipc.%d.%x-%x-%s-"):format(ipc.getpid(), start, pidns, boot)
    local suffix = { fifo = ".fifo", unix = ".sock" }
    for kind, o in pairs(objs) do
      local base = name_of(kind, o):match("([^/]*)$")
      assert.equal(creator, base:sub(1, #creator), kind)
      assert.matches("^%x%x%x%x%x%x%x%x" .. (suffix[kind] or ""):gsub("%.", "%%.") .. "$",
        base:sub(#creator + 1), nil, kind)
    end
  end)

  it("differ in their random part, so other users cannot guess the next one", function()
    local seen, first = {}, nil
    for _ = 1, 200 do
      local f = assert(ipc.mkfifo())
      local name = f:name()
      assert.is_true(f:close())
      local creator, rnd = name:match("/(lipc%.%d+%.[%x%-]+%-)(%x+)%.fifo$")
      assert.is_truthy(rnd, name)
      assert.equal(8, #rnd)
      first = first or creator
      assert.equal(first, creator)   -- the same process: only the random part changes
      assert.is_nil(seen[rnd], rnd)
      seen[rnd] = true
    end
  end)

  it("name a forked child as the child (its own pid and start time)", function()
    local mine = assert(ipc.shm.open { size = 4096 })
    finally(function() mine:close() end)
    local name, pid = helper.fork_holding(function() return assert(ipc.shm.open { size = 4096 }) end)
    finally(function() ipc.signal.kill(pid, "KILL"); ipc.wait(pid, 10); os.remove("/dev/shm" .. name) end)
    local my_start = mine:name():match("^/lipc%.%d+%.(%x+)%-")
    local pid_s, start = name:match("^/lipc%.(%d+)%.(%x+)%-")
    assert.equal(tostring(pid), pid_s)
    assert.is_truthy(start)
    assert.is_true(tonumber(start, 16) >= tonumber(my_start, 16))
    assert.equal(mine:name():match("^/lipc%.%d+%.%x+(%-%x+%-%x+%-)"), name:match("^/lipc%.%d+%.%x+(%-%x+%-%x+%-)"))
  end)
end)

describe("ipc.sweep", function()
  it("takes only the dry_run option", function()
    assert.has_error(function() ipc.sweep { dryrun = true } end, "bad argument #1 to 'sweep' (unknown option 'dryrun')")
    assert.has_error(function() ipc.sweep(1) end)
  end)

  it("keeps a live or unreaped creator's objects and removes them once it is reaped", function()
    local child, names, hold = child_holding_all()
    finally(function()
      child:kill("KILL"); child:wait(10); child:close()
      hold:close()
      remove_all(names)
    end)
    local mq = mqueue_at_dev_mqueue()
    if not mq then names.mq = nil end   -- (queues are listed only where mqueue is mounted)
    local removed = sweep()
    for kind, name in pairs(names) do
      local path, item = where(kind, name)
      assert.is_nil(removed[item], item)
      assert.is_true(exists(path), path)
    end
    assert.is_true(child:kill("KILL"))
    local zombie = false   -- killed but not reaped: its pid still names it
    for _ = 1, 1000 do
      zombie = helper.proc_state(child.pid) == "Z"
      if zombie then break end
      ipc.poll({}, 0.01)
    end
    assert.is_true(zombie)
    removed = sweep()
    for kind, name in pairs(names) do
      local path, item = where(kind, name)
      assert.is_nil(removed[item], item)
      assert.is_true(exists(path), path)
    end
    assert.same({ "signaled", 9 }, { child:wait(10) })
    -- a dry run lists exactly what the sweep then removes, and removes nothing
    local listed = {}
    for _, item in ipairs(ipc.sweep { dry_run = true }) do listed[item] = true end
    for kind, name in pairs(names) do
      local path, item = where(kind, name)
      assert.is_true(listed[item], item)
      assert.is_true(exists(path), path)
    end
    removed = sweep()
    assert.same(listed, removed)
    for kind, name in pairs(names) do
      local path, item = where(kind, name)
      assert.is_true(removed[item], item)
      assert.is_false(exists(path), path)
    end
    if not mq then pending("/dev/mqueue is not mounted: queues are not checked") end
  end)

  it("removes a leftover whose pid now names a process started at another time", function()
    local probe = assert(ipc.shm.open { size = 4096 })
    local name = probe:name()
    probe:close()
    local pid, start, rest = name:match("^/lipc%.(%d+)%.(%x+)(%-.*)$")
    assert.is_truthy(rest, name)
    -- what an earlier process with our pid (started before us) left
    local earlier = ("/lipc.%s.%x%s"):format(pid, tonumber(start, 16) - 1, rest)
    assert(ipc.shm.open(earlier, { create = true, size = 4096, persist = true })):close()
    finally(function() os.remove("/dev/shm" .. earlier) end)
    local mine = assert(ipc.shm.open { size = 4096 })   -- ours: our pid and start
    finally(function() mine:close() end)
    local removed = sweep()
    assert.is_true(removed["shm:" .. earlier])
    assert.is_false(exists("/dev/shm" .. earlier))
    assert.is_nil(removed["shm:" .. mine:name()])
    assert.is_true(exists("/dev/shm" .. mine:name()))
  end)

  it("removes a leftover of another boot, and never judges a pid of another pid namespace", function()
    local probe = assert(ipc.mkfifo())
    local path = probe:name()
    probe:close()
    local dir, pid, start, pidns, boot, rnd = path:match("^(.*)/lipc%.(%d+)%.(%x+)%-(%x+)%-(%x+)%-(%x+)%.fifo$")
    assert.is_truthy(rnd, path)
    local flip = boot:sub(1, 1) == "0" and "1" or "0"
    -- our own live pid, but another boot: that process is gone
    local other_boot = ("%s/lipc.%s.%s-%s-%s%s-%s.fifo"):format(dir, pid, start, pidns, flip, boot:sub(2), rnd)
    -- a pid that is free here, but of another pid namespace: it may well run there
    local dead = dead_pid()
    local other_ns = ("%s/lipc.%d.%s-%x-%s-%s.fifo"):format(dir, dead, start, tonumber(pidns, 16) + 1, boot, rnd)
    -- the same free pid in our namespace: gone
    local ours_dead = ("%s/lipc.%d.%s-%s-%s-%s.fifo"):format(dir, dead, start, pidns, boot, rnd)
    for _, p in ipairs { other_boot, other_ns, ours_dead } do
      assert(ipc.mkfifo(p, { persist = true })):close()
    end
    finally(function() for _, p in ipairs { other_boot, other_ns, ours_dead } do os.remove(p) end end)
    local removed = sweep()
    assert.is_true(removed["fifo:" .. other_boot])
    assert.is_false(exists(other_boot))
    assert.is_true(removed["fifo:" .. ours_dead])
    assert.is_false(exists(ours_dead))
    assert.is_nil(removed["fifo:" .. other_ns])
    assert.is_true(exists(other_ns))
  end)

  it("never removes what lipc did not make under a gone creator's generated names", function()
    -- a child takes generated names, removes its objects (but one) and ends
    local r, w = assert(ipc.pipe())
    local pid = helper.fork(function()
      local objs = {
        fifo = assert(ipc.mkfifo()), fifo2 = assert(ipc.mkfifo()), unix = assert(ipc.listen("unix:")),
        shm = assert(ipc.shm.open { size = 4096 }), shm2 = assert(ipc.shm.open { size = 4096 }),
        sem = assert(ipc.sem.open { value = 0 }), mq = assert(ipc.mq.open()),
      }
      local left = assert(ipc.mkfifo())   -- left behind: a real leftover sweep must remove
      local out = { "left=" .. left:name() }
      for kind, o in pairs(objs) do
        out[#out + 1] = kind .. "=" .. name_of(kind, o)
        o:close()
      end
      assert(w:write(table.concat(out, " ") .. "\n"))
    end)
    w:close()
    local n = {}
    for k, v in (r:read("l", 30) or ""):gmatch("(%w+)=(%S+)") do n[k] = v end
    r:close()
    helper.reap(pid)
    finally(function() os.remove(n.left) end)
    local precious = helper.path(".txt")
    local function plant_file(path)
      local f = assert(io.open(path, "w"))
      f:write("precious")
      f:close()
    end
    plant_file(precious)
    local planted = {   -- path -> what must still be there
      [n.unix] = "file", [n.fifo] = "file",
      ["/dev/shm" .. n.shm] = "symlink", ["/dev/shm/sem." .. n.sem:sub(2)] = "fifo",
    }
    plant_file(n.unix)        -- a regular file where a socket was
    plant_file(n.fifo)        -- a regular file where a FIFO was
    assert(os.execute("ln -s " .. helper.shquote(precious) .. " " .. helper.shquote("/dev/shm" .. n.shm)))
    assert(os.execute("mkfifo " .. helper.shquote("/dev/shm/sem." .. n.sem:sub(2))))
    if is_root then   -- the right type, but another user's (made as root, then chowned)
      assert(os.execute("mkfifo " .. helper.shquote(n.fifo2)))
      plant_file("/dev/shm" .. n.shm2)
      local other_user = { n.fifo2, "/dev/shm" .. n.shm2 }
      planted[n.fifo2], planted["/dev/shm" .. n.shm2] = "fifo", "file"
      if mqueue_at_dev_mqueue() then
        assert(ipc.mq.open(n.mq, { create = true, persist = true })):close()
        other_user[#other_user + 1] = "/dev/mqueue" .. n.mq
        planted["/dev/mqueue" .. n.mq] = "queue"
      end
      for _, p in ipairs(other_user) do assert(os.execute("chown 65534:65534 " .. helper.shquote(p))) end
    end
    finally(function()
      for p in pairs(planted) do os.remove(p) end
      os.remove(precious)
    end)
    local removed = sweep()
    assert.is_true(removed["fifo:" .. n.left])   -- sweep did look at this creator's names
    assert.is_false(exists(n.left))
    for p, what in pairs(planted) do
      assert.is_true(exists(p), p)
      if what == "file" then assert.equal("precious", read_file(p)) end
    end
    assert.equal("precious", read_file(precious))
    for item in pairs(removed) do
      for p in pairs(planted) do assert.is_nil(item:find(p:match("[^/]*$"), 1, true), item) end
    end
    if not is_root then pending("not root: other users' objects were not planted") end
  end)

  it("keeps the objects of a live process in another pid namespace whose pid is free here", function()
    if not is_root then return pending("needs root (unshare --pid)") end
    -- a pid free in our namespace for the process in the new one
    local pid_max = math.tointeger(tonumber(read_file("/proc/sys/kernel/pid_max")))
    local free = pid_max - 2
    while free > 1000 and exists("/proc/" .. free) do free = free - 1 end
    local script = helper.script([[
      local ipc = require "lipc"
      local objs = { ipc.shm.open { size = 4096 }, ipc.mkfifo(), ipc.listen("unix:"), ipc.sem.open {} }
      local names = { "shm=" .. objs[1]:name(), "fifo=" .. objs[2]:name(),
                      "unix=" .. objs[3]:address():match("^unix:(.*)$"), "sem=" .. objs[4]:name() }
      local q = ipc.mq.open()
      names[#names + 1] = "mq=" .. q:name()
      objs[#objs + 1] = q
      io.write(ipc.getpid(), " ", table.concat(names, " "), "\n")
      io.stdout:flush()
      io.read("a")   -- until the test closes our stdin
      for _, o in ipairs(objs) do o:close() end
    ]], ".lua")
    finally(function() os.remove(script) end)
    local p = assert(ipc.exec { "unshare", "--pid", "--fork", "--mount-proc", "sh", "-c",
      ("echo %d > /proc/sys/kernel/ns_last_pid && %s %s; exit $?"):format(free - 1, helper.lua_cmd(), script),
      stdin = "pipe", stdout = "pipe" })
    local names = {}
    finally(function()
      p.stdin:close(); p:wait(20); p.stdout:close(); p:close()
      remove_all(names)
    end)
    local line = p.stdout:read("l", 30)
    if line == nil then return pending("unshare --pid --fork --mount-proc does not work here") end
    local inner = math.tointeger(tonumber(line:match("^(%d+) ")))
    for k, v in line:gmatch("(%w+)=(%S+)") do names[k] = v end
    assert.equal(free, inner)
    assert.is_false(exists("/proc/" .. inner))   -- that pid is free in our namespace
    if not mqueue_at_dev_mqueue() then os.remove("/dev/mqueue" .. names.mq); names.mq = nil end
    local removed = sweep()
    for kind, name in pairs(names) do
      local path, item = where(kind, name)
      assert.is_nil(removed[item], item)
      assert.is_true(exists(path), path)
    end
    p.stdin:close()
    assert.same({ "exited", 0 }, { p:wait(20) })
    for kind, name in pairs(names) do assert.is_false(exists((where(kind, name)))) end
  end)

  it("keeps live objects when /proc is of another pid namespace (unshare --pid without a new /proc)", function()
    if not is_root then return pending("needs root (unshare --pid)") end
    local script = helper.script([[
      local ipc = require "lipc"
      local s = assert(ipc.shm.open { size = 4096 })
      local f = assert(ipc.mkfifo())
      local removed = ipc.sweep()
      local function kept(path) return os.execute("test -e '" .. path .. "'") == true end
      io.write(ipc.getpid(), " ", #removed, " ", tostring(kept("/dev/shm" .. s:name())), " ",
               tostring(kept(f:name())), "\n")
      s:close(); f:close()
    ]], ".lua")
    finally(function() os.remove(script) end)
    local out, ok = helper.sh(("unshare --pid --fork sh -c '%s %s; exit $?' 2>&1"):format(
      helper.lua_cmd():gsub("'", "'\\''"), script))
    assert.is_true(ok, out)
    local pid, n, shm, fifo = out:match("^(%d+) (%d+) (%a+) (%a+)\n$")
    assert.is_truthy(pid, out)
    assert.is_true(tonumber(pid) < 10, out)   -- it ran in the new namespace
    assert.equal("true true", shm .. " " .. fifo)
    assert.equal("0", n)
  end)

  it("sweeps queues where the mqueue file system is mounted, and mounts none where there is none", function()
    if not is_root then return pending("needs root (unshare --mount, mount -t mqueue)") end
    local name, pid = helper.fork_holding(function() return assert(ipc.mq.open()) end)
    finally(function() pcall(ipc.mq.unlink, name) end)
    assert.is_true(ipc.signal.kill(pid, "KILL"))
    assert.same({ "signaled", 9 }, { ipc.wait(pid, 10) })
    local dir = helper.path(".mq")
    assert(os.execute("mkdir " .. dir))
    finally(function() os.remove(dir) end)
    local lua = helper.script(([[
      local ipc = require "lipc"
      local function mounts()
        local n = 0
        for line in io.lines("/proc/self/mountinfo") do
          if line:find(" - mqueue ", 1, true) then n = n + 1 end
        end
        return n
      end
      local function swept()
        for _, item in ipairs(ipc.sweep()) do if item == "mq:%s" then return "removed" end end
        return "kept"
      end
      io.write(mounts(), " ", swept(), " ", mounts(), "\n")
      assert(os.execute("mount -t mqueue none %s"))
      io.write(swept(), "\n")
    ]]):format(name, dir), ".lua")
    local sh = helper.script(([[
      while grep -q ' - mqueue ' /proc/self/mountinfo; do
        umount -l "$(awk '/ - mqueue / { print $5; exit }' /proc/self/mountinfo)" || exit 9
      done
      %s %s
    ]]):format(helper.lua_cmd(), lua), ".sh")
    finally(function() os.remove(lua); os.remove(sh) end)
    local out, ok = helper.sh("unshare --mount --propagation private sh " .. sh .. " 2>&1")
    assert.is_true(ok, out)
    -- no queue listed (none mounted), none mounted by sweep; then found at dir
    assert.equal("0 kept 0\nremoved\n", out)
    local q, _, err = ipc.mq.open(name)
    assert.is_nil(q)
    assert.equal(E.ENOENT, err)
  end)
end)
