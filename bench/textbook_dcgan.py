"""Reference: a plain DCGAN written the way PyTorch's examples write it, on a GAN preset's data,
judged by the preset's own ``val/fid``: the baseline a preset must beat.

    python bench/textbook_dcgan.py                          # dcgan_shapes' data, 420 s of training
    python bench/textbook_dcgan.py --seconds 60 --eval-every 200 --json textbook.json

What is textbook here (pytorch/examples, dcgan/main.py, at 32 px): latent 100; G of transposed
convolutions with BatchNorm and ReLU, Tanh out; D of strided convolutions with LeakyReLU 0.2 and
BatchNorm (none on its first layer); weights N(0, 0.02), BatchNorm scales N(1, 0.02); BCE; Adam
2e-4, betas (0.5, 0.999); batch 64; D on the real batch, then on the detached fakes, D's step; G's
loss on the same fakes through the updated D. No EMA, no augmentation. The width (``--width``, the
preset's ``model.width`` by default) and the data are the preset's: its training images held in
memory, reshuffled every epoch.

Every ``--eval-every`` generator steps, as many images as the validation split holds are drawn
(G in eval mode) and scored against it through the run's own code path
(:class:`~visionlab.metrics.generative.GenerativeMetrics` in ``model.fid_features``' space). The
training seconds exclude the evaluations, as a run's ``time/train_seconds`` does, so a row
compares with a run's ``val/fid`` at the same ``time/train_seconds`` (``visionlab compare
--at-time``). Training stops after ``--seconds`` of it, with a last evaluation.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F
from common import ROOT, print_table
from fid_anchors import load_splits
from torch import nn

from visionlab.metrics.generative import GenerativeMetrics, feature_network

LATENT = 100


def generator(width: int, channels: int) -> nn.Sequential:
    """4x4 -> 8 -> 16 -> 32 px: transposed convolutions, BatchNorm, ReLU; Tanh out."""
    def up(cin, cout, stride, padding):
        return [nn.ConvTranspose2d(cin, cout, 4, stride, padding, bias=False), nn.BatchNorm2d(cout),
                nn.ReLU(True)]
    return nn.Sequential(*up(LATENT, width * 4, 1, 0), *up(width * 4, width * 2, 2, 1),
                         *up(width * 2, width, 2, 1),
                         nn.ConvTranspose2d(width, channels, 4, 2, 1, bias=False), nn.Tanh())


def discriminator(width: int, channels: int) -> nn.Sequential:
    """32 -> 16 -> 8 -> 4 px: strided convolutions, BatchNorm (not on the first), LeakyReLU 0.2; one logit."""
    def down(cin, cout, norm):
        return [nn.Conv2d(cin, cout, 4, 2, 1, bias=False), *([nn.BatchNorm2d(cout)] if norm else []),
                nn.LeakyReLU(0.2, True)]
    return nn.Sequential(*down(channels, width, False), *down(width, width * 2, True),
                         *down(width * 2, width * 4, True), nn.Conv2d(width * 4, 1, 4, 1, 0, bias=False),
                         nn.Flatten(0))


def weights_init(module: nn.Module) -> None:
    """The example's initialisation: convolutions N(0, 0.02); BatchNorm scales N(1, 0.02), shifts 0."""
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


@torch.no_grad()
def fid(netG: nn.Module, metrics: GenerativeMetrics, count: int) -> float:
    """FID of ``count`` images drawn with G in eval mode against the kept validation features."""
    netG.eval()
    metrics.reset()
    for n in [256] * (count // 256) + [count % 256]:
        if n:
            metrics.update(netG(torch.randn(n, LATENT, 1, 1)), real=False)
    netG.train()
    return float(metrics.compute()["fid"])


def main() -> None:
    """Train for the budget, evaluating as it goes; print the curve (and write it as JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="dcgan_shapes", help="the preset whose data and FID to use")
    parser.add_argument("--seconds", type=float, default=420.0, help="training time, evaluations excluded")
    parser.add_argument("--eval-every", type=int, default=630, help="generator steps between evaluations")
    parser.add_argument("--width", type=int, default=None, help="default: the preset's model.width")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=str(ROOT / "data"))
    parser.add_argument("--json", default=None, help="also write the curve here")
    args = parser.parse_args()
    val, _, train, _, _, fid_features, model_cfg = load_splits(args.experiment, args.data_dir)
    width, channels = args.width or model_cfg.width, train.shape[1]
    torch.manual_seed(args.seed)
    netG, netD = generator(width, channels), discriminator(width, channels)
    netG.apply(weights_init)
    netD.apply(weights_init)
    optG = torch.optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optD = torch.optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
    metrics = GenerativeMetrics(feature_network(fid_features), keep_real=True)
    for batch in val.split(256):
        metrics.update(batch, real=True)

    curve, step, trained = [], 0, 0.0
    while trained < args.seconds:
        order = torch.randperm(len(train))
        start = time.perf_counter()
        for index in order.split(args.batch_size):
            real = train[index]
            fake = netG(torch.randn(len(real), LATENT, 1, 1))
            d_real, d_fake = netD(real), netD(fake.detach())
            lossD = (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                     + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
            optD.zero_grad()
            lossD.backward()
            optD.step()
            d_judged = netD(fake)
            lossG = F.binary_cross_entropy_with_logits(d_judged, torch.ones_like(d_judged))
            optG.zero_grad()
            lossG.backward()
            optG.step()
            step += 1
            if step % args.eval_every == 0 or trained + time.perf_counter() - start >= args.seconds:
                trained += time.perf_counter() - start
                curve.append({"step": step, "train_seconds": round(trained, 1),
                              "fid": fid(netG, metrics, len(val))})
                print(f"step {step}: {trained:.0f} s, FID {curve[-1]['fid']:.1f}", flush=True)
                if trained >= args.seconds:
                    break
                start = time.perf_counter()
        else:
            trained += time.perf_counter() - start
    print_table(f"textbook DCGAN on {args.experiment}'s data (width {width}, batch {args.batch_size})",
                ["step", "train s", "FID"], [[c["step"], c["train_seconds"], c["fid"]] for c in curve])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(curve, f, indent=1)


if __name__ == "__main__":
    main()
