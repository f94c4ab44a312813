-- System V shared memory: a writer puts a line of text in a segment found
-- through ipc.ftok, a reader process attaches the same segment by key
-- (read-only), prints it and answers in a second field.
-- Run from the repository root: lua5.4 examples/shm_sysv_writer_reader.lua
local ipc = require "lipc"

-- both sides agree on a key made from an existing file and a project id
local keyfile = os.tmpname()
local key = assert(ipc.ftok(keyfile, 83))
print(("writer: key 0x%08x from %s"):format(key & 0xffffffff, keyfile))

-- the writer creates the segment (mode 0600) and owns it: closing the handle
-- at the end removes it (IPC_RMID), so nothing is left in `ipcs -m`
local seg <close> = assert(ipc.shm.sysv(key, 1024, { create = true, excl = true }))
print(("writer: created %s"):format(seg))

-- layout: a length-prefixed question at 0, the reader's answer at 512
local next_off = seg:pack(0, "s2", "Hello from the writer, pid " .. ipc.getpid())
print(("writer: wrote %d bytes"):format(next_off))

-- a semaphore set (same key) tells the writer when the answer is there
local done <close> = assert(ipc.semset.get(key, 1, { create = true, values = { 0 } }))

local reader = assert(ipc.fork())
if reader == 0 then
  -- the reader attaches by key, as an unrelated program would
  local view <close> = assert(ipc.shm.sysv(key, nil, { readonly = true }))
  local text = view:unpack(0, "s2")
  print(("reader: read %q from a %d-byte segment"):format(text, #view))
  assert(not pcall(view.write, view, 0, "x"), "a read-only attachment refuses writes")
  -- answers go through a second, writable attachment
  local rw <close> = assert(ipc.shm.sysv(key))
  rw:pack(512, "s2", "got it, said reader " .. ipc.getpid())
  assert(done:op { { 0, 1 } })
  ipc.exit(0)
end

assert(done:op({ { 0, -1 } }, 10))
print(("writer: reader answered %q"):format(seg:unpack(512, "s2")))
local how, code = ipc.wait(reader, 10)
assert(how == "exited" and code == 0, ("reader ended %s %s"):format(how, code))
os.remove(keyfile)
