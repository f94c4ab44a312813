---@meta lipc.testing
-- luacheck: ignore
-- Editor types for require "lipc.testing" (see types/lipc.lua).

---A snapshot of what could leak (from testing.snapshot).
---@class lipc.testing.snapshot

---What leaked (testing.leaks): area "fds", "shm", "mqueue", "sysv", "netns", a dirs label or "child".
---@class lipc.testing.leak
---@field area string
---@field item string
---@field detail? string
---@field text string "fd 7 (lipc.pipe)", "/dev/shm/x", "child 1234"

---The leak audit of lipc's suite, for your tests.
---@class lipc.testinglib
local testing = {}

---Record this process's descriptors and the machine's IPC names (garbage collected first).
---@param opts? {dirs?: table<string|integer, string>, netns?: boolean}
---@return lipc.testing.snapshot
---@see ../README.md#testing-your-code-for-leaks
function testing.snapshot(opts) end

---What appeared since a snapshot (children still there are killed and reaped).
---@param before lipc.testing.snapshot
---@return lipc.testing.leak[]
---@see ../README.md#testing-your-code-for-leaks
function testing.leaks(before) end

---true, or nil and "leaked: fd 7 (lipc.pipe), /dev/shm/x, child 1234".
---@param before lipc.testing.snapshot
---@return true|nil ok
---@return string? leaked
---@see ../README.md#testing-your-code-for-leaks
function testing.check(before) end

---Audit every busted test (per = "test") or spec file (per = "file").
---@param opts? {per?: "test"|"file", dirs?: table<string|integer, string>, netns?: boolean}
---@return true
---@see ../README.md#testing-your-code-for-leaks
function testing.busted(opts) end

---The mount points of the mqueue file systems here.
---@return string[]
---@see ../README.md#testing-your-code-for-leaks
function testing.mqueue_dirs() end

return testing
