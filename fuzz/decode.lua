--- Codec fuzzer: mutated and random bytes into ipc.decode (a value or
-- nil + message, never a crash, a hang or a raise), and round trips of
-- random nested values (encode then decode gives back an equal value).
--
--   lua5.4 fuzz/decode.lua [--seed S] [--seconds T] [--case N]
--
-- The cases run in a forked child that records the case number in shared
-- memory before each one, so a crash or a hang names its case; --case N
-- replays one case in this process and prints its input.
-- Environment: FUZZ_SEED, FUZZ_DECODE_SECONDS (else FUZZ_SECONDS, default
-- 10), FUZZ_HANG (default 10), FUZZ_FAIL=0 (exit 0 even with findings).
package.path = "fuzz/?.lua;" .. package.path
local ipc = require "lipc"
local U = require "util"

local ARGS = {}
do
  local i = 1
  while i <= #arg do
    local k = arg[i]:match("^%-%-(.+)$")
    if not k then error("usage: lua5.4 fuzz/decode.lua [--seed S] [--seconds T] [--case N]") end
    ARGS[k] = arg[i + 1]
    i = i + 2
  end
end

local function hex(s, max)
  max = max or 200
  local h = s:sub(1, max):gsub(".", function(c) return ("%02x"):format(c:byte()) end)
  return h .. (#s > max and ("...(" .. #s .. " bytes)") or "")
end

-- One mutation of s.
local function mutate(s)
  local n = #s
  local r = math.random(10)
  local i = n > 0 and math.random(n) or 1
  if n == 0 or r == 1 then return s .. string.char(math.random(0, 255)) end
  if r == 2 then return s:sub(1, i - 1) .. string.char(math.random(0, 255)) .. s:sub(i + 1) end
  if r == 3 then return s:sub(1, i - 1) .. s:sub(i + 1) end
  if r == 4 then return s:sub(1, math.random(0, n - 1)) end
  if r == 5 then return s:sub(1, i) .. s:sub(i, math.min(n, i + math.random(16))) .. s:sub(i + 1) end
  if r == 6 then
    local b = ({ 0x00, 0xff, 0x7f, 0x80, 0x01, 0xfe })[math.random(6)]
    return s:sub(1, i - 1) .. string.char(b) .. s:sub(i + 1)
  end
  if r == 7 then   -- a length-like field made huge or negative
    local w = ({ 1, 2, 4, 8 })[math.random(4)]
    local v = ({ "\255", "\127", "\128", "\0" })[math.random(4)]:rep(w)
    return s:sub(1, i - 1) .. v .. s:sub(i + w)
  end
  if r == 8 then return s:sub(1, i - 1) .. s:sub(1, i - 1) .. s:sub(i) end   -- repeat a prefix
  if r == 9 then
    local j = math.random(n)
    return s:sub(1, math.min(i, j) - 1) .. s:sub(math.max(i, j)) .. s:sub(math.min(i, j), math.max(i, j) - 1)
  end
  return s:sub(i) .. s:sub(1, i - 1)
end

local function random_bytes()
  local t = {}
  for i = 1, math.random(0, 64) do t[i] = string.char(math.random(0, 255)) end
  return table.concat(t)
end

local HOSTILE_POS = { 0, 1, -1, 2, -2, 3, 100, math.maxinteger, math.mininteger, 2 ^ 31 // 1, 1.5, 0 / 0 }

-- Case n of seed: returns a list of findings ({ kind, detail }).
local function run_case(seed, n, verbose)
  math.randomseed(seed, n)
  local found = {}
  local function find(kind, detail) found[#found + 1] = { kind = kind, detail = detail } end
  local v = U.rand_value(math.random(0, 4))
  local ok, bytes = pcall(ipc.encode, v)
  if not ok then
    find("encode-raised", ("encode(%s) raised %s"):format(U.show(v), tostring(bytes)))
    return found
  end
  if verbose then print("value: " .. U.show(v), "encoded: " .. hex(bytes)) end
  -- the round trip
  local okd, back, err = pcall(ipc.decode, bytes)
  if not okd then
    find("roundtrip-raised", ("decode(encode(%s)) raised %s"):format(U.show(v), tostring(back)))
  elseif back == nil and err ~= nil then
    find("roundtrip-error", ("decode(encode(%s)) = nil, %s"):format(U.show(v), tostring(err)))
  elseif not U.same(v, back) then
    find("roundtrip-differs", ("decode(encode(%s)) = %s"):format(U.show(v), U.show(back)))
  end
  -- decodeframes (with its cache of the short strings it made) must agree
  -- with decode frame by frame, on intact and on mutated frame streams
  do
    local frames, stream = {}, {}
    for i = 1, math.random(4, 12) do
      local f = ipc.encode(math.random(3) == 1 and U.rand_value(math.random(0, 3)) or v, true)
      if math.random(8) == 1 then f = mutate(f) end
      frames[i] = f
      stream[i] = f
    end
    stream = table.concat(stream)
    local okf, t, nf, nxt, msg = pcall(ipc.decodeframes, stream)
    if not okf then
      find("frames-raised", ("decodeframes(%s) raised %s"):format(hex(stream, 64), tostring(t)))
    else
      -- the reference: walk the same frames one at a time with decode
      local pos, k, want, wmsg = 1, 0, {}, nil
      while #stream - pos + 1 >= 4 do
        local fl = string.unpack(">I4", stream, pos)
        if fl > 0x7FFFFFFF then wmsg = "over the limit" break end   -- next stays at that frame
        if #stream - pos + 1 - 4 < fl then break end
        local val, err = ipc.decode(stream:sub(pos + 4, pos + 3 + fl))
        pos = pos + 4 + fl
        if err then wmsg = err break end
        k = k + 1
        want[k] = val
      end
      if nf ~= k or nxt ~= pos or (msg == nil) ~= (wmsg == nil) then
        find("frames-differ", ("decodeframes(%s) = %s frames, next %s, %s; frame by frame %d, %d, %s"):format(
          hex(stream, 64), tostring(nf), tostring(nxt), tostring(msg), k, pos, tostring(wmsg)))
      else
        for i = 1, k do
          if not U.same(want[i], t[i]) then
            find("frames-differ", ("decodeframes frame %d = %s, decode gave %s"):format(i, U.show(t[i]),
              U.show(want[i])))
            break
          end
        end
      end
    end
  end
  -- mutated and random bytes
  for _ = 1, 8 do
    local s
    if math.random(6) == 1 then s = random_bytes()
    else
      s = bytes
      for _ = 1, math.random(1, 4) do s = mutate(s) end
    end
    local args = { s }
    if math.random(5) == 1 then
      args[2] = HOSTILE_POS[math.random(#HOSTILE_POS)]
      if math.random(2) == 1 then args[3] = HOSTILE_POS[math.random(#HOSTILE_POS)] end
    end
    if verbose then print("decode input: " .. hex(s), args[2], args[3]) end
    local r = table.pack(pcall(ipc.decode, table.unpack(args, 1, 3)))
    if not r[1] then
      local msg = r[2]
      if type(msg) ~= "string" then
        find("raise-not-string", ("decode(%s) raised a %s"):format(hex(s, 64), type(msg)))
      elseif #args == 1 then
        -- malformed bytes must give nil, message; only argument errors raise
        find("decode-raised", ("decode(%s) raised %s"):format(hex(s, 64), msg))
      end
    elseif r[2] == nil and r.n >= 3 and r[3] ~= nil and type(r[3]) ~= "string" then
      find("error-shape", ("decode(%s) returned nil, %s"):format(hex(s, 64), U.show(r[3])))
    elseif r[2] ~= nil then
      local oke, e2 = pcall(ipc.encode, r[2])
      if not oke then
        find("reencode-raised", ("decode(%s) gave %s, which encode refuses: %s"):format(hex(s, 64),
          U.show(r[2]), tostring(e2)))
      end
    end
  end
  return found
end

local SEED = math.tointeger(tonumber(ARGS.seed or os.getenv("FUZZ_SEED") or ""))
if not SEED then
  local f = io.open("/dev/urandom", "rb")
  SEED = string.unpack("<I4", f:read(4)) % 1000000000 + 1
  f:close()
end

if ARGS.case then
  local n = math.tointeger(tonumber(ARGS.case))
  print(("lipc decode fuzz: replaying seed %d case %d"):format(SEED, n))
  local found = run_case(SEED, n, true)
  for _, f in ipairs(found) do print("FINDING " .. f.kind .. ": " .. f.detail) end
  print(("lipc decode fuzz: %d finding(s)"):format(#found))
  os.exit((#found > 0 and os.getenv("FUZZ_FAIL") ~= "0") and 1 or 0)
end

local SECONDS = tonumber(ARGS.seconds or os.getenv("FUZZ_DECODE_SECONDS") or os.getenv("FUZZ_SECONDS")) or 10
local HANG = tonumber(os.getenv("FUZZ_HANG")) or 10
print(("lipc decode fuzz: FUZZ_SEED=%d for %s s"):format(SEED, tostring(SECONDS)))
io.stdout:flush()

-- the child records its case number at offset 0 and findings as lines on a pipe
local board = assert(ipc.shm.anonymous(8))
local r, w = assert(ipc.pipe())
local t0 = ipc.clock()
local child = assert(ipc.spawn(function()
  r:close()
  local n = 0
  while ipc.clock() - t0 < SECONDS do
    n = n + 1
    board:store(0, n)
    for _, f in ipairs(run_case(SEED, n)) do
      w:write(("%d\t%s\t%s\n"):format(n, f.kind, (f.detail:gsub("\n", "\\n"))))
    end
  end
  board:store(0, -n)
  return 0
end))
w:close()

local findings, seen = {}, {}
local last, lastchange = 0, ipc.clock()
local buf = ""
local outcome
while true do
  local data = r:read(65536, 0.1)
  if data then buf = buf .. data end
  local cur = board:load(0)
  if cur ~= last then last, lastchange = cur, ipc.clock() end
  local how, code = child:status()
  if how then outcome = { how = how, code = code } break end
  if ipc.clock() - lastchange > HANG then
    child:kill("KILL")
    child:wait(10)
    outcome = { how = "hang" }
    break
  end
end
while true do
  local data = r:read(65536, 0.2)
  if not data then break end
  buf = buf .. data
end
r:close()
child:close()
for line in buf:gmatch("[^\n]+") do
  local n, kind, detail = line:match("^(%d+)\t([^\t]+)\t(.*)$")
  if n and not seen[kind] then
    seen[kind] = true
    findings[#findings + 1] = { case = tonumber(n), kind = kind, detail = detail }
  end
end
local cases = math.abs(board:load(0))
if outcome.how == "hang" then
  findings[#findings + 1] = { case = cases, kind = "hang", detail = ("no progress for %d s"):format(HANG) }
elseif outcome.how == "signaled" then
  findings[#findings + 1] = { case = cases, kind = "crash", detail = "killed by signal " .. tostring(outcome.code) }
elseif outcome.code ~= 0 then
  findings[#findings + 1] = { case = cases, kind = "child-error", detail = "exited " .. tostring(outcome.code) }
end
board:close()
for i, f in ipairs(findings) do
  print(("\nFINDING %d: %s in case %d: %s"):format(i, f.kind, f.case, f.detail))
  print(("  replay: lua5.4 fuzz/decode.lua --seed %d --case %d"):format(SEED, f.case))
end
print(("lipc decode fuzz: seed %d, %d cases in %.0f s: %d finding(s)"):format(SEED, cases, ipc.clock() - t0, #findings))
os.exit((#findings > 0 and os.getenv("FUZZ_FAIL") ~= "0") and 1 or 0)
