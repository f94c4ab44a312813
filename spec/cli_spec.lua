-- The lipc command (bin/lipc): ls lists the objects a test made with the
-- right owner and liveness (a dead creator flagged), sweep --dry-run removes
-- nothing, limits matches ipc.limits(), bench --quick prints every
-- transport in under a minute, exit codes 0/1/2 without tracebacks.
local ipc = require "lipc"
local helper = require "spec.helper"

local LIPC = "bin/lipc"

-- Run the command with arguments (a shell string) under `env` (so env may
-- hold assignments and a wrapper such as "timeout 120"); returns exit code,
-- stdout, stderr.
local function lipc(args, env)
  local out, err = helper.path(".out"), helper.path(".err")
  local cmd = ("env %s %s %s %s >%s 2>%s; echo $?"):format(env or "", helper.lua_cmd(), LIPC, args, out, err)
  local code = tonumber((helper.sh(cmd)))
  local function slurp(p)
    local f = io.open(p)
    local s = f and f:read("a") or ""
    if f then f:close() end
    os.remove(p)
    return s
  end
  return code, slurp(out), slurp(err)
end

-- A small JSON decoder (independent of the command's encoder).
local function decode(s)
  local pos = 1
  local value
  local function ws() pos = s:find("[^ \t\r\n]", pos) or #s + 1 end
  local function str()
    local out = {}
    pos = pos + 1
    while true do
      local c = s:sub(pos, pos)
      if c == '"' then pos = pos + 1 return table.concat(out) end
      if c == "\\" then
        local e = s:sub(pos + 1, pos + 1)
        if e == "u" then
          out[#out + 1] = utf8.char(tonumber(s:sub(pos + 2, pos + 5), 16))
          pos = pos + 6
        else
          out[#out + 1] = ({ n = "\n", t = "\t", r = "\r", b = "\b", f = "\f" })[e] or e
          pos = pos + 2
        end
      else
        out[#out + 1] = c
        pos = pos + 1
      end
    end
  end
  function value()
    ws()
    local c = s:sub(pos, pos)
    if c == "{" then
      local t = {}
      pos = pos + 1
      ws()
      if s:sub(pos, pos) == "}" then pos = pos + 1 return t end
      while true do
        ws()
        local k = str()
        ws()
        assert(s:sub(pos, pos) == ":", "':' expected at " .. pos)
        pos = pos + 1
        t[k] = value()
        ws()
        local d = s:sub(pos, pos)
        pos = pos + 1
        if d == "}" then return t end
        assert(d == ",", "',' expected at " .. pos)
      end
    elseif c == "[" then
      local t = {}
      pos = pos + 1
      ws()
      if s:sub(pos, pos) == "]" then pos = pos + 1 return t end
      while true do
        t[#t + 1] = value()
        ws()
        local d = s:sub(pos, pos)
        pos = pos + 1
        if d == "]" then return t end
        assert(d == ",", "',' expected at " .. pos)
      end
    elseif c == '"' then return str()
    elseif s:sub(pos, pos + 3) == "true" then pos = pos + 4 return true
    elseif s:sub(pos, pos + 4) == "false" then pos = pos + 5 return false
    elseif s:sub(pos, pos + 3) == "null" then pos = pos + 4 return nil
    end
    local num = s:match("^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
    assert(num and #num > 0, "bad JSON at " .. pos)
    pos = pos + #num
    return math.tointeger(tonumber(num)) or tonumber(num)
  end
  local v = value()
  ws()
  assert(pos > #s, "trailing bytes in JSON")
  return v
end

local function my_user()
  return (helper.sh("id -un"):gsub("\n$", ""))
end

-- The objects of `lipc ls --json` by kind and name ("shm /x"; System V ids
-- are unique per kind only).
local function ls_by_name(args)
  local code, out, err = lipc("ls --json " .. (args or ""))
  assert.equal(0, code, err)
  local by = {}
  for _, o in ipairs(decode(out)) do by[o.kind .. " " .. o.name] = o end
  return by, out
end

describe("lipc (the command)", function()
  describe("exit codes", function()
    it("0 for help, 2 for usage errors, without a traceback", function()
      local code, out = lipc("--help")
      assert.equal(0, code)
      for _, c in ipairs { "ls", "sweep", "limits", "bench" } do assert.matches("\n  " .. c, out, 1, true) end
      code, out = lipc("help sweep")
      assert.equal(0, code)
      assert.matches("--dry-run", out, 1, true)
      code, out = lipc("ls --help")
      assert.equal(0, code)
      assert.matches("usage: lipc ls", out, 1, true)
      for _, args in ipairs { "", "frob", "ls --bogus", "ls extra", "help frob", "bench --png", "sweep --dry" } do
        local c, _, err = lipc(args)
        assert.equal(2, c, args)
        assert.matches("lipc", err, 1, true)
        assert.not_matches("traceback", err, 1, true)
        assert.not_matches("%.lua:%d+:", err)
      end
    end)

    it("1 when something fails, with a message on stderr and no traceback", function()
      -- gnuplot missing from PATH (only lua5.4 on it): --png fails before
      -- anything is measured
      local dir = helper.path(".bin")
      local lua = helper.sh("command -v lua5.4"):gsub("\n", "")
      assert(os.execute(("mkdir %s && ln -s %s %s/lua5.4"):format(dir, lua, dir)))
      finally(function() os.execute("rm -rf " .. helper.shquote(dir)) end)
      local code, out, err = lipc("bench --quick --png x.png", "PATH=" .. dir)
      assert.equal(1, code)
      assert.equal("", out)
      assert.matches("gnuplot", err, 1, true)
      assert.not_matches("traceback", err, 1, true)
      code, out, err = lipc("bench --quick --png /nonexistent/dir/x.png")
      assert.equal(1, code)
      assert.equal("", out)
      assert.matches("/nonexistent/dir/x.png", err, 1, true)
    end)
  end)

  describe("ls", function()
    it("lists the objects this process made, owned by us, with a running creator", function()
      local shm = assert(ipc.shm.open { size = 8192 })
      local sem = assert(ipc.sem.open { value = 0 })
      local mq = assert(ipc.mq.open())
      local fifo = assert(ipc.mkfifo())
      local srv = assert(ipc.listen("unix:"))
      local msg = assert(ipc.msg.get(ipc.IPC_PRIVATE, { create = true }))
      local seg = assert(ipc.shm.sysv(ipc.IPC_PRIVATE, 4096, { create = true }))
      local set = assert(ipc.semset.get(ipc.IPC_PRIVATE, 3, { create = true }))
      assert(mq:send("one"))
      assert(mq:send("two"))
      assert(msg:send(1, "x"))
      finally(function()
        for _, o in ipairs { shm, sem, mq, fifo, srv, msg, seg, set } do o:close() end
      end)
      local by, text = ls_by_name()
      local me, pid = my_user(), ipc.getpid()
      local function check(name, kind)
        local o = by[kind .. " " .. name]
        assert.is_table(o, kind .. " " .. name .. " not in " .. text)
        assert.equal(me, o.owner)
        return o
      end
      local sock = srv:address():match("^unix:(.*)$")
      for name, kind in pairs { [shm:name()] = "shm", [sem:name()] = "sem", [mq:name()] = "mq",
                                [fifo:name()] = "fifo", [sock] = "unix" } do
        local o = check(name, kind)
        assert.equal(pid, o.pid, name)
        assert.is_true(o.alive, name)
        assert.is_true(o.generated, name)
        assert.equal("0600", o.mode, name)
      end
      assert.equal(8192, by["shm " .. shm:name()].size)
      assert.equal(2, by["mq " .. mq:name()].messages)
      local function id(i) return ("id=%d key=0x00000000"):format(i) end
      assert.equal(1, check(id(msg:id()), "msg").messages)
      local o = check(id(seg:id()), "sysv-shm")
      assert.equal(4096, o.size)
      assert.equal(pid, o.pid)
      assert.is_true(o.alive)
      assert.is_false(o.generated)
      assert.equal(3, check(id(set:id()), "semset").semaphores)
      -- the table: one line per object, the same names
      local code, out = lipc("ls")
      assert.equal(0, code)
      assert.matches("^KIND +NAME +SIZE +OWNER +MODE +PID +RUNS +LIPC\n", out)
      for _, line in ipairs { "shm +" .. shm:name():gsub("%p", "%%%0") .. " +8192 +" .. me .. " +0600 +" .. pid
                                .. " +yes +yes\n",
                              "mq +" .. mq:name():gsub("%p", "%%%0") .. " +2 msg +" .. me } do
        assert.matches(line, out)
      end
    end)

    it("flags an object whose creator is gone (persist, and SIGKILL)", function()
      -- a child makes a persistent segment and exits
      local r, w = assert(ipc.pipe())
      local pid1 = helper.fork(function()
        local seg = assert(ipc.shm.open { size = 4096, persist = true })
        assert(w:write(seg:name() .. "\n"))
        seg:close()
      end)
      w:close()
      local name1 = r:read("l", 30)
      r:close()
      helper.reap(pid1)
      -- another is killed while it holds a segment
      local name2, pid2 = helper.fork_holding(function() return assert(ipc.shm.open { size = 4096 }) end)
      finally(function()
        os.remove("/dev/shm" .. name1)
        os.remove("/dev/shm" .. name2)
      end)
      assert(ipc.signal.kill(pid2, "KILL"))
      assert.equal("signaled", (ipc.wait(pid2, 30)))
      local by = ls_by_name()
      for name, pid in pairs { [name1] = pid1, [name2] = pid2 } do
        local o = by["shm " .. name]
        assert.is_table(o, name)
        assert.equal(pid, o.pid)
        assert.is_false(o.alive, name)
        assert.is_true(o.generated)
      end
      local code, out = lipc("ls")
      assert.equal(0, code)
      assert.matches(name2:gsub("%p", "%%%0") .. " +4096 +%S+ +0600 +" .. pid2 .. " +no +yes\n", out)
    end)

    it("shows other users' objects only with --all", function()
      if helper.sh("id -u") ~= "0\n" then
        print("skipped: making an object of another user needs root")
        pending("needs root")
        return
      end
      local path = "/dev/shm/lipcspec." .. ipc.getpid() .. ".nobody"
      assert(io.open(path, "w")):close()
      finally(function() os.remove(path) end)
      assert(os.execute("chown 65534 " .. path))
      local mine = ls_by_name()
      assert.is_nil(mine["shm " .. path:sub(9)])
      local all = ls_by_name("--all")
      local o = all["shm " .. path:sub(9)]
      assert.is_table(o)
      assert.equal(65534, o.uid)
      assert.is_false(o.generated)
    end)
  end)

  describe("sweep", function()
    it("--dry-run lists a dead creator's leftover and removes nothing; sweep then removes it", function()
      local r, w = assert(ipc.pipe())
      local pid = helper.fork(function()
        local seg = assert(ipc.shm.open { size = 4096, persist = true })
        assert(w:write(seg:name() .. "\n"))
        seg:close()
      end)
      w:close()
      local name = r:read("l", 30)
      r:close()
      helper.reap(pid)
      local path = "/dev/shm" .. name
      finally(function() os.remove(path) end)
      local live = assert(ipc.mq.open())   -- a live creator's: never listed
      finally(function() live:close() end)
      -- TMPDIR: our scratch directory, so that the real sweep touches no other /tmp
      local env = "TMPDIR=" .. helper.shquote(helper.tmpdir())
      local before = helper.sh("ls -A /dev/shm")
      local code, out = lipc("sweep --dry-run", env)
      assert.equal(0, code)
      assert.matches("would remove shm " .. name .. "\n", out, 1, true)
      assert.not_matches(live:name(), out, 1, true)
      assert.equal(before, helper.sh("ls -A /dev/shm"))
      assert.is_true(helper.exists(path))
      code, out = lipc("sweep", env)
      assert.equal(0, code)
      assert.matches("removed shm " .. name .. "\n", out, 1, true)
      assert.not_matches(live:name(), out, 1, true)
      assert.is_false(helper.exists(path))
    end)

    it("--dry-run lists exactly what sweep then removes, of every kind", function()
      -- a process with TMPDIR = our scratch directory makes one object of each
      -- kind sweep knows and is killed (SIGKILL: it cleans nothing)
      local dir = helper.tmpdir()
      local script = helper.script([[
local ipc = require "lipc"
local objs = { ipc.mq.open(), ipc.shm.open { size = 4096 }, ipc.sem.open { value = 0 }, ipc.mkfifo(),
               ipc.listen("unix:") }
local names = {}
for i, o in ipairs(objs) do
  assert(o)
  names[i] = i == 5 and o:address():match("^unix:(.*)$") or o:name()
end
io.stdout:write(table.concat(names, " "), "\n")
io.stdout:flush()
ipc.poll({}, 60)
]], ".lua")
      local p = assert(ipc.exec { "lua5.4", script, stdout = "pipe",
                                  env = { TMPDIR = dir, LUA_PATH = package.path, LUA_CPATH = package.cpath } })
      local line = p.stdout:read("l", 30)
      p.stdout:close()
      assert(p:kill("KILL"))
      assert.equal("signaled", (p:wait(30)))
      p:close()
      os.remove(script)
      local names = {}
      for n in (line or ""):gmatch("%S+") do names[#names + 1] = n end
      assert.equal(5, #names, line)
      finally(function()
        os.remove("/dev/shm" .. names[2])
        os.remove("/dev/shm/sem." .. names[3]:sub(2))
        os.remove(names[4])
        os.remove(names[5])
        for _, d in ipairs(require("lipc.testing").mqueue_dirs()) do os.remove(d .. names[1]) end
      end)
      local env = "TMPDIR=" .. helper.shquote(dir)
      local code, dry = lipc("sweep --dry-run", env)
      assert.equal(0, code)
      local want = { "mq " .. names[1], "shm " .. names[2], "sem " .. names[3], "fifo " .. names[4],
                     "unix " .. names[5] }
      if not require("lipc.testing").mqueue_dirs()[1] then table.remove(want, 1) end
      for _, w in ipairs(want) do assert.matches("would remove " .. w .. "\n", dry, 1, true) end
      assert.is_true(helper.exists(names[4]))
      local out
      code, out = lipc("sweep", env)
      assert.equal(0, code)
      local function set(text, prefix)
        local t = {}
        for l in text:gmatch("[^\n]+") do t[#t + 1] = (l:gsub("^" .. prefix .. " ", "")) end
        table.sort(t)
        return t
      end
      assert.same(set(dry, "would remove"), set(out, "removed"))
      assert.is_false(helper.exists(names[4]))
      assert.is_false(helper.exists(names[5]))
    end)
  end)

  describe("limits", function()
    it("prints ipc.limits(), each with its source", function()
      local code, out = lipc("limits --json")
      assert.equal(0, code)
      local got = decode(out)
      local want = ipc.limits()
      local volatile = { shm_free = true }   -- free space changes as others work
      for k, v in pairs(want) do
        assert.is_table(got[k], k)
        if not volatile[k] then assert.equal(v, got[k].value, k) end
        assert.is_string(got[k].source)
        assert.not_equal("?", got[k].source, k)
      end
      for k in pairs(got) do assert.is_not_nil(want[k], k) end
      assert.matches("/proc/sys/fs/mqueue/msg_max", got.mq_maxmsg.source, 1, true)
      assert.matches("ulimit -n", got.nofile.source, 1, true)
      code, out = lipc("limits")
      assert.equal(0, code)
      assert.matches("\nmq_maxmsg +" .. want.mq_maxmsg .. " +/proc/sys/fs/mqueue/msg_max\n", out)
    end)
  end)

  describe("bench", function()
    it("--quick prints every transport in under a minute #slow", function()
      local t0 = ipc.clock()
      local code, out, err = lipc("bench --quick", "timeout 120 env")
      local took = ipc.clock() - t0
      assert.equal(0, code, err)
      assert.is_true(took < 60, ("took %.1f s"):format(took))
      for _, t in ipairs { "pipe", "socketpair", "unix", "tcp", "udp", "mq", "msg", "eventfd", "sem", "ring" } do
        assert.matches("\n" .. t .. " +%d+%.%d+ ", out, nil, t)
      end
      assert.matches("C baseline", out, 1, true)
    end)
  end)
end)
