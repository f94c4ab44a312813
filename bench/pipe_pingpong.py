"""pipe_pingpong.py - Python's os.pipe/os.fork doing the work of
bench/pipe_pingpong.c (a third party beside raw C and lipc): round trip of a
64-byte message over two pipes.  BENCH_ITERS / BENCH_WARMUP as in the C."""
import math
import os
import time

MSG = 64
iters = int(os.environ.get("BENCH_ITERS") or 20000)
warm = int(os.environ.get("BENCH_WARMUP") or 2000)

to_child = os.pipe()
to_parent = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(to_child[1])
    os.close(to_parent[0])
    while True:
        m = os.read(to_child[0], MSG)
        if not m:
            os._exit(0)
        os.write(to_parent[1], m)
os.close(to_child[0])
os.close(to_parent[1])
msg = b"x" * MSG
ns = time.monotonic_ns
w, r = to_child[1], to_parent[0]
write, read = os.write, os.read
rtt = []
for i in range(warm + iters):
    t0 = ns()
    write(w, msg)
    back = read(r, MSG)
    t1 = ns()
    assert len(back) == MSG
    if i >= warm:
        rtt.append(t1 - t0)
os.close(w)
assert os.read(r, MSG) == b""
_, status = os.waitpid(pid, 0)
assert status == 0
rtt.sort()
print("metric pipe_rtt_median %.3f us lower" % (rtt[iters // 2] / 1e3))
print("metric pipe_rtt_p99 %.3f us lower" % (rtt[math.ceil(iters * 0.99) - 1] / 1e3))
