rockspec_format = "3.0"
package = "lipc"
version = "scm-1"
source = {
  url = "git+https://github.com/lipc/lipc.git",
}
description = {
  summary = "Every Linux IPC primitive as a Lua object",
  detailed = [[
lipc gives Lua 5.4 scripts pipes, FIFOs, POSIX and System V message queues,
shared memory and mapped files, semaphores, process-shared mutexes and
condition variables, sockets with descriptor passing, eventfd, signals and
process control, each as a userdata that cleans itself up.
]],
  license = "MIT",
}
dependencies = {
  -- Lua 5.4 only: the C core uses the 5.4 C API (lua_newuserdatauv, lua_resetthread,
  -- to-be-closed variables, integer subtypes); see README, "Lua version"
  "lua >= 5.4, < 5.5",
}
test_dependencies = {
  "busted",
}
build = {
  type = "builtin",
  modules = {
    ["lipc.core"] = {
      sources = {
        "csrc/codec.c", "csrc/core.c", "csrc/eventfd.c", "csrc/init.c", "csrc/mq.c",
        "csrc/msg.c", "csrc/pipe.c", "csrc/poll.c", "csrc/pool.c", "csrc/proc.c", "csrc/ring.c",
        "csrc/sem.c", "csrc/shm.c", "csrc/signal.c", "csrc/socket.c", "csrc/sync.c",
        "csrc/system.c", "csrc/task.c", "csrc/timer.c", "csrc/fd.c", "csrc/stream.c",
        "csrc/waiter.c",
      },
      defines = { "_GNU_SOURCE" },
      libraries = { "rt", "pthread", "m" },
      incdirs = { "csrc" },
    },
    ["lipc"] = "lua/lipc/init.lua",
    ["lipc.proc"] = "lua/lipc/proc.lua",
    ["lipc.pool"] = "lua/lipc/pool.lua",
    ["lipc.channel"] = "lua/lipc/channel.lua",
    ["lipc.region"] = "lua/lipc/region.lua",
    ["lipc.topology"] = "lua/lipc/topology.lua",
    ["lipc.testing"] = "lua/lipc/testing.lua",
  },
  install = {
    -- the `lipc` command: ls, sweep, limits, bench
    bin = { lipc = "bin/lipc" },
  },
  -- editor types for lua-language-server (types/lipc.lua, types/lipc/*.lua)
  -- and the docs, under the rock's directory (`luarocks show lipc`)
  copy_directories = { "types", "doc" },
}
