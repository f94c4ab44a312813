-- ipc.run, p:communicate, the exec options of issue #11 (stderr = "stdout",
-- session, group, fds, clearenv, umask), p:kill(sig, "group") and
-- ipc.spawn{ ..., keep = }: real programs (sh, cat, head, python3).
local ipc = require "lipc"
local helper = require "spec.helper"

local E = ipc.errno
local keep, track = helper.tracker(after_each)

local function pipe()
  local r, w = assert(ipc.pipe())
  return keep(r), keep(w)
end

-- Wait (at most 10 s) until process pid is gone or a zombie: it is not our
-- child, so nothing can wait for it; poll its state.
local function gone(pid)
  local deadline = ipc.clock() + 10
  repeat
    local st = helper.proc_state(pid)
    if st == nil or st == "Z" then return true end
    ipc.sleep(0.01)
  until ipc.clock() > deadline
  return false
end

local MB10 = 10 * 1024 * 1024

describe("ipc.run", function()
  it("returns a table: stdout, status, code, pid", function()
    local lines = {}
    for i = 1, 30000 do lines[i] = ("%05d"):format(30001 - i) end
    local r = assert(ipc.run { "sort", input = table.concat(lines, "\n") .. "\n", timeout = 20 })
    table.sort(lines)
    assert.equal(table.concat(lines, "\n") .. "\n", r.stdout)
    assert.equal("exited", r.status)
    assert.equal(0, r.code)
    assert.is_true(r.pid > 0)
    assert.is_nil(r.stderr)                       -- not captured
    r = assert(ipc.run { "sh", "-c", "echo out; echo err >&2; exit 3", stderr = "pipe" })
    assert.same({ "out\n", "err\n", "exited", 3 }, { r.stdout, r.stderr, r.status, r.code })
    r = assert(ipc.run { "sh", "-c", "kill -USR1 $$" })
    assert.same({ "signaled", ipc.signal.SIGUSR1 }, { r.status, r.code })
    r = assert(ipc.run({ "cat" , input = "positional timeout" }, 10))
    assert.equal("positional timeout", r.stdout)
    assert.same({}, ipc.children())
  end)

  it("moves 10 MB of input, stdout and stderr at once without a deadlock", function()
    local input = ("0123456789abcdef"):rep(MB10 // 16)
    -- stderr floods before stdin is read; then the input comes back on stdout
    local r = assert(ipc.run { "sh", "-c", "head -c 10485760 /dev/zero >&2; cat",
                               input = input, stderr = "pipe", timeout = 60 })
    assert.equal("exited", r.status)
    assert.equal(MB10, #r.stderr)
    assert.is_true(r.stdout == input, "stdout differs from the input")
    -- the other way round: stdout floods first, the input goes to stderr
    r = assert(ipc.run { "sh", "-c", "head -c 10485760 /dev/zero; cat >&2",
                         input = input, stderr = "pipe", timeout = 60 })
    assert.equal(MB10, #r.stdout)
    assert.is_true(r.stderr == input, "stderr differs from the input")
  end)

  it("reports a program that cannot start as an error, never an exit 127", function()
    local n, msg, err = ipc.run { "lipc-no-such-program", input = "x" }
    assert.is_nil(n)
    assert.matches("No such file", msg)
    assert.equal(E.ENOENT, err)
    n, msg, err = ipc.run { "true", cwd = helper.path(".missing") }
    assert.is_nil(n)
    assert.matches("^chdir", msg)
    assert.equal(E.ENOENT, err)
    assert.same({}, ipc.children())
  end)

  it("ends when the child exits although a background grandchild holds stdout", function()
    local r, w = pipe()
    local t0 = ipc.clock()
    -- the grandchild keeps stdout open until the test lets it go
    local res = assert(ipc.run { "sh", "-c", "echo start; (read x <&3; echo late) & echo bg",
                                 fds = { [3] = r }, timeout = 20 })
    assert.is_true(ipc.clock() - t0 < 10)
    assert.same({ "start\nbg\n", "exited", 0 }, { res.stdout, res.status, res.code })
    w:write("go\n")                               -- the grandchild leaves (its stdout is gone)
  end)

  it("keeps the output read before a timeout, kills and reaps the program", function()
    local t0 = ipc.clock()
    local r = assert(ipc.run { "sh", "-c", "echo partial; exec sleep 30", timeout = 0.5 })
    assert.is_true(ipc.clock() - t0 < 10)
    assert.same({ "partial\n", "timeout", 9 }, { r.stdout, r.status, r.code })
    assert.same({}, ipc.children())
  end)

  it("kills the whole process group on a timeout with group = true", function()
    local r = assert(ipc.run { "sh", "-c", "sleep 30 & echo $!; wait", group = true, timeout = 0.5 })
    assert.equal("timeout", r.status)
    local grandchild = tonumber(r.stdout:match("%d+"))
    assert.is_truthy(grandchild)
    assert.is_true(gone(grandchild))
  end)

  it("checks its arguments", function()
    assert.error_matches(function() ipc.run("ls") end, "table expected")
    assert.error_matches(function() ipc.run { "cat", input = 1 } end, "option 'input'")
    assert.error_matches(function() ipc.run({ "cat" }, -1) end, "timeout")
    assert.error_matches(function() ipc.run { "cat", timeout = "x" } end, "option 'timeout'")
    assert.error_matches(function() ipc.run({ "cat", timeout = 1 }, 1) end, "timeout given twice")
    assert.error_matches(function() ipc.run { "cat", input = "", stdin = "null" } end, "exclude")
    assert.error_matches(function() ipc.run { "cat", bogus = 1 } end, "unknown option 'bogus'")
  end)
end)

describe("p:communicate", function()
  it("feeds stdin, drains stdout and stderr, waits", function()
    local p = track(ipc.exec { "sh", "-c", "cat; echo done >&2; exit 4",
                               stdin = "pipe", stdout = "pipe", stderr = "pipe" })
    assert.same({ "hello", "done\n", "exited", 4 }, { p:communicate("hello", 10) })
    assert.equal("closed pipe", ipc.type(p.stdout))
  end)

  it("times out without losing anything; a later call continues", function()
    local r, w = pipe()
    local p = track(ipc.exec { "sh", "-c", "echo first; read x <&3; echo second $x",
                               stdout = "pipe", fds = { [3] = r } })
    assert.same({ nil, "timeout", E.ETIMEDOUT }, { p:communicate(nil, 0.2) })
    w:write("now\n")
    assert.same({ "first\nsecond now\n", "", "exited", 0 }, { p:communicate(nil, 10) })
  end)

  it("drops the rest of the input when the child stops reading", function()
    local p = track(ipc.exec { "head", "-c", "3", stdin = "pipe", stdout = "pipe" })
    assert.same({ "abc", "", "exited", 0 }, { p:communicate(("abc"):rep(100000), 10) })
  end)

  it("refuses input without a stdin pipe", function()
    local p = track(ipc.exec { "true" })
    assert.error_matches(function() p:communicate("x") end, "stdin is not an open pipe")
    assert.same({ "", "", "exited", 0 }, { p:communicate(nil, 10) })
  end)
end)

describe("ipc.exec options", function()
  it("stderr = \"stdout\" sends stderr where stdout goes (2>&1)", function()
    local p = track(ipc.exec { "sh", "-c", "echo one; echo two >&2; echo three",
                               stdout = "pipe", stderr = "stdout" })
    assert.equal("one\ntwo\nthree\n", p.stdout:read("a", 10))
    assert.same({ "exited", 0 }, { p:wait(10) })
  end)

  it("session = true and group = true give the child its own session / group", function()
    local function ids(opts)
      opts[1], opts[2], opts[3] = "sh", "-c", "cat /proc/$$/stat"
      local r = assert(ipc.run(opts))
      local pgrp, sid = r.stdout:match("%) %a %d+ (%d+) (%d+)")
      return r.pid, tonumber(pgrp), tonumber(sid)
    end
    local pid, pgrp, sid = ids { session = true }
    assert.same({ pid, pid }, { pgrp, sid })
    pid, pgrp, sid = ids { group = true }
    assert.equal(pid, pgrp)
    assert.is_true(sid ~= pid)
    pid, pgrp = ids {}
    assert.is_true(pgrp ~= pid)                   -- by default: our group
  end)

  it("p:kill(sig, \"group\") signals the child's whole group", function()
    local p = track(ipc.exec { "sh", "-c", "sleep 30 & echo $!; wait", group = true, stdout = "pipe" })
    local grandchild = tonumber(p.stdout:read("l", 10))
    assert.is_true(p:kill("TERM", "group"))
    assert.same({ "signaled", ipc.signal.SIGTERM }, { p:wait(10) })
    assert.is_true(gone(grandchild))
    -- a child that leads no group: nothing to signal (never our own group)
    local q = track(ipc.exec { "sleep", "30" })
    local n, msg, err = q:kill("TERM", "group")
    assert.is_nil(n)
    assert.matches("^kill %-%d+", msg)
    assert.equal(E.ESRCH, err)
    assert.error_matches(function() q:kill("TERM", "everyone") end, "invalid option")
  end)

  it("fds = { [n] = obj } hands extra descriptors to a Python child", function()
    local r1, w1 = pipe()
    local r2, w2 = pipe()
    w1:write("to python")
    w1:close()
    local p = track(ipc.exec { helper.PYTHON, "-c",
      "import os; d = os.read(3, 100); os.write(5, b'python read ' + d); os.close(5)",
      fds = { [3] = r1, [5] = w2 } })
    w2:close()
    assert.equal("python read to python", r2:read("a", 10))
    assert.same({ "exited", 0 }, { p:wait(10) })
  end)

  it("fds reach a C child too, at numbers that overlap the sources", function()
    local exe = assert(helper.compile_c([[
#include <unistd.h>
int main(void) {
  char b[64];
  ssize_t n = read(4, b, sizeof b);
  if (n <= 0) return 2;
  return write(3, b, (size_t)n) == n ? 0 : 3;
}]]))
    finally(function() os.remove(exe) end)
    local r1, w1 = pipe()
    local r2, w2 = pipe()
    w2:write("swap")
    w2:close()
    -- the targets are numbers other sources may sit at: every source is moved up first
    local p = track(ipc.exec { exe, fds = { [3] = w1, [4] = r2, [r1:fileno()] = r1 } })
    w1:close()
    assert.equal("swap", r1:read("a", 10))
    assert.same({ "exited", 0 }, { p:wait(10) })
  end)

  it("clearenv = true makes env the whole environment", function()
    local r = assert(ipc.run { "/usr/bin/env", clearenv = true, env = { ONLY = "this" } })
    assert.equal("ONLY=this\n", r.stdout)
    r = assert(ipc.run { "/usr/bin/env", clearenv = true })
    assert.equal("", r.stdout)
    r = assert(ipc.run { "/usr/bin/env", env = { LIPC_ADDED = "1" } })
    assert.matches("LIPC_ADDED=1\n", r.stdout)
    assert.matches("PATH=", r.stdout)              -- inherited without clearenv
  end)

  it("umask = sets the child's umask", function()
    assert.equal("0027\n", assert(ipc.run { "sh", "-c", "umask", umask = "027" }).stdout)
    assert.equal("0077\n", assert(ipc.run { "sh", "-c", "umask", umask = tonumber("77", 8) }).stdout)
  end)

  it("checks the new options", function()
    assert.error_matches(function() ipc.exec { "true", fds = { [2] = 1 } } end, "option 'fds'")
    assert.error_matches(function() ipc.exec { "true", fds = { [3] = "x" } } end, "option 'fds'")
    assert.error_matches(function() ipc.exec { "true", fds = 3 } end, "option 'fds'")
    assert.error_matches(function() ipc.exec { "true", umask = "999" } end, "option 'umask'")
    assert.error_matches(function() ipc.exec { "true", umask = "7777" } end, "option 'umask'")
    assert.error_matches(function() ipc.exec { "true", session = 1 } end, "option 'session'")
    assert.error_matches(function() ipc.exec { "true", clearenv = "yes" } end, "option 'clearenv'")
    assert.error_matches(function() ipc.exec { "true", stdin = "stdout" } end, "option 'stdin'")
    local r, w = pipe()
    w:close()
    assert.error_matches(function() ipc.exec { "true", fds = { [3] = w } } end, "closed")
    assert.same({}, ipc.children())
    r:close()
  end)
end)

describe("ipc.spawn{ fn, ..., keep = }", function()
  it("closes every lipc descriptor of the child but the kept ones", function()
    local r, w = pipe()
    local other_r, other_w = pipe()
    local ev = keep(ipc.eventfd(0))
    local p = track(ipc.spawn { function(out, tag)
      -- kept: out (an argument) and ev (in keep); closed: the rest
      local ok = ipc.type(other_r) == "closed pipe" and ipc.type(other_w) == "closed pipe"
        and ipc.type(r) == "closed pipe" and ipc.type(ev) == "eventfd"
      out:write(tag .. (ok and " ok" or " wrong"))
      ev:add(1)
      return 0
    end, w, "child", keep = { ev } })
    w:close()
    assert.equal("child ok", r:read("a", 10))
    assert.equal(1, ev:take(10))
    assert.same({ "exited", 0 }, { p:wait(10) })
    -- the child's copy of other_w was closed: the parent alone holds it
    other_w:close()
    assert.is_nil(other_r:read(1, 10))
  end)

  it("keeps what a kept table holds (a channel's transports)", function()
    local a, b = ipc.channel.pair()
    local p = track(ipc.spawn { function() b:send(b:recv() * 2) end, keep = { b } })
    b:close()
    assert.is_true(a:send(21, 10))
    assert.equal(42, a:recv(10))
    assert.same({ "exited", 0 }, { p:wait(10) })
    a:close()
  end)

  it("without keep the table form closes nothing; spawn(fn, ...) is unchanged", function()
    local r, w = pipe()
    local p = track(ipc.spawn { function(x) w:write(x) end, "inherited" })
    w:close()
    assert.equal("inherited", r:read("a", 10))
    assert.same({ "exited", 0 }, { p:wait(10) })
    assert.same({ "exited", 5 }, { track(ipc.spawn(function(a, b) return a + b end, 2, 3)):wait(10) })
  end)

  it("checks the table form", function()
    assert.error_matches(function() ipc.spawn {} end, "function expected")
    assert.error_matches(function() ipc.spawn { "x" } end, "function expected")
    assert.error_matches(function() ipc.spawn { print, bogus = 1 } end, "unknown option 'bogus'")
    assert.error_matches(function() ipc.spawn { print, keep = 1 } end, "option 'keep'")
  end)
end)

describe("lipc.topology and process groups", function()
  local topo = require "lipc.topology"

  it("captures a stage's stderr (stderr = \"capture\")", function()
    local res = assert(topo.pipeline {
      { "sh", "-c", "echo out; echo err >&2", stderr = "capture" }, { "cat" }, stdout = "capture" }:run(20))
    assert.equal("out\n", res.output)
    assert.equal("err\n", res[1].stderr)
    assert.is_nil(res[2].stderr)
    local g = topo.graph():node("n", { "sh", "-c", "echo graph >&2", stderr = "capture" })
    local r = assert(g:run(20))
    assert.equal("graph\n", r.n.stderr)
  end)

  it("ends a pipeline whose stage leaves a background grandchild, and kills it", function()
    local t0 = ipc.clock()
    local res = assert(topo.pipeline {
      { "sh", "-c", "sleep 30 & echo $!" }, { "cat" }, stdout = "capture" }:run(20))
    assert.is_true(ipc.clock() - t0 < 10)
    assert.is_true(res.ok)
    local grandchild = tonumber(res.output:match("%d+"))
    assert.is_true(gone(grandchild))
  end)

  it("kills each node's whole group at a timeout", function()
    local g = topo.graph():node("a", { "sh", "-c", "sleep 30 & echo $! >&2; wait", stderr = "capture" })
    local res = assert(g:run(0.5, { grace = 0.2 }))
    assert.equal("timeout", res.a.status)
    local grandchild = tonumber(res.a.stderr:match("%d+"))
    assert.is_true(gone(grandchild))
    assert.same({}, ipc.children())
  end)
end)
