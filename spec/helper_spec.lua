-- The spec helpers themselves: stacked finally() clean-ups and the network
-- namespace part of the leak audit.
local helper = require "spec.helper"

local log = {}
describe("spec helper", function()
  it("runs every finally() of a test, last first", function()
    finally(function() log[#log + 1] = "a" end)
    finally(function() log[#log + 1] = "b" end)
  end)

  it("ran both clean-ups of the previous test", function()
    assert.same({ "b", "a" }, log)
  end)

  it("notices a network namespace left behind", function()
    local ok = os.execute("ip netns list >/dev/null 2>&1")
    if not ok or not helper.sh("id -u"):match("^0") then
      print("skipped: network namespaces need root and iproute2")
      pending("needs root and iproute2")
      return
    end
    local before = helper.snapshot()
    local name = "lipcspec" .. os.time() % 100000
    assert.is_true(os.execute("ip netns add " .. name))
    finally(function() os.execute("ip netns del " .. name .. " 2>/dev/null") end)
    local leaks = table.concat(helper.leaks(before), "\n")
    assert.matches("netns: " .. name, leaks, 1, true)
  end)
end)
