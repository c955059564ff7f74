"""Summary of a side-by-side results table (benches/client_paired.sh,
benches/grpc_paired.sh): per client (or gRPC path) and mode, throughput over
bare, added CPU per request from each server's CPU time and from the
throughput ratio, our added CPU over the other stacks' at the same
sampling, and the no-op tracer against the identity layer's noise.

    python3 benches/paired_summary.py RESULTS.tsv

Columns: round client mode bare_rps mode_rps ratio bare_cpu_us mode_cpu_us
cpu0_busy cpu1_busy errors.
"""
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
med = lambda xs: statistics.median(xs) if xs else float("nan")
clients = list(dict.fromkeys(r["client"] for r in rows))
modes = list(dict.fromkeys(r["mode"] for r in rows))
rounds = sorted({r["round"] for r in rows}, key=int)
get = {(r["round"], r["client"], r["mode"]): r for r in rows}

def added_cpu(r):  # the mode's CPU per request over bare's, same pair
    return float(r["mode_cpu_us"]) / float(r["bare_cpu_us"]) - 1

def added_tp(r):  # the same, from the throughput ratio
    return 1 / float(r["ratio"]) - 1

for c in clients:
    print(f"\n### client: {c}\n")
    print("| mode | throughput / bare (median) | range | CPU µs/req, mode (bare) | added CPU/req, from CPU time | from throughput | CPU 0 busy | CPU 1 busy | errors |")
    print("| --- | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for m in modes:
        rs = [get[(rd, c, m)] for rd in rounds if (rd, c, m) in get]
        if not rs:
            continue
        v = sorted(float(r["ratio"]) for r in rs)
        print(f"| {m} | {med(v):.3f} | {v[0]:.3f}–{v[-1]:.3f}"
              f" | {med([float(r['mode_cpu_us']) for r in rs]):.1f} ({med([float(r['bare_cpu_us']) for r in rs]):.1f})"
              f" | {med([added_cpu(r) for r in rs]):+.1%} | {med([added_tp(r) for r in rs]):+.1%}"
              f" | {med([float(r['cpu0_busy']) for r in rs]):.0%} | {med([float(r['cpu1_busy']) for r in rs]):.0%}"
              f" | {sum(int(r['errors']) for r in rs)} |")
    pairs = [("noop", "otel-unsampled"), ("unsampled", "otel-unsampled"),
             ("sampled", "otel-sampled"), ("sampled", "fastrace")]
    pairs = [(m, o) for m, o in pairs if m in modes and o in modes]
    if pairs:
        print("\nOur added CPU per request over the other stack's (median over the rounds of the per-round ratio):\n")
        print("| mode | vs | from CPU time | from throughput |")
        print("| --- | --- | ---: | ---: |")
        for m, o in pairs:
            a, b = [], []
            for rd in rounds:
                x, r = get.get((rd, c, m)), get.get((rd, c, o))
                if x and r:
                    if added_cpu(r):
                        a.append(added_cpu(x) / added_cpu(r))
                    if added_tp(r):
                        b.append(added_tp(x) / added_tp(r))
            print(f"| {m} | {o} | {med(a):.2f} | {med(b):.2f} |")
    # The no-op tracer against an empty layer: a ratio of two near-zero
    # costs means nothing, so compare throughput / bare with the spread of
    # the bare-against-bare control.
    if all(m in modes for m in ("noop", "identity", "bare")):
        tp = {m: sorted(float(get[(rd, c, m)]["ratio"]) for rd in rounds if (rd, c, m) in get)
              for m in ("noop", "identity", "bare")}
        d = med(tp["identity"]) - med(tp["noop"])
        noise = max(abs(x - 1) for x in tp["bare"])
        print(f"\nno-op tracer against an identity layer: throughput / bare {med(tp['noop']):.3f}"
              f" against {med(tp['identity']):.3f}, {d:+.1%} of bare's; the bare control"
              f" strays up to {noise:.1%} from 1: {'within' if d <= noise else 'outside'} the noise")
busy0 = med([float(r["cpu0_busy"]) for r in rows])
if busy0 < 0.95:
    print(f"\nNote: CPU 0 was {busy0:.0%} busy: the servers were partly waiting on CPU 1 (wrk, the"
          " upstream, the sink), which compresses the throughput ratios; the CPU-time column holds.")
if any(int(r["errors"]) for r in rows):
    print("\nNote: some requests failed (errors column): their throughput is not comparable.")
