--- ipc.encode / ipc.decode: round trips, encode errors, hostile input.
local ipc = require "lipc"
local helper = require "spec.helper"

--- Deep equality that tells integers from floats and handles NaN.
local function same(a, b)
  if type(a) ~= type(b) then return false end
  if type(a) == "number" then
    if math.type(a) ~= math.type(b) then return false end
    if a ~= a then return b ~= b end
    if a == 0 and b == 0 then return 1 / a == 1 / b end
    return a == b
  end
  if type(a) ~= "table" then return a == b end
  for k, v in pairs(a) do
    if not same(v, b[k]) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end

local function rt(v)
  local s = ipc.encode(v)
  assert.is_string(s)
  local back, err = ipc.decode(s)
  assert.is_nil(err)
  return back, s
end

describe("ipc.encode/ipc.decode", function()
  describe("round trips", function()
    it("keeps nil, booleans and the number subtypes", function()
      for _, v in ipairs { true, false, 0, -1, 1, 127, 128, -128, 1.5, -2.25, 1e308, 5e-324,
                           math.mininteger, math.maxinteger, math.huge, -math.huge, 1.0, 0.0 } do
        local back = rt(v)
        assert.is_true(same(v, back), tostring(v))
        assert.equal(math.type(v), math.type(back))
      end
      local back = rt(nil)
      assert.is_nil(back)
      assert.equal(1, select("#", ipc.decode(ipc.encode(nil))))
    end)

    it("keeps -0.0, NaN and integer/float apart", function()
      local z = rt(-0.0)
      assert.equal(-math.huge, 1 / z)
      local n = rt(0 / 0)
      assert.is_true(n ~= n)
      assert.equal("integer", math.type(rt(1)))
      assert.equal("float", math.type(rt(1.0)))
      assert.equal(math.mininteger, rt(math.mininteger))
      assert.equal(math.maxinteger, rt(math.maxinteger))
    end)

    it("keeps strings with any bytes", function()
      local all = {}
      for i = 0, 255 do all[#all + 1] = string.char(i) end
      all = table.concat(all)
      for _, s in ipairs { "", "a", "\0", "a\0b\0", all, all:rep(3), ("x"):rep(63), ("x"):rep(64) } do
        assert.equal(s, (rt(s)))
      end
      local big = ("0123456789abcdef"):rep(65536)   -- 1 MiB
      local back, enc = rt(big)
      assert.equal(big, back)
      assert.is_true(#enc < #big + 16)
    end)

    it("keeps tables: empty, arrays, sparse, mixed, float and boolean keys", function()
      local cases = {
        {}, { 1, 2, 3 }, { [1] = 1, [1000] = 2 }, { 1, 2, nil, 4 },
        { "a", x = 1, y = { z = "deep" }, [2.5] = "float key", [true] = false, [false] = true },
        { [-1] = "neg", [0] = "zero", [math.mininteger] = 1, [math.maxinteger] = 2 },
        { [0.1] = 1, [-0.5] = 2, [math.huge] = 3, [-math.huge] = 4 },
        { { {} }, { {}, {} } },
      }
      for i, t in ipairs(cases) do
        assert.is_true(same(t, (rt(t))), "case " .. i)
      end
    end)

    it("keeps a table nested 100 levels", function()
      local t = { v = 0 }
      local cur = t
      for i = 1, 99 do cur.next = { v = i }; cur = cur.next end
      local back = rt(t)
      local n = 0
      while back.next do back = back.next; n = n + 1 end
      assert.equal(99, n)
      assert.equal(99, back.v)
    end)

    it("keeps tables nested exactly 200 levels, through arrays and through keys", function()
      for _, via in ipairs { "array", "key", "mixed" } do
        local t = {}
        local cur = t
        for i = 1, 199 do
          local nxt = {}
          if via == "array" or (via == "mixed" and i % 2 == 0) then cur[1] = nxt else cur.k = nxt end
          cur[2], cur.s = i, "level" .. i
          cur = nxt
        end
        cur.last = true
        local back = rt(t)
        assert.is_true(same(t, back), via)
        cur[1] = {}                                    -- level 201
        local ok, err = pcall(ipc.encode, t)
        assert.is_false(ok)
        assert.matches("nested deeper than 200 levels", err, 1, true)
      end
    end)

    it("takes the array part as t[1] .. the first nil, however the table was built", function()
      -- integer keys in Lua's hash part (built backwards, appended, holes) encode
      -- exactly like the same table made by a constructor
      local back = {}
      for i = 100, 1, -1 do back[i] = i * 2 end
      local ctor = {}
      for i = 1, 100 do ctor[i] = i * 2 end
      assert.equal(ipc.encode(ctor), ipc.encode(back))
      local grown = { 1 }
      grown.x = "hash"
      for i = 2, 37 do grown[#grown + 1] = i end     -- some land in the hash part
      local bytes = ipc.encode(grown)
      assert.equal("\x06\x25", bytes:sub(2, 3))      -- 37 array values
      assert.is_true(same(grown, (rt(grown))))
      -- a hole ends the array part; what follows becomes pairs
      assert.equal("\xB1\x06\x02\x81\x82\x01\x84\x84", ipc.encode({ [1] = 1, [2] = 2, [4] = 4 }))
      local holes = { 1, 2, nil, 4, 5, [7] = 7 }
      assert.is_true(same(holes, (rt(holes))))
    end)

    it("never takes a numeric string key for an array index", function()
      local t = { 1, 2, ["3"] = "s3", ["1"] = "s1", [" 2"] = "x", ["4.0"] = "f" }
      local back = rt(t)
      assert.is_nil(back[3])
      assert.equal("s3", back["3"])
      assert.equal(1, back[1])
      assert.equal("s1", back["1"])
      assert.is_true(same(t, back))
    end)

    it("keeps big arrays with pairs (decoded without a stack wait) and small ones with pairs", function()
      for _, n in ipairs { 0, 1, 63, 64, 65, 200, 5000 } do
        local t = { x = "pair", [n + 10] = true, [-1] = -1 }
        for i = 1, n do t[i] = i % 3 == 0 and ("s" .. i) or i end
        local back = rt(t)
        assert.is_true(same(t, back), "n = " .. n)
      end
    end)

    it("encodes a shared subtable (a DAG) twice", function()
      local shared = { 1, 2 }
      local back = rt { a = shared, b = shared }
      assert.is_true(same(back.a, shared) and same(back.b, shared))
      assert.are_not.equal(back.a, back.b)
    end)

    it("is compact: small integers take one byte, short strings one byte of header", function()
      assert.equal(2, #ipc.encode(5))
      assert.equal(2, #ipc.encode(true))
      assert.equal(5, #ipc.encode("abc"))
      assert.equal(10, #ipc.encode(1.5))
      assert.equal(4, #ipc.encode {})
      assert.equal(string.char(0xB1), ipc.encode(nil):sub(1, 1))
    end)

    it("ignores metatables (raw access only)", function()
      local t = setmetatable({ 1 }, { __index = function() return "x" end, __pairs = error })
      assert.is_true(same({ 1 }, (rt(t))))
    end)
  end)

  describe("frames and slices", function()
    it("encode(v, true) prefixes the 4-byte big-endian length (string.pack '>s4')", function()
      for _, v in ipairs { 0, "x", { 1, 2, a = { b = true } }, ("z"):rep(70000), 2.5 } do
        local e = ipc.encode(v)
        assert.equal(string.pack(">s4", e), ipc.encode(v, true))
        assert.equal(e, ipc.encode(v, false))
      end
      assert.equal("\0\0\0\2\xB1\0", ipc.encode(nil, true))
      assert.equal(ipc.encode(5), ipc.encode(5, nil))
    end)

    it("decode(s, i, j) decodes bytes i..j in place", function()
      local e = ipc.encode({ 10, 20, x = "y" })
      local framed = ipc.encode({ 10, 20, x = "y" }, true)
      assert.is_true(same({ 10, 20, x = "y" }, (ipc.decode(framed, 5))))
      local two = e .. ipc.encode("second")
      assert.is_true(same({ 10, 20, x = "y" }, (ipc.decode(two, 1, #e))))
      assert.equal("second", ipc.decode(two, #e + 1))
      assert.equal("second", ipc.decode(two, #e + 1, #two))
      -- errors count bytes from i
      local v, err = ipc.decode("junk" .. ipc.encode(1) .. "x", 5)
      assert.is_nil(v)
      assert.equal("ipc.decode: trailing bytes after the value (at byte 2)", err)
      v, err = ipc.decode(e, 1, #e - 1)
      assert.is_nil(v)
      assert.matches("^ipc.decode: truncated", err)
      v, err = ipc.decode(e, 3, 2)
      assert.is_nil(v)
      assert.matches("empty input", err)
      v, err = ipc.decode(e, #e + 1)
      assert.is_nil(v)
      assert.matches("empty input", err)
    end)
  end)

  describe("encode errors", function()
    it("raises on a cycle, naming the path", function()
      local t = { a = { b = {} } }
      t.a.b.c = t
      assert.has_error(function() ipc.encode(t) end,
        "ipc.encode: cycle (a table contains itself) at value.a.b.c")
      local s = {}
      s[1] = s
      assert.has_error(function() ipc.encode(s) end, "ipc.encode: cycle (a table contains itself) at value[1]")
    end)

    it("raises on functions, coroutines, userdata and files", function()
      local cases = {
        { print, "function" }, { coroutine.create(print), "thread" }, { io.stdout, "userdata" },
        { { x = { print } }, "function" }, { { [print] = 1 }, "function key" }, { { [{}] = 1 }, "table key" },
      }
      for _, c in ipairs(cases) do
        local ok, err = pcall(ipc.encode, c[1])
        assert.is_false(ok)
        assert.matches("cannot encode a " .. c[2], err, 1, true)
      end
      local ok, err = pcall(ipc.encode, { x = { print } })
      assert.is_false(ok)
      assert.matches("at value.x[1]", err, 1, true)
    end)

    it("raises on nesting deeper than 200 levels (10000 tried)", function()
      local t = {}
      local cur = t
      for _ = 1, 10000 do cur[1] = {}; cur = cur[1] end
      local ok, err = pcall(ipc.encode, t)
      assert.is_false(ok)
      assert.matches("nested deeper than 200 levels", err, 1, true)
      local ok2 = pcall(ipc.encode, t)   -- the reusable buffer survived the error
      assert.is_false(ok2)
      assert.equal("x", ipc.decode(ipc.encode("x")))
    end)

    it("still works after an error mid-way (buffer reused)", function()
      pcall(ipc.encode, { ("x"):rep(100000), print })
      assert.equal(("y"):rep(1000), ipc.decode(ipc.encode(("y"):rep(1000))))
    end)
  end)

  describe("hostile decode", function()
    it("returns nil, message for malformed bytes", function()
      local cases = {
        "", "x", "\xB1", "\xB2\x80", "\xB1\x80\x80", "\xB1\x05", "\xB1\x05\x05ab", "\xB1\x04\1\2\3",
        "\xB1\x06\x01", "\xB1\x06\x00\x01\x00\x80", "\xB1\x06\x00\x01\x04\0\0\0\0\0\0\xF8\x7F\x80",
        "\xB1\x06\x00\x01\x06\x00\x00\x80", "\xB1\x07", "\xB1\x3F", "\xB1\x03\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\x7F",
      }
      for i, s in ipairs(cases) do
        local v, err = ipc.decode(s)
        assert.is_nil(v, "case " .. i)
        assert.is_string(err, "case " .. i)
        assert.matches("^ipc.decode: ", err)
      end
    end)

    it("reports trailing garbage and a wrong version", function()
      local v, err = ipc.decode(ipc.encode(1) .. "x")
      assert.is_nil(v)
      assert.matches("trailing", err)
      v, err = ipc.decode("\xB2\x80")
      assert.is_nil(v)
      assert.matches("version", err)
    end)

    it("refuses a length of 2^40 bytes quickly, without allocating", function()
      local t0 = os.clock()
      local huge = "\xB1\x05\x80\x80\x80\x80\x80\x20"   -- varint 2^40
      local v, err = ipc.decode(huge)
      assert.is_nil(v)
      assert.matches("larger than the input", err)
      v, err = ipc.decode("\xB1\x06\x80\x80\x80\x80\x80\x20\x00")   -- array count 2^40
      assert.is_nil(v)
      assert.matches("larger than the input", err)
      assert.is_true(os.clock() - t0 < 0.5)
    end)

    it("refuses depth bombs", function()
      local v, err = ipc.decode("\xB1" .. ("\x06\x01"):rep(5000) .. "\x80" .. ("\x00"):rep(5000))
      assert.is_nil(v)
      assert.matches("too deep", err)
    end)

    it("refuses nested counts the whole input cannot justify", function()
      -- each level claims as many pairs as there are bytes left: the budget stops it
      local parts = {}
      for _ = 1, 150 do parts[#parts + 1] = "\x06\x00\xC0\x01" end
      local v, err = ipc.decode("\xB1" .. table.concat(parts) .. ("\x80"):rep(400))
      assert.is_nil(v)
      assert.is_string(err)
    end)

    it("survives random bytes, truncations and mutations (in a subprocess)", function()
      local ok, code, out = helper.run_lua([[
        local ipc = require "lipc"
        math.randomseed(12345)
        local sample = { 1, -5, 2.5, "str", ("long"):rep(40), true, false, { a = { b = { 1, 2, 3 } } },
                         [0.5] = "f", [true] = 1, big = math.maxinteger, nan = 0/0 }
        local encs = { ipc.encode(sample), ipc.encode("x"), ipc.encode({}), ipc.encode(-1.25),
                       ipc.encode({ { { { {} } } } }) }
        local n = 0
        local function try(s)
          local r = table.pack(ipc.decode(s))
          if r.n == 2 then assert(r[1] == nil and type(r[2]) == "string")
          else assert(r.n == 1) end
          n = n + 1
        end
        for _, e in ipairs(encs) do
          for len = 0, #e do try(e:sub(1, len)) end
          for i = 1, #e do
            for _, b in ipairs { 0, 1, 0x06, 0x05, 0x7F, 0x80, 0xFF, 0xB1 } do
              try(e:sub(1, i - 1) .. string.char(b) .. e:sub(i + 1))
            end
          end
        end
        local bytes = {}
        for _ = 1, 5000 do
          local len = math.random(0, 64)
          for j = 1, len do bytes[j] = string.char(math.random(0, 255)) end
          local s = table.concat(bytes, "", 1, len)
          try(s)
          try("\xB1" .. s)
        end
        print("decoded", n)
      ]])
      assert.is_true(ok, "subprocess failed (" .. tostring(code) .. "): " .. out)
      assert.matches("decoded%s%d+", out)
    end)
  end)

  describe("bad input", function()
    it("decode raises on a non-string argument", function()
      for _, v in ipairs { 1, true, {}, print } do
        assert.has_error(function() ipc.decode(v) end)
      end
      assert.has_error(function() ipc.decode() end)
      assert.has_error(function() ipc.decode(nil) end)
    end)

    it("encode needs an argument", function()
      assert.has_error(function() ipc.encode() end)
    end)

    it("encode's frame flag must be a boolean", function()
      for _, f in ipairs { 1, "yes", {}, print } do
        local ok, err = pcall(ipc.encode, 1, f)
        assert.is_false(ok)
        assert.matches("bad argument #2", err, 1, true)
      end
    end)

    it("decode refuses positions out of range or not integers", function()
      local s = ipc.encode({ 1, 2 })
      local bad = { { 0 }, { -1 }, { #s + 2 }, { 1.5 }, { "a" }, { {} }, { math.maxinteger }, { math.mininteger },
                    { 2, 0 }, { 1, #s + 1 }, { 1, -1 }, { 1, math.maxinteger }, { 1, 2.5 }, { nil, true } }
      for i, args in ipairs(bad) do
        local ok, err = pcall(ipc.decode, s, args[1], args[2])
        assert.is_false(ok, "case " .. i)
        assert.matches("bad argument #[23]", err)
      end
      assert.is_true(same({ 1, 2 }, (ipc.decode(s, nil, nil))))
    end)
  end)

  describe("frame buffers and ipc.decodeframes", function()
    it("put frames into one buffer, take them as one string, decode them all", function()
      local fb = ipc.framebuf()
      assert.equal(0, fb:len())
      local vals = { { a = 1 }, "two", 3, false, 4.5, ("x"):rep(300) }
      local total = 0
      for i, v in ipairs(vals) do
        local len, before, due = fb:put(v)
        assert.equal(total, before)
        total = total + #ipc.encode(v, true)
        assert.equal(total, len)
        assert.is_false(due)
        assert.equal(i, fb:count())
      end
      assert.matches("lipc.framebuf%(6 frames", tostring(fb))
      local s = fb:take()
      assert.equal(0, fb:count())
      assert.equal(0, fb:len())
      local expect = {}
      for i, v in ipairs(vals) do expect[i] = ipc.encode(v, true) end
      assert.equal(table.concat(expect), s)           -- the same bytes as ipc.encode(v, true)
      local t, n, nxt = ipc.decodeframes(s)
      assert.equal(6, n)
      assert.equal(#s + 1, nxt)
      assert.is_true(same(vals, t))
      -- nil values leave holes, counted by n; max stops early
      fb:put(nil); fb:put(7); fb:put(nil)
      t, n, nxt = ipc.decodeframes(fb:bytes(), 1, nil, 2)
      assert.equal(2, n)
      assert.is_nil(t[1])
      assert.equal(7, t[2])
      t, n = ipc.decodeframes(fb:bytes(), nxt)
      assert.equal(1, n)
      assert.is_nil(t[1])
    end)

    it("puts a head first, refuses over the limit, undoes a put, says when it is due", function()
      local fb = ipc.framebuf("\xC1")
      local len, before = fb:put(1)
      assert.equal(0, before)
      assert.equal(1 + 6, len)
      assert.equal("\xC1", fb:bytes():sub(1, 1))
      assert.equal(ipc.encode(1), fb:bytes(6))
      assert.same({ nil, #ipc.encode(("y"):rep(300)) }, { fb:put(("y"):rep(300), 100) })   -- nothing added
      assert.equal(1, fb:count())
      local l2 = fb:put("z")
      fb:unput(len)
      assert.equal(len, fb:len())
      assert.is_true(l2 > len)
      assert.is_true(select(3, fb:put("w", nil, 8)))           -- 8 bytes or more: due
      assert.is_false(select(3, fb:put("w", nil, 1 << 20, 60)))
      assert.is_true(select(3, fb:put("w", nil, 1 << 20, 0)))   -- the first frame is 0 s old
      fb:clear()
      assert.equal(0, fb:len())
      fb:unput(0)                                                -- empty: nothing to undo
      -- an encode error leaves the buffer as it was
      fb:put("kept")
      assert.has_error(function() fb:put({ f = print }) end)
      assert.equal(1, fb:count())
      assert.equal("\xC1" .. ipc.encode("kept", true), fb:bytes())
      assert.has_error(function() fb:put(1, -1) end)
      assert.has_error(function() fb:bytes(0) end)
      assert.has_error(function() fb:unput(1 << 40) end)
      assert.has_error(function() ipc.framebuf(("h"):rep(9)) end)
    end)

    it("stops before a partial frame, at a frame over the limit, past a malformed one", function()
      local two = ipc.encode({ 1 }, true) .. ipc.encode("b", true)
      local _, n, nxt = ipc.decodeframes(two .. ipc.encode(5, true):sub(1, 5))
      assert.equal(2, n)
      assert.equal(#two + 1, nxt)
      local big = ipc.encode(("q"):rep(100), true)
      local _, n2, nxt2, err, size = ipc.decodeframes(two .. big, 1, 50)
      assert.equal(2, n2)
      assert.equal(#two + 1, nxt2)
      assert.matches("exceeds the limit 50", err)
      assert.equal(#big - 4, size)
      local bad = string.pack(">I4", 3) .. "xyz"
      local _, n3, nxt3, err3 = ipc.decodeframes(bad .. two)
      assert.equal(0, n3)
      assert.equal(#bad + 1, nxt3)
      assert.matches("^ipc.decode: not lipc%-encoded", err3)
      local t
      t, n = ipc.decodeframes(bad .. two, nxt3)
      assert.equal(2, n)
      assert.same({ 1 }, t[1])
      assert.same({ {}, 0, 1 }, { ipc.decodeframes("") })
      assert.has_error(function() ipc.decodeframes(5) end)
      assert.has_error(function() ipc.decodeframes("", 3) end)
      assert.has_error(function() ipc.decodeframes("", 1, -1) end)
      assert.has_error(function() ipc.decodeframes("", 1, nil, 0) end)
    end)

    -- decodeframes keeps the short strings it made for the frames after
    -- (a cache keyed by length and three of the bytes): strings that share
    -- those and differ elsewhere must never be taken for each other
    it("gives every short string back exactly when many frames repeat and nearly repeat them", function()
      local words = { "", "a", "%", "ab", "ba" }
      for len = 3, 45, 6 do
        for _, mid in ipairs { "x", "y" } do
          local w = "k" .. ("m"):rep(len - 3) .. mid .. "z"
          words[#words + 1] = w
          words[#words + 1] = "k" .. mid .. w:sub(3)   -- same first, middle and last bytes
        end
      end
      local fb = ipc.framebuf()
      local want = {}
      for i = 1, 400 do
        local a, b = words[i % #words + 1], words[(i * 7) % #words + 1]
        local v = { [a] = b, seq = i, [b .. "!"] = { a, b, a .. b } }
        want[i] = v
        assert(fb:put(v))
      end
      local t, n, nxt = ipc.decodeframes(fb:bytes())
      assert.equal(400, n)
      assert.equal(#fb:bytes() + 1, nxt)
      for i = 1, n do assert.same(want[i], t[i], "frame " .. i) end
    end)
  end)
end)
