--- Kill-stress: N producers and M consumers of channel values over every
-- channel transport and the ring, producers killed with SIGKILL mid-stream.
-- Checks that no value is duplicated or corrupted, that each producer's
-- values arrive in order and without holes (up to where a killed producer
-- stopped; UDP may drop), and that nothing is left behind: names,
-- descriptors, children.
--
--   lua5.4 fuzz/stress.lua            (make stress sets LUA_PATH/LUA_CPATH)
-- Environment: STRESS_SECONDS (whole run, default 30), STRESS_SEED (default
-- random, printed), STRESS_TRANSPORTS (comma-separated subset),
-- STRESS_PRODUCERS (default 3), STRESS_CONSUMERS (default 2), FUZZ_NS=0.
-- Exit status 0 when every transport passed.
package.path = "fuzz/?.lua;" .. package.path
local ipc = require "lipc"
local U = require "util"

local TRANSPORTS = { "pipe", "fifo", "socketpair", "dgram", "seqpacket", "unix", "tcp", "unixgram", "udp",
                     "mq", "msg", "ring" }

-- ---- the values ---------------------------------------------------------------
local function pad_of(p, i)
  local len = (p * 131 + i * 17) % 1500
  return string.char(65 + (p * 7 + i) % 26):rep(len)
end
local function value_of(p, i)
  return { p = p, i = i, pad = pad_of(p, i), t = { i, -i, i * 0.5, tostring(i) } }
end
local function valid(v)
  return type(v) == "table" and math.type(v.p) == "integer" and math.type(v.i) == "integer"
    and v.pad == pad_of(v.p, v.i) and type(v.t) == "table" and v.t[1] == v.i and v.t[2] == -v.i
    and v.t[3] == v.i * 0.5 and v.t[4] == tostring(v.i)
end

