"""DASR (Wang, Wang, Dong, Xu, Yang, An and Guo, "Unsupervised Degradation Representation Learning for Blind
Super-Resolution", CVPR 2021), the blind-SR baseline that CDSR builds on.

Layout of the official ``model/blindsr.py`` and ``moco/builder.py`` (``research/methods.md`` sections 2.1-2.2,
DASR paper Sec. 3.2-3.3, Fig. 3-4):

* **Degradation encoder** (:class:`DegradationEncoder`, DASR Sec. 3.2): six conv3x3 + BatchNorm + LeakyReLU(0.1),
  3 -> 64 -> 64 -> 128 (stride 2) -> 128 -> 256 (stride 2) -> 256, global average pooling -> ``fea`` (256);
  projection MLP Linear 256 -> 256, LeakyReLU(0.1), Linear 256 -> 256, L2-normalised -> ``q``. Trained with MoCo
  (:class:`srlib.archs.moco.MoCo`: K = 8192, m = 0.999, T = 0.07); the positive key is a second LR patch of the
  same image under the same degradation.
* **DA conv** (:class:`DAConv`, DASR Sec. 3.3, Fig. 4): the 64-d degradation embedding predicts one depthwise 3x3
  kernel per channel and per sample (Linear 64 -> 64, LeakyReLU(0.1), Linear 64 -> 64 * 9, both without bias);
  depthwise conv -> LeakyReLU(0.1) -> conv1x1 (with bias); plus a channel-attention branch on the embedding (64 -> 8
  -> 64, no bias, LeakyReLU(0.1), sigmoid) that rescales the input features; the output is the sum.
* **DA block** (:class:`DABlock`): DA conv -> LReLU -> conv3x3 -> LReLU -> DA conv -> LReLU -> conv3x3, + skip;
  **DA group** (:class:`DAGroup`): n_blocks DA blocks, conv3x3, + skip.
* **SR network** (:class:`DASRNet`): ``fea`` -> Linear 256 -> 64 (no bias) + LeakyReLU(0.1); head conv3x3 3 -> 64;
  n_groups DA groups, conv3x3, global skip; EDSR upsampler; conv3x3 64 -> 3.
* :class:`DASR`: MoCo-wrapped encoder + SR network; at test time only the query encoder is used, and the SR
  network consumes the *pre-MLP* ``fea`` (not normalised).

Paper sizes are the defaults: n_feats 64, 5 groups x 5 blocks, reduction 8, encoder widths 64/128/256, queue 8192.

**Value range.** The official code works on 0..255 and wraps the SR network in a frozen MeanShift (subtract
255 x the DIV2K mean (0.4488, 0.4371, 0.4040) before the head, add it after the tail). Our models take and return
[0, 1] images, so :class:`DASRNet` subtracts the DIV2K mean on the [0, 1] scale before the head and adds it back
after the tail (a constant buffer, not a parameter). The encoder sees the raw input, as in the official code
(there on 0..255, here on [0, 1]); both differences are a fixed rescaling of the first layers' weights, so the
architectures and parameter counts are the same. Outputs are not clamped.

Measured parameter counts at paper sizes (trainable; ``encoder_k`` is frozen and the queue is a buffer, so
neither counts): x4: SR network 4,690,499 + query encoder 1,278,784 = 5,969,283 (the paper's Table 3 states
5.8 M for x4; we do not know which parts it counts). x2: 5,821,571; x3: 6,006,211. Counting the frozen
``encoder_k`` too: 7,248,067 at x4.

Equation references: the DASR paper's equations are not in our paper folder, so functions name the paper section
and the MoCo equation they implement.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from srlib.archs.common import Upsampler, check_positive_int, conv3x3, upsampler_supports
from srlib.archs.moco import MoCo

__all__ = [
    "DIV2K_RGB_MEAN",
    "ContrastiveBlindSR",
    "DABlock",
    "DAConv",
    "DAGroup",
    "DASR",
    "DASRNet",
    "DegradationEncoder",
    "conv_bn_lrelu",
    "per_sample_depthwise_conv",
]

DIV2K_RGB_MEAN: tuple[float, float, float] = (0.4488, 0.4371, 0.4040)
"""Mean RGB of DIV2K on the [0, 1] scale (EDSR/DASR ``MeanShift`` uses 255 times this)."""


def check_images(x, name: str, min_size: int = 1) -> None:
    """Raise a ``ValueError`` naming ``name`` unless ``x`` is a float (B, 3, H, W) tensor with H, W >= min_size."""
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 3 or not x.is_floating_point():
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name}: expected a float tensor of shape (B, 3, H, W), got {shape}")
    if min(x.shape[-2:]) < min_size:
        raise ValueError(f"{name}: images of {x.shape[-2]}x{x.shape[-1]} pixels are smaller than {min_size}x{min_size}")


def conv_bn_lrelu(
    in_channels: int,
    out_channels: int,
    kernel_size: int = 3,
    stride: int = 1,
    padding: int | None = None,
    negative_slope: float = 0.1,
) -> nn.Sequential:
    """Conv2d (with bias) + BatchNorm2d + LeakyReLU, the unit of the DASR and CDSR encoders.

    ``padding`` defaults to ``kernel_size // 2``. Shapes: (B, Cin, H, W) -> (B, Cout, H', W') with
    H' = (H + 2 padding - kernel_size) // stride + 1.
    """
    if padding is None:
        padding = kernel_size // 2
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding),
        nn.BatchNorm2d(out_channels),
        nn.LeakyReLU(negative_slope),
    )


def per_sample_depthwise_conv(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Depthwise convolution with a different kernel for every sample and channel (DASR Sec. 3.3, DA conv).

    The batch is folded into the channels, ``(B, C, H, W) -> (1, B*C, H, W)``, and one grouped convolution with
    ``groups = B*C`` applies kernel ``kernels[b, c]`` to channel c of sample b (zero padding ``k // 2``; stride 1),
    exactly as the official code does.

    Args:
        x: (B, C, H, W) features.
        kernels: (B, C, k, k) per-sample depthwise kernels, k odd.

    Returns:
        (B, C, H, W).
    """
    b, c, h, w = x.shape
    if kernels.ndim != 4 or kernels.shape[:2] != (b, c) or kernels.shape[2] != kernels.shape[3]:
        raise ValueError(
            f"per_sample_depthwise_conv: kernels of shape {tuple(kernels.shape)} do not fit features of shape "
            f"{tuple(x.shape)} (expected ({b}, {c}, k, k))"
        )
    k = kernels.shape[-1]
    if k % 2 == 0:
        raise ValueError(f"per_sample_depthwise_conv: kernel size must be odd, got {k}")
    out = F.conv2d(x.reshape(1, b * c, h, w), kernels.reshape(b * c, 1, k, k), padding=k // 2, groups=b * c)
    return out.reshape(b, c, h, w)


class DegradationEncoder(nn.Module):
    """DASR's degradation encoder (DASR Sec. 3.2, Fig. 3; official ``Encoder`` of ``blindsr.py``).

    Six :func:`conv_bn_lrelu` layers with widths c, c, 2c, 2c (first stride 2), 4c (stride 2), 4c; global average
    pooling gives ``fea`` (4c); projection MLP Linear 4c -> dim, LeakyReLU(0.1), Linear dim -> dim, then L2
    normalisation gives ``q``. Paper: c = 64 (fea 256), dim = 256.

    Args:
        n_feats: base width c (64).
        proj_dim: projection size ``dim`` (256; the MoCo key size).
        in_channels: image channels (3).

    Shapes: (B, 3, H, W) in [0, 1] -> ``(fea, q)`` with fea (B, 4c) and q (B, dim), ``||q|| = 1``.
    """

    def __init__(self, n_feats: int = 64, proj_dim: int = 256, in_channels: int = 3):
        super().__init__()
        c = check_positive_int(n_feats, "n_feats")
        check_positive_int(proj_dim, "proj_dim")
        check_positive_int(in_channels, "in_channels")
        widths = (c, c, 2 * c, 2 * c, 4 * c, 4 * c)
        strides = (1, 1, 2, 1, 2, 1)
        layers: list[nn.Module] = []
        c_in = in_channels
        for c_out, stride in zip(widths, strides, strict=True):
            layers.append(conv_bn_lrelu(c_in, c_out, 3, stride))
            c_in = c_out
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
        self.mlp = nn.Sequential(nn.Linear(c_in, proj_dim), nn.LeakyReLU(0.1), nn.Linear(proj_dim, proj_dim))
        self.out_dim = c_in

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fea = self.body(x)
        return fea, F.normalize(self.mlp(fea), dim=1)


class DAConv(nn.Module):
    """Degradation-aware convolution (DASR Sec. 3.3, Fig. 4; official ``DA_conv`` + ``CA_layer``).

    ``out = conv1x1(lrelu(dwconv(x; kernels(e)))) + x * sigmoid(W_2 lrelu(W_1 e))``, where ``kernels(e)`` is
    Linear C -> C, LeakyReLU(0.1), Linear C -> C * k * k (no biases), one k x k depthwise kernel per channel and per
    sample (:func:`per_sample_depthwise_conv`), and ``W_1``: C -> C // reduction, ``W_2``: C // reduction -> C (no
    biases; the official 1x1 convolutions on a (B, C, 1, 1) tensor, here linear layers with the same weights).

    Args:
        n_feats: channels C of the features, also the size of the embedding e (64).
        kernel_size: k of the predicted depthwise kernels (3).
        reduction: channel-attention reduction (8 in DASR, 2 in CDSR).

    Shapes: x (B, C, H, W), e (B, C) -> (B, C, H, W).
    """

    def __init__(self, n_feats: int = 64, kernel_size: int = 3, reduction: int = 8):
        super().__init__()
        c = check_positive_int(n_feats, "n_feats")
        k = check_positive_int(kernel_size, "kernel_size")
        check_positive_int(reduction, "reduction")
        if k % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {k}")
        if c // reduction < 1:
            raise ValueError(f"reduction {reduction} leaves no channels in the bottleneck of n_feats={c}")
        self.n_feats = c
        self.kernel_size = k
        self.kernel = nn.Sequential(nn.Linear(c, c, bias=False), nn.LeakyReLU(0.1), nn.Linear(c, c * k * k, bias=False))
        self.conv = nn.Conv2d(c, c, 1)
        self.ca = nn.Sequential(
            nn.Linear(c, c // reduction, bias=False),
            nn.LeakyReLU(0.1),
            nn.Linear(c // reduction, c, bias=False),
            nn.Sigmoid(),
        )
        self.act = nn.LeakyReLU(0.1)

    def _check(self, x: torch.Tensor, emb: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.n_feats or emb.shape != (x.shape[0], self.n_feats):
            raise ValueError(
                f"{type(self).__name__}: expected features (B, {self.n_feats}, H, W) and an embedding "
                f"(B, {self.n_feats}), got {tuple(x.shape)} and {tuple(emb.shape)}"
            )

    def kernels(self, emb: torch.Tensor) -> torch.Tensor:
        """Per-sample depthwise kernels predicted from the embedding: (B, C) -> (B, C, k, k)."""
        k = self.kernel_size
        return self.kernel(emb).reshape(emb.shape[0], self.n_feats, k, k)

    def attention(self, emb: torch.Tensor) -> torch.Tensor:
        """Channel attention weights from the embedding: (B, C) -> (B, C) in (0, 1)."""
        return self.ca(emb)

    def branches(self, x: torch.Tensor, kernel_emb: torch.Tensor, ca_emb: torch.Tensor) -> torch.Tensor:
        """Sum of the dynamic-kernel branch (kernels from ``kernel_emb``) and the channel-attention branch (weights
        from ``ca_emb``). DASR uses one embedding for both; CDSR's DQA conv feeds its attended embedding to the
        kernels and the raw one to the channel attention."""
        out = self.conv(self.act(per_sample_depthwise_conv(x, self.kernels(kernel_emb))))
        return out + x * self.attention(ca_emb)[:, :, None, None]

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        self._check(x, emb)
        return self.branches(x, emb, emb)


class DABlock(nn.Module):
    """Degradation-aware block (DASR Sec. 3.3, Fig. 4; official ``DAB``):
    ``x + conv(lrelu(daconv(lrelu(conv(lrelu(daconv(x, e)))), e)))``.

    Args:
        n_feats: channels C (64). kernel_size: conv and dynamic-kernel size (3). reduction: channel-attention
        reduction of the DA convs (8).

    Shapes: x (B, C, H, W), e (B, C) -> (B, C, H, W).
    """

    conv_type: type[DAConv] = DAConv

    def __init__(self, n_feats: int = 64, kernel_size: int = 3, reduction: int = 8):
        super().__init__()
        self.da_conv1 = self.conv_type(n_feats, kernel_size, reduction)
        self.da_conv2 = self.conv_type(n_feats, kernel_size, reduction)
        self.conv1 = nn.Conv2d(n_feats, n_feats, kernel_size, padding=kernel_size // 2)
        self.conv2 = nn.Conv2d(n_feats, n_feats, kernel_size, padding=kernel_size // 2)
        self.act = nn.LeakyReLU(0.1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        out = self.act(self.da_conv1(x, emb))
        out = self.act(self.conv1(out))
        out = self.act(self.da_conv2(out, emb))
        return self.conv2(out) + x


class DAGroup(nn.Module):
    """Degradation-aware group (DASR Fig. 3; official ``DAG``): ``x + conv3x3(DAB_n(...DAB_1(x, e)..., e))``.

    Shapes: x (B, C, H, W), e (B, C) -> (B, C, H, W).
    """

    def __init__(self, n_feats: int = 64, n_blocks: int = 5, kernel_size: int = 3, reduction: int = 8):
        super().__init__()
        check_positive_int(n_blocks, "n_blocks", minimum=0)
        self.blocks = nn.ModuleList(DABlock(n_feats, kernel_size, reduction) for _ in range(n_blocks))
        self.conv = conv3x3(n_feats, n_feats)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        res = x
        for block in self.blocks:
            res = block(res, emb)
        return self.conv(res) + x


class DASRNet(nn.Module):
    """DASR's degradation-aware SR network (DASR Sec. 3.3, Fig. 3; official ``DASR`` class).

    ``e = lrelu(W fea)`` (Linear emb_dim -> C, no bias); ``x = head(lr - mean)``;
    ``res = conv3x3(DAG_G(...DAG_1(x, e)...)) + x``; ``sr = conv3x3(upsample(res)) + mean``.

    Args:
        scale: SR factor (3 or a power of two; EDSR upsampler).
        n_feats: channels C (64).
        n_groups: DA groups (5).
        n_blocks: DA blocks per group (5).
        kernel_size: conv / dynamic kernel size (3).
        reduction: channel-attention reduction (8).
        emb_dim: size of the encoder's ``fea`` (256).
        rgb_mean: mean subtracted before the head and added after the tail, on the [0, 1] scale (DIV2K mean; the
            equivalent of the official MeanShift on 0..255).

    Shapes: lr (B, 3, h, w) in [0, 1], fea (B, emb_dim) -> (B, 3, h * s, w * s), ~[0, 1], not clamped.
    """

    def __init__(
        self,
        scale: int,
        n_feats: int = 64,
        n_groups: int = 5,
        n_blocks: int = 5,
        kernel_size: int = 3,
        reduction: int = 8,
        emb_dim: int = 256,
        rgb_mean: Sequence[float] = DIV2K_RGB_MEAN,
    ):
        super().__init__()
        if not upsampler_supports(scale):
            raise ValueError(f"DASRNet: scale must be 3 or a power of two (2, 4, ...), got {scale!r}")
        check_positive_int(n_feats, "n_feats")
        check_positive_int(n_groups, "n_groups", minimum=0)
        check_positive_int(emb_dim, "emb_dim")
        if len(rgb_mean) != 3:
            raise ValueError(f"rgb_mean must have 3 values, got {rgb_mean!r}")
        self.scale = scale
        self.emb_dim = emb_dim
        self.register_buffer("rgb_mean", torch.tensor(rgb_mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.compress = nn.Sequential(nn.Linear(emb_dim, n_feats, bias=False), nn.LeakyReLU(0.1))
        self.head = conv3x3(3, n_feats)
        self.groups = nn.ModuleList(DAGroup(n_feats, n_blocks, kernel_size, reduction) for _ in range(n_groups))
        self.body_conv = conv3x3(n_feats, n_feats)
        self.tail = nn.Sequential(Upsampler(scale, n_feats), conv3x3(n_feats, 3))

    def forward(self, lr: torch.Tensor, fea: torch.Tensor) -> torch.Tensor:
        check_images(lr, "DASRNet")
        if fea.shape != (lr.shape[0], self.emb_dim):
            raise ValueError(f"DASRNet: expected fea of shape ({lr.shape[0]}, {self.emb_dim}), got {tuple(fea.shape)}")
        emb = self.compress(fea)
        mean = self.rgb_mean.to(lr.dtype)
        x = self.head(lr - mean)
        res = x
        for group in self.groups:
            res = group(res, emb)
        res = self.body_conv(res) + x
        return self.tail(res) + mean


class ContrastiveBlindSR(nn.Module):
    """Shared skeleton of DASR and CDSR: an SR network ``sr_net(lr, fea)`` driven by a MoCo-trained encoder.

    Subclasses set ``self.sr_net`` (called as ``sr_net(lr, fea)``), ``self.moco`` (:class:`MoCo` whose query
    encoder returns ``(fea, q)``), ``self.scale`` and ``self.min_size`` (smallest LR side the encoder accepts).
    """

    sr_net: nn.Module
    moco: MoCo
    scale: int
    min_size: int = 1

    def _check(self, lr: torch.Tensor, name: str) -> None:
        check_images(lr, f"{type(self).__name__}.{name}", self.min_size)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        """Test-time SR: ``sr_net(lr, encoder_q(lr).fea)``. (B, 3, h, w) in [0, 1] -> (B, 3, h*s, w*s), ~[0, 1].

        Put the model in ``eval()`` mode first: the encoder has BatchNorm layers."""
        self._check(lr, "forward")
        return self.sr_net(lr, self.moco(lr))

    def forward_encoder(self, lr_query: torch.Tensor, lr_key: torch.Tensor) -> dict[str, torch.Tensor]:
        """Encoder-only MoCo step (DASR's stage 1): momentum update, key forward, logits, enqueue.

        Returns:
            dict with ``fea`` (B, D) (query encoder, with gradient), ``logits`` (B, 1 + K) and ``labels`` (B,) zeros;
            :meth:`MoCo.contrastive_loss` turns the last two into the contrastive loss.
        """
        self._check(lr_query, "forward_encoder lr_query")
        self._check(lr_key, "forward_encoder lr_key")
        fea, logits, labels = self.moco.forward_train(lr_query, lr_key)
        return {"fea": fea, "logits": logits, "labels": labels}

    def forward_train(self, lr_query: torch.Tensor, lr_key: torch.Tensor) -> dict[str, torch.Tensor]:
        """Joint training step (DASR's stage 2, CDSR's only stage), in the official order: one MoCo step on
        (query, key) (momentum update, key forward, logits against the old queue, enqueue), then SR of the query
        patch from the query encoder's ``fea`` (with gradient, so the L1 loss also trains the encoder).

        Args:
            lr_query: (B, 3, h, w) LR patches in [0, 1]; the SR target is the HR patch of these.
            lr_key: (B, 3, h, w) second LR patches of the same images under the same degradations.

        Returns:
            dict with ``sr`` (B, 3, h*s, w*s), ``logits`` (B, 1 + K), ``labels`` (B,) long zeros and ``fea`` (B, D).
            Loss: ``L1(sr, hr) + w * moco.contrastive_loss(logits, labels)`` (w = 1 in both papers).
        """
        out = self.forward_encoder(lr_query, lr_key)
        out["sr"] = self.sr_net(lr_query, out["fea"])
        return out

    def contrastive_loss(self, logits: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """MoCo's InfoNCE (MoCo Eq. 1; DASR Sec. 3.2): cross-entropy of the logits with target 0."""
        return self.moco.contrastive_loss(logits, labels)

    def freeze_encoder(self) -> None:
        """Stop training the query encoder (CDSR's ``freeze_epoch``); the key encoder is always frozen."""
        self.moco.encoder_q.requires_grad_(False)

    def sr_parameters(self) -> list[nn.Parameter]:
        """Parameters of the test-time network (SR network + query encoder), for counts and benchmarks."""
        return [*self.sr_net.parameters(), *self.moco.encoder_q.parameters()]


class NonBlindDASR(nn.Module):
    """DASR's SR network with a learned constant degradation embedding: the non-blind, same-trunk control of DASR and
    CDSR (ours, issue 10: the baseline the blind papers' claims are really about).

    ``sr = sr_net(lr, e)`` with ``e`` one learned (1, 4c) vector shared by every image (initialised to zeros), so the
    DA blocks become ordinary (static) convolutions and channel attention. Built in DASR's order, so under the same
    seed its ``sr_net`` starts from exactly DASR's initial SR-network weights.

    Args:
        scale, n_feats, n_groups, n_blocks, kernel_size, reduction: as :class:`DASR`.
        enc_feats: DASR's encoder width c (the embedding has 4c entries, as DASR's ``fea``).

    Shapes: lr (B, 3, h, w) in [0, 1] -> (B, 3, h * s, w * s), ~[0, 1], not clamped.
    """

    def __init__(self, scale: int, n_feats: int = 64, n_groups: int = 5, n_blocks: int = 5, kernel_size: int = 3,
                 reduction: int = 8, enc_feats: int = 64):
        super().__init__()
        check_positive_int(enc_feats, "enc_feats")
        self.scale = scale
        self.sr_net = DASRNet(scale, n_feats, n_groups, n_blocks, kernel_size, reduction, emb_dim=4 * enc_feats)
        self.embedding = nn.Parameter(torch.zeros(1, 4 * enc_feats))

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        check_images(lr, "NonBlindDASR")
        return self.sr_net(lr, self.embedding.expand(lr.shape[0], -1))


class DASR(ContrastiveBlindSR):
    """DASR: MoCo-trained :class:`DegradationEncoder` + :class:`DASRNet` (DASR Sec. 3, Fig. 3; official ``BlindSR``).

    Args:
        scale: SR factor (3 or a power of two).
        n_feats: SR network channels (64).
        n_groups: DA groups (5).
        n_blocks: DA blocks per group (5).
        kernel_size: conv / dynamic kernel size (3).
        reduction: DA conv channel-attention reduction (8).
        enc_feats: base width c of the encoder (64: widths 64, 128, 256; ``fea`` has 4c dims).
        proj_dim: MoCo projection / key size (256).
        queue_size: MoCo queue K (8192).
        momentum: MoCo momentum m (0.999; the recipe: :func:`srlib.recipes.blind_sr.moco_momentum`).
        temperature: MoCo temperature T (0.07).
        queue_generator: optional generator for the queue's initial noise (default: the global RNG).
        encoder: ``"dasr"`` (DASR's :class:`DegradationEncoder`) or ``"cdsr"``: CDSR's LPE + CSC
            (:class:`srlib.archs.cdsr.CDSREncoder`, embedding 4c, feeding the SR network its post-CSC vector), the
            *encoder swap* (ours, issue 10): CDSR's modules tested in DASR's trunk, apart from CDSR's trunk.
        codebook_size, patch_size: CDSR's CSC entries L (1024) and LPE patch size (12); only for ``encoder="cdsr"``.

    Modules: ``sr_net`` (:class:`DASRNet`), ``moco`` (:class:`MoCo` with ``encoder_q``, ``encoder_k``, ``queue``).
    Built in the official order (SR network first, then the encoders), so under one seed both encoders start from
    the same SR-network weights. See :class:`ContrastiveBlindSR` for
    ``forward(lr)``, ``forward_train(lr_query, lr_key)``, ``forward_encoder``, ``contrastive_loss``.
    """

    def __init__(
        self,
        scale: int,
        n_feats: int = 64,
        n_groups: int = 5,
        n_blocks: int = 5,
        kernel_size: int = 3,
        reduction: int = 8,
        enc_feats: int = 64,
        proj_dim: int = 256,
        queue_size: int = 8192,
        momentum: float = 0.999,
        temperature: float = 0.07,
        queue_generator: torch.Generator | None = None,
        encoder: str = "dasr",
        codebook_size: int = 1024,
        patch_size: int = 12,
    ):
        super().__init__()
        self.scale = scale
        check_positive_int(enc_feats, "enc_feats")
        if encoder not in ("dasr", "cdsr"):
            raise ValueError(f"DASR: encoder must be 'dasr' or 'cdsr', got {encoder!r}")
        self.sr_net = DASRNet(scale, n_feats, n_groups, n_blocks, kernel_size, reduction, emb_dim=4 * enc_feats)
        if encoder == "cdsr":
            from srlib.archs.cdsr import CDSREncoder  # cdsr builds on this module

            self.min_size = check_positive_int(patch_size, "patch_size")
            encoder_q = CDSREncoder(enc_feats, 4 * enc_feats, codebook_size, patch_size, proj_dim)
        else:
            encoder_q = DegradationEncoder(enc_feats, proj_dim)
        self.moco = MoCo(
            encoder_q,
            proj_dim,
            queue_size,
            momentum,
            temperature,
            generator=queue_generator,
        )

    def embed(self, lr: torch.Tensor) -> dict[str, torch.Tensor]:
        """Degradation embeddings of the query encoder (for nearest-neighbour accuracy and plots).

        Returns:
            dict with ``fea`` (B, 4c), the pooled pre-MLP vector the SR network consumes, and ``q`` (B, proj_dim),
            the unit-norm projection that MoCo compares; with ``encoder="cdsr"`` those of
            :meth:`srlib.archs.cdsr.CDSREncoder.embed` (``fea`` before CSC, ``fea_csc``, ``attn``, ``q``).
        """
        self._check(lr, "embed")
        if hasattr(self.moco.encoder_q, "embed"):  # CDSR's encoder (the swap): also fea_csc and attn
            return self.moco.encoder_q.embed(lr)
        fea, q = self.moco.encoder_q(lr)
        return {"fea": fea, "q": q}
