"""channel_rtt.py - Python's multiprocessing.Pipe doing the work of
bench/channel_rtt.lua: round trip of the same nested value (a dict) between
a parent and its forked child, which echoes it (pickle both ways).
Run: /usr/bin/python3 bench/channel_rtt.py.  BENCH_ITERS / BENCH_WARMUP as in
the Lua."""
import math
import multiprocessing as mp
import os
import time

iters = int(os.environ.get("BENCH_ITERS") or 20000)
warm = int(os.environ.get("BENCH_WARMUP") or 2000)

VALUE = {"id": 123, "name": "widget", "tags": ["a", "b", "c"], "price": 9.99,
         "dims": {"w": 1.5, "h": 2, "d": 0.25}, "ok": True, "items": list(range(1, 11))}


def echo(conn, other):
    other.close()  # the parent's end: without this the child never sees EOF
    while True:
        try:
            v = conn.recv()
        except EOFError:
            return
        conn.send(v)


def main():
    mp.set_start_method("fork")
    a, b = mp.Pipe()
    child = mp.Process(target=echo, args=(b, a))
    child.start()
    b.close()
    ns = time.monotonic_ns
    send, recv = a.send, a.recv
    rtt = []
    for i in range(warm + iters):
        t0 = ns()
        send(VALUE)
        back = recv()
        t1 = ns()
        if i >= warm:
            rtt.append(t1 - t0)
        if i == 0:
            assert back == VALUE
    a.close()
    child.join(10)
    assert child.exitcode == 0
    rtt.sort()
    print("metric channel_rtt_python_median %.3f us lower" % (rtt[iters // 2] / 1e3))
    print("metric channel_rtt_python_p99 %.3f us lower" % (rtt[math.ceil(iters * 0.99) - 1] / 1e3))


if __name__ == "__main__":
    main()
