--- Topologies: pipelines of commands and Lua functions, and graphs of
-- processes wired by any lipc transport.
--
-- `topo.pipeline{...}:run(timeout)` runs a shell-like pipeline;
-- `topo.graph()` declares nodes (Lua functions or commands) and links
-- (pipe, fifo, socketpair, unix, tcp, mq, msg, ring), then `g:run(timeout)`
-- starts one process per node, waits for them all and reports each outcome,
-- killing the rest when one fails or the time is up. Nothing a run creates
-- outlives it. See doc/topology.md.
-- @module lipc.topology
-- @usage
-- local topo = require "lipc.topology"
-- local g = topo.graph()
-- g:node("producer", function(out) for i = 1, 3 do out:send({ n = i }) end end)
-- g:node("consumer", function(inp)
--   for v in inp:values(5) do print(v.n) end
-- end)
-- g:link("producer", "consumer", { via = "mq" })
-- local results = g:run(10)

local ipc = require "lipc"

local M = {}

local now = ipc.channel._now
local DEFAULT_GRACE = 1.0

local VIAS = { pipe = true, fifo = true, socketpair = true, unix = true, tcp = true,
               mq = true, msg = true, ring = true }
local VIA_LIST = "pipe, fifo, socketpair, unix, tcp, mq, msg, ring"

-- ---- small checks ----------------------------------------------------------

local function argerror(fname, n, msg, level)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), (level or 2) + 1)
end

local function check_timeout(fname, n, t)
  if t == nil then return nil end
  if type(t) ~= "number" then argerror(fname, n, "timeout: number expected, got " .. type(t), 2) end
  if t ~= t or t < 0 then argerror(fname, n, "timeout must be >= 0 and not NaN", 2) end
  return t
end

local function check_options(fname, n, opts, allowed)
  if opts == nil then return {} end
  if type(opts) ~= "table" then argerror(fname, n, "options table expected, got " .. type(opts), 2) end
  for k in next, opts do
    if not allowed[k] then argerror(fname, n, ("unknown option '%s'"):format(tostring(k)), 2) end
  end
  return opts
end

-- An argv table: strings 1..n (n >= 1); other keys are exec options.
-- User tables are read raw (rawlen, next): a __len or __pairs must not
-- make the checks loop for ever.
local EXEC_KEYS = { stderr = true, env = true, cwd = true, clearenv = true, umask = true }
local function check_argv(fname, n, argv)
  local len = rawlen(argv)
  if len < 1 then argerror(fname, n, "a command needs its program name at [1]", 3) end
  for k, v in next, argv do
    if math.type(k) == "integer" and k >= 1 and k <= len then
      if type(v) ~= "string" then
        argerror(fname, n, ("command argument [%d] must be a string, got %s"):format(k, type(v)), 3)
      end
    elseif not EXEC_KEYS[k] then
      argerror(fname, n, ("unknown command option '%s'"):format(tostring(k)), 3)
    end
  end
end

