#!/usr/bin/env python3
"""PyTorch baseline for normlab's benchmarks: the same model, norm shapes and conv layers, the same CSV.

Run with Debian's PyTorch (python3-torch installs for /usr/bin/python3):
    /usr/bin/python3 bench/pytorch_baseline.py train --threads 2 --csv   # rows of bench_train --csv
    /usr/bin/python3 bench/pytorch_baseline.py norms --threads 2 --csv   # rows of bench_norms --csv
    /usr/bin/python3 bench/pytorch_baseline.py conv --threads 2 --csv    # rows of bench_conv --csv
Each mode prints the same rows as its C++ benchmark, with the same key and timing columns (the
C++ ones add the in-run machine ceilings at the end), so bench/compare.py can join them.
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


def norm_shapes(batch):
    """bench_norms' shapes: the norm inputs of the model, then one out-of-cache shape."""
    return [(batch, 16, 32, 32), (batch, 32, 32, 32), (batch, 16, 16, 16), (batch, 32, 16, 16),
            (batch, 16, 8, 8), (batch, 32, 8, 8), (batch, 64, 64, 64)]


NORM_KINDS = [("bn", 0), ("gn", 4), ("ln", 1)]


def norm_pass_bytes(numel, pass_name, relu):
    """bench_norms' byte convention (float32): forward = read x + write y; backward = read x, dy
    (and y when the ReLU is fused) + write dx; forward_backward = the sum. PyTorch does not fuse
    the ReLU, so its own traffic is higher: these are the bytes of the work, not of the method."""
    backward = 4 if relu else 3
    tensors = {"forward": 2, "backward": backward, "forward_backward": 2 + backward}[pass_name]
    return tensors * numel * 4


def bench_norms(args):
    """The layer as a PyTorch model runs it, in training mode with affine: forward with autograd
    recording (as in a train step; BN updates its running statistics), backward as
    torch.autograd.grad of (x, weight, bias) (written, not accumulated into .grad), then F.relu
    as a separate layer when relu=1."""
    if args.csv:
        print("norm,N,C,H,W,relu,pass,threads,microseconds_median,microseconds_min,microseconds_max,"
              "bytes,gb_per_s")
    torch.manual_seed(1)
    for kind, groups in NORM_KINDS:
        for shape in norm_shapes(args.batch):
            for relu in (0, 1):
                n, c, h, w = shape
                layer = nn.BatchNorm2d(c) if kind == "bn" else nn.GroupNorm(groups, c)
                layer.train()
                x = torch.randn(*shape, requires_grad=True)
                dy = torch.randn(*shape)
                inputs = [x, layer.weight, layer.bias]

                def forward():
                    y = layer(x)
                    return F.relu(y) if relu else y

                out = forward()

                def backward():
                    torch.autograd.grad(out, inputs, dy, retain_graph=True)

                def forward_backward():
                    torch.autograd.grad(forward(), inputs, dy)

                for name, fn in (("forward", forward), ("backward", backward),
                                 ("forward_backward", forward_backward)):
                    t = sorted(timed(fn, args.warmup, args.repeats))
                    median = statistics.median(t)
                    nbytes = norm_pass_bytes(n * c * h * w, name, relu)
                    gbs = nbytes / median / 1e9
                    if args.csv:
                        print(f"{kind},{n},{c},{h},{w},{relu},{name},{args.threads},{median * 1e6:.2f},"
                              f"{t[0] * 1e6:.2f},{t[-1] * 1e6:.2f},{nbytes},{gbs:.2f}")
                    else:
                        print(f"{kind} {n}x{c}x{h}x{w} relu={relu} {name:16s} {median * 1e6:10.1f} us "
                              f"(min {t[0] * 1e6:.1f}, max {t[-1] * 1e6:.1f}) {gbs:7.1f} GB/s")
                    sys.stdout.flush()


# bench_conv's layers: the convolutions of the model, in model order (square kernel and input,
# stride 1, padding kernel // 2).
CONV_LAYERS = [
    ("stem.conv1", 3, 16, 3, 32), ("stem.conv2", 16, 32, 3, 32), ("stem.conv3", 32, 16, 1, 32),
    ("block1.conv1", 16, 16, 3, 16), ("block1.conv2", 16, 32, 3, 16), ("block1.conv3", 32, 32, 3, 16),
    ("block1.shortcut", 16, 32, 1, 16), ("transition.conv", 32, 16, 1, 16),
    ("block2.conv1", 16, 16, 3, 8), ("block2.conv2", 16, 32, 3, 8), ("block2.conv3", 32, 32, 3, 8),
    ("block2.shortcut", 16, 32, 1, 8), ("head.conv", 32, 10, 1, 1),
]


def bench_conv(args):
    """forward = F.conv2d with bias; dgrad and wgrad = aten::convolution_backward with the output
    mask of dx, resp. (dweight, dbias): the calls PyTorch's autograd makes. FLOPs: 2 * N * Cout *
    OH * OW * Cin * KH * KW per pass, as bench_conv."""
    if args.csv:
        print("layer,N,Cin,Cout,H,W,kernel,pass,threads,microseconds_median,microseconds_min,"
              "microseconds_max,flops,gflop_per_s")
    torch.manual_seed(1)
    n = args.batch
    for name, cin, cout, k, size in CONV_LAYERS:
        x = torch.randn(n, cin, size, size)
        weight = torch.randn(cout, cin, k, k)
        bias = torch.randn(cout)
        dy = torch.randn(n, cout, size, size)

        def backward(mask):
            return lambda: torch.ops.aten.convolution_backward(
                dy, x, weight, [cout], [1, 1], [k // 2, k // 2], [1, 1], False, [0, 0], 1, mask)

        passes = (("forward", lambda: F.conv2d(x, weight, bias, padding=k // 2)),
                  ("dgrad", backward([True, False, False])),
                  ("wgrad", backward([False, True, True])))
        flops = 2 * n * cout * size * size * cin * k * k
        with torch.no_grad():
            for pass_name, fn in passes:
                t = sorted(timed(fn, args.warmup, args.repeats))
                median = statistics.median(t)
                gflops = flops / median / 1e9
                if args.csv:
                    print(f"{name},{n},{cin},{cout},{size},{size},{k},{pass_name},{args.threads},"
                          f"{median * 1e6:.2f},{t[0] * 1e6:.2f},{t[-1] * 1e6:.2f},{flops},{gflops:.2f}")
                else:
                    print(f"{name:16s} {cin:2d}->{cout:<2d} {k}x{k} @{size:2d}x{size:<2d} {pass_name:7s} "
                          f"{median * 1e6:9.1f} us (min {t[0] * 1e6:.1f}, max {t[-1] * 1e6:.1f}) "
                          f"{gflops:7.1f} GFLOP/s")
                sys.stdout.flush()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["train", "norms", "conv"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--infer-batch", type=int, default=256)
    parser.add_argument("--norms", default="bn,gn,ln")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, help="default: as the C++ benchmark (train 20, norms 30, "
                        "conv 20)")
    parser.add_argument("--csv", action="store_true")
    args = parser.parse_args()
    if args.repeats is None:
        args.repeats = 30 if args.what == "norms" else 20
    torch.set_num_threads(args.threads)
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads", file=sys.stderr)
    {"train": bench_train, "norms": bench_norms, "conv": bench_conv}[args.what](args)


if __name__ == "__main__":
    main()
