#!/usr/bin/env python3
"""Runs normlab's benchmarks and the PyTorch baseline in one invocation, with the same thread
count, batch and repeats, and prints the rows side by side with the ratio normlab / PyTorch.

    /usr/bin/python3 bench/compare.py --bench-dir build/bench --threads 2 --out compare.md

Suites (--suites, default all, run one after another, never concurrently):
    train  bench_train  vs pytorch_baseline.py train   img/s of a train step / of inference
    norms  bench_norms  vs pytorch_baseline.py norms   microseconds and GB/s per norm pass
    conv   bench_conv   vs pytorch_baseline.py conv    microseconds and GFLOP/s per conv pass
The ratio column is always "how many times faster normlab is": img/s normlab / img/s PyTorch,
and time PyTorch / time normlab for the per-pass suites (both of medians). The tables are
printed as markdown and, with --out, written to that file, the raw CSVs beside it.
"""
import argparse
import csv
import io
import math
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

# Per suite: the C++ binary and the columns that identify a row (shared by both CSVs).
SUITES = {
    "train": ("bench_train", ["norm", "mode", "batch"]),
    "norms": ("bench_norms", ["norm", "N", "C", "H", "W", "relu", "pass"]),
    "conv": ("bench_conv", ["layer", "N", "Cin", "Cout", "H", "W", "kernel", "pass"]),
}


def run_csv(command):
    """Runs command, echoes its stderr, returns its stdout parsed as CSV rows (dicts)."""
    print("$ " + " ".join(command), file=sys.stderr, flush=True)
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sys.stderr.write(result.stderr)
    if result.returncode != 0:
        sys.exit(f"compare.py: '{' '.join(command)}' failed with exit code {result.returncode}")
    return result.stdout, list(csv.DictReader(io.StringIO(result.stdout)))


def geometric_mean(values):
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def join(suite, ours, theirs):
    """Pairs the rows of both CSVs by the suite's key columns; fails on any unmatched row."""
    key_columns = SUITES[suite][1]

    def key(row):
        return tuple(row[c] for c in key_columns)

    baseline = {key(row): row for row in theirs}
    pairs = [(row, baseline.pop(key(row), None)) for row in ours]
    missing = [key(a) for a, b in pairs if b is None]
    if missing or baseline:
        sys.exit(f"compare.py: {suite}: rows without a partner: normlab only {missing}, "
                 f"PyTorch only {list(baseline)}")
    return pairs


def images_per_second(row):
    return (f"{row['images_per_second_median']} ({row['images_per_second_min']}-"
            f"{row['images_per_second_max']})")


def train_table(pairs):
    header = ["norm", "mode", "batch", "normlab img/s (min-max)", "PyTorch img/s (min-max)",
              "normlab / PyTorch"]
    rows, ratios = [], []
    for a, b in pairs:
        ratio = float(a["images_per_second_median"]) / float(b["images_per_second_median"])
        ratios.append(ratio)
        rows.append([a["norm"], a["mode"], a["batch"], images_per_second(a), images_per_second(b),
                     f"{ratio:.2f}x"])
    return header, rows, ratios


def norms_table(pairs):
    header = ["norm", "shape", "relu", "pass", "normlab us", "normlab GB/s", "% of triad",
              "PyTorch us", "PyTorch GB/s", "normlab / PyTorch"]
    rows, ratios = [], []
    for a, b in pairs:
        ratio = float(b["microseconds_median"]) / float(a["microseconds_median"])
        ratios.append(ratio)
        shape = "x".join(a[c] for c in ("N", "C", "H", "W"))
        rows.append([a["norm"], shape, a["relu"], a["pass"], a["microseconds_median"], a["gb_per_s"],
                     a["percent_of_triad"], b["microseconds_median"], b["gb_per_s"], f"{ratio:.2f}x"])
    return header, rows, ratios


