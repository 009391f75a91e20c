"""Where the Muon peer's training step goes: forward + backward time per layer, in PyTorch.

    /tmp/peer-venv/bin/python scripts/peer_profile.py [--batch 2000] [--repeats 5] [--step-only]

The counterpart of ``python -m cifar_core benchmark --models fast --profile`` (``stepprofile``)
for ``../shared/peers/airbench94_muon_cpu.py``'s net, measured the same way: each layer on
its own, in training mode, on a batch of the shape it sees in the net (random values, the
peer's ``channels_last`` layout), forward, a sum-of-squares loss, gradients with respect to
its input and its weights, best of ``repeats``. Run it with the peer's virtual environment
(it needs PyTorch, which the project does not), on the machine and in the sitting of the
benchmark it is compared with. A tool, never a dependency.

It ends with a full training step as the peer takes it (forward, summed cross-entropy with
label smoothing 0.2, backward, the Nesterov SGD groups and Muon), median of ``--steps``:
the counterpart of the benchmark's "measured full train step".
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

PEER = Path(__file__).resolve().parents[1].parent / "shared" / "peers" / "airbench94_muon_cpu.py"


def load_peer(path: Path):
    argv, sys.argv = sys.argv, [str(path)]  # the peer reads its data folders from argv at import
    try:
        spec = importlib.util.spec_from_file_location("airbench94_muon_cpu", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.argv = argv
    return module


def layer_calls(net, torch, batch: int) -> list[tuple[str, object, tuple]]:
    """(name, module, input shape) of every leaf module call of one forward pass, in order."""
    names = {module: name for name, module in net.named_modules()}
    calls, hooks = [], []
    for module in net.modules():
        if not list(module.children()):
            hooks.append(
                module.register_forward_hook(
                    lambda m, inputs, output: calls.append((names[m], m, tuple(inputs[0].shape)))
                )
            )
    with torch.no_grad():
        net(torch.randn(batch, 3, 32, 32).contiguous(memory_format=torch.channels_last))
    for hook in hooks:
        hook.remove()
    return calls


def time_layer(module, shape, torch, repeats: int) -> float:
    x = torch.randn(shape)
    if x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    best = float("inf")
    for i in range(repeats + 1):  # the first is a warm-up
        start = time.perf_counter()
        y = module(x)
        loss = (y.float() ** 2).sum()
        weights = [p for p in module.parameters(recurse=False) if p.requires_grad]
        torch.autograd.grad(loss, [x, *weights])
        if i:
            best = min(best, time.perf_counter() - start)
    return best * 1000


def full_step_seconds(peer, net, torch, batch: int, steps: int) -> list[tuple[float, float]]:
    """(seconds per training step, of which the optimizers' steps) of the peer's recipe on
    random images (a first step is a warm-up). Its Muon orthogonalises in bfloat16, which a
    CPU without bfloat16 instructions emulates: the second figure shows what that costs."""
    import torch.nn.functional as F

    wd = 2e-6 * batch
    filters = [p for p in net.parameters() if len(p.shape) == 4 and p.requires_grad]
    biases = [p for n, p in net.named_parameters() if "norm" in n and p.requires_grad]
    groups = [
        dict(params=[net.whiten.bias], lr=0.053, weight_decay=wd / 0.053),
        dict(params=biases, lr=0.053, weight_decay=wd / 0.053),
        dict(params=[net.head.weight], lr=0.67, weight_decay=wd / 0.67),
    ]
    sgd = torch.optim.SGD(groups, momentum=0.85, nesterov=True)
    optimizers = [sgd, peer.Muon(filters, lr=0.24, momentum=0.6)]
    x = torch.randn(batch, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        F.cross_entropy(net(x), y, label_smoothing=0.2, reduction="sum").backward()
        backward = time.perf_counter()
        for optimizer in optimizers:
            optimizer.step()
        net.zero_grad(set_to_none=True)
        times.append((time.perf_counter() - start, time.perf_counter() - backward))
    return times[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=4, help="timed full training steps")
    parser.add_argument("--peer", type=Path, default=PEER)
    parser.add_argument("--step-only", action="store_true", help="only the full training step")
    args = parser.parse_args()
    import torch

    peer = load_peer(args.peer)
    torch.manual_seed(0)
    net = peer.CifarNet().to(memory_format=torch.channels_last)
    net.train()
    rows = []
    print(
        f"airbench94_muon, PyTorch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}"
    )
    # the peer calls its whitening conv functionally (F.conv2d), so no hook sees it: time it first
    calls = [("whiten", net.whiten, (args.batch, 3, 32, 32)), *layer_calls(net, torch, args.batch)]
    for name, module, shape in [] if args.step_only else calls:
        ms = time_layer(module, shape, torch, args.repeats)
        rows.append((name, type(module).__name__, "x".join(map(str, shape[1:])), ms))
    if rows:
        total = sum(r[3] for r in rows)
        print(f"{'layer':<20}{'type':<12}{'input':>12}{'ms/batch':>10}{'share':>7}")
        for name, kind, shape, ms in rows:
            print(f"{name:<20}{kind:<12}{shape:>12}{ms:>10.1f}{ms / total:>7.1%}")
        print(f"{'sum of layers':<44}{total:>10.1f}")
    times = sorted(full_step_seconds(peer, net, torch, args.batch, args.steps))
    median, optimizers = times[len(times) // 2]
    print(f"{'measured full train step':<44}{median * 1000:>10.1f}   ({args.batch / median:.1f} images/s)")
    print(f"{'  of which the optimizers (SGD, Muon)':<44}{optimizers * 1000:>10.1f}")


if __name__ == "__main__":
    main()
