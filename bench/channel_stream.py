"""channel_stream.py - Python's multiprocessing.Queue doing the work of
bench/channel_stream.lua: a child process puts small dicts (the same
fields) into the queue, the parent gets and checks each one.  Values per
second from the start of the child to the last value.  BENCH_VALUES as in
the Lua (default 1000000); Python sends a fifth of them (it is slower) and
the rate is per second all the same."""
import multiprocessing as mp
import os
import time

N = int(os.environ.get("BENCH_VALUES") or 1000000) // 5


def produce(q, n):
    # a fresh dict per put: Queue.put pickles later, in its feeder thread,
    # so a dict changed after put would arrive changed
    for i in range(1, n + 1):
        q.put({"seq": i, "host": "node-17", "metric": "cpu.user", "value": 0.375, "unit": "%", "ok": True})
    q.put(None)
    q.close()
    q.join_thread()


def main():
    mp.set_start_method("fork")
    q = mp.Queue()
    t0 = time.monotonic()
    child = mp.Process(target=produce, args=(q, N))
    child.start()
    count = 0
    get = q.get
    while True:
        v = get()
        if v is None:
            break
        count += 1
        assert v["seq"] == count
    secs = time.monotonic() - t0
    child.join(30)
    assert child.exitcode == 0 and count == N
    print("metric channel_stream_values %.0f values/s higher" % (N / secs))


if __name__ == "__main__":
    main()
