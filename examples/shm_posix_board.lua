-- POSIX shared memory as a message board between two processes: the poster
-- writes numbered notes into /dev/shm/<name>, the reader opens the board by
-- name (as an unrelated program would) and reads each note when a
-- semaphore living inside the board says it is there.
-- Run from the repository root: lua5.4 examples/shm_posix_board.lua
local ipc = require "lipc"

-- board layout: two semaphores, a note counter, then the note text
local POSTED, TAKEN, COUNT, NOTE = 0, 64, 128, 256

-- no name given: lipc makes a unique one and removes it when we close
local board <close> = assert(ipc.shm.open { size = 4096 })
print(("poster: board %s is %d bytes"):format(board:name(), #board))
local posted <close> = assert(ipc.sem.new(board, POSTED, 0))
local taken <close> = assert(ipc.sem.new(board, TAKEN, 1))

local reader = assert(ipc.fork())
if reader == 0 then
  local view <close> = assert(ipc.shm.open(board:name()))    -- takes the existing size
  local ready <close> = assert(ipc.sem.attach(view, POSTED))  -- no re-initialisation
  local free <close> = assert(ipc.sem.attach(view, TAKEN))
  while true do
    assert(ready:wait(10))
    local n = view:load(COUNT)
    local text = view:unpack(NOTE, "s2")
    print(("reader: note %d: %s"):format(n, text))
    assert(free:post())
    if text == "bye" then break end
  end
  ipc.exit(0)
end

local notes = { "meeting at ten", "bring the slides", "coffee is on the second floor", "bye" }
for i, text in ipairs(notes) do
  assert(taken:wait(10))          -- the reader is done with the previous note
  board:pack(NOTE, "s2", text)
  board:store(COUNT, i)
  assert(posted:post())
end
assert(taken:wait(10))
local how, code = ipc.wait(reader, 10)
assert(how == "exited" and code == 0, ("reader ended %s %s"):format(how, code))
print(("poster: %d notes delivered"):format(board:load(COUNT)))
