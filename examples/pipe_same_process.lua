-- A pipe inside one process: write "10 20 30" into it and parse it back,
-- first with the pipe's own read, then through Lua io files from :tofile()
-- (the C version's fdopen + fprintf/fscanf).
-- Run from the repository root: lua5.4 examples/pipe_same_process.lua
local ipc = require "lipc"

local pr, pw = assert(ipc.pipe())
local r <close> = pr
local w <close> = pw

print("writing...")
assert(w:write(("%d %d %d\n"):format(10, 20, 30)))
print("reading...")
local line = assert(r:read(100))
local a, b, c = line:match("^(%d+) (%d+) (%d+)\n$")
assert(a, "unexpected text: " .. line)
print(("3 values parsed: %d %d %d"):format(a, b, c))

-- The same with Lua's io library: tofile() wraps each end in a Lua file,
-- so write/read formats such as "n" work on the pipe.
local fw <close> = assert(w:tofile())
local fr <close> = assert(r:tofile())
print("writing through io...")
assert(fw:write(10, " ", 20, " ", 30, "\n"))
assert(fw:flush())    -- io buffers: flush, or the reader waits forever
print("reading through io...")
local x, y, z = fr:read("n", "n", "n")
assert(x == 10 and y == 20 and z == 30, "parse failed")
print(("3 values parsed: %d %d %d"):format(x, y, z))

-- A pipe has a limited buffer: a process writing more than it holds into
-- its own pipe, with nobody reading, would block forever (see pipe_capacity.lua).
