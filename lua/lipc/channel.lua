--- Channels: Lua values over any lipc transport.
-- @module lipc.channel
return function(ipc) -- luacheck: no unused args
end
