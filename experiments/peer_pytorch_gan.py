"""The PyTorch peer for `benchmark_train_step.py --peer`: a textbook DCGAN lifted to video.

What it runs (the issue's reference, batch 16 x 16x64x64x1, width 32, float32):

  generator  z [100] -> ConvTranspose3d(100, 256, (2, 4, 4))          -> 2x4x4x256
             -> 3 x [ConvTranspose3d k4 s2 p1, BatchNorm3d, ReLU]      -> 16x32x32x32
             -> ConvTranspose3d(32, 1, (3, 4, 4), s (1, 2, 2), p 1)    -> 16x64x64x1
             -> tanh                       (BatchNorm3d + ReLU after the first layer too)
  critic     4 x [Conv3d k4 s2 p1, LeakyReLU(0.2)] (1 -> 32 -> 64 -> 128 -> 256)
             -> Conv3d(256, 1, (1, 4, 4)) -> logit       (--spectral-norm: on every conv)

G 3.57M and D 2.76M parameters (no biases, as in DCGAN). One iteration is
pytorch/examples' dcgan loop: fake = G(z); one Adam step of D on real and
fake.detach(); one Adam step of G through D(fake) (non-saturating loss, i.e. BCE
with "real" labels, on logits); lr 2e-4, betas (0.5, 0.999).

PyTorch is never a dependency of vgan_jax. Install the CPU build into the venv
(about 200 MB; any other version pulls multi-GB CUDA wheels):

    .venv/bin/pip install torch==2.13.0

    python experiments/peer_pytorch_gan.py                     # 5 steps after 1 warmup
    python experiments/peer_pytorch_gan.py --steps 10 --spectral-norm
    python experiments/benchmark_train_step.py --peer          # side by side with vgan_jax
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode


def generator(latent: int = 100, width: int = 32, channels: int = 1) -> nn.Sequential:
    """z `[b, latent, 1, 1, 1]` -> video `[b, channels, 16, 64, 64]` in [-1, 1]."""

    def up(c_in, c_out, *args):
        return [
            nn.ConvTranspose3d(c_in, c_out, *args, bias=False),
            nn.BatchNorm3d(c_out),
            nn.ReLU(True),
        ]

    return nn.Sequential(
        *up(latent, width * 8, (2, 4, 4), 1, 0),  # 2x4x4
        *up(width * 8, width * 4, 4, 2, 1),  # 4x8x8
        *up(width * 4, width * 2, 4, 2, 1),  # 8x16x16
        *up(width * 2, width, 4, 2, 1),  # 16x32x32
        nn.ConvTranspose3d(width, channels, (3, 4, 4), (1, 2, 2), 1, bias=False),  # 16x64x64
        nn.Tanh(),
    )


def discriminator(width: int = 32, channels: int = 1, spectral_norm: bool = False) -> nn.Sequential:
    """video `[b, channels, 16, 64, 64]` -> logits `[b, 1, 1, 1, 1]`."""
    sn = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda m: m)
    layers = []
    c_in = channels
    for c_out in (width, width * 2, width * 4, width * 8):  # 8x32x32 .. 1x4x4
        layers += [sn(nn.Conv3d(c_in, c_out, 4, 2, 1, bias=False)), nn.LeakyReLU(0.2, True)]
        c_in = c_out
    layers.append(sn(nn.Conv3d(c_in, 1, (1, 4, 4), 1, 0, bias=False)))
    return nn.Sequential(*layers)


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def benchmark(
    steps: int = 5,
    warmup: int = 1,
    batch: int = 16,
    width: int = 32,
    spectral_norm: bool = False,
    threads: int | None = None,
) -> dict:
    torch.set_num_threads(threads or os.cpu_count() or 1)
    torch.manual_seed(0)
    latent = 100
    net_g = generator(latent, width)
    net_d = discriminator(width, spectral_norm=spectral_norm)
    opt_g = torch.optim.Adam(net_g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(net_d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    real = torch.rand(batch, 1, 16, 64, 64) * 2 - 1
    ones = torch.ones(batch)
    zeros = torch.zeros(batch)

    def step():
        z = torch.randn(batch, latent, 1, 1, 1)
        fake = net_g(z)
        # D: real -> 1, fake -> 0.
        net_d.zero_grad(set_to_none=True)
        d_real = net_d(real).view(-1)
        d_fake = net_d(fake.detach()).view(-1)
        d_loss = F.binary_cross_entropy_with_logits(
            d_real, ones
        ) + F.binary_cross_entropy_with_logits(d_fake, zeros)
        d_loss.backward()
        opt_d.step()
        # G: non-saturating, through the updated D.
        net_g.zero_grad(set_to_none=True)
        g_loss = F.binary_cross_entropy_with_logits(net_d(fake).view(-1), ones)
        g_loss.backward()
        opt_g.step()
        return d_loss.item() + g_loss.item()

    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = (time.perf_counter() - start) / steps
    # FLOPs of one more (untimed) iteration, as counted by PyTorch's dispatcher
    # (convolutions and matmuls, forward and backward).
    with FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops()
    return dict(
        g_params=count_params(net_g),
        d_params=count_params(net_d),
        batch=batch,
        video=(16, 64, 64, 1),
        threads=torch.get_num_threads(),
        s_per_step=seconds,
        videos_per_s=batch / seconds,
        gflop_per_step=flops / 1e9,
        gflop_per_s=flops / 1e9 / seconds,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--spectral-norm", action="store_true", help="on every critic conv")
    parser.add_argument("--threads", type=int, default=None, help="default: os.cpu_count()")
    args = parser.parse_args()
    r = benchmark(args.steps, args.warmup, args.batch, args.width, args.spectral_norm, args.threads)
    sn = " + spectral norm" if args.spectral_norm else ""
    print(
        f"   pytorch: textbook DCGAN{sn} (ConvTranspose3d / strided Conv3d) "
        f"G {r['g_params'] / 1e6:.2f}M + D {r['d_params'] / 1e6:.2f}M params, "
        f"batch {r['batch']} x {r['video']}, torch {torch.__version__} "
        f"{r['threads']} threads: {r['s_per_step']:.3f} s/step, "
        f"{r['videos_per_s']:.1f} videos/s, {r['gflop_per_step']:.1f} GFLOP/step, "
        f"{r['gflop_per_s']:.1f} GFLOP/s",
        flush=True,
    )


if __name__ == "__main__":
    main()
