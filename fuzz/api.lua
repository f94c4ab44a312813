--- API fuzzer for lipc: random sequences of calls on live objects of every
-- class, with hostile arguments, each case in a sandboxed child process
-- under a watchdog.  Findings: crashes, hangs, slow or spinning waits,
-- leaks after the child closed everything, foreign files removed, results
-- that are not the contract's shape.
--
--   lua5.4 fuzz/api.lua [--seed S] [--case N] [--seconds T] [--steps K] [--skip a,b]
--                       [--minimise SECONDS]   (with --case: minimise its findings)
--   (make fuzz sets LUA_PATH/LUA_CPATH; FUZZ_SEED, FUZZ_CASE, FUZZ_SECONDS work too)
--
-- Without --case it runs cases 1, 2, ... of seed S until T seconds passed;
-- with --case N it replays that one case and prints its whole call log.
-- Environment: FUZZ_HANG (seconds without progress = hang, default 10),
-- FUZZ_SLOW (a bounded call taking longer is a finding, default 3),
-- FUZZ_MIN_SECONDS (time spent minimising each finding, default 40),
-- FUZZ_DEBUG=1 (also swap metatables with debug.setmetatable),
-- FUZZ_IGNORE (Lua patterns, comma-separated: findings whose signature
-- matches are reported as known, not counted; FUZZ_IGNORE_FILE: the same,
-- one pattern a line, e.g. fuzz/known.txt), FUZZ_NS=0 (no namespaces).
-- Exit status: 0 without findings, 1 with findings (FUZZ_FAIL=0: always 0).
package.path = "fuzz/?.lua;" .. package.path
local ipc = require "lipc"
local U = require "util"
local show, label = U.show, U.label

local function parse_args(argv)
  local a = {}
  local i = 1
  while i <= #argv do
    local k = argv[i]:match("^%-%-(.+)$")
    if not k then error("usage: lua5.4 fuzz/api.lua [--seed S] [--case N] [--seconds T] [--steps K] [--skip a,b]") end
    if k == "child" then a.child = true i = i + 1
    else a[k] = argv[i + 1] i = i + 2 end
  end
  return a
end
local ARGS = parse_args(arg)

-- ============================================================================
-- The child: one case
-- ============================================================================

local child = {}

