---@meta lipc
-- luacheck: ignore
-- Editor types for lipc (lua-language-server): every module function, class and
-- method with its parameters and returns.  Not loaded at run time.
-- Add it to your workspace ("workspace.library": [".../types"]; luarocks installs it
-- under the rock's directory).  spec/types_spec.lua compares it with what
-- `require "lipc"` exports, and scripts/reference.lua makes doc/reference.md from it:
-- a function added to lipc must be added here (the first comment line of each
-- entry is its one-sentence description; `@see` names its family page).

---@alias lipc.timeout number|nil seconds: nil blocks, 0 tries once, > 0 waits at most that long
---@alias lipc.mode integer|string permission bits: 384 or "600" / "0600" (octal string)
---@alias lipc.sig string|integer a signal: "TERM", "SIGTERM", "RTMIN+2" or a number
---@alias lipc.stdio lipc.pipe|lipc.fd|lipc.socket|integer|"pipe"|"null"|"inherit"
---@alias lipc.object lipc.pipe|lipc.fd|lipc.fifo|lipc.socket|lipc.mq|lipc.msg|lipc.region|lipc.sem|lipc.semset|lipc.mutex|lipc.cond|lipc.eventfd|lipc.sigwatch|lipc.poller|lipc.process|lipc.ring|lipc.timer|lipc.channel
---@alias lipc.transport lipc.pipe|lipc.fd|lipc.socket|lipc.mq|lipc.msg|lipc.ring

---The lipc module: every Linux IPC primitive as a Lua object.
---@class lipc
local ipc = {}

-- ---- the module: values --------------------------------------------------------

---The version string, "lipc scm-1".
---@type string
---@see api.md
ipc._VERSION = ""

---System V's IPC_PRIVATE key (0): a new private queue, segment or set.
---@type integer
---@see mq.md
ipc.IPC_PRIVATE = 0

---Every errno name of <errno.h> with the kernel's value (ipc.errno.EAGAIN).
---@type table<string, integer>
---@see api.md
ipc.errno = {}

---The method table of every class by kind (ipc._methods.region.read), for Lua layers.
---@type table<string, table<string, function>>
---@see api.md
ipc._methods = {}

---For lua/lipc/pool.lua: a worker's loop, out[j] = fn(items[j]) for j = first..n, marking j in region at offset.
---@param fn function
---@param items table
---@param out table
---@param first integer
---@param n integer
---@param region lipc.region
---@param offset integer
---@return integer next
---@see proc.md
function ipc._pool_run(fn, items, out, first, n, region, offset) end

-- ---- processes -----------------------------------------------------------------

---Fork: 0 in the child, the child's pid in the parent (stdio flushed first).
---@return integer|nil pid
---@return string? err
---@return integer? errno
---@see proc.md
function ipc.fork() end

---Run fn(...) in a forked child; its number result is the exit code.
---@param fn function
---@param ... any its arguments
---@return lipc.process|nil process
---@return string? err
---@return integer? errno
---@see proc.md
function ipc.spawn(fn, ...) end

---Start a program: { prog, args..., stdin=, stdout=, stderr=, env=, cwd= }.
---@param argv {[integer]: string, stdin?: lipc.stdio, stdout?: lipc.stdio, stderr?: lipc.stdio, env?: table<string, string|false>, cwd?: string}
---@return lipc.process|nil process
---@return string? err
---@return integer? errno
---@see proc.md
function ipc.exec(argv) end

---Run a program to completion: { stdout =, stderr = (when captured), status =, code =, pid = }.
---@param argv table an ipc.exec table plus input = string, timeout = seconds
---@param timeout? number seconds (the old second argument; timeout = in argv is the same)
---@return {stdout: string, stderr?: string, status: "exited"|"signaled"|"timeout", code: integer, pid: integer}|nil result
---@return string? err only when the program cannot start
---@return integer? errno
---@see proc.md
function ipc.run(argv, timeout) end

---A pool of n worker processes, each running fn(item) for pool:map.
---@param n integer
---@param fn fun(item: any): any
---@param opts? {keep?: table}
---@return lipc.pool
---@see proc.md
function ipc.pool(n, fn, opts) end

---Adopt descriptor n: a lipc.socket for a socket, a lipc.pipe for a pipe or FIFO, a lipc.fd otherwise.
---@param n integer
---@return lipc.socket|lipc.pipe|lipc.fd|nil obj
---@return string? err
---@return integer? errno
---@see proc.md
function ipc.fd(n) end

---Wait for a forked child: "exited", code | "signaled", signo.
---@param pid integer
---@param timeout? number
---@return string|nil how
---@return integer|string code or the error message
---@return integer? errno
---@see proc.md
function ipc.wait(pid, timeout) end

---Leave the process at once (stdio flushed, no GC of inherited names).
---@param code? integer default 0
---@see proc.md
function ipc.exit(code) end

---This process's pid.
---@return integer
---@see proc.md
function ipc.getpid() end

---The parent's pid.
---@return integer
---@see proc.md
function ipc.getppid() end

---The pids of this process's unreaped children (zombies included).
---@return integer[]
---@see api.md
function ipc.children() end

---This process's open descriptors, sorted.
---@return integer[]
---@see api.md
function ipc.descriptors() end

---Seconds on CLOCK_MONOTONIC, as a float (for measuring).
---@return number
---@see api.md
function ipc.clock() end

-- ---- pipes and FIFOs -----------------------------------------------------------

---A pipe: the read end and the write end.
---@param opts? {nonblock?: boolean, size?: integer}
---@return lipc.pipe|nil r
---@return lipc.pipe|string w or the error message
---@return integer? errno
---@see pipe.md
function ipc.pipe(opts) end

---Make a FIFO (a generated path without one): a name object that removes it when its owner closes.
---@param path? string
---@param opts? {mode?: lipc.mode, persist?: boolean, excl?: boolean}
---@return lipc.fifo|nil fifo
---@return string? err
---@return integer? errno
---@see pipe.md
function ipc.mkfifo(path, opts) end

---FIFO functions.
---@class lipc.fifolib
ipc.fifo = {}

---Open a FIFO end ("r", "w" or "rw"); the timeout covers the open.
---@param path string
---@param mode "r"|"w"|"rw"
---@param timeout? number
---@param opts? {nonblock?: boolean}
---@return lipc.pipe|nil end
---@return string? err
---@return integer? errno
---@see pipe.md
function ipc.fifo.open(path, mode, timeout, opts) end

-- ---- message queues ------------------------------------------------------------

---POSIX message queues.
---@class lipc.mqlib
ipc.mq = {}

---The number of priorities (valid priorities are 0 .. PRIO_MAX - 1).
---@type integer
---@see mq.md
ipc.mq.PRIO_MAX = 0

---Open or create a POSIX queue (a generated name without one).
---@param name? string "/jobs"
---@param opts? {create?: boolean, excl?: boolean, mode?: lipc.mode, maxmsg?: integer, msgsize?: integer, persist?: boolean, nonblock?: boolean, access?: "r"|"w"|"rw"}
---@return lipc.mq|nil q
---@return string? err
---@return integer? errno
---@see mq.md
function ipc.mq.open(name, opts) end

---Remove a queue's name.
---@param name string
---@return true|nil ok
---@return string? err
---@return integer? errno
---@see mq.md
function ipc.mq.unlink(name) end

---System V message queues.
---@class lipc.msglib
ipc.msg = {}

---Get or create a System V queue (key nil or IPC_PRIVATE: a new private one).
---@param key? integer
---@param opts? {create?: boolean, excl?: boolean, mode?: lipc.mode, persist?: boolean}
---@return lipc.msg|nil m
---@return string? err
---@return integer? errno
---@see mq.md
function ipc.msg.get(key, opts) end

---ftok(3): a System V key from an existing file and a project id 1..255.
---@param path string
---@param proj_id integer
---@return integer|nil key
---@return string? err
---@return integer? errno
---@see mq.md
function ipc.ftok(path, proj_id) end

-- ---- shared memory -------------------------------------------------------------

---Shared memory segments.
---@class lipc.shmlib
ipc.shm = {}

---Open or create a POSIX segment (a generated name without one) and map it.
---@param name? string
---@param opts? {create?: boolean, excl?: boolean, size?: integer, mode?: lipc.mode, persist?: boolean, readonly?: boolean}
---@return lipc.region|nil r
---@return string? err
---@return integer? errno
---@see shm.md
function ipc.shm.open(name, opts) end

---An anonymous shared mapping, shared with children forked afterwards.
---@param size integer
---@return lipc.region|nil r
---@return string? err
---@return integer? errno
---@see shm.md
function ipc.shm.anonymous(size) end

---Get or create a System V segment (shmget + shmat).
---@param key integer
---@param size? integer
---@param opts? {create?: boolean, excl?: boolean, mode?: lipc.mode, persist?: boolean, readonly?: boolean}
---@return lipc.region|nil r
---@return string? err
---@return integer? errno
---@see shm.md
function ipc.shm.sysv(key, size, opts) end

---Remove a POSIX segment's name.
---@param name string
---@return true|nil ok
---@return string? err
---@return integer? errno
---@see shm.md
function ipc.shm.unlink(name) end

---Map a file (the whole file by default).
---@param path string
---@param opts? {size?: integer, offset?: integer, access?: "r"|"rw", mode?: "r"|"rw"}
---@return lipc.region|nil r
---@return string? err
---@return integer? errno
---@see shm.md
function ipc.mmap(path, opts) end

-- ---- semaphores, mutexes, condition variables ----------------------------------

---POSIX semaphores.
---@class lipc.semlib
ipc.sem = {}

---The size of a sem_t in bytes.
---@type integer
---@see shm.md
ipc.sem.SIZE = 0

---The largest value of a semaphore.
---@type integer
---@see shm.md
ipc.sem.VALUE_MAX = 0

---Open or create a named semaphore (a generated name without one).
---@param name? string
---@param opts? {create?: boolean, excl?: boolean, value?: integer, mode?: lipc.mode, persist?: boolean}
---@return lipc.sem|nil s
---@return string? err
---@return integer? errno
---@see shm.md
function ipc.sem.open(name, opts) end

---Initialise a process-shared unnamed semaphore at offset in a region.
---@param region lipc.region
---@param offset integer 8-aligned
---@param value? integer default 0
---@return lipc.sem|nil s
---@return string? err
---@return integer? errno
---@see shm.md
function ipc.sem.new(region, offset, value) end

---Use a semaphore another process initialised at offset in a region.
---@param region lipc.region
---@param offset integer
---@return lipc.sem
---@see shm.md
function ipc.sem.attach(region, offset) end

---Remove a named semaphore's name.
---@param name string
---@return true|nil ok
---@return string? err
---@return integer? errno
---@see shm.md
function ipc.sem.unlink(name) end

---System V semaphore sets.
---@class lipc.semsetlib
ipc.semset = {}

---The largest value of a System V semaphore.
---@type integer
---@see shm.md
ipc.semset.VALUE_MAX = 0

---Get or create a System V semaphore set of nsems semaphores.
---@param key? integer
---@param nsems? integer
---@param opts? {create?: boolean, excl?: boolean, mode?: lipc.mode, persist?: boolean, values?: integer[]}
---@return lipc.semset|nil set
---@return string? err
---@return integer? errno
---@see shm.md
function ipc.semset.get(key, nsems, opts) end

---Process-shared mutexes.
---@class lipc.mutexlib
ipc.mutex = {}

---The size of a pthread_mutex_t in bytes.
---@type integer
---@see shm.md
ipc.mutex.SIZE = 0

---Initialise a process-shared (robust by default) mutex at offset in a region.
---@param region lipc.region
---@param offset integer
---@param opts? {robust?: boolean, recursive?: boolean}
---@return lipc.mutex|nil mu
---@return string? err
---@return integer? errno
---@see shm.md
function ipc.mutex.new(region, offset, opts) end

---Use a mutex another process initialised at offset in a region.
---@param region lipc.region
---@param offset integer
---@return lipc.mutex
---@see shm.md
function ipc.mutex.attach(region, offset) end

---Process-shared condition variables.
---@class lipc.condlib
ipc.cond = {}

---The size of a lipc condition variable in bytes (16: its own futex layout, see shm.md).
---@type integer
---@see shm.md
ipc.cond.SIZE = 0

---Initialise a process-shared condition variable at offset in a region.
---@param region lipc.region
---@param offset integer
---@return lipc.cond|nil cv
---@return string? err
---@return integer? errno
---@see shm.md
function ipc.cond.new(region, offset) end

---Use a condition variable another process initialised at offset in a region.
---@param region lipc.region
---@param offset integer
---@return lipc.cond
---@see shm.md
function ipc.cond.attach(region, offset) end

-- ---- sockets -------------------------------------------------------------------

---A listening (or, for datagrams, bound) socket: tcp://, tcp6://, udp://, unix:, unixgram:, seqpacket:.
---@param url string "tcp://127.0.0.1:0", "unix:/path", "unix:" (a generated path)
---@param opts? {backlog?: integer, reuseaddr?: boolean, reuseport?: boolean, mode?: lipc.mode, persist?: boolean}
---@return lipc.socket|nil s
---@return string? err
---@return integer? errno
---@see socket.md
function ipc.listen(url, opts) end

---A connected socket.
---@param url string
---@param timeout? number
---@return lipc.socket|nil s
---@return string? err
---@return integer? errno
---@see socket.md
function ipc.connect(url, timeout) end

---Two connected Unix sockets.
---@param type? "stream"|"dgram"|"seqpacket"
---@return lipc.socket|nil a
---@return lipc.socket|string b or the error message
---@return integer? errno
---@see socket.md
function ipc.socketpair(type) end

---Socket functions (the same as the top-level ones, plus raw).
---@class lipc.socketlib
ipc.socket = {}

---The same as ipc.listen.
---@param url string
---@param opts? table
---@return lipc.socket|nil s
---@return string? err
---@return integer? errno
---@see socket.md
function ipc.socket.listen(url, opts) end

---The same as ipc.connect.
---@param url string
---@param timeout? number
---@return lipc.socket|nil s
---@return string? err
---@return integer? errno
---@see socket.md
function ipc.socket.connect(url, timeout) end

---The same as ipc.socketpair.
---@param type? "stream"|"dgram"|"seqpacket"
---@return lipc.socket|nil a
---@return lipc.socket|string b or the error message
---@return integer? errno
---@see socket.md
function ipc.socket.socketpair(type) end

---A raw IP socket of a protocol ("icmp", a number...); needs CAP_NET_RAW.
---@param proto string|integer
---@return lipc.socket|nil s
---@return string? err
---@return integer? errno
---@see socket.md
function ipc.socket.raw(proto) end

-- ---- eventfd, signals, polling -------------------------------------------------

---An eventfd counter.
---@param initval? integer 0 .. 0xffffffff
---@param opts? {semaphore?: boolean, nonblock?: boolean}
---@return lipc.eventfd|nil e
---@return string? err
---@return integer? errno
---@see events.md
function ipc.eventfd(initval, opts) end

---Signals as data: watch, kill, queue, dispositions, names.
---@class lipc.signallib
---@field SIGTERM integer
---@field SIGINT integer
---@field SIGKILL integer
---@field SIGUSR1 integer
---@field SIGUSR2 integer
---@field SIGCHLD integer
---@field SIGRTMIN integer
---@field SIGRTMAX integer
---@field [string] integer every SIG* name of this system
ipc.signal = {}

---Block signals and read them from a signalfd.
---@param signals lipc.sig[]
---@param opts? {nonblock?: boolean}
---@return lipc.sigwatch|nil w
---@return string? err
---@return integer? errno
---@see events.md
function ipc.signal.watch(signals, opts) end

---kill(2): send a signal (default "TERM"; 0 only checks the pid).
---@param pid integer
---@param sig? lipc.sig
---@return true|nil ok
---@return string? err
---@return integer? errno
---@see events.md
function ipc.signal.kill(pid, sig) end

---sigqueue(3): send a signal with an integer value.
---@param pid integer
---@param sig lipc.sig
---@param value integer a C int
---@return true|nil ok
---@return string? err
---@return integer? errno
---@see events.md
function ipc.signal.queue(pid, sig, value) end

---Ignore a signal process-wide.
---@param sig lipc.sig
---@return true
---@see events.md
function ipc.signal.ignore(sig) end

---Restore a signal's default disposition.
---@param sig lipc.sig
---@return true
---@see events.md
function ipc.signal.default(sig) end

---A signal's disposition now.
---@param sig lipc.sig
---@return "default"|"ignore"|"handler"
---@see events.md
function ipc.signal.disposition(sig) end

---The names of the signals blocked now.
---@return string[]
---@see events.md
function ipc.signal.blocked() end

---A signal's name without "SIG" ("TERM") from its number.
---@param signo integer
---@return string|nil
---@see events.md
function ipc.signal.name(signo) end

---A signal's number from its name ("TERM", "SIGTERM", "RTMIN+1").
---@param name lipc.sig
---@return integer|nil
---@see events.md
function ipc.signal.number(name) end

---The objects of the list that are ready ({} on timeout).
---@param objs lipc.object[]
---@param timeout? number
---@return lipc.object[]|nil ready
---@return string? err
---@return integer? errno
---@see events.md
function ipc.poll(objs, timeout) end

---An epoll set.
---@return lipc.poller|nil p
---@return string? err
---@return integer? errno
---@see events.md
function ipc.poller() end

-- ---- values across processes ---------------------------------------------------

---Encode a Lua value (nil, booleans, numbers, strings, nested tables) as bytes.
---@param value any
---@param frame? boolean prefix a 4-byte length
---@return string
---@see codec.md
function ipc.encode(value, frame) end

---Decode one value from bytes i .. j.
---@param bytes string
---@param i? integer
---@param j? integer
---@return any value
---@return string? err for malformed bytes
---@see codec.md
function ipc.decode(bytes, i, j) end

---A frame buffer: values encoded as frames into one C buffer (batched channels).
---@param head? string at most 8 bytes written before each batch's first frame
---@return lipc.framebuf
---@see codec.md
function ipc.framebuf(head) end

---Decode the complete frames of s from byte i: t, n, next (and message, size at a bad frame).
---@param s string
---@param i? integer
---@param limit? integer largest frame (default 2^31-1)
---@param max? integer most frames to decode
---@return table t values t[1..n]
---@return integer n
---@return integer next the byte after the last decoded frame
---@return string? err at a frame over the limit or a malformed one
---@return integer? size of the frame over the limit
---@see codec.md
function ipc.decodeframes(s, i, limit, max) end

---Frames of encoded values in one growing buffer.
---@class lipc.framebuf
local framebuf = {}

---Append a value as a frame: length, length before, due (batch bytes reached or delay passed); nil, size over limit.
---@param value any
---@param limit? integer
---@param batch? integer
---@param delay? number
---@return integer|nil len
---@return integer before or the refused size
---@return boolean? due
---@see codec.md
function framebuf:put(value, limit, batch, delay) end

---Bytes i.. of the buffer.
---@param i? integer
---@return string
---@see codec.md
function framebuf:bytes(i) end

---Bytes i.. of the buffer, emptying it.
---@param i? integer
---@return string
---@see codec.md
function framebuf:take(i) end

---Undo the last put (given the length before it).
---@param len integer
---@see codec.md
function framebuf:unput(len) end

---Bytes buffered.
---@return integer
---@see codec.md
function framebuf:len() end

---Frames buffered.
---@return integer
---@see codec.md
function framebuf:count() end

---Forget what is buffered.
---@see codec.md
function framebuf:clear() end

---Shared-memory message rings.
---@class lipc.ringlib
ipc.ring = {}

---A ring of the given data capacity (anonymous, or named with name =).
---@param bytes integer 64 .. 2^32
---@param opts? {name?: string|true, persist?: boolean, mode?: lipc.mode, spin?: integer|"auto"}
---@return lipc.ring|nil ring
---@return string? err
---@return integer? errno
---@see ring.md
function ipc.ring.create(bytes, opts) end

---Map an existing named ring.
---@param name string
---@param opts? {spin?: integer|"auto"}
---@return lipc.ring|nil ring
---@return string? err
---@return integer? errno
---@see ring.md
function ipc.ring.open(name, opts) end

---Remove a ring's name (the ring lives on while mapped).
---@param name string
---@return true|nil ok
---@return string? err
---@return integer? errno
---@see ring.md
function ipc.ring.unlink(name) end

---Channels: Lua values over any transport; call ipc.channel(transport) for one.
---@class lipc.channellib
---@overload fun(transport: lipc.transport|{read?: lipc.transport, write?: lipc.transport, own?: boolean, maxsize?: integer, priority?: integer, type?: integer, send_type?: integer, recv_type?: integer, eof?: boolean, linger?: number}, w?: lipc.transport, opts?: table): lipc.channel
ipc.channel = {}

---The class table of channels (metatable of every lipc.channel).
---@type table
---@see topology.md
ipc.channel.Channel = {}

---A channel reading from r and writing to w.
---@param r? lipc.transport
---@param w? lipc.transport
---@param opts? table the options of ipc.channel
---@return lipc.channel
---@see topology.md
function ipc.channel.new(r, w, opts) end

---Two connected channels for a parent and its child.
---@param kind? "pipe"|"stream"|"socketpair"|"dgram"|"seqpacket"|"ring"|"mq"|"msg"
---@param opts? {size?: integer, maxmsg?: integer, msgsize?: integer}
---@return lipc.channel|nil a
---@return lipc.channel|string b or the error message
---@return integer? errno
---@see topology.md
function ipc.channel.pair(kind, opts) end

-- ---- tasks ---------------------------------------------------------------------

---Start fn(...) as a task on this process's loop.
---@param fn function
---@param ... any
---@return lipc.task
---@see tasks.md
function ipc.go(fn, ...) end

---Run the tasks until none is left.
---@param timeout? number
---@return true|nil ok
---@return string? err "timeout"
---@return integer? errno
---@see tasks.md
function ipc.loop(timeout) end

---Sleep: yields inside a task, sleeps the process outside.
---@param seconds number
---@return true
---@see tasks.md
function ipc.sleep(seconds) end

---Resume coroutine co once as a lipc task, so that another event loop runs lipc calls.
---Returns "wait", fd|nil, events|nil, timeout|nil when a lipc call in co would
---block (step again when fd is ready or after timeout); "yield", ... for a
---plain coroutine.yield; "done", results...; "error", err, traceback.
---@param co thread
---@param ... any
---@return "wait"|"yield"|"done"|"error" what
---@return any ...
---@see integration.md
function ipc.step(co, ...) end

---A timerfd that expires after `after` seconds, then every `every` seconds.
---@param after number
---@param every? number
---@return lipc.timer|nil tm
---@return string? err
---@return integer? errno
---@see tasks.md
function ipc.timer(after, every) end

-- ---- housekeeping ----------------------------------------------------------------

---Like io.type: "pipe", "closed pipe", ... or nil for anything else.
---@param x any
---@return string|nil
---@see api.md
function ipc.type(x) end

---The live lipc objects of this process: { kind =, name = | id = | fd =, owner =, object = }.
---@return {kind: string, owner: boolean, name?: string, id?: integer, fd?: integer, object: lipc.object}[]
---@see api.md
function ipc.audit() end

---Remove the generated names whose creating process provably no longer runs.
---@param opts? {dry_run?: boolean} dry_run: list them, remove nothing
---@return string[] removed "<kind>:<name>" items
---@see api.md
function ipc.sweep(opts) end

---The kernel limits that bite (mq_maxmsg, msgmax, shm_free, nofile...).
---@return table<string, integer>
---@see api.md
function ipc.limits() end

-- ---- classes ---------------------------------------------------------------------

---A pipe or FIFO end: a byte stream.
---@class lipc.pipe
local pipe = {}

---Read up to n bytes, "a" (all), "l" or "L" (a line); nil at end of stream.
---@param fmt integer|"a"|"l"|"L"
---@param timeout? number
---@return string|nil data
---@return string? err
---@return integer? errno
---@see pipe.md
function pipe:read(fmt, timeout) end

---Write data: the number of bytes written.
---@param data string
---@param timeout? number
---@return integer|nil n
---@return string? err
---@return integer? errno
---@see pipe.md
function pipe:write(data, timeout) end

---Send a Lua value as one 4-byte-length frame (ipc.encode(v, true)), encoded into a C buffer: no Lua string of its bytes.
---@param v any
---@param timeout? number
---@param limit? integer an encoding longer than this returns nil, nil, nil, size and writes nothing
---@return true|nil ok
---@return string? err
---@return integer? errno
---@return integer? size the encoding's size (over limit)
---@return integer? written bytes of the frame written before the error (the stream no longer holds whole frames)
---@see codec.md
function pipe:sendv(v, timeout, limit) end

---Receive the value of the next 4-byte-length frame, decoded straight from the read-ahead buffer; a timeout keeps partial frames buffered.
---@param timeout? number
---@param limit? integer a longer frame returns nil, "toobig", nil, size (left unread)
---@return any v the value; nil, "closed" at the end of the stream, nil, "partial" at the end inside a frame
---@return string? err
---@return integer? errno
---@return integer? size
---@return string? message why the frame did not decode (err "malformed"; the frame is skipped)
---@see codec.md
function pipe:recvv(timeout, limit) end

---Whether a whole 4-byte-length frame is in the read-ahead buffer (poll cannot see it).
---@return boolean
---@see codec.md
function pipe:framed() end

---An iterator over lines.
---@param fmt? "l"|"L"
---@param timeout? number
---@return fun(): string|nil
---@see pipe.md
function pipe:lines(fmt, timeout) end

---Set or clear O_NONBLOCK.
---@param on boolean
---@return true|nil ok
---@return string? err
---@return integer? errno
---@see pipe.md
function pipe:setnonblock(on) end

---A Lua io file on a duplicate of the descriptor.
---@return file*|nil f
---@return string? err
---@return integer? errno
---@see pipe.md
function pipe:tofile() end

---"read" or "write".
---@return "read"|"write"|"rw"
---@see pipe.md
function pipe:direction() end

---The pipe's capacity in bytes (F_GETPIPE_SZ).
---@return integer|nil size
---@return string? err
---@return integer? errno
---@see pipe.md
function pipe:size() end

---The descriptor.
---@return integer
---@see pipe.md
function pipe:fileno() end

---Close (idempotent).
---@return true
---@see pipe.md
function pipe:close() end

---Give the descriptor up: the object is closed, the descriptor stays open.
---@return integer|nil n
---@return string? err
---@return integer? errno
---@see pipe.md
function pipe:detach() end

---The same kind of object on a duplicate descriptor (close-on-exec).
---@return lipc.pipe|nil copy
---@return string? err
---@return integer? errno
---@see pipe.md
function pipe:dup() end

---A descriptor received with recvfd (or adopted): a byte stream.
---@class lipc.fd
local fd = {}

---Read up to n bytes, "a", "l" or "L"; nil at end of stream.
---@param fmt integer|"a"|"l"|"L"
---@param timeout? number
---@return string|nil data
---@return string? err
---@return integer? errno
---@see socket.md
function fd:read(fmt, timeout) end

---Write data: the number of bytes written.
---@param data string
---@param timeout? number
---@return integer|nil n
---@return string? err
---@return integer? errno
---@see socket.md
function fd:write(data, timeout) end

---Send a Lua value as one 4-byte-length frame (ipc.encode(v, true)), encoded into a C buffer: no Lua string of its bytes.
---@param v any
---@param timeout? number
---@param limit? integer an encoding longer than this returns nil, nil, nil, size and writes nothing
---@return true|nil ok
---@return string? err
---@return integer? errno
---@return integer? size the encoding's size (over limit)
---@return integer? written bytes of the frame written before the error (the stream no longer holds whole frames)
---@see codec.md
function fd:sendv(v, timeout, limit) end

---Receive the value of the next 4-byte-length frame, decoded straight from the read-ahead buffer; a timeout keeps partial frames buffered.
---@param timeout? number
---@param limit? integer a longer frame returns nil, "toobig", nil, size (left unread)
---@return any v the value; nil, "closed" at the end of the stream, nil, "partial" at the end inside a frame
---@return string? err
---@return integer? errno
---@return integer? size
---@return string? message why the frame did not decode (err "malformed"; the frame is skipped)
---@see codec.md
function fd:recvv(timeout, limit) end

---Whether a whole 4-byte-length frame is in the read-ahead buffer (poll cannot see it).
---@return boolean
---@see codec.md
function fd:framed() end

---Give the descriptor up: the object is closed, the descriptor stays open.
---@return integer|nil n
---@return string? err
---@return integer? errno
---@see socket.md
function fd:detach() end

---The same kind of object on a duplicate descriptor (close-on-exec).
---@return lipc.fd|nil copy
---@return string? err
---@return integer? errno
---@see socket.md
function fd:dup() end

---An iterator over lines.
---@param fmt? "l"|"L"
---@param timeout? number
---@return fun(): string|nil
---@see socket.md
function fd:lines(fmt, timeout) end

---Set or clear O_NONBLOCK.
---@param on boolean
---@return true|nil ok
---@return string? err
---@return integer? errno
---@see socket.md
function fd:setnonblock(on) end

---A Lua io file on a duplicate of the descriptor.
---@return file*|nil f
---@return string? err
---@return integer? errno
---@see socket.md
function fd:tofile() end

---"read", "write" or "rw" (not known: "rw").
---@return "read"|"write"|"rw"
---@see socket.md
function fd:direction() end

---The descriptor.
---@return integer
---@see socket.md
function fd:fileno() end

---Close (idempotent).
---@return true
---@see socket.md
function fd:close() end

---A FIFO's name, as made by ipc.mkfifo.
---@class lipc.fifo
local fifo = {}

---The FIFO's path.
---@return string
---@see pipe.md
function fifo:name() end

---Remove the path now.
---@return true|nil ok
---@return string? err
---@return integer? errno
---@see pipe.md
function fifo:unlink() end

---Close (the owner removes the path unless persist).
---@return true
---@see pipe.md
function fifo:close() end

---A POSIX message queue.
---@class lipc.mq
local mq = {}

---Send a message with a priority (0 .. PRIO_MAX - 1).
---@param msg string
---@param priority? integer
---@param timeout? number
---@return true|nil ok
---@return string? err
---@return integer? errno
---@see mq.md
function mq:send(msg, priority, timeout) end

---Receive the oldest message of the highest priority: msg, priority.
---@param timeout? number
---@return string|nil msg
---@return integer|string priority or the error message
---@return integer? errno
---@see mq.md
function mq:receive(timeout) end

---The same as receive.
---@param timeout? number
---@return string|nil msg
---@return integer|string priority or the error message
---@return integer? errno
---@see mq.md
function mq:recv(timeout) end

---mq_getattr: { maxmsg =, msgsize =, curmsgs =, nonblock = }.
---@return {maxmsg: integer, msgsize: integer, curmsgs: integer, nonblock: boolean}|nil attr
---@return string? err
---@return integer? errno
---@see mq.md
function mq:attr() end

---Set or clear O_NONBLOCK (mq_setattr).
---@param on boolean
---@return true|nil ok
---@return string? err
---@return integer? errno
---@see mq.md
function mq:setnonblock(on) end

---Remove the name now.
---@return true|nil ok
---@return string? err
---@return integer? errno
---@see mq.md
function mq:unlink() end

---The queue's name.
---@return string
---@see mq.md
function mq:name() end

---The mqd_t, a descriptor.
---@return integer
---@see mq.md
function mq:fileno() end

---Close (the owner unlinks unless persist).
---@return true
---@see mq.md
function mq:close() end

---A System V message queue.
---@class lipc.msg
local msg = {}

---Send data as a message of type mtype (> 0).
---@param mtype integer
---@param data string
---@param timeout? number
---@return true|nil ok
---@return string? err
---@return integer? errno
---@see mq.md
function msg:send(mtype, data, timeout) end

---Receive a message (mtype 0: the first; > 0: that type; < 0: lowest type <= |mtype|): data, mtype.
---@param mtype? integer
---@param timeout? number
---@return string|nil data
---@return integer|string mtype or the error message
---@return integer? errno
---@see mq.md
function msg:receive(mtype, timeout) end

---The same as receive.
---@param mtype? integer
---@param timeout? number
---@return string|nil data
---@return integer|string mtype or the error message
---@return integer? errno
---@see mq.md
function msg:recv(mtype, timeout) end

---msgctl IPC_STAT: { qnum, qbytes, cbytes, lspid, lrpid, mode, uid, ... }.
---@return table|nil stat
---@return string? err
---@return integer? errno
---@see mq.md
function msg:stat() end

---IPC_RMID now.
---@return true|nil ok
---@return string? err
---@return integer? errno
---@see mq.md
function msg:remove() end

---The msqid.
---@return integer
---@see mq.md
function msg:id() end

---The key.
---@return integer
---@see mq.md
function msg:key() end

---Close (the owner removes unless persist).
---@return true
---@see mq.md
function msg:close() end

---A mapping: POSIX or System V segment, anonymous memory or a file.
---@class lipc.region
---@operator len: integer
local region = {}

---len bytes from offset (default: to the end).
---@param offset? integer 0-based
---@param len? integer
---@return string
---@see shm.md
function region:read(offset, len) end

---Copy s at offset: the offset after it.
---@param offset integer
---@param s string
---@return integer
---@see shm.md
function region:write(offset, s) end

---memset: the offset after.
---@param byte integer
---@param offset? integer
---@param len? integer
---@return integer
---@see shm.md
function region:fill(byte, offset, len) end

---string.pack in place: the offset after the bytes written.
---@param offset integer
---@param fmt string
---@param ... any
---@return integer
---@see shm.md
function region:pack(offset, fmt, ...) end

---string.unpack in place: values..., the offset after them.
---@param offset integer
---@param fmt string
---@return any ...
---@see shm.md
function region:unpack(offset, fmt) end

---Atomic 64-bit add at an 8-aligned offset: the new value.
---@param offset integer
---@param n integer
---@return integer
---@see shm.md
function region:add(offset, n) end

---Atomic 64-bit load.
---@param offset integer
---@return integer
---@see shm.md
function region:load(offset) end

---Atomic 64-bit store.
---@param offset integer
---@param v integer
---@return true
---@see shm.md
function region:store(offset, v) end

---Compare and swap: true, or false and the current value.
---@param offset integer
---@param expected integer
---@param new integer
---@return boolean ok
---@return integer? current
---@see shm.md
function region:cas(offset, expected, new) end

---msync (MS_SYNC, or MS_ASYNC).
---@param async? boolean
---@return true|nil ok
---@return string? err
---@return integer? errno
---@see shm.md
function region:sync(async) end

---POSIX: shm_unlink now (the mapping stays usable).
---@return true|nil ok
---@return string? err
---@return integer? errno
---@see shm.md
function region:unlink() end

---System V: IPC_RMID now.
---@return true|nil ok
---@return string? err
---@return integer? errno
---@see shm.md
function region:remove() end

---The POSIX name or file path (nil otherwise).
---@return string|nil
---@see shm.md
function region:name() end

---The System V shmid (nil otherwise).
---@return integer|nil
---@see shm.md
function region:id() end

---"posix", "anonymous", "sysv" or "file".
---@return "posix"|"anonymous"|"sysv"|"file"
---@see shm.md
function region:kind() end

---The descriptor (POSIX and files).
---@return integer|nil
---@see shm.md
function region:fileno() end

---Unmap (the owner removes the name unless persist).
---@return true
---@see shm.md
function region:close() end

---A POSIX semaphore, named or in a region.
---@class lipc.sem
local sem = {}

---Wait (decrement).
---@param timeout? number
---@return true|nil ok
---@return string? err
---@return integer? errno
---@see shm.md
function sem:wait(timeout) end

---Decrement if possible: true or false.
---@return boolean
---@see shm.md
function sem:trywait() end

---Post (increment).
---@return true|nil ok
---@return string? err
---@return integer? errno
---@see shm.md
function sem:post() end

---The current value.
---@return integer
---@see shm.md
function sem:value() end

---Remove the name (named only).
---@return true|nil ok
---@return string? err
---@return integer? errno
---@see shm.md
function sem:unlink() end

---sem_destroy, then close (unnamed only).
---@return true|nil ok
---@return string? err
---@return integer? errno
---@see shm.md
function sem:destroy() end

---The name (nil for unnamed).
---@return string|nil
---@see shm.md
function sem:name() end

---Close.
---@return true
---@see shm.md
function sem:close() end

---A System V semaphore set.
---@class lipc.semset
---@operator len: integer
local semset = {}

---Atomic semop / semtimedop over { {index, delta, undo =, nowait =}, ... }.
---@param ops {[1]: integer, [2]: integer, undo?: boolean, nowait?: boolean}[]
---@param timeout? number
---@return true|nil ok
---@return string? err
---@return integer? errno
---@see shm.md
function semset:op(ops, timeout) end

---The value of semaphore i (0-based).
---@param i integer
---@return integer|nil v
---@return string? err
---@return integer? errno
---@see shm.md
function semset:get(i) end

---Set the value of semaphore i.
---@param i integer
---@param v integer
---@return true|nil ok
---@return string? err
---@return integer? errno
---@see shm.md
function semset:set(i, v) end

---Every value (GETALL).
---@return integer[]|nil values
---@return string? err
---@return integer? errno
---@see shm.md
function semset:values() end

---GETPID of semaphore i.
---@param i integer
---@return integer|nil pid
---@return string? err
---@return integer? errno
---@see shm.md
function semset:pid(i) end

---GETNCNT: processes waiting to decrement semaphore i.
---@param i integer
---@return integer|nil n
---@return string? err
---@return integer? errno
---@see shm.md
function semset:waiting(i) end

---GETZCNT: processes waiting for semaphore i to be zero.
---@param i integer
---@return integer|nil n
---@return string? err
---@return integer? errno
---@see shm.md
function semset:zwaiting(i) end

---The semid.
---@return integer
---@see shm.md
function semset:id() end

---IPC_RMID now.
---@return true|nil ok
---@return string? err
---@return integer? errno
---@see shm.md
function semset:remove() end

---Close (the owner removes unless persist).
---@return true
---@see shm.md
function semset:close() end

---A process-shared pthread mutex in a region.
---@class lipc.mutex
local mutex = {}

---Lock: true, or true, "owner died" (made consistent).
---@param timeout? number
---@return true|nil ok
---@return string? note "owner died", or the error message
---@return integer? errno
---@see shm.md
function mutex:lock(timeout) end

---Lock if free: true | false | true, "owner died".
---@return boolean ok
---@return string? note
---@see shm.md
function mutex:trylock() end

---Unlock.
---@return true|nil ok
---@return string? err
---@return integer? errno
---@see shm.md
function mutex:unlock() end

---pthread_mutex_destroy, then close.
---@return true|nil ok
---@return string? err
---@return integer? errno
---@see shm.md
function mutex:destroy() end

---Close.
---@return true
---@see shm.md
function mutex:close() end

---A process-shared pthread condition variable in a region.
---@class lipc.cond
local cond = {}

---Wait, releasing mu meanwhile: true, or true, "owner died".
---@param mu lipc.mutex
---@param timeout? number
---@return true|nil ok
---@return string? note or the error message
---@return integer? errno
---@see shm.md
function cond:wait(mu, timeout) end

---Wake one waiter.
---@return true
---@see shm.md
function cond:signal() end

---Wake every waiter.
---@return true
---@see shm.md
function cond:broadcast() end

---Mark the condition variable destroyed (wakes every waiter), then close.
---@return true|nil ok
---@return string? err
---@return integer? errno
---@see shm.md
function cond:destroy() end

---Close.
---@return true
---@see shm.md
function cond:close() end

---A socket.
---@class lipc.socket
local socket = {}

---The next connection of a listener, a new socket.
---@param timeout? number
---@return lipc.socket|nil c
---@return string? err
---@return integer? errno
---@see socket.md
function socket:accept(timeout) end

---Send data: bytes sent (streams: everything; message sockets: one datagram).
---@param data string
---@param timeout? number
---@return integer|nil n
---@return string? err
---@return integer? errno
---@see socket.md
function socket:send(data, timeout) end

---Up to n bytes (default 65536); nil at end of stream; true second when a message was cut.
---@param n? integer
---@param timeout? number
---@return string|nil data
---@return boolean|string|nil truncated or the error message
---@return integer? errno
---@see socket.md
function socket:recv(n, timeout) end

---Send a datagram to a URL.
---@param data string
---@param url string
---@param timeout? number
---@return integer|nil n
---@return string? err
---@return integer? errno
---@see socket.md
function socket:sendto(data, url, timeout) end

---Receive a datagram: data, from (a URL), true third when cut.
---@param n? integer
---@param timeout? number
---@return string|nil data
---@return string? from or the error message
---@return boolean|integer|nil truncated or errno
---@see socket.md
function socket:recvfrom(n, timeout) end

---Send each string of list as its own message, with as few sendmmsg calls as possible.
---@param list string[]
---@param timeout? number
---@return integer|nil count sent
---@return string? err (also after a partial send)
---@return integer? errno
---@see socket.md
function socket:sendmany(list, timeout) end

---The messages that are ready (at least one, at most max, 64) in one recvmmsg.
---@param max? integer
---@param size? integer bytes kept of each message
---@param timeout? number
---@return string[]|nil list (nil at the end of a seqpacket connection)
---@return string? err
---@return integer? errno
---@see socket.md
function socket:recvmany(max, size, timeout) end

---Connect an existing socket (e.g. a bound UDP socket).
---@param url string
---@param timeout? number
---@return true|nil ok
---@return string? err
---@return integer? errno
---@see socket.md
function socket:connect(url, timeout) end

---shutdown(2): "r", "w" or "rw" (default).
---@param how? "r"|"w"|"rw"
---@return true|nil ok
---@return string? err
---@return integer? errno
---@see socket.md
function socket:shutdown(how) end

---The local address as a URL (nil when unnamed).
---@return string|nil
---@see socket.md
function socket:address() end

---The remote address as a URL (nil when unnamed).
---@return string|nil
---@see socket.md
function socket:peer() end

---Set an option: nodelay, reuseaddr, reuseport, keepalive, broadcast, rcvbuf, sndbuf, linger.
---@param name string
---@param value boolean|integer|number|false
---@return true|nil ok
---@return string? err
---@return integer? errno
---@see socket.md
function socket:setoption(name, value) end

---The current value of an option.
---@param name string
---@return boolean|integer|number|nil value
---@return string? err
---@return integer? errno
---@see socket.md
function socket:getoption(name) end

---SO_PEERCRED of a Unix socket: { pid =, uid =, gid = }.
---@return {pid: integer, uid: integer, gid: integer}|nil cred
---@return string? err
---@return integer? errno
---@see socket.md
function socket:peercred() end

---Pass a descriptor (SCM_RIGHTS) with data: the bytes of data sent.
---@param obj lipc.object|integer
---@param data? string
---@param timeout? number
---@return integer|nil n
---@return string? err
---@return integer? errno
---@see socket.md
function socket:sendfd(obj, data, timeout) end

---Receive a descriptor: obj (a lipc.fd), data; false, data without one; nil at end of stream.
---@param timeout? number
---@return lipc.fd|false|nil obj
---@return string? data or the error message
---@return boolean|integer|nil truncated or errno
---@see socket.md
function socket:recvfd(timeout) end

---Give the descriptor up: the object is closed, the descriptor stays open.
---@return integer|nil n
---@return string? err
---@return integer? errno
---@see socket.md
function socket:detach() end

---The same kind of object on a duplicate descriptor (close-on-exec).
---@return lipc.socket|nil copy
---@return string? err
---@return integer? errno
---@see socket.md
function socket:dup() end

---Receive every descriptor of one message: a list of typed objects, and the data.
---@param timeout? number
---@return (lipc.socket|lipc.pipe|lipc.fd)[]|false|nil list false, data without descriptors; nil at end of stream
---@return string? data or the error message
---@return boolean|integer|nil truncated or errno
---@see socket.md
function socket:recvfds(timeout) end

---"stream", "dgram", "seqpacket" or "raw".
---@return "stream"|"dgram"|"seqpacket"|"raw"
---@see socket.md
function socket:type() end

---Read up to n bytes, "a", "l" or "L"; nil at end of stream.
---@param fmt integer|"a"|"l"|"L"
---@param timeout? number
---@return string|nil data
---@return string? err
---@return integer? errno
---@see socket.md
function socket:read(fmt, timeout) end

---Write data: bytes written.
---@param data string
---@param timeout? number
---@return integer|nil n
---@return string? err
---@return integer? errno
---@see socket.md
function socket:write(data, timeout) end

---Send a Lua value as one 4-byte-length frame (ipc.encode(v, true)), encoded into a C buffer: no Lua string of its bytes.
---@param v any
---@param timeout? number
---@param limit? integer an encoding longer than this returns nil, nil, nil, size and writes nothing
---@return true|nil ok
---@return string? err
---@return integer? errno
---@return integer? size the encoding's size (over limit)
---@return integer? written bytes of the frame written before the error (the stream no longer holds whole frames)
---@see codec.md
function socket:sendv(v, timeout, limit) end

---Receive the value of the next 4-byte-length frame, decoded straight from the read-ahead buffer; a timeout keeps partial frames buffered.
---@param timeout? number
---@param limit? integer a longer frame returns nil, "toobig", nil, size (left unread)
---@return any v the value; nil, "closed" at the end of the stream, nil, "partial" at the end inside a frame
---@return string? err
---@return integer? errno
---@return integer? size
---@return string? message why the frame did not decode (err "malformed"; the frame is skipped)
---@see codec.md
function socket:recvv(timeout, limit) end

---Whether a whole 4-byte-length frame is in the read-ahead buffer (poll cannot see it).
---@return boolean
---@see codec.md
function socket:framed() end

---An iterator over lines.
---@param fmt? "l"|"L"
---@param timeout? number
---@return fun(): string|nil
---@see socket.md
function socket:lines(fmt, timeout) end

---Set or clear O_NONBLOCK.
---@param on boolean
---@return true|nil ok
---@return string? err
---@return integer? errno
---@see socket.md
function socket:setnonblock(on) end

---A Lua io file on a duplicate of the descriptor.
---@return file*|nil f
---@return string? err
---@return integer? errno
---@see socket.md
function socket:tofile() end

---"read", "write" or "rw".
---@return "read"|"write"|"rw"
---@see socket.md
function socket:direction() end

---The descriptor.
---@return integer
---@see socket.md
function socket:fileno() end

---Close (the owner of a Unix socket path removes it unless persist).
---@return true
---@see socket.md
function socket:close() end

---An eventfd counter.
---@class lipc.eventfd
local eventfd = {}

---Add n (default 1) to the counter.
---@param n? integer
---@param timeout? number
---@return true|nil ok
---@return string? err
---@return integer? errno
---@see events.md
function eventfd:add(n, timeout) end

---Wait for a nonzero counter: its value (semaphore mode: 1).
---@param timeout? number
---@return integer|nil value
---@return string? err
---@return integer? errno
---@see events.md
function eventfd:take(timeout) end

---Whether it was made with semaphore = true.
---@return boolean
---@see events.md
function eventfd:issemaphore() end

---The descriptor.
---@return integer
---@see events.md
function eventfd:fileno() end

---Close.
---@return true
---@see events.md
function eventfd:close() end

---A signalfd watching signals.
---@class lipc.sigwatch
local sigwatch = {}

---The next signal: its name as watch spells it, and { signo, pid, uid, value, code, ... }.
---@param timeout? number
---@return string|nil name
---@return table|string info or the error message
---@return integer? errno
---@see events.md
function sigwatch:next(timeout) end

---The watched signals' names.
---@return string[]
---@see events.md
function sigwatch:signals() end

---The descriptor.
---@return integer
---@see events.md
function sigwatch:fileno() end

---Close (the signals are unblocked).
---@return true
---@see events.md
function sigwatch:close() end

---An epoll set.
---@class lipc.poller
---@operator len: integer
local poller = {}

---Register an object for "r" (default), "w" or "rw".
---@param obj lipc.object|integer
---@param events? "r"|"w"|"rw"
---@return true|nil ok
---@return string? err
---@return integer? errno
---@see events.md
function poller:add(obj, events) end

---Change what an object is watched for.
---@param obj lipc.object|integer
---@param events "r"|"w"|"rw"
---@return true|nil ok
---@return string? err
---@return integer? errno
---@see events.md
function poller:modify(obj, events) end

---Unregister an object.
---@param obj lipc.object|integer
---@return true|nil ok
---@return string? err
---@return integer? errno
---@see events.md
function poller:remove(obj) end

---An iterator over the ready objects and their events ("r", "w", "rw", "hup").
---@param timeout? number
---@param maxevents? integer
---@return fun(): lipc.object?, string?
---@see events.md
function poller:wait(timeout, maxevents) end

---The registered objects still open.
---@return integer
---@see events.md
function poller:count() end

---The epoll descriptor.
---@return integer
---@see events.md
function poller:fileno() end

---Close.
---@return true
---@see events.md
function poller:close() end

---A child process (ipc.spawn, ipc.exec).
---@class lipc.process
---@field pid integer
---@field stdin lipc.pipe? with stdin = "pipe"
---@field stdout lipc.pipe? with stdout = "pipe"
---@field stderr lipc.pipe? with stderr = "pipe"
local process = {}

---Feed input to stdin, drain the stdout and stderr pipes, wait: out, err, how, code.
---@param input? string
---@param timeout? number
---@return string|nil out or nil on timeout
---@return string? err stderr, or the error message
---@return string|integer|nil how "exited"|"signaled", or errno
---@return integer? code
---@see proc.md
function process:communicate(input, timeout) end

---Wait: "exited", code | "signaled", signo.
---@param timeout? number
---@return string|nil how
---@return integer|string code or the error message
---@return integer? errno
---@see proc.md
function process:wait(timeout) end

---nil while it runs, else what wait returns.
---@return string|nil how
---@return integer? code
---@see proc.md
function process:status() end

---Send a signal (default "TERM").
---@param sig? lipc.sig
---@return true|nil ok
---@return string? err
---@return integer? errno
---@see proc.md
function process:kill(sig) end

---The pidfd.
---@return integer
---@see proc.md
function process:fileno() end

---Close the pidfd (neither kills nor waits).
---@return true
---@see proc.md
function process:close() end

---A shared-memory message ring.
---@class lipc.ring
---@operator len: integer
local ring = {}

---Send one message (at most capacity - 8 bytes).
---@param s string
---@param timeout? number
---@return true|nil ok
---@return string? err
---@return integer? errno
---@see ring.md
function ring:send(s, timeout) end

---Receive one message.
---@param timeout? number
---@return string|nil msg
---@return string? err
---@return integer? errno
---@see ring.md
function ring:recv(timeout) end

---Send a Lua value, encoded (as ipc.encode) straight into the ring: no Lua string of its bytes.
---@param v any
---@param timeout? number
---@param limit? integer an encoding longer than this returns nil, message, EMSGSIZE, size
---@return true|nil ok
---@return string? err
---@return integer? errno
---@return integer? size the encoding's size (EMSGSIZE)
---@see ring.md
function ring:sendv(v, timeout, limit) end

---Receive one value, decoded straight out of the ring's memory.
---@param timeout? number
---@return any v the value; nil, "closed" at the end marker or end of stream
---@return string? err
---@return integer? errno
---@return string? bytes a message that does not decode (EBADMSG)
---@see ring.md
function ring:recvv(timeout) end

---The data capacity in bytes.
---@return integer
---@see ring.md
function ring:capacity() end

---The bytes queued.
---@return integer
---@see ring.md
function ring:pending() end

---The name (nil for an anonymous ring).
---@return string|nil
---@see ring.md
function ring:name() end

---Remove the name now.
---@return true|nil ok
---@return string? err
---@return integer? errno
---@see ring.md
function ring:unlink() end

---Unmap (the owner removes the name unless persist).
---@return true
---@see ring.md
function ring:close() end

---A timerfd on CLOCK_MONOTONIC.
---@class lipc.timer
local timer = {}

---Wait for expirations: how many since the last wait.
---@param timeout? number
---@return integer|nil n
---@return string? err
---@return integer? errno
---@see tasks.md
function timer:wait(timeout) end

---Arm again (pending expirations dropped).
---@param after number
---@param every? number
---@return true
---@see tasks.md
function timer:reset(after, every) end

---The descriptor.
---@return integer
---@see tasks.md
function timer:fileno() end

---Close.
---@return true
---@see tasks.md
function timer:close() end

---A task made by ipc.go.
---@class lipc.task
local task = {}

---Wait for the task: true, its results... | nil, message | nil, "timeout", ETIMEDOUT.
---@param timeout? number
---@return boolean|nil ok
---@return any ... its results, or the error message and errno
---@see tasks.md
function task:join(timeout) end

---Cancel: its pending or next wait raises "cancelled".
---@return true
---@see tasks.md
function task:cancel() end

---"running", "waiting", "done", "failed" or "cancelled".
---@return "running"|"waiting"|"done"|"failed"|"cancelled"
---@see tasks.md
function task:status() end

---Lua values over a transport.
---@class lipc.channel
local channel = {}

---Send a value.
---@param value any
---@param timeout? number
---@return true|nil ok
---@return string? err
---@return integer? errno
---@see topology.md
function channel:send(value, timeout) end

---Receive a value; nil, "closed" at the end of the stream.
---@param timeout? number
---@return any value
---@return string? err "closed" or a message
---@return integer? errno
---@see topology.md
function channel:recv(timeout) end

---An iterator over the values until the end of the stream.
---@param timeout? number per value
---@return fun(): any
---@see topology.md
function channel:values(timeout) end

---Send the end of the stream (message transports) or close the write side.
---@param timeout? number
---@return true|nil ok
---@return string? err
---@return integer? errno
---@see topology.md
function channel:finish(timeout) end

---Coalesce sends (bytes, true for 65536, false to flush and stop).
---@param bytes integer|boolean
---@param delay? number seconds a held value may wait for more sends
---@return true|nil ok
---@return string? err
---@return integer? errno
---@see batching.md
function channel:batch(bytes, delay) end

---Send the values a batched channel holds.
---@param timeout? number
---@return true|nil ok
---@return string? err
---@return integer? errno
---@see batching.md
function channel:flush(timeout) end

---The number of values held by a batched channel, not yet sent.
---@return integer
---@see batching.md
function channel:pending() end

---Whether close will send the end-of-stream marker.
---@return boolean
---@see topology.md
function channel:owes_eof() end

---Whether a whole value is buffered (poll cannot see it).
---@return boolean
---@see topology.md
function channel:buffered() end

---The read and write transports.
---@return lipc.transport|nil r
---@return lipc.transport|nil w
---@see topology.md
function channel:transport() end

---The read side's descriptor, for ipc.poll.
---@return integer|nil
---@see topology.md
function channel:fileno() end

---Close (and the transports unless own = false).
---@return true
---@see topology.md
function channel:close() end


---A pool of worker processes (ipc.pool).
---@class lipc.pool
local pool = {}

---results[i] = fn(items[i]) in order; errors = nil or { [i] = message }.
---@param items any[]
---@param timeout? number
---@return any[]|nil results
---@return table<integer, string>|string|nil errors or the error message
---@return integer? errno
---@see proc.md
function pool:map(items, timeout) end

---Stop and reap the workers.
---@return true
---@see proc.md
function pool:close() end

return ipc
