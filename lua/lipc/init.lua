--- lipc: every Linux IPC primitive as a Lua object.
-- `local ipc = require "lipc"` loads the C core (`lipc.core`) and the Lua
-- layers that extend it. See README.md and doc/api.md for the contract.
-- @module lipc

local ipc = require "lipc.core"

-- Lua layers: each module returns a function that adds to the table.
for _, layer in ipairs { "lipc.proc", "lipc.channel", "lipc.region" } do
  require(layer)(ipc)
end

ipc._VERSION = "lipc scm-1"

return ipc
