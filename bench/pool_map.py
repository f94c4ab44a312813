"""pool_map.py - Python's multiprocessing.Pool.map doing the work of
bench/pool_map.lua: 10,000 small items (a dict each, a small computation) on
2 worker processes, default chunking (chunksize = ceil(n / (4 * workers))),
the pool made once; items per second over BENCH_ROUNDS maps (default 20)
after 2 warm-up maps."""
import multiprocessing as mp
import os
import time

N = 10000
rounds = int(os.environ.get("BENCH_ROUNDS") or 20)


def work(item):
    return item["x"] * item["y"] + 1


def main():
    mp.set_start_method("fork")
    items = [{"x": i, "y": i % 7} for i in range(1, N + 1)]
    with mp.Pool(2) as pool:
        for _ in range(2):
            pool.map(work, items)
        rates = []
        for _ in range(rounds):
            t0 = time.monotonic()
            res = pool.map(work, items)
            rates.append(N / (time.monotonic() - t0))
            assert res[N - 1] == N * (N % 7) + 1
    rates.sort()
    print("metric pool_map_items %.0f items/s higher" % rates[len(rates) // 2])


if __name__ == "__main__":
    main()