-- The ipc.exec table of a command node: its own session (a process group
-- that run can kill whole, grandchildren included, and no SIGTTIN when it
-- reads an inherited terminal); stderr = "capture" becomes a pipe whose read
-- end is added to sinks (with the node name: results[name].stderr).
local function exec_table(argv, stdin, stdout, sinks, ends, name)
  local t = {}
  for k, v in next, argv do t[k] = v end
  t.stdin, t.stdout = stdin or "inherit", stdout or "inherit"
  t.session = true
  if t.stderr == "capture" then
    local r, w, c = ipc.pipe()
    if not r then return nil, w, c end
    ends[#ends + 1] = w
    sinks[#sinks + 1] = { r = r, parts = {}, name = name, key = "stderr" }
    t.stderr = w
  end
  return t
end

-- Sleep s seconds (poll on nothing).
local function nap(s)
  if s > 0 then ipc.poll({}, s) end
end

-- ---- processes ---------------------------------------------------------------

-- Run body() in a child process (ipc.spawn, in its own session); its return
-- value is the exit code.
local function start_function(body)
  local p, err, code = ipc.spawn { body, session = true }
  if not p then return nil, err, code end
  return { p = p, pid = p.pid, start = now() }
end

local function start_command(t, err0, code0)
  if not t then return nil, err0, code0 end
  local p, err, code = ipc.exec(t)
  if not p then return nil, err, code end
  return { p = p, pid = p.pid, start = now() }
end

-- Signal the whole process group (session) a node leads; the process alone
-- when the group is not there yet (a child between fork and setsid).
local function kill_node(pr, sig)
  local ok, done = pcall(pr.p.kill, pr.p, sig, "group")
  if not (ok and done) then pcall(pr.p.kill, pr.p, sig) end
end

-- Read what a sink (a captured output) holds; closes it at end of stream.
-- limit bounds the reads (after every process ended).
local function drain_sink(sk, limit)
  for _ = 1, limit or math.huge do
    if not sk.r then return end
    local data, _, no = sk.r:read(65536, 0)
    if data then
      sk.parts[#sk.parts + 1] = data
      if #data < 65536 then return end
    elseif no == ipc.errno.ETIMEDOUT then
      return
    else
      sk.r:close()                 -- end of stream (or a failure: stop reading)
      sk.r = nil
      return
    end
  end
end

-- Wait for every process; fail_fast kills the others when one fails.
-- Fills pr.result = { status =, code =, seconds = } for each. Captured
-- outputs (sinks) are read meanwhile; once a node is reaped, what is left
-- of its process group (background grandchildren) is killed, so no pipe of
-- the run stays open behind it.
local function supervise(procs, deadline, grace, fail_fast, sinks)
  sinks = sinks or {}
  local running = 0
  for _, pr in ipairs(procs) do
    if not pr.result then running = running + 1 end
  end
  local killall

  local function reaped(pr, how, code)
    local status = how
    if pr.killed_for and not (how == "exited" and code == 0) then status = pr.killed_for end
    pr.result = { status = status, code = code, seconds = now() - pr.start }
    if status ~= how then pr.result.how = how end
    pcall(pr.p.kill, pr.p, "KILL", "group")   -- stragglers of its group
    pr.p:close()
    running = running - 1
    if fail_fast and not (how == "exited" and code == 0) and not pr.killed_for then
      killall("killed")
    end
  end

  local function try(pr, t)
    if pr.result then return true end
    local how, code = pr.p:wait(t)
    if how then reaped(pr, how, code); return true end
    if code ~= "timeout" then
      -- cannot wait for it (should not happen): report and forget it
      pr.result = { status = "error", code = -1, seconds = now() - pr.start, error = code }
      running = running - 1
      return true
    end
    return false
  end

  local function live()
    local l = {}
    for _, pr in ipairs(procs) do
      if not pr.result then l[#l + 1] = pr end
    end
    return l
  end

  -- Block until one of the live processes exits, a sink has data, or t seconds pass.
  local function block(t)
    local l = live()
    if #l == 0 then return end
    local objs = {}
    for i, pr in ipairs(l) do objs[i] = pr.p end
    for _, sk in ipairs(sinks) do
      if sk.r then objs[#objs + 1] = sk.r end
    end
    -- a pidfd is readable once its process exited; Ctrl-C raises through here
    local ready = ipc.poll(objs, t)
    for _, p in ipairs(ready or {}) do
      for _, pr in ipairs(l) do
        if pr.p == p and not pr.result then try(pr, 0) end
      end
      for _, sk in ipairs(sinks) do
        if sk.r == p then drain_sink(sk) end
      end
    end
  end

  local killing = false
  function killall(reason)
    if killing then return end
    killing = true
    for _, pr in ipairs(live()) do
      pr.killed_for = reason
      kill_node(pr, "TERM")
    end
    local gdl = now() + grace
    while running > 0 do
      local left = gdl - now()
      if left <= 0 then break end
      block(left)
    end
    for _, pr in ipairs(live()) do kill_node(pr, "KILL") end
    while running > 0 do
      for _, pr in ipairs(live()) do try(pr, 0) end
      if running > 0 then block(1) end
    end
  end

  while running > 0 do
    local progressed = false
    for _, pr in ipairs(live()) do
      if try(pr, 0) then progressed = true end
      if running == 0 then break end
    end
    if running == 0 then break end
    if deadline and now() >= deadline then killall("timeout"); break end
    if not progressed then
      local t = deadline and math.max(0, deadline - now()) or nil
      block(t)
    end
  end
  -- every node is gone (and its group killed): what the pipes still hold
  for _, sk in ipairs(sinks) do
    drain_sink(sk, 64)
    if sk.r then sk.r:close(); sk.r = nil end
  end
end

-- Kill (the groups of) every process not yet reaped, and reap them.
-- Close the read ends of the capture sinks that are still open.
local function close_sinks(sinks)
  for _, sk in ipairs(sinks) do if sk.r then pcall(sk.r.close, sk.r); sk.r = nil end end
end

local function kill_all_now(procs)
  for _, pr in ipairs(procs) do
    if not pr.result then kill_node(pr, "KILL"); pcall(pr.p.wait, pr.p) end
  end
end

-- Close every object of the list, ignoring errors.
local function close_all(list)
  for i = #list, 1, -1 do
    local o = list[i]
    if o ~= nil then pcall(o.close, o) end
  end
end

-- ---- pipelines -------------------------------------------------------------

local Pipeline = {}
Pipeline.__index = Pipeline

--- A pipeline of stages, each an argv table (`{"sort", "-r"}`, run with
-- `ipc.exec`; the table may also hold `env`, `cwd`, `stderr`) or a Lua
-- function `function(inp, out) ... end` run in its own process, where `inp`
-- is the read end of its input (a `lipc.pipe`, or `io.stdin` for a first
-- stage without `stdin`) and `out` the write end of its output (a
-- `lipc.pipe`, or `io.stdout` for a last stage without `stdout`): both have
-- `read`, `lines` and `write`. Its return value is its exit code.
-- @tparam table spec the stages 1..n, plus optional `stdin` (a lipc object
-- the first stage reads), `stdout` (a lipc object the last stage writes, or
-- `"capture"`: `run` returns the output in `results.output`) and `grace`
-- (seconds between TERM and KILL at a timeout, default 1).
-- @return a pipeline object with `:run(timeout)`
function M.pipeline(spec)
  if type(spec) ~= "table" then argerror("pipeline", 1, "table of stages expected, got " .. type(spec)) end
  local n = rawlen(spec)
  if n < 1 then argerror("pipeline", 1, "at least one stage expected") end
  for k, v in next, spec do
    if math.type(k) == "integer" and k >= 1 and k <= n then
      if type(v) == "table" then check_argv("pipeline", 1, v)
      elseif type(v) ~= "function" then
        argerror("pipeline", 1, ("stage %d must be an argv table or a function, got %s"):format(k, type(v)))
      end
    elseif k == "stdin" or k == "stdout" then
      if not (k == "stdout" and v == "capture") and not ipc.type(v) then
        argerror("pipeline", 1, ("'%s' must be a lipc object%s"):format(k, k == "stdout" and " or \"capture\"" or ""))
      end
    elseif k == "grace" then
      check_timeout("pipeline", 1, v)
    else
      argerror("pipeline", 1, ("unknown option '%s'"):format(tostring(k)))
    end
  end
  local stages = {}
  for i = 1, n do stages[i] = rawget(spec, i) end
  return setmetatable({ stages = stages, stdin = spec.stdin, stdout = spec.stdout,
                        grace = spec.grace or DEFAULT_GRACE }, Pipeline)
end

--- Run the pipeline: start every stage, wait for all of them.
-- At the timeout the stages still running get TERM, then KILL after the
-- grace period, and report status "timeout".
-- @tparam[opt] number timeout seconds for the whole pipeline (nil: no limit)
-- @treturn table results: one `{ status = "exited"|"signaled"|"timeout",
-- code =, seconds =, argv = (commands) }` per stage, in order, plus
-- `results.ok` (every stage exited 0) and `results.output` when `stdout` is
-- "capture". On a setup failure: nil, message, errno (nothing left running).
function Pipeline:run(timeout)
  check_timeout("run", 1, timeout)
  local deadline = timeout and now() + timeout
  local n = #self.stages
  local ends, procs, sinks = {}, {}, {}
  local ins, outs = {}, {}
  local cap
  local ok, res, err, code = pcall(function()
    for i = 1, n - 1 do
      local r, w, c = ipc.pipe()
      if not r then return nil, w, c end
      ends[#ends + 1], ends[#ends + 2] = r, w
      outs[i], ins[i + 1] = w, r
    end
    ins[1] = self.stdin
    if self.stdout == "capture" then
      local r, w, c = ipc.pipe()
      if not r then return nil, w, c end
      ends[#ends + 1] = w
      cap = { r = r, parts = {} }
      sinks[1], outs[n] = cap, w
    else
      outs[n] = self.stdout
    end
    for i, stage in ipairs(self.stages) do
      local pr, e, c
      if type(stage) == "function" then
        local inp, out = ins[i], outs[i]
        pr, e, c = start_function(function()
          for _, o in ipairs(ends) do
            if o ~= inp and o ~= out then o:close() end
          end
          local rc = stage(inp or io.stdin, out or io.stdout)
          if out == nil then io.stdout:flush() end
          return rc
        end)
        if pr then pr.name = i end
      else
        pr, e, c = start_command(exec_table(stage, ins[i], outs[i], sinks, ends, i))
        if pr then pr.argv = stage end
      end
      if not pr then return nil, e, c end
      procs[#procs + 1] = pr
    end
    return true
  end)
  -- the parent keeps no child end (EOF must reach the readers)
  close_all(ends)
  if not ok or not res then
    kill_all_now(procs)
    close_sinks(sinks)
    if not ok then error(res, 0) end
    return nil, err, code
  end
  local sok, serr = pcall(supervise, procs, deadline, self.grace, false, sinks)
  close_sinks(sinks)
  if not sok then          -- interrupted (Ctrl-C) or worse: leave nothing running
    kill_all_now(procs)
    error(serr, 0)
  end
  local results = { ok = true, output = cap and table.concat(cap.parts) }
  for i, pr in ipairs(procs) do
    local r = pr.result
    r.argv = pr.argv
    for _, sk in ipairs(sinks) do
      if sk.name == i then r[sk.key] = table.concat(sk.parts) end
    end
    results[i] = r
    if not (r.status == "exited" and r.code == 0) then results.ok = false end
  end
  return results
end

-- ---- graphs ------------------------------------------------------------------

local Graph = {}
Graph.__index = Graph

--- A new, empty graph.
-- @return a graph object
function M.graph()
  return setmetatable({ nodes = {}, order = {}, links = {} }, Graph)
end

local NODE_OPTS = { host = true }

--- Declare a node.
-- @tparam string name unique node name
-- @param body a Lua function, called in the node's own process with one
-- channel per link touching the node (in link order) and then a context
-- table `{ name =, inputs = {[peer] = ch}, outputs = {[peer] = ch} }`; its
-- return value is the exit code (as `ipc.spawn`). The body may start tasks
-- (`ipc.go`, on the node process's own fresh loop) and run them
-- (`ipc.loop`, `t:join`); tasks still unfinished when it returns run to
-- their end before the node's channels close (a task that failed with
-- nobody joining it fails the node). Or an argv table: the
-- command runs with `ipc.exec`, its stdin the one link into it and its
-- stdout the one link out of it (via "pipe" or "socketpair").
-- @tparam[opt] table opts `host`: the address of the machine the node runs
-- on; a node with a host runs only in a `g:run` given that host (`run(t,
-- {host = ...})`), elsewhere it is remote and only its tcp links matter.
-- @return the graph
function Graph:node(name, body, opts)
  if type(name) ~= "string" or name == "" then
    argerror("node", 1, "non-empty string expected, got " .. (type(name) == "string" and "\"\"" or type(name)))
  end
  if self.nodes[name] then argerror("node", 1, ("duplicate node name '%s'"):format(name)) end
  if type(body) == "table" then check_argv("node", 2, body)
  elseif type(body) ~= "function" then
    argerror("node", 2, "function or argv table expected, got " .. type(body))
  end
  opts = check_options("node", 3, opts, NODE_OPTS)
  if opts.host ~= nil and (type(opts.host) ~= "string" or opts.host == "") then
    argerror("node", 3, "'host' must be a non-empty string")
  end
  local node = { name = name, body = body, host = opts.host, command = type(body) == "table",
                 ins = 0, outs = 0 }
  self.nodes[name] = node
  self.order[#self.order + 1] = node
  return self
end

local LINK_OPTS = { via = true, host = true, port = true, bind = true, size = true,
                    maxmsg = true, msgsize = true, maxsize = true, type = true }

--- Declare a link from one node to another.
-- @tparam string from the sending node
-- @tparam string to the receiving node
-- @tparam[opt] table opts `via` ("pipe" default, "fifo", "socketpair", "unix",
-- "tcp", "mq", "msg", "ring"); tcp: `host`/`port` of the listener (the `to`
-- node listens; `bind` the address it binds, default its host or 127.0.0.1),
-- ring: `size` (bytes), mq: `maxmsg`, `msgsize`; socketpair: `type`
-- ("stream", "dgram", "seqpacket"); `maxsize` for the channel.
-- @return the graph
function Graph:link(from, to, opts)
  for i, nm in ipairs { from, to } do
    if type(nm) ~= "string" then argerror("link", i, "node name expected, got " .. type(nm)) end
    if not self.nodes[nm] then argerror("link", i, ("unknown node '%s'"):format(nm)) end
  end
  if from == to then argerror("link", 2, "a node cannot link to itself") end
  opts = check_options("link", 3, opts, LINK_OPTS)
  local via = opts.via or "pipe"
  if type(via) ~= "string" or not VIAS[via] then
    argerror("link", 3, ("unknown via '%s' (one of %s)"):format(tostring(via), VIA_LIST))
  end
  if opts.port ~= nil and (math.type(opts.port) ~= "integer" or opts.port < 0 or opts.port > 65535) then
    argerror("link", 3, "'port' must be an integer 0..65535")
  end
  for _, k in ipairs { "host", "bind" } do
    if opts[k] ~= nil and (type(opts[k]) ~= "string" or opts[k] == "") then
      argerror("link", 3, ("'%s' must be a non-empty string"):format(k))
    end
  end
  if opts.type ~= nil and opts.type ~= "stream" and opts.type ~= "dgram" and opts.type ~= "seqpacket" then
    argerror("link", 3, "'type' must be \"stream\", \"dgram\" or \"seqpacket\"")
  end
  for _, k in ipairs { "size", "maxmsg", "msgsize", "maxsize" } do
    if opts[k] ~= nil and (math.type(opts[k]) ~= "integer" or opts[k] < 1) then
      argerror("link", 3, ("'%s' must be a positive integer"):format(k))
    end
  end
  local a, b = self.nodes[from], self.nodes[to]
  for _, nd in ipairs { a, b } do
    if nd.command and via ~= "pipe" and via ~= "socketpair" then
      argerror("link", 3, ("node '%s' runs a command: its links must be via pipe or socketpair"):format(nd.name))
    end
  end
  if a.command and a.outs >= 1 then argerror("link", 1, ("command node '%s' has one output (stdout)"):format(from)) end
  if b.command and b.ins >= 1 then argerror("link", 2, ("command node '%s' has one input (stdin)"):format(to)) end
  if (a.host or b.host) and a.host ~= b.host and via ~= "tcp" then
    argerror("link", 3, "nodes on different hosts can only be linked via tcp")
  end
  a.outs, b.ins = a.outs + 1, b.ins + 1
  local link = { from = from, to = to, via = via, opts = opts, index = #self.links + 1 }
  self.links[#self.links + 1] = link
  return self
end

-- Quote a string for dot.
local function dq(s)
  return '"' .. tostring(s):gsub('[\\"]', "\\%0"):gsub("\n", "\\n") .. '"'
end

--- The graph as Graphviz dot text: one node per process (commands show their
-- argv), one edge per link labelled with its transport.
-- @treturn string
function Graph:dot()
  local out = { "digraph lipc {", "  rankdir=LR;", "  node [shape=box];" }
  for _, nd in ipairs(self.order) do
    local label = nd.name
    if nd.command then label = label .. "\n" .. table.concat(nd.body, " ") end
    if nd.host then label = label .. "\n@" .. nd.host end
    out[#out + 1] = ("  %s [label=%s%s];"):format(dq(nd.name), dq(label),
      nd.command and ", style=rounded" or "")
  end
  for _, l in ipairs(self.links) do
    local label = l.via
    if l.via == "tcp" and (l.opts.host or l.opts.port) then
      label = ("tcp %s:%s"):format(l.opts.host or "", l.opts.port or "")
    end
    out[#out + 1] = ("  %s -> %s [label=%s];"):format(dq(l.from), dq(l.to), dq(label))
  end
  out[#out + 1] = "}"
  return table.concat(out, "\n") .. "\n"
end

-- Connect to addr, retrying while the remote listener is not there yet.
local function connect_retry(addr, deadline)
  local wait = 0.01
  while true do
    local t = deadline and math.max(0, deadline - now())
    local c, err, code = ipc.connect(addr, t)
    if c then return c end
    if code ~= ipc.errno.ECONNREFUSED and code ~= ipc.errno.ENETUNREACH and code ~= ipc.errno.EHOSTUNREACH then
      return nil, err, code
    end
    if deadline and now() + wait > deadline then return nil, "timeout", ipc.errno.ETIMEDOUT end
    nap(wait)
    if wait < 0.2 then wait = wait * 2 end
  end
end

local function tcp_url(host, port)
  if host:find(":", 1, true) then return ("tcp6://[%s]:%d"):format(host, port) end
  return ("tcp://%s:%d"):format(host, port)
end

-- Create the transport of one link in the parent. Fills link.ends[node] =
-- { objs = inherited objects, make = function(deadline) -> channel }, and
-- adds to keep (closed at the end of the run) and drop (closed right after
-- the nodes started).
local function setup_link(l, nodes, here, keep, drop)
  local from, to = nodes[l.from], nodes[l.to]
  local o = l.opts
  local fromraw, toraw = to.command, from.command   -- the Lua side of a command link gets bytes
  local function chan(r, w, raw, copts)
    if raw then return r or w end
    copts = copts or {}
    copts.maxsize = o.maxsize
    return ipc.channel.new(r, w, copts)
  end
  local F, T = { objs = {} }, { objs = {} }
  l.ends = { [l.from] = F, [l.to] = T }
  local via = l.via
  if via == "pipe" then
    local r, w, c = ipc.pipe()
    if not r then return nil, w, c end
    drop[#drop + 1], drop[#drop + 2] = r, w
    F.objs[1], T.objs[1] = w, r
    F.make = function() return chan(nil, w, fromraw) end
    T.make = function() return chan(r, nil, toraw) end
  elseif via == "socketpair" then
    local a, b, c = ipc.socketpair(o.type or "stream")
    if not a then return nil, b, c end
    drop[#drop + 1], drop[#drop + 2] = a, b
    F.objs[1], T.objs[1] = a, b
    F.make = function() return chan(a, a, fromraw, { eof = true }) end
    T.make = function() return chan(b, b, toraw) end
  elseif via == "fifo" then
    local f, err, c = ipc.mkfifo()
    if not f then return nil, err, c end
    keep[#keep + 1] = f
    local path = f:name()
    F.make = function(deadline)
      local w, e, cc = ipc.fifo.open(path, "w", deadline and math.max(0, deadline - now()))
      if not w then return nil, e, cc end
      return chan(nil, w)
    end
    T.make = function(deadline)
      local r, e, cc = ipc.fifo.open(path, "r", deadline and math.max(0, deadline - now()))
      if not r then return nil, e, cc end
      return chan(r, nil)
    end
  elseif via == "unix" or via == "tcp" then
    local addr
    local to_here, from_here = to.host == here, from.host == here
    if to_here then
      local url
      if via == "unix" then url = "unix:"
      else
        -- a remote peer needs an address it can reach: all of them unless told
        url = tcp_url(o.bind or to.host or o.host or (from_here and "127.0.0.1" or "0.0.0.0"), o.port or 0)
      end
      local srv, err, c = ipc.listen(url)
      if not srv then return nil, err, c end
      keep[#keep + 1] = srv
      addr = srv:address()
      T.objs[1] = srv
      T.make = function(deadline)
        local s, e, cc = srv:accept(deadline and math.max(0, deadline - now()))
        srv:close()
        if not s then return nil, e, cc end
        return chan(s, s)
      end
    else
      addr = tcp_url(o.host or to.host, o.port)
    end
    if from_here then
      F.make = function(deadline)
        local s, e, cc = connect_retry(addr, deadline)
        if not s then return nil, e, cc end
        return chan(s, s, false, { eof = true })
      end
    end
  elseif via == "mq" then
    local q, err, c = ipc.mq.open(nil, { create = true, maxmsg = o.maxmsg or 10, msgsize = o.msgsize or 8192 })
    if not q then return nil, err, c end
    drop[#drop + 1] = q
    q:unlink()               -- the descriptors stay valid; no name can be left behind
    F.objs[1], T.objs[1] = q, q
    F.make = function() return chan(q, q, false, { eof = true }) end
    T.make = function() return chan(q, q) end
  elseif via == "msg" then
    local m, err, c = ipc.msg.get(ipc.IPC_PRIVATE, { create = true })
    if not m then return nil, err, c end
    keep[#keep + 1] = m
    F.objs[1], T.objs[1] = m, m
    F.make = function() return chan(m, m, false, { send_type = 1, recv_type = 2, eof = true }) end
    T.make = function() return chan(m, m, false, { send_type = 2, recv_type = 1 }) end
  elseif via == "ring" then
    local r, err, c = ipc.ring.create(o.size or 65536)
    if not r then return nil, err, c end
    drop[#drop + 1] = r
    F.objs[1], T.objs[1] = r, r
    F.make = function() return chan(nil, r, false, { eof = true }) end
    T.make = function() return chan(r, nil) end
  end
  return true
end

local RUN_OPTS = { host = true, grace = true }

--- Run the graph: create every link's transport, start one process per
-- node, wait for all of them. When a node fails (non-zero exit, a signal)
-- or the timeout passes, the others get TERM, then KILL after the grace
-- period. Every pipe, FIFO, queue and socket of the run is closed and
-- removed before it returns, whatever happened.
-- @tparam[opt] number timeout seconds for the whole run (nil: no limit)
-- @tparam[opt] table opts `host` (run the nodes declared with this host),
-- `grace` (seconds between TERM and KILL, default 1)
-- @treturn table results keyed by node name: `{ status = "exited" |
-- "signaled" | "timeout" (killed at the timeout) | "killed" (killed because
-- another node failed), code = exit code or signal number, seconds = }`
-- @treturn boolean true when every node exited 0
function Graph:run(timeout, opts)
  check_timeout("run", 1, timeout)
  opts = check_options("run", 2, opts, RUN_OPTS)
  check_timeout("run", 2, opts.grace)
  if opts.host ~= nil and type(opts.host) ~= "string" then argerror("run", 2, "'host' must be a string") end
  local here = opts.host
  local grace = opts.grace or DEFAULT_GRACE
  local deadline = timeout and now() + timeout
  local keep, drop, procs, sinks = {}, {}, {}, {}
  local nodes = self.nodes
  for _, l in ipairs(self.links) do
    local fl, tl = nodes[l.from].host == here, nodes[l.to].host == here
    if fl ~= tl then         -- one end here, the other on another host
      if not l.opts.port then
        error(("link %s -> %s: a tcp link to a remote node needs a port"):format(l.from, l.to), 2)
      end
      if not tl and not (l.opts.host or nodes[l.to].host) then
        error(("link %s -> %s: the remote listener needs a host (link or node option)"):format(l.from, l.to), 2)
      end
    end
  end
  local ok, res, err, code = pcall(function()
    -- every transport first, so that each child can close the ones not its own
    for _, l in ipairs(self.links) do
      if nodes[l.from].host == here or nodes[l.to].host == here then
        local r, e, c = setup_link(l, nodes, here, keep, drop)
        if not r then return nil, e, c end
      end
    end
    local all = {}
    for _, o in ipairs(drop) do all[#all + 1] = o end
    for _, o in ipairs(keep) do all[#all + 1] = o end
    for _, nd in ipairs(self.order) do
      if nd.host == here then
        local pr, e, c
        if nd.command then
          local stdin, stdout
          for _, l in ipairs(self.links) do
            if l.to == nd.name then stdin = l.ends[nd.name].objs[1] end
            if l.from == nd.name then stdout = l.ends[nd.name].objs[1] end
          end
          pr, e, c = start_command(exec_table(nd.body, stdin, stdout, sinks, drop, nd.name))
        else
          pr, e, c = start_function(function()
            local mine = {}
            local mylinks = {}
            for _, l in ipairs(self.links) do
              if l.from == nd.name or l.to == nd.name then
                mylinks[#mylinks + 1] = l
                for _, o in ipairs(l.ends[nd.name].objs) do mine[o] = true end
              end
            end
            for _, o in ipairs(all) do
              if not mine[o] then o:close() end
            end
            local args, ctx = {}, { name = nd.name, inputs = {}, outputs = {} }
            for i, l in ipairs(mylinks) do
              local ch, e2, c2 = l.ends[nd.name].make(deadline)
              if not ch then
                error(("node %s: link %s -> %s (%s): %s (%s)"):format(nd.name, l.from, l.to, l.via,
                  tostring(e2), tostring(c2)), 0)
              end
              args[i] = ch
              if l.from == nd.name then ctx.outputs[l.to] = ch else ctx.inputs[l.from] = ch end
            end
            args[#mylinks + 1] = ctx
            local rc = nd.body(table.unpack(args, 1, #mylinks + 1))
            -- tasks the body started (ipc.go) and left running end before
            -- the channels close; one that failed unjoined fails the node
            local lok, lerr = ipc.loop(deadline and math.max(0, deadline - now()))
            if not lok then error(("node %s: its tasks: %s"):format(nd.name, tostring(lerr)), 0) end
            for i = #mylinks, 1, -1 do
              local ch = args[i]
              if type(ch) == "table" and ch.owes_eof and ch:owes_eof() then
                -- the end-of-stream marker must get through, however full the queue
                ch:finish(deadline and math.max(0, deadline - now()))
              end
              pcall(ch.close, ch)
            end
            return rc
          end)
        end
        if not pr then return nil, e, c end
        pr.name = nd.name
        procs[#procs + 1] = pr
      end
    end
    return true
  end)
  close_all(drop)               -- the parent keeps no child end
  if not ok or not res then
    kill_all_now(procs)
    close_sinks(sinks)
    for _, o in ipairs(keep) do if ipc.type(o) == "msg" then pcall(o.remove, o) end end
    close_all(keep)
    if not ok then error(res, 0) end
    return nil, err, code
  end
  local sok, serr = pcall(supervise, procs, deadline, grace, true, sinks)
  close_sinks(sinks)
  for _, o in ipairs(keep) do
    if ipc.type(o) == "msg" then pcall(o.remove, o) end
  end
  close_all(keep)
  if not sok then
    kill_all_now(procs)
    error(serr, 0)
  end
  local results, allok = {}, true
  for _, pr in ipairs(procs) do
    results[pr.name] = pr.result
    for _, sk in ipairs(sinks) do
      if sk.name == pr.name then pr.result[sk.key] = table.concat(sk.parts) end
    end
    if not (pr.result.status == "exited" and pr.result.code == 0) then allok = false end
  end
  return results, allok
end

return M