def conv_table(pairs):
    header = ["layer", "Cin->Cout", "kernel", "size", "pass", "normlab us", "normlab GFLOP/s",
              "% of peak", "PyTorch us", "PyTorch GFLOP/s", "normlab / PyTorch"]
    rows, ratios = [], []
    for a, b in pairs:
        ratio = float(b["microseconds_median"]) / float(a["microseconds_median"])
        ratios.append(ratio)
        rows.append([a["layer"], f"{a['Cin']}->{a['Cout']}", f"{a['kernel']}x{a['kernel']}",
                     f"{a['H']}x{a['W']}", a["pass"], a["microseconds_median"], a["gflop_per_s"],
                     a["percent_of_peak"], b["microseconds_median"], b["gflop_per_s"], f"{ratio:.2f}x"])
    return header, rows, ratios


TABLES = {"train": train_table, "norms": norms_table, "conv": conv_table}
TITLES = {
    "train": "Full train step (batch {batch}) and inference (batch {infer_batch}), images/s",
    "norms": "Norm passes, training mode with affine (bytes: forward = x + y; backward = x, dy "
             "(+ y with ReLU) + dx; forward_backward = the sum)",
    "conv": "Convolutions of the model (FLOPs = 2 * multiply-adds; % of the in-run FMA peak)",
}


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def git_revision():
    result = subprocess.run(["git", "-C", HERE, "describe", "--always", "--dirty"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return result.stdout.strip() or "unknown"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bench-dir", default=os.path.join(HERE, "..", "build", "bench"),
                        help="directory holding bench_train, bench_norms, bench_conv (default: build/bench)")
    parser.add_argument("--suites", default="train,norms,conv")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, help="default: each benchmark's own")
    parser.add_argument("--warmup", type=int, help="norms and conv; default: each benchmark's own")
    parser.add_argument("--batch", type=int, default=64, help="train step, norm and conv batch")
    parser.add_argument("--infer-batch", type=int, default=256)
    parser.add_argument("--out", help="also write the markdown tables here (raw CSVs beside it)")
    args = parser.parse_args()

    suites = args.suites.split(",")
    for suite in suites:
        if suite not in SUITES:
            parser.error(f"unknown suite '{suite}' (expected some of {', '.join(SUITES)})")
    baseline = os.path.join(HERE, "pytorch_baseline.py")
    probe = subprocess.run([sys.executable, baseline, "--help"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
    if probe.returncode != 0:  # PyTorch missing: the baseline says how to install it
        sys.exit(probe.stderr.strip())
    common = ["--csv", "--threads", str(args.threads), "--batch", str(args.batch)]
    if args.repeats is not None:
        common += ["--repeats", str(args.repeats)]

    sections = [f"# normlab vs PyTorch, {args.threads} threads",
                f"{time.strftime('%Y-%m-%d %H:%M')}, {cpu_model()}, {os.cpu_count()} CPUs, "
                f"normlab {git_revision()}, {sys.executable}"]
    print("\n\n".join(sections), flush=True)
    raw = {}
    for suite in suites:
        binary, _ = SUITES[suite]
        extra = []
        if suite == "train":
            extra = ["--infer-batch", str(args.infer_batch)]
        elif args.warmup is not None:
            extra = ["--warmup", str(args.warmup)]
        ours_text, ours = run_csv([os.path.join(args.bench_dir, binary)] + common + extra)
        theirs_text, theirs = run_csv([sys.executable, baseline, suite]
                                      + common + extra)
        raw[f"{suite}_normlab"], raw[f"{suite}_pytorch"] = ours_text, theirs_text
        header, rows, ratios = TABLES[suite](join(suite, ours, theirs))
        title = TITLES[suite].format(batch=args.batch, infer_batch=args.infer_batch)
        sections.append(f"## {title}\n\n{markdown_table(header, rows)}\n\n"
                        f"Geometric mean of normlab / PyTorch over the {len(ratios)} rows: "
                        f"{geometric_mean(ratios):.2f}x")
        print("\n" + sections[-1], flush=True)

    report = "\n\n".join(sections) + "\n"
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            f.write(report)
        stem = os.path.splitext(args.out)[0]
        for name, text in raw.items():
            with open(f"{stem}_{name}.csv", "w") as f:
                f.write(text)
        print(f"\nwrote {args.out} and {len(raw)} raw CSVs beside it", file=sys.stderr)


if __name__ == "__main__":
    main()
