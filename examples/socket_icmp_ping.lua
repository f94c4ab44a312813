-- A raw ICMP echo ("ping") to 127.0.0.1 with ipc.socket.raw("icmp"): the
-- echo request is built with string.pack, its Internet checksum (RFC 1071)
-- computed in Lua; the reply comes back with its IPv4 header in front.
-- Raw sockets need root (CAP_NET_RAW): otherwise this prints why it skips
-- and exits 0.
-- Run: sudo lua5.4 examples/socket_icmp_ping.lua
local ipc = require "lipc"

local sock, err, errno = ipc.socket.raw("icmp")
if not sock then
  if errno == ipc.errno.EPERM or errno == ipc.errno.EACCES then
    print("skipped: raw sockets need root (" .. err .. ")")
    os.exit(0)
  end
  error(err)
end
local s <close> = sock

-- one's-complement sum of 16-bit words, folded
local function checksum(bytes)
  local sum = 0
  for i = 1, #bytes - 1, 2 do sum = sum + (bytes:byte(i) << 8) + bytes:byte(i + 1) end
  if #bytes % 2 == 1 then sum = sum + (bytes:byte(#bytes) << 8) end
  while sum > 0xffff do sum = (sum & 0xffff) + (sum >> 16) end
  return ~sum & 0xffff
end

local ECHO_REQUEST, ECHO_REPLY = 8, 0
local id = ipc.getpid() & 0xffff
local payload = "lipc ping payload"

for seq = 1, 3 do
  local packet = string.pack(">BBHHH", ECHO_REQUEST, 0, 0, id, seq) .. payload
  packet = string.pack(">BBHHH", ECHO_REQUEST, 0, checksum(packet), id, seq) .. payload
  assert(s:sendto(packet, "ip://127.0.0.1", 5))
  while true do                                  -- skip our own request, other pings
    local data, from = assert(s:recvfrom(1500, 5))
    local ihl = (data:byte(1) & 0x0f) * 4          -- IPv4 header length
    local typ, _, _, rid, rseq = string.unpack(">BBHHH", data, ihl + 1)
    if typ == ECHO_REPLY and rid == id and rseq == seq then
      assert(data:sub(ihl + 9) == payload, "payload differs")
      assert(checksum(data:sub(ihl + 1)) == 0, "bad checksum in the reply")
      print(("%d bytes from %s: icmp_seq=%d ttl=%d"):format(#data - ihl, from, seq, data:byte(9)))
      break
    end
  end
end
