-- The rockspec builds what the Makefile builds: every csrc/*.c and every
-- lua/lipc/*.lua (a file added to one and not the other once left
-- `luarocks make` building a core without tasks or timers).
local helper = require "spec.helper"

describe("lipc-scm-1.rockspec", function()
  local spec = {}
  local chunk = assert(loadfile("lipc-scm-1.rockspec", "t", spec))
  chunk()

  local function listing(pattern)
    local out = {}
    for f in helper.sh("ls " .. pattern):gmatch("[^\n]+") do out[#out + 1] = f end
    table.sort(out)
    return out
  end

  it("compiles every C file of csrc/ into lipc.core", function()
    local sources = { table.unpack(spec.build.modules["lipc.core"].sources) }
    table.sort(sources)
    assert.same(listing("csrc/*.c"), sources)
  end)

  it("installs every Lua module of lua/lipc/", function()
    local files = {}
    for name, v in pairs(spec.build.modules) do
      if name ~= "lipc.core" then
        assert.equal(name == "lipc" and "lua/lipc/init.lua" or "lua/" .. name:gsub("%.", "/") .. ".lua", v)
        files[#files + 1] = v
      end
    end
    table.sort(files)
    assert.same(listing("lua/lipc/*.lua"), files)
  end)
end)
