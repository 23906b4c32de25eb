#!/usr/bin/env python3
"""PyTorch baseline for normlab's benchmarks: the same model, the same norm shapes, the same CSV.

Run with Debian's PyTorch (python3-torch installs for /usr/bin/python3):
    /usr/bin/python3 bench/pytorch_baseline.py train --threads 2 --csv
    /usr/bin/python3 bench/pytorch_baseline.py norms --threads 2 --csv
The columns match bench_train / bench_norms so bench/compare.py can join the rows.
"""
import argparse
import statistics
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    sys.exit("PyTorch is not importable by this interpreter. Install Debian's build with\n"
             "    apt-get install python3-torch\n"
             "and run this script with /usr/bin/python3.")


def norm_layer(kind, channels, groups):
    if kind == "bn":
        return nn.BatchNorm2d(channels)
    if kind == "gn":
        return nn.GroupNorm(groups, channels)
    return nn.GroupNorm(1, channels)  # the comparison's "LN": over (C,H,W), per-channel affine


class CifarResNet(nn.Module):
    """The comparison's model (40,394 parameters), layer for layer as normlab's cifar_resnet."""

    def __init__(self, kind, groups=4, p=0.02):
        super().__init__()

        def nrd(c):
            return [norm_layer(kind, c, groups), nn.ReLU(), nn.Dropout(p)]

        def block():
            return nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), *nrd(16),
                                 nn.Conv2d(16, 32, 3, padding=1), *nrd(32),
                                 nn.Conv2d(32, 32, 3, padding=1))

        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), *nrd(16),
                                  nn.Conv2d(16, 32, 3, padding=1), *nrd(32),
                                  nn.Conv2d(32, 16, 1), nn.MaxPool2d(2))
        self.block1, self.short1 = block(), nn.Conv2d(16, 32, 1)
        self.mid = nn.Sequential(*nrd(32), nn.Conv2d(32, 16, 1), nn.MaxPool2d(2))
        self.block2, self.short2 = block(), nn.Conv2d(16, 32, 1)
        self.head = nn.Sequential(*nrd(32), nn.AdaptiveAvgPool2d(1), nn.Conv2d(32, 10, 1))

    def forward(self, x):
        x = self.stem(x)
        x = self.block1(x) + self.short1(x)
        x = self.mid(x)
        x = self.block2(x) + self.short2(x)
        return F.log_softmax(self.head(x).flatten(1), dim=1)


def timed(fn, warmup, repeats):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def bench_train(args):
    rows = []
    for kind in args.norms.split(","):
        torch.manual_seed(1)
        model = CifarResNet(kind)
        assert sum(p.numel() for p in model.parameters()) == 40394
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        x = torch.randn(args.batch, 3, 32, 32)
        y = torch.randint(0, 10, (args.batch,))

        def train_step():
            opt.zero_grad(set_to_none=True)
            F.nll_loss(model(x), y).backward()
            opt.step()

        model.train()
        t = timed(train_step, args.warmup, args.repeats)
        rows.append((kind, "train", args.batch, t))
        model.eval()
        xi = torch.randn(args.infer_batch, 3, 32, 32)
        with torch.no_grad():
            t = timed(lambda: model(xi), args.warmup, args.repeats)
        rows.append((kind, "infer", args.infer_batch, t))
    if args.csv:
        print("norm,mode,batch,threads,images_per_second_median,images_per_second_min,images_per_second_max")
    for kind, mode, batch, t in rows:
        ips = [batch / s for s in t]
        if args.csv:
            print(f"{kind},{mode},{batch},{args.threads},{statistics.median(ips):.1f},{min(ips):.1f},{max(ips):.1f}")
        else:
            print(f"{kind:3s} {mode:5s} batch {batch:4d}: {statistics.median(ips):8.1f} img/s "
                  f"(min {min(ips):.1f}, max {max(ips):.1f})")


NORM_SHAPES = [(64, 16, 32, 32), (64, 32, 16, 16), (64, 32, 8, 8), (256, 64, 56, 56)]
NORM_KINDS = [("bn", 0), ("gn", 4), ("ln", 1)]


def bench_norms(args):
    if args.csv:
        print("norm,N,C,H,W,pass,microseconds_median")
    for kind, groups in NORM_KINDS:
        for shape in NORM_SHAPES:
            n, c, h, w = shape
            layer = nn.BatchNorm2d(c) if kind == "bn" else nn.GroupNorm(groups, c)
            layer.train()
            x = torch.randn(*shape, requires_grad=True)
            dy = torch.randn(*shape)
            repeats = args.repeats if n * c * h * w < 10**7 else max(3, args.repeats // 4)

            def forward():
                with torch.no_grad():
                    layer(x)

            def forward_backward():
                out = layer(x)
                out.backward(dy)

            out = layer(x)
            def backward():
                out.backward(dy, retain_graph=True)

            for name, fn in (("forward", forward), ("backward", backward), ("forward_backward", forward_backward)):
                t = statistics.median(timed(fn, args.warmup, repeats)) * 1e6
                if args.csv:
                    print(f"{kind},{n},{c},{h},{w},{name},{t:.1f}")
                else:
                    print(f"{kind} {shape} {name:17s} {t:10.1f} us")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["train", "norms"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--infer-batch", type=int, default=256)
    parser.add_argument("--norms", default="bn,gn,ln")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--csv", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads", file=sys.stderr)
    (bench_train if args.what == "train" else bench_norms)(args)


if __name__ == "__main__":
    main()
