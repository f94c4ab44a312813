-- Every ```lua block of README.md runs as written, in its own lua5.4 process,
-- and prints what its "--> " comments say.
local helper = require "spec.helper"

local function readme_blocks()
  local f = assert(io.open("README.md"))
  local text = f:read("a")
  f:close()
  local blocks = {}
  for code in text:gmatch("```lua\n(.-)```") do blocks[#blocks + 1] = code end
  return blocks
end

-- The words of every "--> expected" comment on a print line, in order.
local function expected_words(code)
  local words = {}
  for line in code:gmatch("[^\n]+") do
    local want = line:match("print%(.*%-%->%s*(.-)%s*$") or line:match("io%.write%(.*%-%->%s*(.-)%s*$")
    if want then
      for w in want:gmatch("[^%s/]+") do words[#words + 1] = w end
    end
  end
  return words
end

describe("README.md", function()
  local blocks = readme_blocks()

  it("has examples", function()
    assert.is_true(#blocks >= 5)
  end)

  for i, code in ipairs(blocks) do
    it("example " .. i .. " runs as written", function()
      local ok, status, out = helper.run_lua(code)
      assert.is_true(ok, ("example %d exited %s:\n%s"):format(i, tostring(status), out))
      local pos = 1
      for _, w in ipairs(expected_words(code)) do
        local s, e = out:find(w, pos, true)
        assert.is_truthy(s, ("example %d: expected %q in the output after position %d:\n%s"):format(i, w, pos, out))
        pos = e + 1
      end
    end)
  end
end)