-- ---- one round: one transport -----------------------------------------------
local function round(kind, seconds, nprod, ncons, scratch)
  local problems = {}
  local function problem(fmt, ...) problems[#problems + 1] = fmt:format(...) end
  local stream_per_producer = kind == "socketpair" or kind == "unix" or kind == "tcp"
  if kind == "pipe" or kind == "fifo" or kind == "socketpair" then ncons = 1 end
  local board <close> = assert(ipc.shm.anonymous(8 * (nprod + 2)))  -- [0]=producers gone, [p]=last sent
  local nomsg = { eof = false }

  -- the transport, and how each side opens its channel
  local shared, listener, fifo, pairs_ = nil, nil, nil, {}
  local producer_chan, consumer_setup
  if kind == "pipe" then
    local r, w = assert(ipc.pipe())
    shared = { r, w }
    producer_chan = function() r:close() return ipc.channel(w) end
    consumer_setup = function() w:close() return { ipc.channel(r) } end
  elseif kind == "fifo" then
    fifo = assert(ipc.mkfifo(scratch .. "/stress.fifo"))
    local keep = assert(ipc.fifo.open(fifo:name(), "rw"))   -- so opens never wait
    shared = { keep }
    producer_chan = function() return ipc.channel(assert(ipc.fifo.open(fifo:name(), "w", 5))) end
    consumer_setup = function() return { ipc.channel(assert(ipc.fifo.open(fifo:name(), "r", 5))) } end
  elseif kind == "socketpair" then
    for p = 1, nprod do pairs_[p] = { assert(ipc.socketpair("stream")) } end
    producer_chan = function(p)
      for q = 1, nprod do pairs_[q][2]:close() if q ~= p then pairs_[q][1]:close() end end
      return ipc.channel(pairs_[p][1])
    end
    consumer_setup = function()
      local chans = {}
      for q = 1, nprod do pairs_[q][1]:close() chans[q] = ipc.channel(pairs_[q][2]) end
      return chans
    end
  elseif kind == "dgram" or kind == "seqpacket" then
    local a, b = assert(ipc.socketpair(kind))
    shared = { a, b }
    producer_chan = function() b:close() return ipc.channel(a, nomsg) end
    consumer_setup = function() a:close() return { ipc.channel(b, nomsg) } end
  elseif kind == "unix" or kind == "tcp" or kind == "unixgram" or kind == "udp" then
    local url = ({ unix = "unix:" .. scratch .. "/stress.sock", tcp = "tcp://127.0.0.1:0",
                   unixgram = "unixgram:" .. scratch .. "/stress.dgram", udp = "udp://127.0.0.1:0" })[kind]
    listener = assert(ipc.listen(url))
    local addr = listener:address()
    producer_chan = function()
      listener:close()
      local c = assert(ipc.connect(addr, 5))
      return ipc.channel(c, nomsg)
    end
    if kind == "unixgram" or kind == "udp" then
      consumer_setup = function() return { ipc.channel(listener, nomsg) } end
    else
      consumer_setup = function() return { listener = listener } end
    end
  elseif kind == "mq" then
    local q = assert(ipc.mq.open(nil, { create = true, maxmsg = 10, msgsize = 4096 }))
    shared = { q }
    producer_chan = function() return ipc.channel(q, nomsg) end
    consumer_setup = function() return { ipc.channel(q, nomsg) } end
  elseif kind == "msg" then
    local m = assert(ipc.msg.get(ipc.IPC_PRIVATE, { create = true }))
    shared = { m }
    producer_chan = function() return ipc.channel(m, nomsg) end
    consumer_setup = function() return { ipc.channel(m, nomsg) } end
  elseif kind == "ring" then
    local r = assert(ipc.ring.create(16384))
    shared = { r }
    producer_chan = function() return ipc.channel(r, nomsg) end
    consumer_setup = function() return { ipc.channel(r, nomsg) } end
  end

  -- consumers: record "p i" of every value to their own file
  local consumers = {}
  for c = 1, ncons do
    local file = ("%s/stress.%s.c%d"):format(scratch, kind, c)
    consumers[c] = { file = file, proc = assert(ipc.spawn(function()
      local out = assert(io.open(file, "w"))
      local chans = consumer_setup()
      local srv = chans.listener
      chans.listener = nil
      local list = {}
      for _, ch in pairs(chans) do list[#list + 1] = ch end
      local idle = 0
      while true do
        -- wait for a descriptor to be readable, unless a channel holds a value already
        -- (System V queues and rings have no descriptor: their recv waits instead)
        local waitfor, buffered, blind = {}, false, false
        for _, ch in ipairs(list) do
          local okf, fd = pcall(ch.fileno, ch)
          if okf and fd then waitfor[#waitfor + 1] = fd else blind = true end
          if ch:buffered() then buffered = true end
        end
        if srv then waitfor[#waitfor + 1] = srv end
        if not buffered and not blind then ipc.poll(waitfor, 0.1) end
        local got = false
        if srv then
          local conn = srv:accept(0)
          if conn then list[#list + 1] = ipc.channel(conn) got = true end
        end
        for k = #list, 1, -1 do
          local ch = list[k]
          local tries = 0
          repeat
            local v, err, code = ch:recv((blind and tries == 0) and 0.1 or 0)
            tries = tries + 1
            if v ~= nil then
              got = true
              if valid(v) then out:write(v.p, " ", v.i, "\n")
              else out:write("BAD ", U.show(v):sub(1, 200), "\n") end
            elseif err == "closed" then
              ch:close() table.remove(list, k) break
            elseif err ~= "timeout" then
              -- a stream whose producer was killed in the middle of a frame
              out:write("ERR ", tostring(err), " ", tostring(code), "\n")
              ch:close() table.remove(list, k) break
            end
          until v == nil or tries > 64
        end
        if got then idle = 0 else idle = idle + 1 end
        -- all producers gone and nothing for a while: done
        if board:load(0) >= nprod and idle >= 5 then break end
        if #list == 0 and not srv and board:load(0) >= nprod then break end
      end
      for _, ch in ipairs(list) do ch:close() end
      if srv then srv:close() end
      out:close()
      return 0
    end)) }
  end

  -- producers: send values until their time is up (or they are killed)
  local producers = {}
  local deadline = ipc.clock() + seconds
  for p = 1, nprod do
    producers[p] = { proc = assert(ipc.spawn(function()
      if listener and kind ~= "unixgram" and kind ~= "udp" then listener:close() end
      local ch = producer_chan(p)
      local i = 0
      while ipc.clock() < deadline do
        i = i + 1
        local ok, err = ch:send(value_of(p, i), 5)
        if not ok then io.stderr:write(("producer %d: send %d: %s\n"):format(p, i, tostring(err))) ipc.exit(2) end
        board:store(8 * p, i)
        if kind == "udp" and i % 16 == 0 then ipc.poll({}, 0.001) end   -- (a lossy transport: pace it)
      end
      ch:close()
      ipc.exit(0)
    end)) }
  end
  -- the parent keeps no stream end a producer or consumer uses (the ends
  -- would hide the end of the stream); queues and rings it owns stay open
  -- until the end of the round, or their names would go
  if kind == "pipe" or kind == "fifo" or kind == "dgram" or kind == "seqpacket" then
    for _, o in ipairs(shared) do o:close() end
  end
  for _, pr in ipairs(pairs_) do pr[1]:close() pr[2]:close() end

  -- kill some producers at random moments
  local victims = {}
  for p = 1, nprod do
    if math.random(3) == 1 or (p == 1 and not next(victims)) then
      victims[p] = ipc.clock() + math.random() * seconds * 0.8
    end
  end
  local gone = {}
  while true do
    local t = ipc.clock()
    local left = 0
    for p, pr in ipairs(producers) do
      if not gone[p] then
        if victims[p] and t >= victims[p] then pr.proc:kill("KILL") victims[p] = nil end
        local how, code = pr.proc:status()
        if how then
          gone[p] = true
          pr.how, pr.code = how, code
        else
          left = left + 1
        end
      end
    end
    board:store(0, nprod - left)
    if left == 0 then break end
    if t > deadline + 30 then
      problem("producers still running 30 s after their deadline")
      for _, pr in ipairs(producers) do pcall(pr.proc.kill, pr.proc, "KILL") pr.proc:wait(10) end
    end
    ipc.poll({}, 0.02)
  end
  board:store(0, nprod)
  if listener then listener:close() end   -- (a Unix path must live until every producer connected)
  for c, co in ipairs(consumers) do
    local how, code = co.proc:wait(60)
    if how ~= "exited" or code ~= 0 then
      problem("consumer %d ended %s %s", c, tostring(how), tostring(code))
      if how == nil then co.proc:kill("KILL") co.proc:wait(10) end
    end
    co.proc:close()
  end
  for p, pr in ipairs(producers) do
    pr.killed = pr.how == "signaled" and pr.code == 9
    if not pr.killed and not (pr.how == "exited" and pr.code == 0) then
      problem("producer %d ended %s %s", p, tostring(pr.how), tostring(pr.code))
    end
    pr.sent = board:load(8 * p)
    pr.proc:close()
  end
  if fifo then fifo:close() end
  if shared then for _, o in ipairs(shared) do o:close() end end

  -- what arrived
  local got = {}   -- got[p][i] = count
  local total, errs = 0, 0
  for c, co in ipairs(consumers) do
    local last = {}
    local f = io.open(co.file)
    if not f then problem("consumer %d left no results", c)
    else
      for line in f:lines() do
        local p, i = line:match("^(%d+) (%d+)$")
        if p then
          p, i = tonumber(p), tonumber(i)
          got[p] = got[p] or {}
          got[p][i] = (got[p][i] or 0) + 1
          total = total + 1
          if last[p] and i <= last[p] then
            problem("consumer %d got producer %d's value %d after %d (order)", c, p, i, last[p])
          end
          last[p] = i
        elseif line:match("^BAD") then problem("consumer %d got a corrupted value: %s", c, line)
        elseif line:match("^ERR") then
          errs = errs + 1
          -- a frame cut by a kill (streams), a ring whose killed producer is
          -- gone: the end of that channel; lost values show below
          if not stream_per_producer and not (kind == "ring" and line:find("peer gone", 1, true)) then
            problem("consumer %d: %s", c, line)
          end
        end
      end
      f:close()
      os.remove(co.file)
    end
  end
  for p, pr in ipairs(producers) do
    local g = got[p] or {}
    local max = 0
    for i, n in pairs(g) do
      if n > 1 then problem("producer %d's value %d arrived %d times", p, i, n) end
      if i > max then max = i end
    end
    if kind ~= "udp" then
      for i = 1, max do
        if not g[i] then problem("producer %d's value %d is missing (got up to %d)", p, i, max) break end
      end
      if max < pr.sent then problem("producer %d sent %d values, %d arrived", p, pr.sent, max) end
      if not pr.killed and max ~= pr.sent then
        problem("producer %d ended after %d values, %d arrived", p, pr.sent, max)
      end
      if pr.killed and max > pr.sent + 1 then problem("killed producer %d: %d arrived, %d sent", p, max, pr.sent) end
    end
  end
  local killed = 0
  for _, pr in ipairs(producers) do if pr.killed then killed = killed + 1 end end
  return problems, { total = total, killed = killed, errs = errs }
end

-- ---- the child: every transport in turn ------------------------------------
local function child_main(seed, seconds, only)
  math.randomseed(seed)
  io.stdout:setvbuf("line")
  local scratch = os.getenv("TMPDIR") or "/tmp"
  local nprod = tonumber(os.getenv("STRESS_PRODUCERS")) or 3
  local ncons = tonumber(os.getenv("STRESS_CONSUMERS")) or 2
  local list = {}
  for _, k in ipairs(TRANSPORTS) do if not only or only[k] then list[#list + 1] = k end end
  local per = math.max(0.5, seconds / #list - 0.5)
  local isolated = os.getenv("FUZZ_ISOLATED") == "1"
  local before = U.snapshot(scratch, not isolated and function(n)
    return n:find("lipc." .. ipc.getpid() .. ".", 1, true) or n:find(scratch, 1, true) == 1 end or nil)
  local failed = 0
  for _, kind in ipairs(list) do
    local t0 = ipc.clock()
    local ok, problems, info = pcall(round, kind, per, nprod, ncons, scratch)
    if not ok then problems, info = { "raised: " .. tostring(problems) }, { total = 0, killed = 0, errs = 0 } end
    for _, pid in ipairs(ipc.children()) do
      problems[#problems + 1] = "child left behind: pid " .. pid
      pcall(ipc.signal.kill, pid, "KILL")
      pcall(ipc.wait, pid, 5)
    end
    local now = U.snapshot(scratch, not isolated and function(n)
      return n:find("lipc." .. ipc.getpid() .. ".", 1, true) or n:find(scratch, 1, true) == 1 end or nil)
    for _, item in ipairs(U.diff(before, now)) do
      local extra = item:match("^fd (%d+)$") and (" -> " .. U.fd_target(item:match("%d+"))) or ""
      problems[#problems + 1] = "left behind: " .. item .. extra
    end
    before = now
    print(("stress %-10s %6d values, %d producer(s) killed, %d cut frame(s), %.1f s: %s"):format(kind, info.total,
      info.killed, info.errs, ipc.clock() - t0, #problems == 0 and "ok" or "FAILED"))
    for _, p in ipairs(problems) do print("    " .. p) end
    if #problems > 0 then failed = failed + 1 end
  end
  ipc.exit(failed > 0 and 3 or 0)
end

-- ---- the driver ---------------------------------------------------------------
local ARGS = {}
do
  local i = 1
  while i <= #arg do
    local k = arg[i]:match("^%-%-(.+)$")
    if k == "child" then ARGS.child = true i = i + 1
    elseif k then ARGS[k] = arg[i + 1] i = i + 2
    else error("usage: lua5.4 fuzz/stress.lua") end
  end
end
local SEED = math.tointeger(tonumber(ARGS.seed or os.getenv("STRESS_SEED") or ""))
if not SEED then
  local f = io.open("/dev/urandom", "rb")
  SEED = string.unpack("<I4", f:read(4)) % 1000000000 + 1
  f:close()
end
local SECONDS = tonumber(ARGS.seconds or os.getenv("STRESS_SECONDS")) or 30
local only
if os.getenv("STRESS_TRANSPORTS") then
  only = {}
  for k in os.getenv("STRESS_TRANSPORTS"):gmatch("[^,%s]+") do only[k] = true end
end

if ARGS.child then
  child_main(SEED, SECONDS, only)
  return
end

print(("lipc stress: STRESS_SEED=%d STRESS_SECONDS=%s (isolated: %s)"):format(SEED, tostring(SECONDS),
  tostring(U.can_isolate())))
io.stdout:flush()
local cwd
do local p = io.popen("pwd") cwd = p:read("l") p:close() end
local res = U.run_child({ "lua5.4", cwd .. "/fuzz/stress.lua", "--child", "--seed", tostring(SEED),
                          "--seconds", tostring(SECONDS) }, {
  hang = 90,
  env = { LUA_PATH = cwd .. "/lua/?.lua;" .. cwd .. "/lua/?/init.lua;" .. cwd .. "/fuzz/?.lua",
          LUA_CPATH = cwd .. "/" .. (os.getenv("FUZZ_BUILD") or "build") .. "/?.so",
          FUZZ_ISOLATED = U.can_isolate() and "1" or "0",
          STRESS_TRANSPORTS = os.getenv("STRESS_TRANSPORTS") or false },
  on_data = function(d) io.write(d) io.stdout:flush() end,
})
local ok = res.how == "exited" and res.code == 0
if not ok then
  print(("lipc stress: FAILED (%s %s); replay: STRESS_SEED=%d make stress"):format(res.how, tostring(res.code), SEED))
else
  print("lipc stress: all transports passed")
end
os.exit(ok and 0 or 1)
