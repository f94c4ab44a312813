-- Running other programs: feed a filter (`tr`) through its stdin and read its
-- stdout over pipes, pass environment and working directory, see how children
-- end (exit code, killed by a signal), and run a Lua function as a child.
-- Run from the repository root: lua5.4 examples/proc_exec_filter.lua
local ipc = require "lipc"

-- 1. a filter: write its input, close its stdin (end of input), read everything back
local tr <close> = assert(ipc.exec{ "tr", "a-z", "A-Z", stdin = "pipe", stdout = "pipe" })
assert(tr.stdin:write("hello from lua\n"))
tr.stdin:close()
local shouted = assert(tr.stdout:read("a", 10))
tr.stdout:close()
io.write("tr turned it into: ", shouted)
assert(shouted == "HELLO FROM LUA\n")
assert(tr:wait(10) == "exited")

-- 2. environment (added to ours) and working directory
local sh <close> = assert(ipc.exec{ "sh", "-c", 'echo "$GREETING from $(pwd)"',
                                    env = { GREETING = "hi" }, cwd = "/", stdout = "pipe" })
local line = assert(sh.stdout:read("l", 10))
sh.stdout:close()
print("sh says: " .. line)
assert(line == "hi from /")
local how, code = sh:wait(10)
print(("sh ended: %s %d"):format(how, code))

-- 3. a child that exits with a code, and one killed by a signal
local failing <close> = assert(ipc.exec{ "sh", "-c", "exit 3" })
how, code = failing:wait(10)
print(("'exit 3' ended: %s %d"):format(how, code))
assert(how == "exited" and code == 3)
local sleeper <close> = assert(ipc.exec{ "sleep", "30" })
assert(sleeper:kill("TERM"))
how, code = sleeper:wait(10)
print(("'sleep 30' after kill TERM: %s %d (15 is SIGTERM)"):format(how, code))
assert(how == "signaled" and code == 15)

-- 4. a Lua function in a child process: its return value is the exit code
local adder <close> = assert(ipc.spawn(function(a, b) return a + b end, 3, 4))
how, code = adder:wait(10)
print(("spawned function(3, 4) returned: %s %d"):format(how, code))
assert(how == "exited" and code == 7)

-- 5. a program that does not exist: an error value, not an exception
local p, err = ipc.exec{ "/nonexistent/program" }
assert(p == nil and err)
print("exec of a missing program: " .. err)
