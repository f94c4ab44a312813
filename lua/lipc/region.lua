--- Region methods written in Lua on top of the C side (csrc/shm.c):
-- `r:pack` and `r:unpack` are `string.pack` / `string.unpack` in place.
-- They live here because they call back into Lua's string library; the C
-- side keeps the bounds-checked byte access they are built on
-- (`r:read`, `r:write`, `#r`).
-- @module lipc.region

return function(ipc)
  local methods = ipc._methods.region
  local core_type = ipc.type
  local read, write = methods.read, methods.write
  local select, tointeger, tpack, tunpack = select, math.tointeger, table.pack, table.unpack
  -- Called through a field whose key is the library name, so that their own
  -- argument errors say 'string.pack' / 'string.unpack' (Lua names a function
  -- by the key it was fetched with).
  local lib = { ["string.pack"] = string.pack, ["string.unpack"] = string.unpack }
  local packsize = string.packsize
  local MAXINT = math.maxinteger

  -- The type name luaL_typeerror would show for v.
  local function typename(v)
    local mt = getmetatable(v)
    local name = type(mt) == "table" and rawget(mt, "__name")
    return type(name) == "string" and name or type(v)
  end

  -- Raise like luaL_argerror from the function level levels up: an obj:m()
  -- call does not count self.
  local function argerror(fname, arg, msg, level)
    local info = debug.getinfo(level, "n")   -- the lipc function, seen from its caller
    if info and info.namewhat == "method" then
      arg = arg - 1
      if arg == 0 then error(("calling '%s' on bad self (%s)"):format(fname, msg), level + 1) end
    end
    error(("bad argument #%d to '%s' (%s)"):format(arg, fname, msg), level + 1)
  end

  -- The size of the open region r (argument 1 of fname).
  local function region_size(r, fname)
    local t = core_type(r)
    if t == "region" then return #r end
    if t == "closed region" then error("attempt to use a closed lipc.region", 3) end
    argerror(fname, 1, "lipc.region expected, got " .. typename(r), 3)
  end

  -- The offset argument (2) of fname: an integer 0..maxinteger.
  local function offset(v, fname)
    local off = tointeger(v)
    if off == nil then
      if type(v) == "number" then argerror(fname, 2, "number has no integer representation", 3) end
      argerror(fname, 2, "integer expected, got " .. typename(v), 3)
    end
    if off < 0 then argerror(fname, 2, ("out of range (0 to %d)"):format(MAXINT), 3) end
    return off
  end

  local function format(v, fname)
    local t = type(v)
    if t ~= "string" and t ~= "number" then argerror(fname, 3, "string expected, got " .. typename(v), 3) end
    return v
  end

  --- Pack values with a `string.pack` format at offset (0-based).
  -- @tparam integer offset
  -- @tparam string fmt a `string.pack` format
  -- @param ... the values
  -- @treturn integer the offset after the bytes written
  -- @function region:pack
  function methods.pack(r, off, fmt, ...)
    local size = region_size(r, "pack")
    off = offset(off, "pack")
    fmt = format(fmt, "pack")
    local s = lib["string.pack"](fmt, ...)
    if off > size or #s > size - off then
      argerror("pack", 2, ("offset %d + %d packed bytes outside the region (%d bytes)"):format(off, #s, size), 2)
    end
    return write(r, off, s)   -- raises on a read-only mapping
  end

  --- Unpack values with a `string.unpack` format at offset (0-based).
  -- Copies only what the format reads: its size when fixed, otherwise a
  -- window that doubles until the values fit (or the region ends).
  -- @tparam integer offset
  -- @tparam string fmt a `string.unpack` format
  -- @return the values, then the offset after them
  -- @function region:unpack
  function methods.unpack(r, off, fmt, ...)
    local size = region_size(r, "unpack")
    off = offset(off, "unpack")
    fmt = format(fmt, "unpack")
    if select("#", ...) > 0 then
      argerror("unpack", 4, "no more arguments expected (the offset is the position)", 2)
    end
    if off > size then
      argerror("unpack", 2, ("offset %d outside the region (%d bytes)"):format(off, size), 2)
    end
    local avail = size - off
    local ok, fixed = pcall(packsize, fmt)   -- fails for variable-length formats (s, z)
    local res
    if ok then
      if avail < fixed then
        argerror("unpack", 2, ("offset %d + %d bytes outside the region (%d bytes)"):format(off, fixed, size), 2)
      end
      res = tpack(lib["string.unpack"](fmt, read(r, off, fixed)))
    else
      local win = avail < 4096 and avail or 4096
      while win < avail do
        res = tpack(pcall(lib["string.unpack"], fmt, read(r, off, win)))
        if res[1] then break end
        res = nil
        win = avail - win < win and avail or win * 2   -- any failure: try a bigger window
      end
      if res then
        table.move(res, 2, res.n, 1)          -- drop pcall's true
        res[res.n], res.n = nil, res.n - 1
      else
        -- the whole rest of the region: the format's own error, if any, is the answer
        res = tpack(lib["string.unpack"](fmt, read(r, off, avail)))
      end
    end
    res[res.n] = off + res[res.n] - 1          -- string.unpack's 1-based position in the copy
    return tunpack(res, 1, res.n)
  end
end
