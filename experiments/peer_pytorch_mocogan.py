"""The PyTorch MoCoGAN peer for `benchmark_train_step.py --peer --peer-model mocogan`.

A straightforward PyTorch CPU implementation of vgan_jax's `mocogan` as the `default`
preset builds it at width 32 for G and D (3 stages, z_C 100, motion 10, 8 image-critic
frames), at the issue's shapes (batch 16 x 16x64x64x1, float32):

  motion     h_0, eps_t ~ N(0, I) [10]; h_t = GRUCell(eps_t, h_(t-1)), a loop over frames
  generator  per frame (time folded into the batch): [z_C; h_t] [110] -> Linear (no bias)
             -> 8x8x128 -> BatchNorm2d, LeakyReLU(0.2)
             -> 2 x [ConvTranspose2d k4 s2 p1 (no bias), BatchNorm2d, LeakyReLU(0.2)]
             -> ConvTranspose2d(32, 1, 4, 2, 1) -> tanh                     64x64x1
  image D    8 frames per clip chosen at random (the same for the whole batch), each a
             sample: 3 x [Conv2d k4 s2 p1, LeakyReLU(0.2)] (1 -> 32 -> 64 -> 128)
             -> minibatch-std (groups of 4) -> Conv2d 3x3 (129 -> 256), LeakyReLU(0.2)
             -> Linear -> logit; a clip's logit is the mean over its frames
  video D    3 x [Conv3d k (2, 4, 4) s (1, 2, 2), LeakyReLU(0.2)] (time padded (0, 1), so
             it is never downsampled: MoCoGAN's stride (1, 2, 2)) -> 16x8x8x128
             -> minibatch-std -> Conv3d 3x3x3 (129 -> 256), LeakyReLU(0.2) -> Linear -> logit
  (--spectral-norm: on every critic conv and linear layer, as vgan_jax's default)

These are vgan_jax's layers in their textbook form: its resize-convolution upsampling
reads 2x2 low-resolution taps per output pixel, as ConvTranspose2d k4 s2 does (same
multiplies; the peer's G has 1.07M parameters against 0.99M, 16 taps per kernel
against the resize kernel's 9); its space-to-depth + 2-tap convolution is a 4-tap
stride-2 convolution (both critics: 1.96M parameters on each side). One iteration is
pytorch/examples' dcgan loop with both critics: fake = G(z, eps); one Adam step of D on
real and fake.detach(); one Adam step of G through the updated D; non-saturating loss
(BCE on logits) per critic, summed; lr 2e-4, betas (0.5, 0.999). vgan_jax's step also
keeps an EMA of G and checks for non-finite values; the peer does neither.

PyTorch is never a dependency of vgan_jax. Install the CPU build into the venv:

    .venv/bin/pip install torch==2.13.0

    python experiments/peer_pytorch_mocogan.py                  # 5 steps after 1 warmup
    python experiments/peer_pytorch_mocogan.py --spectral-norm --steps 10
    python experiments/peer_pytorch_mocogan.py --batch 4 --resolution 16 --frames 4 \\
        --width 4 --steps 2                                      # a smoke test in seconds
    python experiments/benchmark_train_step.py --peer --peer-model mocogan
"""

from __future__ import annotations

import argparse
import math
import os
import time

import torch
from peer_pytorch_gan import count_params  # the sibling script (its folder is on sys.path)
from torch import nn
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

STAGES = 3  # 2x stages of the generator and of each critic (model.num_upsamples)


