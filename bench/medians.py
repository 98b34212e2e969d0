#!/usr/bin/env python3
"""Medians of several `make bench` runs, as Markdown tables (the bars ask for medians of three).

usage: bench/medians.py [--dir DIR] STAMP [STAMP ...]

Each STAMP names one `make bench` run by the files it wrote in DIR (default build/bench):
matrix-STAMP.json, handshakes-STAMP.json, idle-STAMP.json, cfssl-STAMP.txt and
components-STAMP.txt (the bench_*.c lines). A file that is missing is skipped. Prints the
crypto ceiling, the matrix (each column its own median; enroll/s also as the runs' range), the
handshake and idle runs, the component benchmarks and every bar: its value in each run and the
median, met or not.
"""
import json
import os
import statistics
import sys


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, digits=1):
    if v is None:
        return ""
    if isinstance(v, float) and digits == 0:
        return f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return f"{v:,.{digits}f}"


def read_json_lines(path):
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def main(argv):
    directory = "build/bench"
    stamps = []
    i = 0
    while i < len(argv):
        if argv[i] == "--dir" and i + 1 < len(argv):
            directory = argv[i + 1]
            i += 2
            continue
        if argv[i].startswith("-"):
            print(__doc__, file=sys.stderr)
            return 2
        stamps.append(argv[i])
        i += 1
    if not stamps:
        print(__doc__, file=sys.stderr)
        return 2

    runs = {}  # (scenario, loop, concurrency) -> [record per stamp]
    order = []
    bars = {}  # (bar, concurrency) -> [value per stamp]
    ceilings = []
    for stamp in stamps:
        for kind in ("matrix", "handshakes", "idle"):
            for j in read_json_lines(os.path.join(directory, f"{kind}-{stamp}.json")):
                if j.get("scenario") == "bar":
                    bars.setdefault((j["bar"], j.get("concurrency")), []).append(j)
                    continue
                if kind == "idle" and j.get("scenario") == "idle":
                    key = ("idle", "", j.get("connections"))
                elif kind == "idle":
                    continue
                else:
                    key = (j["scenario"], j["loop"], j["concurrency"])
                if key not in runs:
                    order.append(key)
                runs.setdefault(key, []).append(j)
                c = j.get("ceiling")
                if kind == "matrix" and isinstance(c, dict) and c.get("enrollments_per_s"):
                    if not ceilings or ceilings[-1][0] != stamp:
                        ceilings.append((stamp, c))

    print(f"Medians of {len(stamps)} runs: {', '.join(stamps)}\n")
    if ceilings:
        print("crypto ceiling: %s enrollments/s, %s µs CPU each (runs: %s)\n" % (
            fmt(median([c["enrollments_per_s"] for _, c in ceilings]), 0),
            fmt(median([c["cpu_us_per_enrollment"] for _, c in ceilings])),
            ", ".join(fmt(c["enrollments_per_s"], 0) for _, c in ceilings)))

    print("| scenario | loop | conn | enroll/s (runs) | p50 ms | p99 ms | p99.9 ms | "
          "server CPU µs/enr | ratio | commit group |")
    print("|---|---|--:|---|--:|--:|--:|--:|--:|--:|")
    for key in order:
        scenario, loop, conc = key
        rs = runs[key]
        if scenario == "idle":
            rss = median([r["server_rss_kib"] / 1024 for r in rs])
            anon = median([r["server_rss_anon_kib"] / 1024 for r in rs])
            print(f"| idle | | {fmt(conc)} | RSS {fmt(rss)} MiB, anonymous {fmt(anon)} MiB | "
                  "| | | | | |")
            continue
        rates = [r["enrollments_per_s"] for r in rs]
        lat = lambda q: median([r["latency_us"].get(q, 0) / 1000 for r in rs])
        ratio = median([r.get("cpu_ratio_to_ceiling") for r in rs
                        if r.get("cpu_ratio_to_ceiling", -1) > 0])
        group = median([r.get("commit_group_size_avg") for r in rs])
        print(f"| {scenario} | {loop} | {conc} | {fmt(median(rates), 0)} "
              f"({', '.join(fmt(x, 0) for x in rates)}) | {fmt(lat('p50'), 2)} | "
              f"{fmt(lat('p99'), 2)} | {fmt(lat('p99_9'), 2)} | "
              f"{fmt(median([r['server_cpu_us_per_enrollment'] for r in rs]))} | "
              f"{fmt(ratio, 2)} | {fmt(group)} |")

    if bars:
        print("\n| bar | conn | runs | median | met |")
        print("|---|--:|---|--:|---|")
        for (bar, conc), bs in bars.items():
            values = [b["value"] for b in bs]
            m = median(values)
            limit = bs[0]["limit"]
            higher = "<" not in bar
            met = m >= limit if higher else m < limit
            print(f"| {bar} | {conc if conc is not None else ''} | "
                  f"{', '.join(fmt(v, 3) for v in values)} | {fmt(m, 3)} | "
                  f"{'met' if met else 'NOT MET'} |")

    # The bars that no program prints (issue 17), per run and as the median of the runs.
    derived = []
    est_best = []
    for rs in zip(*[runs.get(("est", "closed", c), []) for c in (1, 16, 64, 256)]):
        best = max(rs, key=lambda r: r["enrollments_per_s"])
        est_best.append(best)
    if est_best:
        derived.append(("est ratio at the best concurrency <= 1.30",
                        [r["cpu_ratio_to_ceiling"] for r in est_best], lambda m: m <= 1.30))
    opens = runs.get(("est", "open", 256), [])
    if opens:
        derived.append(("est open loop at half: p99 < 5 ms",
                        [r["latency_us"]["p99"] / 1000 for r in opens], lambda m: m < 5))
        derived.append(("est open loop at half: ratio <= 1.60",
                        [r["cpu_ratio_to_ceiling"] for r in opens], lambda m: m <= 1.60))
    soap = runs.get(("soap", "closed", 256), [])
    est = runs.get(("est", "closed", 256), [])
    if soap and len(soap) == len(est):
        derived.append(("soap's ratio within 10 % of est's (256), soap/est - 1",
                        [s_["cpu_ratio_to_ceiling"] / e["cpu_ratio_to_ceiling"] - 1
                         for s_, e in zip(soap, est)], lambda m: m <= 0.10))
    pk = [max(rs, key=lambda r: r["enrollments_per_s"])["enrollments_per_s"]
          for rs in zip(*[runs.get(("est-pkcs11", "closed", c), []) for c in (1, 16, 64, 256)])]
    if pk and len(pk) == len(est_best):
        derived.append(("est-pkcs11 >= 70 % of est (the best of each)",
                        [p_ / e["enrollments_per_s"] for p_, e in zip(pk, est_best)],
                        lambda m: m >= 0.70))
    idle = runs.get(("idle", "", 10000), [])
    if idle:
        derived.append(("RSS with 10,000 idle connections < 512 MiB",
                        [r["server_rss_kib"] / 1024 for r in idle], lambda m: m < 512))

    comps = {}
    for stamp in stamps:
        path = os.path.join(directory, f"components-{stamp}.txt")
        if not os.path.exists(path):
            continue
        with open(path, encoding="utf-8") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 4 and parts[1].replace(".", "").isdigit():
                    comps.setdefault(parts[0], []).append([float(x) for x in parts[1:]])
    if comps:
        print("\n| component case | ops/s (runs) | p50 µs | p99 µs | CPU µs/op |")
        print("|---|---|--:|--:|--:|")
        for name, vs in comps.items():
            col = lambda k: median([v[k] for v in vs if len(v) > k])
            print(f"| {name} | {fmt(col(0), 0)} ({', '.join(fmt(v[0], 0) for v in vs)}) | "
                  f"{fmt(col(1), 0)} | {fmt(col(2), 0)} | {fmt(col(3), 2)} |")

    if "store_commit_batch512" in comps:
        derived.append(("bench_store batch 512 >= 150,000 certificates/s",
                        [v[0] for v in comps["store_commit_batch512"]], lambda m: m >= 150000))
    if "store_commit_batch64" in comps:
        derived.append(("store >= 60,000 certificates/s at batch 64",
                        [v[0] for v in comps["store_commit_batch64"]], lambda m: m >= 60000))
    if derived:
        print("\n| bar | runs | median | met |")
        print("|---|---|--:|---|")
        for name, values, ok in derived:
            m = median(values)
            print(f"| {name} | {', '.join(fmt(v, 2) for v in values)} | {fmt(m, 2)} | "
                  f"{'met' if ok(m) else 'NOT MET'} |")

    ratios = []
    for stamp in stamps:
        path = os.path.join(directory, f"cfssl-{stamp}.txt")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                for line in f:
                    if line.startswith("cfssl_compare ratio"):
                        ratios.append(float(line.split()[2]))
    if ratios:
        print(f"\nest against CFSSL's sign endpoint (wrk -c64): {fmt(median(ratios), 2)}x "
              f"(runs: {', '.join(fmt(r, 2) for r in ratios)}; bar 3x: "
              f"{'met' if median(ratios) >= 3 else 'NOT MET'})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
