-- A supervisor: keeps two workers running, restarts a crashed one after a
-- backoff that doubles (0.05 s, 0.1 s, ...), and on SIGTERM stops them all
-- and exits 0. Each worker crashes on its first two starts, then reports
-- "up"; once both are up, the script sends itself TERM.
-- Run from the repository root: lua5.4 examples/proc_supervisor.lua
local ipc = require "lipc"

local term <close> = assert(ipc.signal.watch { "TERM" })   -- TERM is read, not fatal
local up_r, up_w = assert(ipc.pipe())
local ur <close> = up_r
local uw <close> = up_w
local hold_r, hold_w = assert(ipc.pipe())     -- nothing is ever written: workers block on it
local hr <close> = hold_r

local function worker(name, start)
  if start < 3 then return 1 end              -- "crash": a non-zero exit
  assert(uw:write(name .. " up\n"))
  hr:read(1)                                  -- serve until stopped
end

local slots = {}                              -- name -> { p =, starts =, backoff = }
local function launch(name)
  local s = slots[name] or { starts = 0, backoff = 0.05 }
  slots[name] = s
  s.starts = s.starts + 1
  s.p = assert(ipc.spawn(worker, name, s.starts))
end
launch("alpha"); launch("beta")

local up, restarts, stopping = 0, 0, false
while not stopping do
  local watch = { term, ur }
  for _, s in pairs(slots) do watch[#watch + 1] = s.p end
  for _, obj in ipairs(ipc.poll(watch)) do
    if obj == term then
      print("supervisor: " .. assert(term:next(0)) .. ": stopping")
      stopping = true
    elseif obj == ur then
      print("supervisor: " .. assert(ur:read("l")))
      up = up + 1
      if up == 2 then assert(ipc.signal.kill(ipc.getpid(), "TERM")) end
    else
      for name, s in pairs(slots) do
        if s.p == obj then
          local how, code = s.p:wait()
          s.p:close()
          print(("supervisor: %s %s %d; restart in %.2f s"):format(name, how, code, s.backoff))
          ipc.sleep(s.backoff)               -- the backoff itself, not a synchronization
          s.backoff = s.backoff * 2
          restarts = restarts + 1
          launch(name)
        end
      end
    end
  end
end

for name, s in pairs(slots) do
  assert(s.p:kill("TERM"))
  local how, code = s.p:wait(10)
  print(("supervisor: %s stopped (%s %d)"):format(name, how, code))
  s.p:close()
end
hold_w:close()
assert(up == 2 and restarts == 4, "expected two workers up after four restarts")
