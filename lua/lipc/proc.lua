--- Process helpers written in Lua (the C side is csrc/proc.c).
-- @module lipc.proc
return function(ipc) -- luacheck: no unused args
end
