-- Passing open descriptors to another process over a Unix socket
-- (SCM_RIGHTS).  A forked "worker" connects to the parent's Unix socket;
-- the parent hands it (1) the write end of a pipe and (2) its own standard
-- output as a plain descriptor number.  The worker gets both as lipc.fd
-- objects: it writes a report into the pipe, which the parent reads, and
-- prints a line straight to the parent's stdout.  peercred() shows who
-- connected.
-- Run: lua5.4 examples/socket_pass_fd.lua
local ipc = require "lipc"

local srv <close> = assert(ipc.listen("unix:"))   -- generated path, removed on close
local url = srv:address()

local pid = assert(ipc.fork())
if pid == 0 then
  local ok, err = pcall(function()
    srv:close()                                   -- the child's copy (the path stays)
    local c <close> = assert(ipc.connect(url, 5))
    local pipe_w <close>, what = assert(c:recvfd(5))
    assert(what == "pipe", what)
    local out <close> = assert(c:recvfd(5))
    assert(out:write(("worker %d: writing through the parent's stdout\n"):format(ipc.getpid())))
    assert(pipe_w:write("report from the worker: 42 items\n"))
  end)
  if not ok then io.stderr:write(tostring(err), "\n") end
  ipc.exit(ok and 0 or 1)
end

local conn <close> = assert(srv:accept(10))
local cred = assert(conn:peercred())
print(("connection from pid %d (uid %d); fork said %d"):format(cred.pid, cred.uid, pid))
assert(cred.pid == pid)

local r <close>, w = assert(ipc.pipe())          -- w is closed below (or by GC)
assert(conn:sendfd(w, "pipe"))                    -- a lipc object
w:close()                                         -- the worker holds the only write end now
io.stdout:flush()
assert(conn:sendfd(1, "stdout"))                  -- a plain descriptor number

print("parent read from the pipe: " .. assert(r:read("a", 10)))
local how, code = ipc.wait(pid, 10)
assert(how == "exited" and code == 0, "worker failed")
