-- ipc.pool: worker processes, pool:map in order, errors per item, a worker
-- killed mid-item, timeouts, close.
local ipc = require "lipc"
local helper = require "spec.helper"

local E = ipc.errno
local keep = helper.tracker(after_each)

describe("ipc.pool", function()
  it("maps items in order over the workers (codec values in and out)", function()
    local pool <close> = assert(ipc.pool(3, function(item)
      return { sum = item.a + item.b, pid = ipc.getpid(), tag = item.tag }
    end))
    local items = {}
    for i = 1, 1000 do items[i] = { a = i, b = 2 * i, tag = "t" .. i } end
    local results, errors = pool:map(items, 30)
    assert.is_nil(errors)
    assert.equal(1000, #results)
    local pids = {}
    for i = 1, 1000 do
      assert.equal(3 * i, results[i].sum)
      assert.equal("t" .. i, results[i].tag)
      pids[results[i].pid] = true
    end
    assert.is_nil(pids[ipc.getpid()])             -- the work ran in the workers
    assert.same({}, select(1, pool:map({}, 10)))
  end)

  it("reports items that raised, keeps the others, allows nil results", function()
    local pool <close> = assert(ipc.pool(2, function(x)
      if x % 10 == 0 then error("ten " .. x, 0) end
      if x == 7 then return nil end
      return x * x
    end))
    local items = {}
    for i = 1, 50 do items[i] = i end
    local results, errors = pool:map(items, 30)
    for i = 1, 50 do
      if i % 10 == 0 then
        assert.is_nil(results[i])
        assert.equal("ten " .. i, errors[i])
      elseif i == 7 then
        assert.is_nil(results[i])
        assert.is_nil(errors[i])
      else
        assert.equal(i * i, results[i])
      end
    end
    local n = 0
    for _ in pairs(errors) do n = n + 1 end
    assert.equal(5, n)
  end)

  it("blames the item whose worker was SIGKILLed, replaces the worker, runs the rest", function()
    local r, w = assert(ipc.pipe())
    keep(r); keep(w)
    local hold_r, hold_w = assert(ipc.pipe())
    keep(hold_r); keep(hold_w)
    local pool <close> = assert(ipc.pool(2, function(x)
      if x == 5 then
        w:write(ipc.getpid() .. "\n")
        hold_r:read(1)                            -- blocks until killed
      end
      return x * 2
    end))
    local killer = ipc.spawn(function()
      local pid = tonumber(r:read("l", 30))
      return ipc.signal.kill(pid, "KILL") and 0 or 1
    end)
    local items = {}
    for i = 1, 20 do items[i] = i end
    local results, errors = pool:map(items, 60)
    assert.same({ "exited", 0 }, { killer:wait(10) })
    killer:close()
    assert.same({ [5] = "worker died: signaled 9" }, errors)
    for i = 1, 20 do
      if i ~= 5 then assert.equal(2 * i, results[i]) end
    end
    -- the replacement works
    assert.same({ 2, 4, 6 }, (pool:map({ 1, 2, 3 }, 30)))
  end)

  it("times out, kills the busy workers and stays usable", function()
    local hold_r, hold_w = assert(ipc.pipe())
    keep(hold_r); keep(hold_w)
    local pool <close> = assert(ipc.pool(2, function(x)
      if x == "block" then hold_r:read(1) end
      return x
    end))
    local t0 = ipc.clock()
    assert.same({ nil, "timeout", E.ETIMEDOUT }, { pool:map({ "a", "block", "c" }, 0.3) })
    assert.is_true(ipc.clock() - t0 < 10)
    assert.same({ "x", "y" }, (pool:map({ "x", "y" }, 30)))
  end)

  it("close stops and reaps the workers; keep closes the rest in them", function()
    local r, w = assert(ipc.pipe())
    keep(r)
    local pool = assert(ipc.pool(2, function(x) return x + 1 end, { keep = {} }))
    assert.equal(2, #ipc.children())
    assert.same({ 2 }, (pool:map({ 1 }, 30)))
    -- with keep, the workers hold no copy of w: closing ours ends the stream
    w:close()
    assert.is_nil(r:read(1, 10))
    assert.is_true(pool:close())
    assert.is_true(pool:close())
    assert.same({}, ipc.children())
    assert.error_matches(function() pool:map({ 1 }) end, "closed lipc.pool")
    assert.equal("lipc.pool(closed)", tostring(pool))
  end)

  it("checks its arguments", function()
    assert.error_matches(function() ipc.pool(0, print) end, "number of workers")
    assert.error_matches(function() ipc.pool(2, "x") end, "function expected")
    assert.error_matches(function() ipc.pool(2, print, { bogus = 1 }) end, "unknown option 'bogus'")
    local pool <close> = assert(ipc.pool(1, function(x) return x end))
    assert.error_matches(function() pool:map("x") end, "table expected")
    assert.error_matches(function() pool:map({ 1 }, -1) end, "timeout")
    assert.error_matches(function() pool:map({ 1, print }) end, "item 2")
    -- a result that cannot be encoded is that item's error
    local fpool <close> = assert(ipc.pool(1, function(x) if x == 2 then return print end return x end))
    local results, errors = fpool:map({ 1, 2, 3 }, 30)
    assert.same({ 1, nil, 3 }, { results[1], results[2], results[3] })
    assert.matches("cannot be encoded", errors[2])
  end)
end)
