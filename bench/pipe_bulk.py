"""pipe_bulk.py - Python's os.pipe/os.fork doing the work of
bench/pipe_bulk.c (a third party beside raw C and lipc): bulk throughput in
64 KiB chunks; the clock starts after the first 64 MiB.  BENCH_BULK_MB as in the C."""
import os
import time

CHUNK = 65536
WARM = 64 << 20
total = int(os.environ.get("BENCH_BULK_MB") or 2048) << 20

r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(r)
    chunk = b"x" * CHUNK
    for _ in range(total // CHUNK):
        if os.write(w, chunk) != CHUNK:
            os._exit(1)
    os._exit(0)
os.close(w)
got = timed = 0
t0 = None
read = os.read
while True:
    data = read(r, CHUNK)
    if not data:
        break
    n = len(data)
    got += n
    if got >= WARM:
        if t0 is None:
            t0 = time.monotonic()
        else:
            timed += n
secs = time.monotonic() - t0
os.close(r)
_, status = os.waitpid(pid, 0)
assert status == 0 and got == total
print("metric pipe_bulk_throughput %.1f MB/s higher" % (timed / 1e6 / secs))
