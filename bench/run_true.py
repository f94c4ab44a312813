"""run_true.py - Python's subprocess.run(["true"], capture_output=True) doing
the work of bench/run_true.lua (ipc.run captures stdout too): runs per second
over BENCH_ITERS runs (default 2000) after 100 warm-up runs."""
import os
import subprocess
import time

iters = int(os.environ.get("BENCH_ITERS") or 2000)
for _ in range(100):
    subprocess.run(["true"], capture_output=True, check=True)
t0 = time.monotonic()
for _ in range(iters):
    r = subprocess.run(["true"], capture_output=True)
    assert r.returncode == 0
print("metric run_true_rate %.0f runs/s higher" % (iters / (time.monotonic() - t0)))