def minibatch_stddev(x: torch.Tensor, group: int = 4) -> torch.Tensor:
    """Appends one channel: the std over groups of `group` samples (sample i in group
    i % (n / group)), averaged over positions and channels; `[n, c, ...]`."""
    n = x.shape[0]
    group = math.gcd(group, n)
    std = torch.sqrt(x.reshape(group, n // group, *x.shape[1:]).var(0, unbiased=False) + 1e-8)
    per_sample = std.reshape(n // group, -1).mean(1).repeat(group)
    feature = per_sample.reshape(n, 1, *[1] * (x.ndim - 2)).expand(n, 1, *x.shape[2:])
    return torch.cat([x, feature], 1)


class Generator(nn.Module):
    """`z_c [b, latent]`, `h0 [b, motion]`, `noise [b, T, motion]` -> `[b, C, T, H, W]`."""

    def __init__(self, latent: int, motion: int, width: int, size: int, channels: int):
        super().__init__()
        self.start, self.top = size // 2**STAGES, width * 2 ** (STAGES - 1)
        self.gru = nn.GRUCell(motion, motion)
        self.project = nn.Linear(latent + motion, self.start**2 * self.top, bias=False)
        layers = [nn.BatchNorm2d(self.top), nn.LeakyReLU(0.2, True)]
        c = self.top
        for _ in range(STAGES - 1):
            layers += [
                nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(c // 2),
                nn.LeakyReLU(0.2, True),
            ]
            c //= 2
        layers += [nn.ConvTranspose2d(c, channels, 4, 2, 1), nn.Tanh()]
        self.image = nn.Sequential(*layers)

    def forward(self, z_c: torch.Tensor, h0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        b, frames = noise.shape[:2]
        h, motion = h0, []
        for t in range(frames):
            h = self.gru(noise[:, t], h)
            motion.append(h)
        codes = torch.cat([z_c[:, None].expand(b, frames, -1), torch.stack(motion, 1)], -1)
        x = self.project(codes.reshape(b * frames, -1))
        images = self.image(x.reshape(b * frames, self.top, self.start, self.start))
        return images.reshape(b, frames, *images.shape[1:]).transpose(1, 2)


class Critic(nn.Module):
    """A 2D (`video=False`, `[n, C, H, W]`) or 3D (`[n, C, T, H, W]`) critic -> `[n]`."""

    def __init__(self, width: int, channels: int, out_size: int, video: bool, sn: bool):
        super().__init__()
        wrap = nn.utils.parametrizations.spectral_norm if sn else (lambda m: m)
        layers, c = [], channels
        for i in range(STAGES):
            if video:  # time kept: padded (0, 1) for the 2-tap kernel
                layers += [
                    nn.ConstantPad3d((1, 1, 1, 1, 0, 1), 0.0),
                    wrap(nn.Conv3d(c, width * 2**i, (2, 4, 4), (1, 2, 2))),
                ]
            else:
                layers.append(wrap(nn.Conv2d(c, width * 2**i, 4, 2, 1)))
            layers.append(nn.LeakyReLU(0.2, True))
            c = width * 2**i
        self.trunk = nn.Sequential(*layers)
        conv = nn.Conv3d if video else nn.Conv2d
        self.head = wrap(conv(c + 1, 2 * c, 3, 1, 1))
        self.logit = wrap(nn.Linear(2 * c * out_size, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = minibatch_stddev(self.trunk(x))
        x = F.leaky_relu(self.head(x), 0.2)
        return self.logit(x.flatten(1))[:, 0]


def benchmark(
    steps: int = 5,
    warmup: int = 1,
    batch: int = 16,
    width: int = 32,
    size: int = 64,
    frames: int = 16,
    image_frames: int = 8,
    spectral_norm: bool = False,
    threads: int | None = None,
) -> dict:
    torch.set_num_threads(threads or os.cpu_count() or 1)
    torch.manual_seed(0)
    latent, motion, channels = 100, 10, 1
    grid = (size // 2**STAGES) ** 2
    net_g = Generator(latent, motion, width, size, channels)
    image_d = Critic(width, channels, grid, video=False, sn=spectral_norm)
    video_d = Critic(width, channels, frames * grid, video=True, sn=spectral_norm)
    d_params = [*image_d.parameters(), *video_d.parameters()]
    opt_g = torch.optim.Adam(net_g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d_params, lr=2e-4, betas=(0.5, 0.999))
    real = torch.rand(batch, channels, frames, size, size) * 2 - 1
    k = min(image_frames, frames)

    def critics(video: torch.Tensor) -> list[torch.Tensor]:
        chosen = torch.randperm(frames)[:k].sort().values
        images = video[:, :, chosen].transpose(1, 2).reshape(batch * k, channels, size, size)
        return [video_d(video), image_d(images).reshape(batch, k).mean(1)]

    def step() -> float:
        fake = net_g(
            torch.randn(batch, latent),
            torch.randn(batch, motion),
            torch.randn(batch, frames, motion),
        )
        # D: real -> 1, fake -> 0, per critic, summed (softplus = BCE on logits).
        opt_d.zero_grad(set_to_none=True)
        d_loss = sum(F.softplus(-x).mean() for x in critics(real))
        d_loss = d_loss + sum(F.softplus(x).mean() for x in critics(fake.detach()))
        d_loss.backward()
        opt_d.step()
        # G: non-saturating, through the updated critics.
        opt_g.zero_grad(set_to_none=True)
        g_loss = sum(F.softplus(-x).mean() for x in critics(fake))
        g_loss.backward()
        opt_g.step()
        return d_loss.item() + g_loss.item()

    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        loss = step()
    seconds = (time.perf_counter() - start) / steps
    # FLOPs of one more (untimed) iteration, as PyTorch's dispatcher counts them
    # (convolutions and matmuls, forward and backward).
    with FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops()
    return dict(
        g_params=count_params(net_g),
        d_params=count_params(image_d) + count_params(video_d),
        batch=batch,
        video=(frames, size, size, channels),
        threads=torch.get_num_threads(),
        loss=loss,
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
    parser.add_argument("--resolution", type=int, default=64, help="a multiple of 8")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--image-frames", type=int, default=8, help="frames the image D sees")
    parser.add_argument("--spectral-norm", action="store_true", help="on every critic layer")
    parser.add_argument("--threads", type=int, default=None, help="default: os.cpu_count()")
    args = parser.parse_args()
    r = benchmark(
        args.steps,
        args.warmup,
        args.batch,
        args.width,
        args.resolution,
        args.frames,
        args.image_frames,
        args.spectral_norm,
        args.threads,
    )
    sn = " + spectral norm" if args.spectral_norm else ""
    print(
        f"   pytorch: MoCoGAN{sn} (GRUCell loop, ConvTranspose2d G, Conv2d image D + "
        f"Conv3d (1, 2, 2) video D) G {r['g_params'] / 1e6:.2f}M + D "
        f"{r['d_params'] / 1e6:.2f}M params, batch {r['batch']} x {r['video']}, torch "
        f"{torch.__version__} {r['threads']} threads: {r['s_per_step']:.3f} s/step, "
        f"{r['videos_per_s']:.1f} videos/s, {r['gflop_per_step']:.1f} GFLOP/step, "
        f"{r['gflop_per_s']:.1f} GFLOP/s (final loss {r['loss']:.3f})",
        flush=True,
    )


if __name__ == "__main__":
    main()
