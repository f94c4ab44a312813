-- lipc.topology: pipelines and process graphs over every transport.
local ipc = require "lipc"
local helper = require "spec.helper"
local topo = require "lipc.topology"

local now = ipc.clock
local VIAS = { "pipe", "fifo", "socketpair", "unix", "tcp", "mq", "msg", "ring" }

-- Names this process generated in lipc's tmp directory (FIFOs, sockets).
local function tmp_leftovers()
  local dir = os.getenv("TMPDIR")
  if not dir or dir:sub(1, 1) ~= "/" then dir = "/tmp" end
  local out = helper.sh("ls -A " .. dir .. " 2>/dev/null | grep '^lipc\\." .. ipc.getpid() .. "\\.' || true")
  return out
end

local function mqueue_list() return helper.sh("ls -A /dev/mqueue") end
local function msg_list() return helper.sh("tail -n +2 /proc/sysvipc/msg") end

describe("lipc.topology", function()
  describe("pipeline", function()
    it("gives the same output as the shell pipeline", function()
      local res = topo.pipeline{ { "printf", "b\\na\\nb\\n" }, { "sort" }, { "uniq", "-c" },
                                 stdout = "capture" }:run(10)
      local expected = helper.sh("printf 'b\\na\\nb\\n' | sort | uniq -c")
      assert.equal(expected, res.output)
      assert.is_true(res.ok)
      assert.equal(3, #res)
      for i = 1, 3 do
        assert.equal("exited", res[i].status)
        assert.equal(0, res[i].code)
        assert.is_true(res[i].seconds >= 0 and res[i].seconds < 10)
      end
      assert.same({ "sort" }, res[2].argv)
    end)

    it("runs the tutorial's ls | cut | uniq | sort | tee pipeline", function()
      local dir = helper.path(".d")
      assert(os.execute("mkdir " .. dir .. " && cd " .. dir ..
        " && touch a.txt a.md b.lua c.txt c.c d"))
      finally(function() os.execute("rm -rf " .. dir) end)
      local out = dir .. "/contents"
      local res = topo.pipeline{ { "ls", "-1", cwd = dir }, { "cut", "-d.", "-f1" }, { "uniq" }, { "sort" },
                                 { "tee", out }, stdout = "capture" }:run(10)
      assert.is_true(res.ok)
      local expected = helper.sh("cd " .. dir .. " && ls -1 | grep -v contents | cut -d. -f1 | uniq | sort")
      assert.equal(expected, (res.output:gsub("contents\n", "")))
      local f = assert(io.open(out))
      assert.equal(res.output, f:read("a"))
      f:close()
    end)

    it("runs Lua function stages between commands", function()
      local res = topo.pipeline{
        function(_, out)
          for _, w in ipairs { "pear", "apple", "fig", "apple" } do out:write(w .. "\n") end
        end,
        { "sort" },
        function(inp, out)
          local n = 0
          for line in inp:lines() do n = n + 1; out:write(("%d:%s\n"):format(n, line:upper())) end
          return n == 4 and 0 or 7
        end,
        stdout = "capture",
      }:run(10)
      assert.is_true(res.ok)
      assert.equal("1:APPLE\n2:APPLE\n3:FIG\n4:PEAR\n", res.output)
      assert.is_nil(res[1].argv)
    end)

    it("reads stdin from and writes stdout to given lipc objects", function()
      local in_r, in_w = assert(ipc.pipe())
      local out_r, out_w = assert(ipc.pipe())
      finally(function() for _, o in ipairs { in_r, in_w, out_r, out_w } do o:close() end end)
      assert(in_w:write("3\n1\n2\n"))
      in_w:close()
      local res = topo.pipeline{ { "sort", "-n" }, { "tr", "\\n", "," }, stdin = in_r, stdout = out_w }:run(10)
      out_w:close()
      assert.is_true(res.ok)
      assert.equal("1,2,3,", out_r:read("a", 5))
    end)

    it("reports exit codes and signals of each stage", function()
      local res = topo.pipeline{ { "sh", "-c", "exit 3" }, { "sh", "-c", "kill -USR1 $$" },
                                 function() return 5 end }:run(10)
      assert.is_false(res.ok)
      assert.same({ "exited", 3 }, { res[1].status, res[1].code })
      assert.same({ "signaled", ipc.signal.SIGUSR1 }, { res[2].status, res[2].code })
      assert.same({ "exited", 5 }, { res[3].status, res[3].code })
    end)

    it("kills the stages at the timeout", function()
      local t0 = now()
      local res = topo.pipeline{ { "sleep", "30" }, { "cat" }, grace = 0.5 }:run(0.3)
      assert.is_true(now() - t0 < 5)
      assert.is_false(res.ok)
      assert.equal("timeout", res[1].status)
      assert.equal(ipc.signal.SIGTERM, res[1].code)
    end)
  end)

  describe("graph", function()
    for _, via in ipairs(VIAS) do
      it("moves nested tables from producer to consumer via " .. via, function()
        local before_mq, before_msg = mqueue_list(), msg_list()
        local g = topo.graph()
        g:node("producer", function(out, ctx)
          assert(ctx.name == "producer" and ctx.outputs.consumer == out)
          for i = 1, 200 do assert(out:send({ i = i, sq = { i * i, tostring(i) }, tag = via }, 10)) end
        end)
        g:node("consumer", function(inp, ctx)
          assert(ctx.inputs.producer == inp)
          local sum, n = 0, 0
          while true do
            local v, err = inp:recv(10)
            if err == "closed" then break end
            assert(err == nil, err)
            assert(v.tag == via and v.sq[1] == v.i * v.i and v.sq[2] == tostring(v.i))
            sum, n = sum + v.i, n + 1
          end
          return (n == 200 and sum == 20100) and 0 or 9
        end)
        g:link("producer", "consumer", { via = via })
        local results, ok = g:run(20)
        assert.is_true(ok)
        assert.same("exited", results.producer.status)
        assert.same({ "exited", 0 }, { results.consumer.status, results.consumer.code })
        assert.equal("", tmp_leftovers())
        assert.equal(before_mq, mqueue_list())
        assert.equal(before_msg, msg_list())
      end)
    end

    for _, via in ipairs { "socketpair", "unix", "tcp", "msg" } do
      it("carries replies back over a two-way " .. via .. " link", function()
        local g = topo.graph()
        g:node("client", function(srv)
          for i = 1, 20 do
            assert(srv:send({ op = "square", x = i }, 10))
            local r = assert(srv:recv(10))
            assert(r.result == i * i)
          end
        end)
        g:node("server", function(cli)
          for req in cli:values(10) do assert(cli:send({ result = req.x * req.x }, 10)) end
        end)
        g:link("client", "server", { via = via })
        local results, ok = g:run(20)
        assert.is_true(ok, results.client.status .. " " .. results.server.status)
      end)
    end

    it("wires a fan-out and fan-in with context tables", function()
      local g = topo.graph()
      g:node("src", function(_, _, ctx)
        for i = 1, 10 do
          local w = ctx.outputs[i % 2 == 0 and "even" or "odd"]
          assert(w:send(i, 10))
        end
      end)
      for _, name in ipairs { "even", "odd" } do
        g:node(name, function(inp, out)
          local s = 0
          for v in inp:values(10) do s = s + v end
          assert(out:send({ from = name, sum = s }, 10))
        end)
      end
      g:node("sink", function(a, b, ctx)
        assert(ctx.inputs.even == a and ctx.inputs.odd == b)
        local x, y = assert(a:recv(10)), assert(b:recv(10))
        return (x.sum == 30 and y.sum == 25) and 0 or 4
      end)
      g:link("src", "even", { via = "ring" })
      g:link("src", "odd", { via = "mq" })
      g:link("even", "sink", { via = "fifo" })
      g:link("odd", "sink", { via = "unix" })
      local results, ok = g:run(20)
      assert.is_true(ok)
      for _, n in ipairs { "src", "even", "odd", "sink" } do assert.equal(0, results[n].code) end
    end)

    it("runs command nodes between Lua nodes", function()
      local g = topo.graph()
      g:node("gen", function(out) assert(out:write("pear\napple\nfig\n")) end)
      g:node("sort", { "sort", "-r" })
      g:node("check", function(inp) return inp:read("a", 10) == "pear\nfig\napple\n" and 0 or 3 end)
      g:link("gen", "sort")
      g:link("sort", "check", { via = "socketpair" })
      local results, ok = g:run(20)
      assert.is_true(ok)
      assert.equal(0, results.check.code)
      assert.equal("exited", results.sort.status)
    end)

    it("kills the other nodes when one fails and reports every status", function()
      local g = topo.graph()
      g:node("bad", function() return 3 end)
      -- both wait on something that never comes (not on each other: a peer's
      -- death would end the wait with "closed" before TERM arrives)
      g:node("ping", function(out) assert(out:send(1)); ipc.poll({}, 60) end)
      g:node("pong", function(inp) assert(inp:recv(10) == 1); ipc.poll({}, 60) end)
      g:link("ping", "pong", { via = "pipe" })
      local t0 = now()
      local results, ok = g:run(30)
      assert.is_true(now() - t0 < 10)
      assert.is_false(ok)
      assert.same({ "exited", 3 }, { results.bad.status, results.bad.code })
      for _, n in ipairs { "ping", "pong" } do
        assert.equal("killed", results[n].status)
        assert.equal(ipc.signal.SIGTERM, results[n].code)
        assert.equal("signaled", results[n].how)
      end
    end)

    it("reports an error raised in a node as exit code 1", function()
      local g = topo.graph()
      g:node("raiser", function() error("deliberate") end)
      local results, ok = g:run(10)
      assert.is_false(ok)
      assert.same({ "exited", 1 }, { results.raiser.status, results.raiser.code })
    end)

    it("stops at the timeout, with KILL for nodes that ignore TERM", function()
      local before_mq = mqueue_list()
      local g = topo.graph()
      g:node("stubborn", function(inp)
        ipc.signal.ignore("TERM")
        inp:recv()
      end)
      g:node("idle", function(out) out:recv() end)
      g:link("idle", "stubborn", { via = "mq" })
      local t0 = now()
      -- 2 s: time for "stubborn" to start ignoring TERM even on a loaded machine
      local results, ok = g:run(2, { grace = 0.3 })
      local took = now() - t0
      assert.is_true(took >= 2 and took < 8)
      assert.is_false(ok)
      assert.same({ "timeout", ipc.signal.SIGKILL }, { results.stubborn.status, results.stubborn.code })
      assert.same({ "timeout", ipc.signal.SIGTERM }, { results.idle.status, results.idle.code })
      assert.equal(before_mq, mqueue_list())
    end)

    it("leaves nothing behind after a failed run over every transport", function()
      local before_mq, before_msg = mqueue_list(), msg_list()
      local g = topo.graph()
      local prev = "n0"
      g:node(prev, function() return 2 end)
      for i, via in ipairs(VIAS) do
        local name = "n" .. i
        g:node(name, function(...) select(1, ...):recv(); end)
        g:link(prev, name, { via = via })
        prev = name
      end
      local results, ok = g:run(20, { grace = 0.5 })
      assert.is_false(ok)
      assert.equal(2, results.n0.code)
      assert.equal("", tmp_leftovers())
      assert.equal(before_mq, mqueue_list())
      assert.equal(before_msg, msg_list())
    end)

    it("renders Graphviz dot text", function()
      local g = topo.graph()
      g:node("producer", function() end)
      g:node("sorter", { "sort", "-r" })
      g:node("say \"hi\"", function() end)
      g:link("producer", "sorter", { via = "socketpair" })
      g:link("sorter", "say \"hi\"")
      assert.equal(table.concat({
        "digraph lipc {",
        "  rankdir=LR;",
        "  node [shape=box];",
        '  "producer" [label="producer"];',
        '  "sorter" [label="sorter\\nsort -r", style=rounded];',
        '  "say \\"hi\\"" [label="say \\"hi\\""];',
        '  "producer" -> "sorter" [label="socketpair"];',
        '  "sorter" -> "say \\"hi\\"" [label="pipe"];',
        "}", "" }, "\n"), g:dot())
    end)

    describe("across hosts", function()
      it("links two nodes in two network namespaces over tcp", function()
        local uid = helper.sh("id -u"):match("%d+")
        if uid ~= "0" then
          print("skipped: network namespaces need root")
          pending("needs root")
          return
        end
        if not helper.sh("command -v ip || true"):match("ip") then
          print("skipped: the ip command (iproute2) is missing")
          pending("needs iproute2")
          return
        end
        local pid = ipc.getpid()
        local nsA, nsB = "lipcA" .. pid, "lipcB" .. pid
        local vA, vB = "lva" .. pid, "lvb" .. pid
        local function sh(cmd) return os.execute(cmd .. " >/dev/null 2>&1") end
        finally(function()
          sh("ip netns del " .. nsA)
          sh("ip netns del " .. nsB)
        end)
        for _, cmd in ipairs {
          "ip netns add " .. nsA, "ip netns add " .. nsB,
          ("ip link add %s type veth peer name %s"):format(vA, vB),
          ("ip link set %s netns %s"):format(vA, nsA), ("ip link set %s netns %s"):format(vB, nsB),
          ("ip -n %s addr add 10.213.7.1/24 dev %s"):format(nsA, vA),
          ("ip -n %s addr add 10.213.7.2/24 dev %s"):format(nsB, vB),
          ("ip -n %s link set %s up"):format(nsA, vA), ("ip -n %s link set %s up"):format(nsB, vB),
          ("ip -n %s link set lo up"):format(nsA), ("ip -n %s link set lo up"):format(nsB),
        } do
          if not sh(cmd) then
            print("skipped: cannot set up network namespaces (" .. cmd .. ")")
            pending("network namespaces unavailable")
            return
          end
        end
        local script = helper.path(".lua")
        local f = assert(io.open(script, "w"))
        f:write([[
local ipc = require "lipc"
local topo = require "lipc.topology"
local g = topo.graph()
g:node("producer", function(out)
  for i = 1, 100 do assert(out:send({ i = i, from = "A" }, 10)) end
end, { host = "10.213.7.1" })
g:node("consumer", function(inp)
  local sum = 0
  for v in inp:values(10) do assert(v.from == "A"); sum = sum + v.i end
  io.write("sum=", sum, "\n")
  return sum == 5050 and 0 or 5
end, { host = "10.213.7.2" })
g:link("producer", "consumer", { via = "tcp", port = 47123 })
local results, ok = g:run(20, { host = arg[1] })
for name, r in pairs(results) do io.write(name, " ", r.status, " ", r.code, "\n") end
os.exit(ok and 0 or 1)
]])
        f:close()
        finally(function() os.remove(script) end)
        local env = { LUA_PATH = package.path, LUA_CPATH = package.cpath }
        local outB_r, outB_w = assert(ipc.pipe())
        local pB = assert(ipc.exec{ "ip", "netns", "exec", nsB, "lua5.4", script, "10.213.7.2",
                                    env = env, stdout = outB_w })
        outB_w:close()
        local pA = assert(ipc.exec{ "ip", "netns", "exec", nsA, "lua5.4", script, "10.213.7.1", env = env,
                                    stdout = "null" })
        assert.same({ "exited", 0 }, { pA:wait(30) })
        assert.same({ "exited", 0 }, { pB:wait(30) })
        local out = outB_r:read("a", 5)
        outB_r:close(); pA:close(); pB:close()
        assert.matches("sum=5050", out)
        assert.matches("consumer exited 0", out)
      end)
    end)
  end)

  describe("bad input", function()
    it("rejects bad pipelines", function()
      assert.has_error(function() topo.pipeline() end)
      assert.has_error(function() topo.pipeline{} end)
      assert.has_error(function() topo.pipeline{ 42 } end)
      assert.has_error(function() topo.pipeline{ {} } end)
      assert.has_error(function() topo.pipeline{ { "ls", 5 } } end)
      assert.has_error(function() topo.pipeline{ { "ls", stdin = "pipe" } } end)
      assert.has_error(function() topo.pipeline{ { "ls" }, bogus = 1 } end)
      assert.has_error(function() topo.pipeline{ { "ls" }, stdout = "file.txt" } end)
      assert.has_error(function() topo.pipeline{ { "ls" }, stdin = io.stdin } end)
      local p = topo.pipeline{ { "true" } }
      for _, t in ipairs { -1, 0 / 0, "5", {} } do
        assert.has_error(function() p:run(t) end)
      end
    end)

    it("rejects bad nodes", function()
      local g = topo.graph()
      g:node("a", function() end)
      assert.has_error(function() g:node("a", function() end) end,
        "bad argument #1 to 'node' (duplicate node name 'a')")
      assert.has_error(function() g:node(nil, function() end) end)
      assert.has_error(function() g:node("", function() end) end)
      assert.has_error(function() g:node(5, function() end) end)
      assert.has_error(function() g:node("b", 42) end)
      assert.has_error(function() g:node("b", "sort") end)
      assert.has_error(function() g:node("b") end)
      assert.has_error(function() g:node("b", {}) end)
      assert.has_error(function() g:node("b", function() end, { hots = "x" }) end)
      assert.has_error(function() g:node("b", function() end, { host = 5 }) end)
    end)

    it("rejects bad links", function()
      local g = topo.graph()
      g:node("a", function() end)
      g:node("b", function() end)
      g:node("cmd", { "cat" })
      g:node("far", function() end, { host = "192.0.2.1" })
      assert.has_error(function() g:link("a", "nowhere") end,
        "bad argument #2 to 'link' (unknown node 'nowhere')")
      assert.has_error(function() g:link("nowhere", "a") end)
      assert.has_error(function() g:link("a", "a") end)
      assert.has_error(function() g:link(1, "a") end)
      assert.has_error(function() g:link("a", "b", { via = "carrier-pigeon" }) end,
        "bad argument #3 to 'link' (unknown via 'carrier-pigeon' " ..
        "(one of pipe, fifo, socketpair, unix, tcp, mq, msg, ring))")
      assert.has_error(function() g:link("a", "b", { via = 5 }) end)
      assert.has_error(function() g:link("a", "b", { vai = "pipe" }) end)
      assert.has_error(function() g:link("a", "b", { via = "tcp", port = 70000 }) end)
      assert.has_error(function() g:link("a", "b", { via = "ring", size = -5 }) end)
      assert.has_error(function() g:link("a", "b", { via = "socketpair", type = "raw" }) end)
      assert.has_error(function() g:link("a", "cmd", { via = "mq" }) end)
      assert.has_error(function() g:link("a", "far", { via = "pipe" }) end)
      g:link("a", "cmd")
      assert.has_error(function() g:link("b", "cmd") end)     -- a command has one stdin
      g:link("a", "far", { via = "tcp" })
      assert.has_error(function() g:run(5) end, "link a -> far: a tcp link to a remote node needs a port")
      local g2 = topo.graph()
      g2:node("here", function() end, { host = "192.0.2.9" })
      g2:node("there", function() end)            -- remote from 192.0.2.9, address unknown
      g2:link("here", "there", { via = "tcp", port = 1 })
      assert.has_error(function() g2:run(5, { host = "192.0.2.9" }) end,
        "link here -> there: the remote listener needs a host (link or node option)")
    end)

    it("rejects bad run arguments", function()
      local g = topo.graph()
      g:node("a", function() end)
      for _, t in ipairs { -1, 0 / 0, "5", {} } do
        assert.has_error(function() g:run(t) end)
      end
      assert.has_error(function() g:run(1, { grace = -1 }) end)
      assert.has_error(function() g:run(1, { bogus = true }) end)
      assert.has_error(function() g:run(1, 5) end)
      local results, ok = g:run(10)                           -- still usable after the errors
      assert.is_true(ok)
      assert.equal(0, results.a.code)
    end)
  end)
end)

-- Nodes may start tasks: the node process has a loop of its own.
describe("lipc.topology nodes with tasks", function()
  it("a node merges two inputs with a task each, as they arrive", function()
    local N = 50
    local g = topo.graph()
    g:node("a", function(out) for i = 1, N do assert(out:send({ src = "a", seq = i }, 10)) end end)
    g:node("b", function(out) for i = 1, N do assert(out:send({ src = "b", seq = i }, 10)) end end)
    g:node("merge", function(ina, inb)
      local seen = { a = 0, b = 0 }
      local function drain(ch)
        for v in ch:values(10) do
          seen[v.src] = seen[v.src] + 1
          assert(v.seq == seen[v.src])
        end
      end
      local ta, tb = ipc.go(drain, ina), ipc.go(drain, inb)
      assert(ipc.loop(20))
      assert(ta:join() and tb:join())
      return (seen.a == N and seen.b == N) and 0 or 3
    end)
    g:link("a", "merge", { via = "pipe" })
    g:link("b", "merge", { via = "mq" })
    local results, ok = g:run(30)
    assert.same({ status = "exited", code = 0 }, { status = results.merge.status, code = results.merge.code })
    assert.is_true(ok)
  end)

  it("runs the tasks a body left behind before its channels close", function()
    local N = 30
    local g = topo.graph()
    g:node("producer", function(out)
      ipc.go(function()
        for i = 1, N do ipc.sleep(0.001); assert(out:send(i, 10)) end
      end)
      return 0   -- the task still has values to send
    end)
    g:node("consumer", function(inp)
      local n = 0
      for v in inp:values(10) do n = n + 1; assert(v == n) end
      return n == N and 0 or 3
    end)
    g:link("producer", "consumer", { via = "socketpair" })
    local results, ok = g:run(30)
    assert.equal(0, results.consumer.code)
    assert.equal(0, results.producer.code)
    assert.is_true(ok)
  end)

  it("fails a node whose task failed with nobody joining it", function()
    local g = topo.graph()
    g:node("solo", function()
      ipc.go(function() ipc.sleep(0.01); error("task failure") end)
      return 0
    end)
    local results, ok = g:run(30)
    assert.is_false(ok)
    assert.same({ "exited", 1 }, { results.solo.status, results.solo.code })
  end)

  it("starts each node with a fresh loop when g:run is called inside a task", function()
    local ticks = 0
    local ticker = ipc.go(function() while true do ticks = ticks + 1; ipc.sleep(0.001) end end)
    local g = topo.graph()
    g:node("worker", function(out)
      -- the parent's ticker is not a task here: a loop that ran it would
      -- never end (it ticks for ever)
      local before = ticks
      local t = ipc.go(function() ipc.sleep(0.01); return "mine" end)
      assert(ipc.loop(10))
      local _, v = t:join()
      assert(out:send({ v = v, same = ticks == before }, 10))
    end)
    g:node("sink", function(inp)
      local got = inp:recv(10)
      return (got and got.v == "mine" and got.same) and 0 or 3
    end)
    g:link("worker", "sink", { via = "pipe" })
    local runner = ipc.go(function()
      local results, ok = g:run(30)
      ticker:cancel()
      return ok, results.sink.code, results.worker.code
    end)
    assert.is_true(ipc.loop(60))
    assert.same({ true, true, 0, 0 }, { runner:join() })
    assert.is_true(ticks > 0)
  end)
end)