function child.run(seed, case, maxsteps, skip)
  local ISO = os.getenv("FUZZ_ISOLATED") == "1"
  local DEBUGSWAP = os.getenv("FUZZ_DEBUG") == "1"
  local SLOW = tonumber(os.getenv("FUZZ_SLOW")) or 3
  local scratch = os.getenv("TMPDIR") or "."
  local mypid = ipc.getpid()
  io.stdout:setvbuf("line")
  local out = io.stdout
  local findings = 0
  local function emit(...) out:write(...) out:write("\n") end
  local function finding(kind, step, sig, detail)
    findings = findings + 1
    emit("@@F ", kind, "\t", step, "\t", sig, "\t", (tostring(detail):gsub("\n", "\\n")))
  end

  -- ---- the world the harness prepares ----------------------------------
  local casebase = seed * 1000003 + case
  math.randomseed(casebase, 0)
  local nsteps = math.random(8, 70)
  if maxsteps and maxsteps < nsteps then nsteps = maxsteps end

  local FILE = scratch .. "/file"      -- a plain file for mmap and ftok
  do local f = assert(io.open(FILE, "w")) f:write(("lipc fuzz file\n"):rep(300)) f:close() end
  local FIFO0 = scratch .. "/fifo0"     -- a FIFO made by "someone else"
  os.execute("mkfifo '" .. FIFO0 .. "'")
  local EMPTY = scratch .. "/empty"
  do local f = assert(io.open(EMPTY, "w")) f:close() end
  -- sweep bait: look like generated names of a dead process, but are not
  -- lipc's to remove (a regular file where a socket would be, a directory
  -- where a FIFO would be, a segment of another user)
  local DEADPID = 4194000
  local decoys = {}   -- path -> true: files lipc must not remove
  local ours = {}     -- files the harness made (never a leak of lipc's)
  local function bait(path, how)
    if how == "file" then local f = io.open(path, "w") if f then f:write("decoy") f:close() end
    elseif how == "dir" then os.execute("mkdir -p '" .. path .. "'") end
    decoys[path] = how == "dir" and "-d" or "-f"   -- (what `test` checks it with)
    ours[path] = true
  end
  bait(scratch .. "/lipc." .. DEADPID .. ".aaaaaaaa.sock", "file")
  bait(scratch .. "/lipc." .. DEADPID .. ".bbbbbbbb.fifo", "dir")
  if ISO then
    bait("/dev/shm/lipc." .. DEADPID .. ".cccccccc", "file")
    os.execute("chown 65534 /dev/shm/lipc." .. DEADPID .. ".cccccccc 2>/dev/null")
  end
  local CLOSEDFILE = io.tmpfile()
  CLOSEDFILE:close()
  label(CLOSEDFILE, "closed_io_file")
  label(io.stdout, "io.stdout")

  -- names this case uses: few, so that calls collide on them
  local PNAMES, PATHS = {}, {}
  for k = 1, 3 do
    PNAMES[k] = ("/lipcfz.%d.%d"):format(mypid, k)
    PATHS[k] = ("%s/p%d"):format(scratch, k)
  end
  local FILTER = nil
  if not ISO then
    FILTER = function(n)
      return n:find("lipcfz." .. mypid .. ".", 1, true) or n:find("lipc." .. mypid .. ".", 1, true)
             or n:find(scratch, 1, true) == 1
    end
  end
  local before = U.snapshot(scratch, FILTER)

  -- ---- the pool of live (and closed) objects ---------------------------
  local pool, nextid = {}, 0
  local procpids = {}   -- pids of the children behind process handles
  local byobj = setmetatable({}, { __mode = "k" })
  local persisted = {}   -- names that may stay (made with persist = true)
  -- a name a call removes on purpose: a foreign file there may go
  local function removing(name)
    for path in pairs(decoys) do
      if path == name or path == "/dev/shm" .. name or path == "/dev/shm/sem." .. name:sub(2)
         or path == "/dev/mqueue" .. name then
        decoys[path] = nil
      end
    end
  end

  local LUA_CLASSES = {}   -- __name -> the metatable of lipc's classes written in Lua
  do
    local a, b = ipc.channel.pair()
    LUA_CLASSES["lipc.channel"] = getmetatable(a)
    a:close() b:close()
    LUA_CLASSES["lipc.pool"] = ipc._methods and ipc._methods.pool
  end
  local function kindof(o)
    local t = type(o)
    if t ~= "userdata" and t ~= "table" then return nil end
    local mt = getmetatable(o)
    local name = type(mt) == "table" and rawget(mt, "__name")
    if type(name) ~= "string" or name:sub(1, 5) ~= "lipc." then return nil end
    -- a table is lipc's only with the metatable of a Lua class of lipc's
    -- (a hostile table may call itself "lipc.pipe")
    if t == "table" and mt ~= LUA_CLASSES[name] then return nil end
    return name
  end

  local function adopt(o, step, how)
    if byobj[o] then return byobj[o] end
    if o == io.stdout or o == io.stderr or o == io.stdin then return nil end   -- (the harness's own)
    local k = kindof(o)
    if not k and io.type(o) ~= "file" then return nil end
    nextid = nextid + 1
    -- adopted = made by ipc.fd from a number: a descriptor some other owner
    -- (an io file, say) may close first, so its close may answer EBADF
    local e = { obj = o, id = nextid, kind = k or "io.file", step = step, adopted = how == "ipc.fd" }
    if k == "lipc.process" then
      local okp, pid = pcall(function() return o.pid end)
      if okp and pid then procpids[pid] = true end
    end
    label(o, "o" .. nextid)
    byobj[o] = e
    pool[#pool + 1] = e
    emit("@@N ", step, " o", nextid, " = ", tostring(how or ""), " ", (pcall(tostring, o) and tostring(o) or "?"))
    return e
  end

  local function pick_entry(pattern)
    local cands = {}
    for _, e in ipairs(pool) do
      if not pattern or e.kind:find(pattern) then cands[#cands + 1] = e end
    end
    if #cands == 0 then return nil end
    -- prefer open objects
    local open = {}
    for _, e in ipairs(cands) do if not e.closed then open[#open + 1] = e end end
    if #open > 0 and math.random(6) > 1 then return open[math.random(#open)] end
    return cands[math.random(#cands)]
  end

  local function obj_of(pattern)
    local e = pick_entry(pattern)
    return e and e.obj
  end

  -- ---- hostile values ---------------------------------------------------
  local function hostile_table()
    local r = math.random(12)
    local t = {}
    local mt
    if r == 1 then mt = { __len = function() error("hostile __len") end } label(t, "hostile_len_error")
    elseif r == 2 then mt = { __len = function() return math.maxinteger end } label(t, "hostile_len_huge")
    elseif r == 3 then mt = { __len = function() return 0 / 0 end } label(t, "hostile_len_nan")
    elseif r == 4 then mt = { __len = function() return "x" end } label(t, "hostile_len_string")
    elseif r == 5 then mt = { __index = function() error("hostile __index") end } label(t, "hostile_index_error")
    elseif r == 6 then   -- every index answers: ipairs never ends
      mt = { __index = function(_, k) return math.type(k) == "integer" and "USR1" or true end }
      label(t, "hostile_index_all")
    elseif r == 7 then mt = { __index = function(tt) return tt end } label(t, "hostile_index_self")
    elseif r == 8 then
      mt = { __tostring = function() error("hostile __tostring") end, __name = "lipc.pipe",
             __eq = function() error("hostile __eq") end }
      label(t, "hostile_tostring_eq")
    elseif r == 9 then
      mt = { __pairs = function() return function() return 1, 1 end end }
      t[1] = "x"
      label(t, "hostile_pairs_loop")
    elseif r == 10 then
      t = { 1, 2, 3 }
      mt = { __len = function() return 1000000 end }
      label(t, "hostile_len_1e6")
    elseif r == 11 then
      mt = { __index = function(_, k) if k == "n" then return math.maxinteger end return nil end,
             __len = function() return 2 end }
      label(t, "hostile_len2_index")
    else
      t = setmetatable({}, { __index = function() coroutine.yield() end })
      label(t, "hostile_index_yield")
      return t
    end
    return setmetatable(t, mt)
  end

  local HOSTILE_NUMBERS = { 0, 1, -1, 2 ^ 31 // 1, 2 ^ 32 // 1, -(2 ^ 31 // 1), 2 ^ 53 // 1, 2 ^ 62 // 1,
    math.maxinteger, math.mininteger, 1e308, -1e308, math.huge, -math.huge, 0 / 0, -0.0, 0.5, 1.5,
    4095, 4096, 4097, 65536, 7, 8, 9, 2 ^ 63 }
  local function hostile_number() return HOSTILE_NUMBERS[math.random(#HOSTILE_NUMBERS)] end

  local HOSTILE_STRINGS = { "", "a", "\0", "a\0b", "/", "//", "/a/b", "r", "w", "rw", "x", "600", "0600",
    "999", "-1", "nan", "0x10", "1e400", "USR1", "RTMIN+99", "stream", "%s%n", "../x" }
  local function hostile_string()
    local r = math.random(10)
    if r == 1 then return string.rep("x", 5000) end
    if r == 2 then return string.rep("\0", math.random(1, 300)) end
    if r == 3 then return string.rep("y", 1 << 20) end
    return HOSTILE_STRINGS[math.random(#HOSTILE_STRINGS)]
  end

  local FUNCS = {
    label(function() return 0 end, "function() return 0 end"),
    label(function() error("boom") end, "function() error('boom') end"),
    label(function() return 3 end, "function() return 3 end"),
    label(function() ipc.poll({}, 0.05) return 0 end, "function() ipc.poll({}, 0.05) end"),
    label(function() ipc.poll({}, 30) end, "function() ipc.poll({}, 30) end"),
    label(function() error({}) end, "function() error({}) end"),
    label(function() return "x" end, 'function() return "x" end'),
  }

  local function hostile_any()
    local r = math.random(14)
    if r <= 3 then return hostile_number()
    elseif r <= 6 then return hostile_string()
    elseif r <= 8 then return hostile_table()
    elseif r == 9 then return ({ true, false })[math.random(2)]
    elseif r == 10 then return FUNCS[math.random(#FUNCS)]
    elseif r == 11 then return label(coroutine.create(function() end), "coroutine.create(function() end)")
    elseif r == 12 then return ({ io.stdout, CLOSEDFILE })[math.random(2)]
    elseif r == 13 then return obj_of() or 0
    end
    return ({ {}, label({ 1, 2, 3 }, "{1, 2, 3}") })[math.random(2)]
  end

  -- ---- generators by argument kind ---------------------------------------
  local G = {}
  local function maybe_hostile(p, f, ...)
    if math.random() < (p or 0.12) then return hostile_any() end
    return f(...)
  end
  -- a timeout: always bounded (never nil or infinite), sometimes invalid
  function G.T()
    local r = math.random(40)
    if r <= 14 then return 0 end
    if r <= 26 then return 0.01 end
    if r <= 31 then return 0.001 end
    if r <= 34 then return 0.2 end          -- long enough to see a spinning wait
    return ({ -1, 0 / 0, "x", {}, -0.0, math.mininteger, true, "0.01", 1e-300 })[r - 34 + 1] or 0
  end
  function G.n() return maybe_hostile(0.15, function()
    return ({ 0, 1, 7, 8, 16, 64, 100, 4096, 65536 })[math.random(9)] end) end
  function G.data() return maybe_hostile(0.1, function()
    local r = math.random(8)
    if r <= 4 then return ("msg" .. math.random(1000)) end
    if r == 5 then return "" end
    if r == 6 then return "a\0b\0" end
    if r == 7 then return string.rep("d", math.random(100, 9000)) end
    return string.rep("D", 70000) end) end
  function G.b() return maybe_hostile(0.1, function() return math.random(2) == 1 end) end
  function G.pname()
    if math.random() < 0.15 then return hostile_any() end
    if math.random() < 0.1 then return nil end
    return PNAMES[math.random(#PNAMES)]
  end
  function G.path()
    local r = math.random(20)
    if r <= 12 then return PATHS[math.random(#PATHS)] end
    if r == 13 then return FIFO0 end
    if r == 14 then return FILE end
    if r == 15 then return EMPTY end
    if r == 16 then return "/dev/zero" end
    if r == 17 then return scratch .. "/nodir/x" end
    if r == 18 then return scratch .. "/" .. string.rep("l", 300) end
    return hostile_any()
  end
  function G.key()
    local r = math.random(10)
    if r <= 4 then return ipc.IPC_PRIVATE end
    if r <= 7 then
      local ok, k = pcall(ipc.ftok, FILE, math.random(3))
      return ok and k or 0
    end
    if ISO and r == 8 then return math.random(1, 3) end
    return ({ -1, math.maxinteger, 2 ^ 32 // 1, 0 / 0, "1", 1.5 })[math.random(6)]
  end
  local function one_of(list) return function() return list[math.random(#list)] end end
  function G.mode() return maybe_hostile(0.2, one_of { "600", "0600", 384, "644", "777" }) end
  local function opts(keys)
    local r = math.random(12)
    if r == 1 then return nil end
    if r == 2 then return hostile_any() end
    local t = {}
    for _, k in ipairs(keys) do
      if math.random(3) == 1 then
        local kind = k[2]
        t[k[1]] = math.random(8) == 1 and hostile_any() or G[kind]()
      end
    end
    if math.random(20) == 1 then t.bogus = true end
    return t
  end
  local OPT = {
    mq = { { "create", "b" }, { "excl", "b" }, { "mode", "mode" }, { "maxmsg", "small" }, { "msgsize", "small" },
           { "persist", "b" }, { "nonblock", "b" }, { "access", "access" } },
    msg = { { "create", "b" }, { "excl", "b" }, { "mode", "mode" }, { "persist", "b" } },
    shm = { { "create", "b" }, { "excl", "b" }, { "persist", "b" }, { "mode", "mode" }, { "size", "size" },
            { "readonly", "b" } },
    sysv = { { "create", "b" }, { "excl", "b" }, { "persist", "b" }, { "mode", "mode" }, { "readonly", "b" } },
    mmap = { { "size", "size" }, { "offset", "n" }, { "mode", "access" } },
    sem = { { "create", "b" }, { "excl", "b" }, { "value", "small" }, { "mode", "mode" }, { "persist", "b" } },
    semset = { { "create", "b" }, { "excl", "b" }, { "mode", "mode" }, { "persist", "b" }, { "values", "any" } },
    fifo = { { "mode", "mode" }, { "persist", "b" }, { "excl", "b" } },
    pipe = { { "nonblock", "b" }, { "size", "size" } },
    eventfd = { { "semaphore", "b" }, { "nonblock", "b" } },
    ring = { { "name", "pname" }, { "persist", "b" }, { "mode", "mode" }, { "spin", "small" } },
    listen = { { "backlog", "small" }, { "reuseaddr", "b" }, { "reuseport", "b" }, { "mode", "mode" },
               { "persist", "b" } },
    mutex = { { "robust", "b" } },
    channel = { { "own", "b" }, { "maxsize", "size" }, { "priority", "small" }, { "type", "small" },
                { "eof", "b" }, { "linger", "T" } },
  }
  function G.small() return maybe_hostile(0.15, function() return math.random(0, 10) end) end
  function G.size() return maybe_hostile(0.15, one_of { 1, 8, 64, 100, 4096, 8192 }) end
  function G.access() return maybe_hostile(0.15, function() return ({ "r", "w", "rw" })[math.random(3)] end) end
  function G.any() return hostile_any() end
  function G.sig()
    return maybe_hostile(0.15, one_of { "USR1", "USR2", "TERM", "SIGUSR2", "RTMIN+1", "HUP", 10, "CHLD", "INT",
                                        "PIPE", "ALRM" })
  end
  function G.siglist()
    local r = math.random(8)
    if r == 1 then return hostile_table() end
    if r == 2 then return hostile_any() end
    local t = {}
    for i = 1, math.random(0, 4) do t[i] = G.sig() end
    return t
  end
  function G.addr(kind)
    local r = math.random(20)
    if r <= 5 and kind ~= "listen" then
      local srv = obj_of("socket")
      if srv then
        local ok, a = pcall(srv.address, srv)
        if ok and type(a) == "string" then return a end
      end
    end
    if r <= 12 then
      local k = math.random(#PATHS)
      return ({ "tcp://127.0.0.1:0", "udp://127.0.0.1:0", "unix:" .. PATHS[k], "unixgram:" .. PATHS[k],
                "seqpacket:" .. PATHS[k], "unix:@lipcfz." .. mypid .. "." .. k, "tcp6://[::1]:0",
                "tcp://127.0.0.1:1" })[math.random(8)]
    end
    if r <= 18 then
      return ({ "tcp://", "tcp://[::1", "unix:", "unix:" .. scratch .. "/" .. string.rep("u", 120),
                "udp://256.1.1.1:1", "tcp://127.0.0.1:99999", "tcp://localhost:-1", "foo://x",
                "unix:" .. scratch .. "/nodir/x", "ip://", "unix:@", "tcp://127.0.0.1:0\0x" })[math.random(12)]
    end
    return hostile_any()
  end
  function G.obj() return obj_of() or hostile_any() end
  function G.value()
    if math.random(6) == 1 then return hostile_any() end
    return U.rand_value(3)
  end
  function G.fmt()
    return maybe_hostile(0.1, function()
      return ({ "i8", "<i4", "s4", "z", "d", "j", "!8 i4", "i17", "Xi8", "c0", "c100000", "s1", "b", "n",
                "i4i4i4", ">I2", "xxxx", "=!16j" })[math.random(18)]
    end)
  end
  function G.semops()
    local r = math.random(6)
    if r == 1 then return hostile_any() end
    local t = {}
    for i = 1, math.random(0, 3) do
      if math.random(8) == 1 then t[i] = hostile_any()
      else t[i] = { math.random(-1, 3), math.random(-2, 2), undo = math.random(3) == 1 or nil } end
    end
    return t
  end
  function G.objlist()
    local r = math.random(8)
    if r == 1 then return hostile_table() end
    if r == 2 then return hostile_any() end
    local t = {}
    for i = 1, math.random(0, 5) do t[i] = math.random(10) == 1 and hostile_any() or obj_of() end
    return t
  end
  function G.argv()
    local r = math.random(12)
    local progs = { { "true" }, { "false" }, { "sleep", "0.05" }, { "cat" }, { "sh", "-c", "exit 3" },
                    { "/nonexistent/prog" }, { "sh", "-c", "kill -9 $$" }, { "sleep", "30" },
                    { "sh", "-c", "echo out; echo err >&2; exit 1" }, { "sh", "-c", "sleep 30 & wait" },
                    { "head", "-c", "5" } }
    local t
    if r <= 9 then
      t = {}
      for i, a in ipairs(progs[math.random(#progs)]) do t[i] = a end
    elseif r == 10 then t = { "true", hostile_any() }
    elseif r == 11 then return hostile_any()
    else t = {} end
    for _, k in ipairs { "stdin", "stdout", "stderr" } do
      local c = math.random(8)
      if c == 1 then t[k] = "pipe" elseif c == 2 then t[k] = "null"
      elseif c == 3 then t[k] = obj_of() elseif c == 4 then t[k] = hostile_any() end
    end
    if math.random(6) == 1 then t.env = math.random(2) == 1 and { FOO = "1", PATH = false } or hostile_any() end
    if math.random(8) == 1 then t.cwd = math.random(2) == 1 and "/" or hostile_any() end
    if math.random(10) == 1 then t.input = G.data() end
    if math.random(20) == 1 then t.bogus = 1 end
    if math.random(6) == 1 then t.session = G.b() end
    if math.random(6) == 1 then t.group = G.b() end
    if math.random(10) == 1 then t.stderr = "stdout" end
    if math.random(12) == 1 then t.clearenv = G.b() end
    if math.random(12) == 1 then t.umask = maybe_hostile(0.3, one_of { "022", 63, "777" }) end
    if math.random(12) == 1 then t.fds = math.random(2) == 1 and { [3] = obj_of() } or hostile_any() end
    return t
  end
  function G.fn() return maybe_hostile(0.1, function() return FUNCS[math.random(#FUNCS)] end) end
  function G.how() return maybe_hostile(0.15, function() return ({ "r", "w", "rw" })[math.random(3)] end) end
  function G.optname()
    return maybe_hostile(0.1, one_of { "nodelay", "reuseaddr", "reuseport", "keepalive", "broadcast", "rcvbuf",
                                       "sndbuf", "linger", "bogus" })
  end
  function G.optval() return maybe_hostile(0.3, function() return ({ true, false, 4096, 0, 1 })[math.random(5)] end) end
  function G.events() return maybe_hostile(0.15, function() return ({ "r", "w", "rw", "wr" })[math.random(4)] end) end
  function G.rd()   -- what to read: a count or a format
    return maybe_hostile(0.1, function() return ({ 1, 16, 4096, 65536, "a", "l", "L", "n" })[math.random(8)] end)
  end
  -- a pid: only of a child still running (not reaped: its pid cannot have
  -- been reused), or values that are no pid at all
  function G.pid()
    local r = math.random(8)
    if r <= 4 then
      local p = obj_of("process")
      if p then
        local ok, pid = pcall(function() if p:status() == nil then return p.pid end end)
        if ok and pid then return pid end
      end
    end
    if r == 5 then return -1 end
    return ({ 2 ^ 40 // 1, 0 / 0, "x", 1.5, math.mininteger })[math.random(5)]
  end
  function G.mtype() return maybe_hostile(0.15, function() return math.random(-2, 3) end) end
  -- lines(fmt, timeout)
  function G.lfmt()
    return maybe_hostile(0.15, function() return ({ "l", "L", "n", "a", 4, nil })[math.random(6)] end)
  end
  -- ipc.timer(after, every), tm:reset(after, every)
  function G.after() return maybe_hostile(0.12, one_of { 0, 0.001, 0.01, 0.05, 0.2 }) end
  function G.every() return maybe_hostile(0.12, function() return ({ 0, 0.005, 0.05 })[math.random(4)] end) end
  -- p:kill(sig, target)
  function G.target() return maybe_hostile(0.15, function() return ({ "process", "group" })[math.random(3)] end) end
  -- p:communicate(input, timeout)
  function G.input() if math.random(3) == 1 then return nil end return G.data() end
  -- pool:map(items, timeout)
  function G.items()
    local r = math.random(6)
    if r == 1 then return hostile_any() end
    local t = {}
    for i = 1, math.random(0, 6) do t[i] = r == 2 and hostile_any() or U.rand_value(1) end
    return t
  end
  -- ipc.fd(n): a pool object's descriptor (refused: owned), one not open, no descriptor at all
  function G.fdnum()
    local r = math.random(6)
    if r <= 3 then
      local e = pick_entry()
      if e and e.kind ~= "io.file" then
        local ok, fd = pcall(function() return e.obj:fileno() end)
        if ok and math.type(fd) == "integer" then return fd end
      end
    end
    if r == 4 then return 900 + math.random(0, 99) end
    return ({ -1, 2 ^ 31 // 1, math.maxinteger, 1.5, "7", 0 / 0 })[math.random(6)]
  end

  -- region offsets: inside, at the end, past it, aligned or not
  local function region_size(e)
    local ok, n = pcall(function() return #e.obj end)
    return ok and math.type(n) == "integer" and n or 64
  end
  local function offset_for(e)
    return function()
      if math.random(8) == 1 then return hostile_number() end
      local n = region_size(e)
      local r = math.random(6)
      if r <= 3 then return (math.random(0, math.max(0, n // 8 - 1))) * 8 end
      if r == 4 then return n end
      if r == 5 then return n - 8 end
      return math.random(0, n + 16)
    end
  end

  -- ---- the classes: constructors and method signatures --------------------
  -- a constructor: { name, function(step) -> call description, fn, args }
  -- arguments (region, offset[, extra()]) on a live region, mostly
  local function in_region(extra)
    return function()
      local e = pick_entry("region") or {}
      return { e.obj or G.obj(), e.obj and offset_for(e)() or 0, extra and extra() }
    end
  end
  local task_fn   -- (below: a task body of random blocking calls)
  local CTORS = {
    { "ipc.pipe", ipc.pipe, function() return { opts(OPT.pipe) } end },
    { "ipc.mkfifo", ipc.mkfifo, function() return { G.path(), opts(OPT.fifo) } end },
    { "ipc.fifo.open", ipc.fifo.open, function() return { G.path(), G.access(), G.T() } end },
    { "ipc.mq.open", ipc.mq.open, function() return { G.pname(), opts(OPT.mq) } end },
    { "ipc.msg.get", ipc.msg.get, function() return { G.key(), opts(OPT.msg) } end },
    { "ipc.shm.anonymous", ipc.shm.anonymous, function() return { G.size() } end },
    { "ipc.shm.open", ipc.shm.open, function() return { G.pname(), opts(OPT.shm) } end },
    { "ipc.shm.sysv", ipc.shm.sysv, function() return { G.key(), G.size(), opts(OPT.sysv) } end },
    { "ipc.mmap", ipc.mmap, function() return { G.path(), opts(OPT.mmap) } end },
    { "ipc.sem.open", ipc.sem.open, function() return { G.pname(), opts(OPT.sem) } end },
    { "ipc.sem.new", ipc.sem.new, in_region(function() return G.small() end) },
    { "ipc.sem.attach", ipc.sem.attach, in_region() },
    { "ipc.semset.get", ipc.semset.get, function() return { G.key(), G.small(), opts(OPT.semset) } end },
    { "ipc.mutex.new", ipc.mutex.new, in_region(function() return opts(OPT.mutex) end) },
    { "ipc.mutex.attach", ipc.mutex.attach, in_region() },
    { "ipc.cond.new", ipc.cond.new, in_region() },
    { "ipc.cond.attach", ipc.cond.attach, in_region() },
    { "ipc.listen", ipc.listen, function() return { G.addr("listen"), opts(OPT.listen) } end },
    { "ipc.connect", ipc.connect, function() return { G.addr(), G.T() } end },
    { "ipc.socketpair", ipc.socketpair, function()
        return { maybe_hostile(0.1, one_of { "stream", "dgram", "seqpacket" }) } end },
    { "ipc.eventfd", ipc.eventfd, function() return { G.small(), opts(OPT.eventfd) } end },
    { "ipc.signal.watch", ipc.signal.watch, function() return { G.siglist() } end },
    { "ipc.poller", ipc.poller, function() return {} end },
    { "ipc.ring.create", ipc.ring.create, function()
        return { maybe_hostile(0.15, one_of { 64, 256, 4096, 65536 }), opts(OPT.ring) } end },
    { "ipc.ring.open", ipc.ring.open, function()
        local e = pick_entry("ring")
        local name = e and (select(2, pcall(e.obj.name, e.obj))) or G.pname()
        return { name, opts { { "spin", "small" } } } end },
    { "ipc.channel", ipc.channel, function()
        local r = math.random(4)
        if r == 1 then return { G.obj(), G.obj() } end
        if r == 2 then return { { read = G.obj(), write = G.obj(), own = G.b(), maxsize = G.size() } } end
        return { G.obj() } end },
    { "ipc.channel.pair", ipc.channel.pair, function() return {} end },
    { "ipc.spawn", ipc.spawn, function() return { G.fn(), G.data() } end },
    { "ipc.exec", ipc.exec, function() return { G.argv() } end },
    { "ipc.go", ipc.go, function() return { task_fn(), G.value() } end },
    { "ipc.go", ipc.go, function() return { task_fn() } end },
    { "ipc.timer", ipc.timer, function() return { G.after(), G.every() } end },
    { "ipc.fd", ipc.fd, function() return { G.fdnum() } end },
    { "ipc.pool", ipc.pool, function()
        return { maybe_hostile(0.1, one_of { 1, 2 }), G.fn(),
                 math.random(6) == 1 and { keep = G.objlist() } or nil } end },
  }
  if ipc.socket and ipc.socket.raw and ISO then
    CTORS[#CTORS + 1] = { "ipc.socket.raw", ipc.socket.raw,
                          function() return { maybe_hostile(0.3, one_of { "icmp" }) } end }
  end

  -- methods: name -> function(entry) returning the argument list
  local function A(...)
    local kinds = { ... }
    return function()
      local t = {}
      for i, k in ipairs(kinds) do t[i] = G[k]() end
      return t, #kinds
    end
  end
  local STREAM = {
    read = A("rd", "T"), write = A("data", "T"), lines = A("lfmt", "T"), setnonblock = A("b"), tofile = A(),
    fileno = A(), close = A(), dup = A(), detach = A(),
    sendv = A("value", "T"), recvv = A("T"), framed = A(),
  }
  local function with(base, extra)
    local t = {}
    for k, v in pairs(base) do t[k] = v end
    for k, v in pairs(extra) do t[k] = v end
    return t
  end
  local function region_methods()
    local function R(f) return function(e) local t = f(e, offset_for(e)) return t, #t end end
    return {
      read = R(function(_, off) return { off(), G.n() } end),
      write = R(function(_, off) return { off(), G.data() } end),
      pack = R(function(_, off) return { off(), G.fmt(), G.value(), G.value() } end),
      unpack = R(function(_, off) return { off(), G.fmt() } end),
      add = R(function(_, off) return { off(), maybe_hostile(0.2, function() return math.random(-3, 3) end) } end),
      load = R(function(_, off) return { off() } end),
      store = R(function(_, off) return { off(), maybe_hostile(0.2, function() return math.random(-3, 3) end) } end),
      cas = R(function(_, off) return { off(), math.random(0, 2), maybe_hostile(0.2, function() return 1 end) } end),
      fill = R(function(_, off)
        local r = math.random(4)
        if r == 1 then return { math.random(0, 255) } end
        if r == 2 then return { G.small(), off() } end
        return { maybe_hostile(0.2, function() return 0xff end), off(), G.n() } end),
      sync = A(), close = A(), fileno = A(), id = A(), name = A(), kind = A(), unlink = A(), remove = A(),
    }
  end
  local METHODS = {
    ["lipc.pipe"] = with(STREAM, { size = A("size") }),
    ["lipc.fd"] = STREAM,
    ["lipc.socket"] = with(STREAM, {
      accept = A("T"), connect = function() return { G.addr(), G.T() }, 2 end, send = A("data", "T"),
      recv = A("n", "T"), sendto = function() return { G.data(), G.addr(), G.T() }, 3 end,
      recvfrom = A("n", "T"), shutdown = A("how"), address = A(), peer = A(),
      setoption = A("optname", "optval"), getoption = A("optname"), peercred = A(),
      sendfd = function() local r = math.random(3)
        return { r == 1 and G.objlist() or G.obj(), G.data(), G.T() }, 3 end,
      recvfd = A("T"), recvfds = A("T"),
      sendmany = function() return { { G.data(), G.data() }, G.T() }, 2 end,
      recvmany = function() return { math.random(4), math.random(1, 70000), G.T() }, 3 end,
    }),
    ["lipc.fifo"] = { name = A(), unlink = A(), close = A() },
    ["lipc.mq"] = { send = A("data", "small", "T"), receive = A("T"), recv = A("T"), attr = A(), setnonblock = A("b"),
                    unlink = A(), name = A(), fileno = A(), close = A() },
    ["lipc.msg"] = { send = A("mtype", "data", "T"), receive = A("mtype", "T"), recv = A("mtype", "T"),
                     stat = A(), remove = A(),
                     id = A(), key = A(), close = A() },
    ["lipc.region"] = region_methods(),
    ["lipc.sem"] = { wait = A("T"), trywait = A(), post = A(), value = A(), unlink = A(), destroy = A(),
                     name = A(), close = A() },
    ["lipc.semset"] = { op = A("semops", "T"), get = A("small"), set = A("small", "small"), values = A(),
                        pid = A("small"), waiting = A("small"), zwaiting = A("small"), remove = A(), id = A(),
                        close = A() },
    ["lipc.mutex"] = { lock = A("T"), trylock = A(), unlock = A(), destroy = A(), close = A() },
    ["lipc.cond"] = { wait = function() return { obj_of("mutex") or G.obj(), G.T() }, 2 end, signal = A(),
                      broadcast = A(), destroy = A(), close = A() },
    ["lipc.eventfd"] = { add = A("n"), take = A("T"), issemaphore = A(), fileno = A(), close = A() },
    ["lipc.sigwatch"] = { next = A("T"), signals = A(), fileno = A(), close = A() },
    ["lipc.poller"] = { add = A("obj", "events"), modify = A("obj", "events"), remove = A("obj"),
                        wait = A("T"), count = A(), fileno = A(), close = A() },
    ["lipc.ring"] = { send = A("data", "T"), recv = A("T"), capacity = A(), pending = A(), name = A(),
                      sendv = A("value", "T"), recvv = A("T"),
                      unlink = A(), close = A() },
    ["lipc.channel"] = { send = A("value", "T"), recv = A("T"), values = A("T"), finish = A("T"), fileno = A(),
                         buffered = A(), transport = A(), owes_eof = A(), close = A() },
    ["lipc.process"] = { wait = A("T"), kill = A("sig", "target"), fileno = A(), status = A(), close = A(),
                         communicate = A("input", "T") },
    ["lipc.task"] = { join = A("T"), cancel = A(), status = A() },
    ["lipc.timer"] = { wait = A("T"), reset = A("after", "every"), fileno = A(), close = A() },
    ["lipc.pool"] = { map = A("items", "T"), close = A() },
    -- (io's own read blocks, and its writes die of SIGPIPE: io's, not lipc's)
    ["io.file"] = { close = A() },
  }
  -- module functions that are not constructors
  local FUNCS_MOD = {
    { "ipc.poll", ipc.poll, function() return { G.objlist(), G.T() } end },
    { "ipc.encode", ipc.encode, function() return { G.value() } end },
    { "ipc.decode", ipc.decode, function()
        local ok, s = pcall(ipc.encode, U.rand_value(2))
        s = ok and s or hostile_string()
        if math.random(2) == 1 and #s > 0 then
          local i = math.random(#s)
          s = s:sub(1, i - 1) .. string.char(math.random(0, 255)) .. s:sub(i + 1)
        end
        if math.random(3) == 1 then return { s, G.n(), G.n() } end
        return { s } end },
    { "ipc.type", ipc.type, function() return { G.obj() } end },
    { "ipc.audit", ipc.audit, function() return {} end },
    { "ipc.descriptors", ipc.descriptors, function() return {} end },
    { "ipc.limits", ipc.limits, function() return {} end },
    { "ipc.children", ipc.children, function() return {} end },
    { "ipc.wait", ipc.wait, function() return { G.pid(), G.T() } end },
    { "ipc.ftok", ipc.ftok, function() return { G.path(), G.small() } end },
    { "ipc.mq.unlink", ipc.mq.unlink, function() return { G.pname() } end, "unlink" },
    { "ipc.shm.unlink", ipc.shm.unlink, function() return { G.pname() } end, "unlink" },
    { "ipc.sem.unlink", ipc.sem.unlink, function() return { G.pname() } end, "unlink" },
    { "ipc.ring.unlink", ipc.ring.unlink, function() return { G.pname() } end, "unlink" },
    { "ipc.signal.kill", ipc.signal.kill, function()
        -- only our children, or ourselves with a signal whose default is to ignore
        if math.random(3) == 1 then return { mypid, ({ "CHLD", "URG", "WINCH", "CONT", 0 })[math.random(5)] } end
        local pid = G.pid()
        if pid == -1 then pid = 2 ^ 40 // 1 end
        return { pid, G.sig() } end },
    { "ipc.signal.queue", ipc.signal.queue, function()
        local pid = G.pid()
        if pid == -1 then pid = 2 ^ 40 // 1 end
        return { pid, G.sig(), G.n() } end },
    { "ipc.signal.ignore", ipc.signal.ignore, function() return { G.sig() } end },
    { "ipc.signal.default", ipc.signal.default, function() return { G.sig() } end },
    { "ipc.signal.disposition", ipc.signal.disposition, function() return { G.sig() } end },
    { "ipc.signal.name", ipc.signal.name,
      function() return { maybe_hostile(0.3, function() return math.random(0, 70) end) } end },
    { "ipc.signal.number", ipc.signal.number, function() return { G.sig() } end },
    { "ipc.signal.blocked", ipc.signal.blocked, function() return {} end },
    { "ipc.run", ipc.run, function() return { G.argv(), ({ 0.05, 0.5, -1, 0 / 0 })[math.random(4)] } end },
    { "collectgarbage", function() collectgarbage() return true end, function() return {} end },
    { "ipc.loop", ipc.loop, function() return { G.T() } end },
    { "ipc.loop", ipc.loop, function() return { G.T() } end },
    { "ipc.sleep", ipc.sleep, function() return { G.T() } end },
    -- (dry_run removes nothing: also outside the namespaces)
    { "ipc.sweep", ipc.sweep, function() return { { dry_run = true } } end },
  }
  if ISO then
    FUNCS_MOD[#FUNCS_MOD + 1] = { "ipc.sweep", ipc.sweep, function()
      return { math.random(4) == 1 and hostile_any() or nil } end }
  end
  if not ISO then   -- System V names are machine-wide here: nothing may outlive the case
    for _, k in ipairs { "msg", "sysv", "semset" } do
      for i = #OPT[k], 1, -1 do if OPT[k][i][1] == "persist" then table.remove(OPT[k], i) end end
    end
  end

  -- ---- doing one call, checking its result --------------------------------
  local ETIMEDOUT = ipc.errno.ETIMEDOUT
  local function describe_args(args, n)
    local parts = {}
    for i = 1, n do parts[i] = show(args[i]) end
    return table.concat(parts, ", ")
  end

  -- results that are documented exceptions to "nil, string, integer"
  -- (channel:transport() is (read side, write side), either may be nil)
  -- (t:join(timeout) is nil, the task's error message when it failed or was cancelled)
  -- (ring:recvv is nil, "closed" at the end, as a channel: a bare nil is a decoded nil value)
  local TWO_VALUE_NIL = { ["ipc.decode"] = true, ["lipc.channel.recv"] = "closed", ["lipc.channel.values"] = true,
                          ["lipc.channel.transport"] = true, ["lipc.task.join"] = true,
                          ["lipc.ring.recvv"] = "closed", ["lipc.pipe.recvv"] = true, ["lipc.socket.recvv"] = true,
                          ["lipc.fd.recvv"] = true, ["lipc.pipe.sendv"] = true, ["lipc.socket.sendv"] = true,
                          ["lipc.fd.sendv"] = true }   -- (stream sendv/recvv: doc/codec.md)

  local function check(step, sig, ok, res, n, took, cpu, timeout, closed_before)
    if not ok then
      local e = res[1]
      -- (a raised string is fine: an argument error, one of our hostile
      -- metamethods, a yield across the C boundary; error({}) of our spawned
      -- function is ours too)
      if type(e) ~= "string" and not (type(e) == "table" and next(e) == nil and sig:find("spawn")) then
        finding("raise-not-string", step, sig, "raised a " .. type(e) .. ": " .. show(e))
      end
      return
    end
    if closed_before and not sig:find("%.close$") and not sig:find("%.name$") and not sig:find("%.kind$")
       and not sig:find("%.id$") and not sig:find("%.status$") and not sig:find("%.fileno$")
       and not sig:find("channel") then
      finding("closed-use-not-raising", step, sig, "a method of a closed object returned instead of raising")
    end
    if n >= 1 and res[1] == nil and n >= 2 and sig:sub(1, 3) ~= "io." then   -- (io's results are io's)
      local exc = TWO_VALUE_NIL[sig]
      -- documented: nil, message (decode) / nil, "closed" (channel)
      local documented = exc and (exc == true or res[2] == exc) and (n == 2 or res[3] == nil)
      if not documented and (type(res[2]) ~= "string" or math.type(res[3]) ~= "integer") then
        local parts = {}
        for i = 1, n do parts[i] = show(res[i]) end
        finding("error-shape", step, sig, "returned " .. table.concat(parts, ", "))
      elseif not documented and res[2] == "timeout" and res[3] ~= ETIMEDOUT then
        finding("timeout-errno", step, sig, "timeout with errno " .. show(res[3]))
      elseif not documented and res[3] == ipc.errno.EAGAIN and timeout ~= nil then
        finding("eagain-not-timeout", step, sig, "EAGAIN from a call with a timeout: " .. show(res[2]))
      end
    end
    if timeout and math.type(timeout) and timeout == timeout and timeout >= 0 and timeout <= 0.2 then
      if took > SLOW then
        finding("slow", step, sig, ("took %.2f s with timeout %s"):format(took, show(timeout)))
      elseif took >= 0.15 and cpu >= 0.6 * took and not sig:find("ring") then
        finding("spin", step, sig,
          ("used %.2f s of CPU in %.2f s waiting (timeout %s)"):format(cpu, took, show(timeout)))
      end
    end
  end

  local function call(step, sig, desc, fn, args, n, timeout, closed_before, in_coroutine)
    emit("@@C ", step, " ", sig)
    emit("@@S ", step, " ", desc)
    local t0, c0 = ipc.clock(), os.clock()
    local res, cnt, ok
    if in_coroutine then
      local co = coroutine.create(function() return fn(table.unpack(args, 1, n)) end)
      local r = table.pack(coroutine.resume(co))
      ok = r[1]
      res = { table.unpack(r, 2, r.n) }
      cnt = r.n - 1
      if ok and coroutine.status(co) == "suspended" then
        return   -- it yielded (a hostile metamethod): leave it
      end
    else
      local r = table.pack(pcall(fn, table.unpack(args, 1, n)))
      ok = r[1]
      res = { table.unpack(r, 2, r.n) }
      cnt = r.n - 1
    end
    local took, cpu = ipc.clock() - t0, os.clock() - c0
    local parts = {}
    for i = 1, math.min(cnt, 4) do
      local v = res[i]
      parts[i] = (type(v) == "string" and #v <= 160) and ("%q"):format(v):gsub("\\\n", "\\n") or show(v)
    end
    emit("@@R ", step, ok and " => " or " !! ", table.concat(parts, ", "))
    check(step, sig, ok, res, cnt, took, cpu, timeout, closed_before)
    if ok then
      for i = 1, cnt do
        local v = res[i]
        if kindof(v) or io.type(v) == "file" then adopt(v, step, sig)
        elseif type(v) == "table" and not kindof(v) then
          -- (next, not pairs: a hostile __pairs, given back by a task, never ends)
          for _, x in next, v do if kindof(x) then adopt(x, step, sig .. "[]") end end
        end
      end
      -- process handles carry pipes
      for i = 1, cnt do
        if kindof(res[i]) == "lipc.process" then
          for _, f in ipairs { "stdin", "stdout", "stderr" } do
            local okf, x = pcall(function() return res[i][f] end)
            if okf and kindof(x) then adopt(x, step, sig .. "." .. f) end
          end
        end
      end
    end
    return ok, res, cnt
  end

  -- the names an argument list touches (for persist and explicit removal)
  local function note_names(args, n, persist_flag, removal)
    for i = 1, n do
      local a = args[i]
      if math.type(a) then a = tostring(a) end   -- (a number is a name too: Lua's coercion)
      if type(a) == "string" then
        if persist_flag then
          persisted[a] = true
          if a:sub(1, 1) ~= "/" then persisted[scratch .. "/" .. a] = true end   -- relative to the cwd
          local path = a:match("^%a+:(/.*)$")   -- a Unix socket URL
          if path then persisted[path] = true end
        end
        if removal then removing(a) end
      end
    end
  end

  local function method_names(e)
    local ms = METHODS[e.kind]
    local names = {}
    if ms then for m in pairs(ms) do names[#names + 1] = m end end
    -- methods lipc has that this table does not know: called with a timeout
    local mt = getmetatable(e.obj)
    local idx = type(mt) == "table" and rawget(mt, "__index")
    if type(idx) == "table" and e.kind ~= "io.file" then
      for m in pairs(idx) do
        -- (a Lua class's __index may be its metatable: __gc and the like
        -- are not methods)
        if not (ms and ms[m]) and not (type(m) == "string" and m:sub(1, 2) == "__") then
          names[#names + 1] = m
        end
      end
    end
    table.sort(names)
    return names
  end

  -- One call of a random method of entry e (task: the name of the task
  -- making it, or nil).
  local function method_call(step, e, in_co, task)
    local names = method_names(e)
    if #names == 0 then return end
    local m = names[math.random(#names)]
    local gen = METHODS[e.kind] and METHODS[e.kind][m]
    local args, n
    if gen then
      args, n = gen(e)
    else
      args = { hostile_any(), G.T() }
      n = 2
    end
    n = n or #args
    local sig = e.kind .. "." .. m
    local fn = function(...)
      local f = e.obj[m]
      return f(e.obj, ...)
    end
    if m == "unlink" or m == "remove" then
      local okn, name = pcall(function() return e.obj:name() end)
      if okn and type(name) == "string" then removing(name) end
    end
    -- the timeout is the last argument of blocking methods
    local timeout = args[n]
    if type(timeout) ~= "number" then timeout = nil end
    local desc = ("%s%s:%s(%s)"):format(task and ("[" .. task .. "] ") or "", show(e.obj), m, describe_args(args, n))
    -- (in a task a call's time is shared with the other tasks: no slow or spin check)
    if task then timeout = nil end
    local was_closed = e.closed
    local ok, res = call(step, sig, desc, fn, args, n, timeout, was_closed, in_co)
    if m == "close" and ok then e.closed = true end
    if m == "detach" and ok then
      e.closed = true
      -- the descriptor given up is the caller's now: the harness adopts it
      -- again (ipc.fd), so the teardown closes it
      if math.type(res[1]) == "integer" then
        call(step, "ipc.fd", ("ipc.fd(%d)"):format(res[1]), ipc.fd, { res[1] }, 1, nil, false, false)
      end
    end
    if (m == "values" or m == "lines") and ok and type(res[1]) == "function" then
      -- one step of the iterator (it reads with the timeout given)
      call(step, sig .. "()", desc .. "()", res[1], {}, 0, timeout, false, false)
    end
    if m == "wait" and e.kind == "lipc.poller" and ok and type(res[1]) == "function" then
      call(step, sig .. "()", desc .. "()", res[1], { res[2], res[3] }, 2, timeout, false, false)
    end
  end

  -- A task body: a few random calls, blocking ones with small timeouts
  -- (they yield to the loop), on the objects of the pool; joins and cancels
  -- of other tasks, sleeps, polls, a failure, a nested loop.  curstep is the
  -- step running the loop when the task runs.
  local curstep, ntasks = 0, 0
  task_fn = function()
    if math.random(12) == 1 then return hostile_any() end
    ntasks = ntasks + 1
    local tid = "t" .. ntasks
    local ncalls = math.random(1, 5)
    return label(function(...)
      for _ = 1, ncalls do
        local r = math.random(16)
        if r <= 8 then
          local e = pick_entry()
          if e then method_call(curstep, e, false, tid) end
        elseif r <= 10 then
          local d = ({ 0, 0.001, 0.01, 0.02 })[math.random(4)]
          call(curstep, "ipc.sleep", ("[%s] ipc.sleep(%s)"):format(tid, d), ipc.sleep, { d }, 1, nil, false, false)
        elseif r == 11 then
          local list, t = G.objlist(), G.T()
          call(curstep, "ipc.poll", ("[%s] ipc.poll(%s, %s)"):format(tid, show(list), show(t)), ipc.poll,
               { list, t }, 2, nil, false, false)
        elseif r <= 13 then
          local e = pick_entry("task")
          if e then method_call(curstep, e, false, tid) end
        elseif r == 14 then
          call(curstep, "ipc.loop", ("[%s] ipc.loop(0)"):format(tid), ipc.loop, { 0 }, 1, nil, false, false)
        elseif r == 15 then
          emit("@@S ", curstep, " [", tid, "] error(\"task fails\")")
          error(tid .. " fails")
        else
          coroutine.yield()   -- (a bare yield: the loop must take it as "ready again")
        end
      end
      return tid, ...
    end, "task_fn_" .. tid)
  end

  local function one_step(step)
    curstep = step
    math.randomseed(casebase, step)
    local r = math.random(100)
    local in_co = math.random(12) == 1
    if r <= 28 or #pool == 0 then
      local c = CTORS[math.random(#CTORS)]
      local args = c[3]()
      local n = #args
      for i = n, 1, -1 do if args[i] ~= nil then n = i break end end
      if c[1] == "ipc.fifo.open" or c[1] == "ipc.connect" then n = 3 end
      if c[1] == "ipc.fifo.open" then n = 3 end
      local persist = false
      for i = 1, n do
        if type(args[i]) == "table" and not getmetatable(args[i]) and rawget(args[i], "persist") then persist = true end
      end
      note_names(args, n, persist, false)
      local timeout = (c[1] == "ipc.fifo.open" or c[1] == "ipc.connect") and args[n] or nil
      local desc = c[1] .. "(" .. describe_args(args, n) .. ")"
      local ok, res = call(step, c[1], desc, c[2], args, n, timeout, false, in_co)
      if ok and persist and res then
        for _, v in ipairs(res) do
          if kindof(v) then
            local okn, name = pcall(function() return v:name() end)
            if okn and type(name) == "string" then persisted[name] = true end
            local oka, addr = pcall(function() return v:address() end)
            local path = oka and type(addr) == "string" and addr:match("^%a+:(/.*)$")
            if path then persisted[path] = true end
            local oki, id = pcall(function() return v:id() end)
            if oki and id then persisted["id=" .. tostring(id)] = true end
          end
        end
      end
    elseif r <= 88 then
      method_call(step, pick_entry(), in_co)
    elseif r <= 97 then
      local f = FUNCS_MOD[math.random(#FUNCS_MOD)]
      local args = f[3]()
      local n = #args
      for i = n, 1, -1 do if args[i] ~= nil then n = i break end end
      if f[4] == "unlink" then note_names(args, n, false, true) end
      local timeout = (f[1] == "ipc.poll" or f[1] == "ipc.wait") and args[2]
        or (f[1] == "ipc.loop" or f[1] == "ipc.sleep") and args[1] or nil
      call(step, f[1], f[1] .. "(" .. describe_args(args, n) .. ")", f[2], args, n, timeout, false, in_co)
    elseif r <= 99 then
      -- someone else puts a file where one of our names lives
      local k = math.random(#PATHS)
      local path = ({ PATHS[k], PATHS[k], "/dev/shm" .. PNAMES[k], "/dev/shm/sem." .. PNAMES[k]:sub(2),
                      "/dev/mqueue" .. PNAMES[k] })[math.random(5)]
      emit("@@S ", step, " outside: replace ", path, " with a regular file")
      os.remove(path)
      local f = io.open(path, "w")
      if f then f:write("foreign") f:close() decoys[path] = "-f" ours[path] = true end
      emit("@@R ", step, " => ok")
    elseif DEBUGSWAP then
      local a, b = pick_entry(), pick_entry()
      -- (lipc's metatables only: Lua's own io trusts its metatable, so a
      -- swap to or from an io file crashes Lua, not lipc)
      if a and b and a ~= b and a.kind ~= "io.file" and b.kind ~= "io.file" then
        emit("@@S ", step, " debug.setmetatable(", show(a.obj), ", getmetatable(", show(b.obj), "))")
        if not a.mt0 then a.mt0, a.kind0 = getmetatable(a.obj), a.kind end
        debug.setmetatable(a.obj, getmetatable(b.obj))
        a.kind = b.kind
        emit("@@R ", step, " => ok")
      end
    end
  end

  for step = 1, nsteps do
    if not (skip and skip[step]) then one_step(step) end
  end

  -- ---- teardown: close everything, then nothing may be left ---------------
  emit("@@C ", nsteps + 1, " teardown")
  -- (a step may have ignored SIGCHLD: os.execute and io.popen need it back)
  pcall(ipc.signal.default, "CHLD")
  emit("@@S ", nsteps + 1, " teardown: close every object, kill and reap every child")
  math.randomseed(casebase, nsteps + 1)
  curstep = nsteps + 1
  -- objects under another's metatable (FUZZ_DEBUG) get theirs back: the
  -- swap was tested by the steps, the teardown closes each as itself
  for _, e in ipairs(pool) do
    if e.mt0 then debug.setmetatable(e.obj, e.mt0) e.kind = e.kind0 end
  end
  -- tasks first: every one cancelled, the loop run until none is left (it
  -- raises the error of each failed task nobody joined, one a run)
  local ntask = 0
  for _, e in ipairs(pool) do
    if e.kind == "lipc.task" then ntask = ntask + 1 pcall(function() e.obj:cancel() end) end
  end
  if ntask > 0 then
    emit("@@C ", nsteps + 1, " teardown:ipc.loop")
    for _ = 1, ntask + 2 do
      local ok, r, msg = pcall(ipc.loop, 10)
      if ok and r == true then break end
      if ok then
        finding("tasks-left", nsteps + 1, "ipc.loop", "ipc.loop(10) after every task was cancelled: "
                .. show(r) .. ", " .. show(msg))
        break
      end
    end
  end
  -- processes next (they may hold pipes)
  for _, e in ipairs(pool) do
    if e.kind == "lipc.process" then
      emit("@@C ", nsteps + 1, " teardown:", e.kind, ".wait ", show(e.obj))
      pcall(function()
        if e.obj:status() == nil then e.obj:kill("KILL") end
        local how, msg = e.obj:wait(10)
        if how == nil and msg == "timeout" then
          finding("child-not-reaped", nsteps + 1, "lipc.process.wait", tostring(e.obj))
        end
      end)
    end
  end
  for i = #pool, 1, -1 do
    local e = pool[i]
    if e.kind == "lipc.task" then goto next end   -- (a task has no close)
    emit("@@C ", nsteps + 1, " teardown:", e.kind, ".close ", show(e.obj))
    local ok, res, _, code = pcall(function() return e.obj:close() end)
    if not ok then
      if type(res) ~= "string" then finding("raise-not-string", nsteps + 1, e.kind .. ".close", show(res)) end
      if e.kind ~= "io.file" then finding("close-raised", nsteps + 1, e.kind .. ".close", tostring(res)) end
    elseif e.kind ~= "io.file" and res ~= true and not (res == nil and e.kind == "lipc.channel")
           and not (res == nil and e.adopted and code == ipc.errno.EBADF) then
      finding("close-result", nsteps + 1, e.kind .. ".close", "returned " .. show(res))
    end
    ::next::
  end
  -- children started by others (ipc.run feeders, spawned helpers)
  for _, pid in ipairs(ipc.children()) do
    -- a handle closed while its child ran leaves it (documented): reap it
    if not procpids[pid] then
      finding("child-left", nsteps + 1, "children", "child process still there after every handle closed: pid " .. pid)
    end
    pcall(ipc.signal.kill, pid, "KILL")
    pcall(ipc.wait, pid, 5)
  end
  pool = {}
  collectgarbage()
  collectgarbage()
  local after = U.snapshot(scratch, FILTER)
  for _, item in ipairs(U.diff(before, after)) do
    local name = item:match("^/dev/shm(/.*)$") or item:match("^/dev/mqueue(/.*)$") or item
    local shmname = item:match("^/dev/shm/sem%.(.*)$")
    local id = item:match(" id=(%d+)$")
    local allowed = persisted[name] or (shmname and persisted["/" .. shmname]) or (id and persisted["id=" .. id])
      or ours[item] or persisted[item]
    if not allowed then
      local extra = item:match("^fd (%d+)$") and (" -> " .. U.fd_target(item:match("%d+"))) or ""
      local what = item:match("^fd ") and "fd" or item:match("^sysv (%a+)") and ("sysv-" .. item:match("^sysv (%a+)"))
        or item:match("^/dev/(%a+)/") or "file"
      finding("leak", nsteps + 1, "leak:" .. what, item .. extra)
    end
  end
  for path, test in pairs(decoys) do
    -- (never opened: a FIFO made there since would block the open)
    if os.execute("test " .. test .. " '" .. path .. "'") ~= true then
      local what = path:match("lipc%.%d+") and "sweep-bait"
        or path:match("^/dev/shm/sem%.") and "replaced-posix-name:sem"
        or path:match("^/dev/shm/") and "replaced-posix-name:shm"
        or path:match("^/dev/mqueue/") and "replaced-posix-name:mq" or "replaced-path"
      finding("foreign-removed", nsteps + 1, "removed:" .. what, path .. " (not lipc's) was removed")
    end
  end
  if not ISO then
    -- outside the namespaces: remove what this case made (decoys, persisted names)
    for path in pairs(ours) do os.remove(path) end
    for _, item in ipairs(U.diff(before, U.snapshot(scratch, FILTER))) do
      if item:sub(1, 1) == "/" then os.remove(item) end
    end
  end
  emit("@@E ", findings)
  io.stdout:flush()
  ipc.exit(findings > 0 and 3 or 0)
end

if ARGS.child then
  local skip
  if ARGS.skip and ARGS.skip ~= "" then
    skip = {}
    for s in ARGS.skip:gmatch("%d+") do skip[tonumber(s)] = true end
  end
  child.run(math.tointeger(tonumber(ARGS.seed)), math.tointeger(tonumber(ARGS.case)),
            ARGS.steps and math.tointeger(tonumber(ARGS.steps)), skip)
  return
end

-- ============================================================================
-- The driver: cases under a watchdog, findings minimised and reported
-- ============================================================================

local HANG = tonumber(os.getenv("FUZZ_HANG")) or 10
local MINSECS = tonumber(os.getenv("FUZZ_MIN_SECONDS")) or 40
local IGNORE = {}
for pat in (os.getenv("FUZZ_IGNORE") or ""):gmatch("[^,]+") do IGNORE[#IGNORE + 1] = pat end
if os.getenv("FUZZ_IGNORE_FILE") then
  for line in io.lines(os.getenv("FUZZ_IGNORE_FILE")) do
    if line:match("%S") and not line:match("^#") then IGNORE[#IGNORE + 1] = line end
  end
end

local function now_seed()
  local f = io.open("/dev/urandom", "rb")
  local b = f:read(4)
  f:close()
  return (string.unpack("<I4", b) % 1000000000) + 1
end

local SEED = math.tointeger(tonumber(ARGS.seed or os.getenv("FUZZ_SEED") or "")) or now_seed()
local CASE = math.tointeger(tonumber(ARGS.case or os.getenv("FUZZ_CASE") or ""))
local SECONDS = tonumber(ARGS.seconds or os.getenv("FUZZ_SECONDS")) or 60
local STEPS = ARGS.steps and math.tointeger(tonumber(ARGS.steps))

local CWD
do local p = io.popen("pwd") CWD = p:read("l") p:close() end

local function skiplist(skip)
  local t = {}
  for s in pairs(skip or {}) do t[#t + 1] = s end
  table.sort(t)
  return table.concat(t, ",")
end

-- Run one case; returns its result: { how, code, out, findings = { {kind, step, sig, detail} }, last = step }
local function run_case(seed, case, steps, skip, hang)
  local argv = { "lua5.4", "fuzz/api.lua", "--child", "--seed", tostring(seed), "--case", tostring(case) }
  if steps then argv[#argv + 1] = "--steps" argv[#argv + 1] = tostring(steps) end
  local sl = skiplist(skip)
  if sl ~= "" then argv[#argv + 1] = "--skip" argv[#argv + 1] = sl end
  local env = { LUA_PATH = CWD .. "/lua/?.lua;" .. CWD .. "/lua/?/init.lua;" .. CWD .. "/fuzz/?.lua",
                LUA_CPATH = CWD .. "/" .. (os.getenv("FUZZ_BUILD") or "build") .. "/?.so",
                FUZZ_ISOLATED = U.can_isolate() and "1" or "0" }
  argv[2] = CWD .. "/fuzz/api.lua"
  local res = U.run_child(argv, { hang = hang or HANG, env = env })
  res.findings = {}
  local last, lastdone, lastsig = 0, 0, "?"
  for line in res.out:gmatch("[^\n]+") do
    local c = line:match("^@@C %d+ (%S+)")
    if c then lastsig = c end
    local s = line:match("^@@S (%d+) ")
    if s then last = tonumber(s) end
    local d = line:match("^@@R (%d+) ")
    if d then lastdone = tonumber(d) end
    local kind, step, sig, detail = line:match("^@@F ([^\t]+)\t(%d+)\t([^\t]+)\t(.*)$")
    if kind then
      res.findings[#res.findings + 1] = { kind = kind, step = tonumber(step), sig = sig, detail = detail }
    end
  end
  res.last = last
  if res.how == "hang" then
    res.findings[#res.findings + 1] = { kind = "hang", step = last, sig = "hang:" .. lastsig,
                                        detail = ("no progress for %d s in step %d"):format(HANG, last) }
  elseif res.how == "signaled" then
    res.findings[#res.findings + 1] = { kind = "crash", step = last,
                                        sig = "crash:" .. lastsig .. ":signal " .. tostring(res.code),
                                        detail = ("killed by signal %s in step %d%s"):format(tostring(res.code), last,
                                          lastdone == last and " (after it returned)" or "") }
  elseif res.how == "exited" and res.code ~= 0 and res.code ~= 3 then
    local msg = res.out:match("lua5.4: ([^\n]*)") or res.out:match("([^\n]*)\n?$") or ""
    res.findings[#res.findings + 1] = { kind = "child-error", step = last, sig = "exit:" .. tostring(res.code),
                                        detail = ("exited %s in step %d: %s"):format(tostring(res.code), last, msg) }
  end
  return res
end

local function reproduces(res, f)
  for _, g in ipairs(res.findings) do
    if g.kind == f.kind and g.sig == f.sig then return g end
  end
  return nil
end

-- The shortest prefix, then chunks and single steps dropped, that still
-- give finding f (within budget seconds).  While minimising, a hang is a
-- call silent for 4 s (every call is bounded far below that).
local function minimise(seed, case, f, budget)
  local t0 = ipc.clock()
  local hang = f.kind == "hang" and math.min(HANG, 4) or nil
  local function try(steps, skip) return reproduces(run_case(seed, case, steps, skip, hang), f) end
  local steps = f.step
  local skip = {}
  -- a leak or a foreign file removed shows only in the teardown after the last step
  if f.kind == "leak" or f.kind == "foreign-removed" or f.kind == "child-left" or f.kind:find("^close")
     or f.sig:find("teardown", 1, true) then
    local lo, hi = 1, f.step - 1
    while lo < hi and ipc.clock() - t0 < budget do
      local mid = (lo + hi) // 2
      if try(mid, skip) then hi = mid else lo = mid + 1 end
    end
    steps = hi
  elseif not try(steps, skip) then
    return steps, skip, false
  end
  -- drop chunks of steps, halving their size
  local size = math.max(1, (steps - 1) // 2)
  while size >= 1 and ipc.clock() - t0 < budget do
    local live = {}
    for s = 1, steps - 1 do if not skip[s] then live[#live + 1] = s end end
    for i = #live - size + 1, 1, -size do
      if ipc.clock() - t0 > budget then break end
      local chunk = {}
      for k = math.max(1, i), i + size - 1 do chunk[#chunk + 1] = live[k] end
      for _, s in ipairs(chunk) do skip[s] = true end
      if not try(steps, skip) then for _, s in ipairs(chunk) do skip[s] = nil end end
    end
    if size == 1 then break end
    size = size // 2
  end
  return steps, skip, true
end

local function print_sequence(out, upto)
  for line in out:gmatch("[^\n]+") do
    local kind, step = line:match("^@@(%a) (%d+)")
    if kind and tonumber(step) <= upto + 1 then
      if kind == "S" then io.write("    ", line:sub(4), "\n")
      elseif kind == "R" or kind == "N" then io.write("      ", line:sub(4):gsub("^%d+ ", ""), "\n") end
    elseif not line:match("^@@") then
      io.write("    | ", line, "\n")
    end
  end
end

local function replay_cmd(seed, case, steps, skip)
  local sl = skiplist(skip)
  local cmd = ("FUZZ_SEED=%d FUZZ_CASE=%d"):format(seed, case)
  local extra = ""
  if steps then extra = extra .. " --steps " .. steps end
  if sl ~= "" then extra = extra .. " --skip " .. sl end
  return ("%s make fuzz   (or: lua5.4 fuzz/api.lua --seed %d --case %d%s)"):format(cmd, seed, case, extra)
end

local function ignored(f)
  for _, pat in ipairs(IGNORE) do
    if (f.kind .. " " .. f.sig):find(pat) then return true end
  end
  return false
end

if CASE then
  -- replay one case, verbosely
  print(("lipc api fuzz: replaying seed %d case %d%s (isolated: %s)"):format(SEED, CASE,
    STEPS and (" steps " .. STEPS) or "", tostring(U.can_isolate())))
  local skip
  if ARGS.skip then skip = {} for s in ARGS.skip:gmatch("%d+") do skip[tonumber(s)] = true end end
  local res = run_case(SEED, CASE, STEPS, skip)
  print_sequence(res.out, math.huge)
  local bad = 0
  for _, f in ipairs(res.findings) do
    print(("FINDING %s [%s] at step %d: %s"):format(f.kind, f.sig, f.step, f.detail))
    if not ignored(f) then bad = bad + 1 end
  end
  if ARGS.minimise then   -- --minimise SECONDS: minimise each finding of this case
    for _, f in ipairs(res.findings) do
      local steps, skip2, rep = minimise(SEED, CASE, f, tonumber(ARGS.minimise) or MINSECS)
      print(("\nminimised %s [%s]%s"):format(f.kind, f.sig, rep and "" or " (did not reproduce)"))
      print("  replay: " .. replay_cmd(SEED, CASE, steps, skip2))
      print_sequence(run_case(SEED, CASE, steps, skip2).out, steps)
    end
  end
  print(("lipc api fuzz: %d finding(s)"):format(#res.findings))
  os.exit((bad > 0 and os.getenv("FUZZ_FAIL") ~= "0") and 1 or 0)
end

print(("lipc api fuzz: FUZZ_SEED=%d FUZZ_SECONDS=%s (isolated: %s, hang after %d s)"):format(SEED, tostring(SECONDS),
  tostring(U.can_isolate()), HANG))
io.stdout:flush()
local t0 = ipc.clock()
local seen, reported, known, cases, calls = {}, 0, 0, 0, 0
local case = 0
while ipc.clock() - t0 < SECONDS do
  case = case + 1
  cases = cases + 1
  local res = run_case(SEED, case, nil, nil)
  for _ in res.out:gmatch("@@S ") do calls = calls + 1 end
  for _, f in ipairs(res.findings) do
    local key = f.kind .. " " .. f.sig
    if not seen[key] then
      seen[key] = true
      if ignored(f) then
        known = known + 1
        print(("known: %s [%s] (case %d step %d): %s"):format(f.kind, f.sig, case, f.step, f.detail))
      else
        reported = reported + 1
        local left = SECONDS - (ipc.clock() - t0)
        local steps, skip, rep = minimise(SEED, case, f, math.max(5, math.min(MINSECS, left)))
        local final = run_case(SEED, case, steps, skip)
        print(("\nFINDING %d: %s [%s] in case %d, step %d: %s"):format(reported, f.kind, f.sig, case, f.step, f.detail))
        if not rep then print("  (did not reproduce on replay: timing-dependent?)") end
        print("  replay: " .. replay_cmd(SEED, case, rep and steps or nil, rep and skip or nil))
        print("  call sequence" .. (rep and " (minimised)" or "") .. ":")
        print_sequence(rep and final.out or res.out, rep and steps or f.step)
        io.stdout:flush()
      end
    end
  end
end
print(("lipc api fuzz: seed %d, %d cases, %d calls in %.0f s: %d finding(s)%s"):format(SEED, cases, calls,
  ipc.clock() - t0, reported, known > 0 and (", " .. known .. " known and ignored") or ""))
os.exit((reported > 0 and os.getenv("FUZZ_FAIL") ~= "0") and 1 or 0)
