"""CDSR (Zhou, Lin, Luo, Liu, Tai, Wang and Chen, "Joint Learning Content and Degradation Aware Feature for Blind
Super-Resolution", ACM MM 2022, arXiv 2208.13436), built on DASR (:mod:`srlib.archs.dasr`).

Layout of the official ``model/CDSR.py`` (``research/methods.md`` section 2.3); the three modules the paper
introduces (its Sec. 3: LPE, DQA, CSC) are:

* **LPE**, lightweight patch-based encoder (:class:`LPE`): two branches of conv + BN + LeakyReLU(0.1) units on the
  LR patch. Pixel branch: 7x7 3 -> 64, 1x1, 3x3 stride 2 64 -> 128, 1x1, 7x7 128 -> 256, 1x1, global average pool.
  Patch branch: 12x12 conv with stride 12 3 -> 64 (a 48x48 patch becomes 4x4 tokens), 3x3 64 -> 64, 3x3 64 -> 128,
  3x3 128 -> 256, global average pool. The two 256-d vectors are concatenated (512) and mapped by Linear 512 -> 256,
  LeakyReLU(0.1), Linear 256 -> 256 to ``fea``.
* **CSC**, codebook-based space compression (:class:`CSC`): a codebook of L = 1024 learned 256-d entries;
  ``q = W_q fea``, ``k_i = W_k c_i``, ``A = softmax_i(q . k_i)`` (no 1/sqrt(d) scaling, no temperature) and
  ``fea' = sum_i A_i c_i`` (the values are the raw codebook rows), so ``fea'`` lies in the span (indeed the convex
  hull) of the codebook. ``fea'`` feeds the SR network and, through the projection MLP (256 -> 256, LeakyReLU(0.1),
  256 -> 256, L2-normalised), MoCo (K = 8192, m = 0.999, T = 0.07, :class:`srlib.archs.moco.MoCo`).
* **DQA**, domain query attention (:class:`DQA`): the channel means of the features (f, C-d) query the degradation
  vector e (C-d): ``q = W_q f`` (C x 1), ``k = W_k e`` (1 x C), ``A = softmax_row(q k)`` (C x C), ``v = W_v e``,
  ``e' = gamma (v A^T) + e`` with gamma a learned scalar initialised to 0. ``e'`` generates the dynamic depthwise
  kernels of a DA conv (:class:`DQAConv`), whose channel attention still uses the raw e.

SR network (:class:`CDSRNet`): ``fea'`` -> 4 x (Linear 256 -> 256 + PReLU); conv3x3 3 -> 64; 10 RRDB-SFT blocks
(:class:`RRDBSFT`: SFT fc 256 -> 256, PReLU, 256 -> 64, sigmoid -> :class:`FuseBlock` (the official ``FuseBLK``: a
DA block with DQA convs, reduction 2) -> 3 residual dense blocks (5 convs, growth 32, LeakyReLU(0.2), x0.2
residual) -> x0.2 block residual); conv3x3; global skip; conv3x3 64 -> 3 s^2 + PixelShuffle(s).

**Value range.** The official model divides its 0..255 input by 255 and multiplies the output by 255, with no
MeanShift; ours takes and returns [0, 1] images directly, which is the same network. Outputs are not clamped.
Residual dense blocks use ESRGAN's initialisation (Kaiming normal, fan-in, scaled by 0.1, zero biases), as the
official code does; everything else keeps torch's default initialisation (``nn.Embedding``: N(0, 1) rows).

Measured parameter counts at paper sizes (trainable; the frozen ``encoder_k`` and the queue excluded): x4: SR
network 10,318,738 + query encoder 2,934,592 (LPE 2,409,280, CSC 393,728, MLP 131,584) = 13,253,330; x2:
13,232,558; x3: 13,241,213. Counting the frozen ``encoder_k`` too: 16,187,922 at x4.

Equation references: our paper folder holds only CDSR's README (no equations), so functions name the module and
section of the paper (and MoCo's equations for the contrastive parts).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from srlib.archs.common import check_positive_int, conv3x3
from srlib.archs.dasr import ContrastiveBlindSR, DABlock, DAConv, check_images, conv_bn_lrelu
from srlib.archs.moco import MoCo

__all__ = [
    "CDSR",
    "CDSREncoder",
    "CDSRNet",
    "CSC",
    "DQA",
    "DQAConv",
    "FuseBlock",
    "LPE",
    "RRDBSFT",
    "ResidualDenseBlock",
]


class LPE(nn.Module):
    """Lightweight patch-based encoder (CDSR Sec. 3, "LPE"; official ``Encoder`` up to ``mlp1``).

    Args:
        n_feats: base width c (64): the branches end with 4c channels (256) and the concatenation has 8c.
        emb_dim: output size of ``fea`` (256).
        patch_size: kernel and stride of the patch branch's first conv (12).
        in_channels: image channels (3).

    Shapes: (B, 3, H, W) in [0, 1] with H, W >= patch_size -> fea (B, emb_dim). Intermediate maps:
    :meth:`pixel_features` (B, 4c, ceil(H / 2), ceil(W / 2)); :meth:`patch_tokens` (B, 4c, H // p, W // p).
    """

    def __init__(self, n_feats: int = 64, emb_dim: int = 256, patch_size: int = 12, in_channels: int = 3):
        super().__init__()
        c = check_positive_int(n_feats, "n_feats")
        check_positive_int(emb_dim, "emb_dim")
        p = check_positive_int(patch_size, "patch_size")
        check_positive_int(in_channels, "in_channels")
        self.patch_size = p
        self.pixel = nn.Sequential(
            conv_bn_lrelu(in_channels, c, 7),
            conv_bn_lrelu(c, c, 1),
            conv_bn_lrelu(c, 2 * c, 3, stride=2),
            conv_bn_lrelu(2 * c, 2 * c, 1),
            conv_bn_lrelu(2 * c, 4 * c, 7),
            conv_bn_lrelu(4 * c, 4 * c, 1),
        )
        self.patch = nn.Sequential(
            conv_bn_lrelu(in_channels, c, p, stride=p, padding=0),
            conv_bn_lrelu(c, c, 3),
            conv_bn_lrelu(c, 2 * c, 3),
            conv_bn_lrelu(2 * c, 4 * c, 3),
        )
        self.mlp = nn.Sequential(nn.Linear(8 * c, emb_dim), nn.LeakyReLU(0.1), nn.Linear(emb_dim, emb_dim))

    def pixel_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pixel branch map before pooling: (B, 3, H, W) -> (B, 4c, ceil(H / 2), ceil(W / 2))."""
        return self.pixel(x)

    def patch_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Patch branch map before pooling, one token per p x p patch: (B, 3, H, W) -> (B, 4c, H // p, W // p)."""
        if min(x.shape[-2:]) < self.patch_size:
            raise ValueError(
                f"LPE: images of {x.shape[-2]}x{x.shape[-1]} pixels are smaller than one {self.patch_size}x"
                f"{self.patch_size} patch of the patch branch"
            )
        return self.patch(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pix = self.pixel_features(x).mean(dim=(2, 3))
        tok = self.patch_tokens(x).mean(dim=(2, 3))
        return self.mlp(torch.cat([pix, tok], dim=1))


class CSC(nn.Module):
    """Codebook-based space compression (CDSR Sec. 3, "CSC"; the codebook part of the official ``Encoder``).

    ``A = softmax(W_q fea . (W_k C)^T)`` over the L entries (no scaling), ``fea' = A C``, with C the (L, dim)
    codebook (``nn.Embedding``) and ``W_q``, ``W_k`` Linear dim -> dim with bias.

    Args:
        dim: embedding size (256).
        codebook_size: number L of codebook entries (1024).

    Shapes: fea (B, dim) -> fea' (B, dim); :meth:`attention` (B, L), rows summing to 1.
    """

    def __init__(self, dim: int = 256, codebook_size: int = 1024):
        super().__init__()
        check_positive_int(dim, "dim")
        check_positive_int(codebook_size, "codebook_size")
        self.codebook = nn.Embedding(codebook_size, dim)
        self.fc_q = nn.Linear(dim, dim)
        self.fc_k = nn.Linear(dim, dim)

    def attention(self, fea: torch.Tensor) -> torch.Tensor:
        """Attention of each embedding over the codebook entries: (B, dim) -> (B, L), softmax over L."""
        q = self.fc_q(fea)
        k = self.fc_k(self.codebook.weight)
        return torch.softmax(q @ k.t(), dim=1)

    def forward(self, fea: torch.Tensor, return_attention: bool = False):
        """``fea' = attention(fea) @ codebook``: (B, dim) -> (B, dim); with ``return_attention`` also (B, L)."""
        attn = self.attention(fea)
        out = attn @ self.codebook.weight
        return (out, attn) if return_attention else out


class CDSREncoder(nn.Module):
    """CDSR's degradation encoder: :class:`LPE` -> :class:`CSC` -> projection MLP (official ``Encoder``).

    Args:
        n_feats: LPE base width (64). emb_dim: embedding size (256). codebook_size: CSC entries L (1024).
        patch_size: LPE patch size (12). proj_dim: MoCo key size (256). in_channels: image channels (3).

    Shapes: (B, 3, H, W) in [0, 1], H, W >= patch_size -> ``(fea', q)``: fea' (B, emb_dim) the CSC output (what the
    SR network consumes), q (B, proj_dim) unit-norm (MoCo's query/key). :meth:`embed` also returns the pre-CSC fea.
    """

    def __init__(
        self,
        n_feats: int = 64,
        emb_dim: int = 256,
        codebook_size: int = 1024,
        patch_size: int = 12,
        proj_dim: int = 256,
        in_channels: int = 3,
    ):
        super().__init__()
        check_positive_int(proj_dim, "proj_dim")
        self.lpe = LPE(n_feats, emb_dim, patch_size, in_channels)
        self.csc = CSC(emb_dim, codebook_size)
        self.mlp = nn.Sequential(nn.Linear(emb_dim, proj_dim), nn.LeakyReLU(0.1), nn.Linear(proj_dim, proj_dim))
        self.out_dim = emb_dim

    def embed(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every embedding: ``fea`` (B, emb_dim) from LPE (pre-CSC), ``fea_csc`` (B, emb_dim) after CSC, ``attn``
        (B, L) the CSC attention and ``q`` (B, proj_dim) the unit-norm projection of ``fea_csc``."""
        fea = self.lpe(x)
        fea_csc, attn = self.csc(fea, return_attention=True)
        return {"fea": fea, "fea_csc": fea_csc, "attn": attn, "q": F.normalize(self.mlp(fea_csc), dim=1)}

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fea_csc = self.csc(self.lpe(x))
        return fea_csc, F.normalize(self.mlp(fea_csc), dim=1)


class DQA(nn.Module):
    """Domain query attention (CDSR Sec. 3, "DQA"; official ``CrossModalAttention``).

    With f the channel means of the features and e the degradation vector (both C-d):
    ``q = W_q f`` (C x 1), ``k = W_k e`` (1 x C), ``A = softmax_row(q k)`` (C x C), ``v = W_v e`` (1 x C),
    ``e' = gamma (v A^T) + e``. ``W_q``, ``W_k``, ``W_v``: Linear C -> C with bias; ``gamma`` a scalar parameter
    initialised to 0, so a fresh DQA passes e through unchanged.

    Shapes: f (B, C), e (B, C) -> e' (B, C); :meth:`attention` (B, C, C), rows summing to 1.
    """

    def __init__(self, n_feats: int = 64):
        super().__init__()
        c = check_positive_int(n_feats, "n_feats")
        self.fc_q = nn.Linear(c, c)
        self.fc_k = nn.Linear(c, c)
        self.fc_v = nn.Linear(c, c)
        self.gamma = nn.Parameter(torch.zeros(1))

    def attention(self, f: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """``A = softmax_row(q k)`` with q = W_q f as a column and k = W_k e as a row: (B, C), (B, C) -> (B, C, C)."""
        energy = self.fc_q(f).unsqueeze(2) @ self.fc_k(e).unsqueeze(1)
        return torch.softmax(energy, dim=-1)

    def forward(self, f: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        attn = self.attention(f, e)
        out = (self.fc_v(e).unsqueeze(1) @ attn.transpose(1, 2)).squeeze(1)
        return self.gamma * out + e


class DQAConv(DAConv):
    """DA conv whose kernels come from the DQA-attended embedding (CDSR Sec. 3, "DQA"; official ``DQA`` class).

    ``e' = DQA(GAP(x), e)``; ``out = conv1x1(lrelu(dwconv(x; kernels(e')))) + x * CA(e)`` (the channel attention
    uses the raw e). See :class:`~srlib.archs.dasr.DAConv` for the branches.

    Shapes: x (B, C, H, W), e (B, C) -> (B, C, H, W).
    """

    def __init__(self, n_feats: int = 64, kernel_size: int = 3, reduction: int = 2):
        super().__init__(n_feats, kernel_size, reduction)
        self.dqa = DQA(n_feats)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        self._check(x, emb)
        return self.branches(x, self.dqa(x.mean(dim=(2, 3)), emb), emb)


class FuseBlock(DABlock):
    """CDSR's fusion block (official ``FuseBLK``): a DASR DA block whose two DA convs are :class:`DQAConv`.

    Shapes: x (B, C, H, W), e (B, C) -> (B, C, H, W). Default channel-attention reduction 2 (CDSR).
    """

    conv_type = DQAConv

    def __init__(self, n_feats: int = 64, kernel_size: int = 3, reduction: int = 2):
        super().__init__(n_feats, kernel_size, reduction)


class ResidualDenseBlock(nn.Module):
    """ESRGAN's residual dense block with 5 convolutions (official ``ResidualDenseBlock_5C``).

    ``x_i = lrelu(conv_i([x, x_1, ..., x_{i-1}]))`` for i = 1..4 (C + (i-1) g -> g channels), ``x_5 = conv_5(...)``
    (C + 4g -> C), output ``x + res_scale * x_5``; LeakyReLU(0.2).

    Args:
        n_feats: channels C (64). growth: g (32). res_scale: residual factor (0.2).
        init_scale: ESRGAN initialisation (Kaiming normal, fan-in, times ``init_scale``, zero biases; 0.1), or
            ``None`` for torch's default.

    Shapes: (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(self, n_feats: int = 64, growth: int = 32, res_scale: float = 0.2, init_scale: float | None = 0.1):
        super().__init__()
        c = check_positive_int(n_feats, "n_feats")
        g = check_positive_int(growth, "growth")
        self.convs = nn.ModuleList(conv3x3(c + i * g, g) for i in range(4))
        self.convs.append(conv3x3(c + 4 * g, c))
        self.act = nn.LeakyReLU(0.2)
        self.res_scale = float(res_scale)
        if init_scale is not None:
            for conv in self.convs:
                nn.init.kaiming_normal_(conv.weight, a=0, mode="fan_in")
                with torch.no_grad():
                    conv.weight.mul_(init_scale)
                nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for conv in self.convs[:-1]:
            feats.append(self.act(conv(torch.cat(feats, dim=1))))
        return x + self.res_scale * self.convs[-1](torch.cat(feats, dim=1))


class RRDBSFT(nn.Module):
    """CDSR's trunk block (official ``RRDB_SFT``): ``x + 0.2 * RDB_3(RDB_2(RDB_1(FuseBlock(x, sft(e)))))``.

    ``sft(e)``: Linear emb_dim -> sft_hidden, PReLU, Linear sft_hidden -> C, sigmoid (the official ``SFT_Layer``'s
    fc; its output drives the :class:`FuseBlock`).

    Args:
        n_feats: channels C (64). growth: RDB growth (32). emb_dim: size of e (256). sft_hidden: hidden size of the
        SFT fc (256). kernel_size: conv / dynamic kernel size (3). reduction: FuseBlock channel-attention reduction
        (2). n_rdb: residual dense blocks (3). res_scale: block residual factor (0.2).

    Shapes: x (B, C, H, W), e (B, emb_dim) -> (B, C, H, W).
    """

    def __init__(
        self,
        n_feats: int = 64,
        growth: int = 32,
        emb_dim: int = 256,
        sft_hidden: int = 256,
        kernel_size: int = 3,
        reduction: int = 2,
        n_rdb: int = 3,
        res_scale: float = 0.2,
    ):
        super().__init__()
        check_positive_int(emb_dim, "emb_dim")
        check_positive_int(sft_hidden, "sft_hidden")
        check_positive_int(n_rdb, "n_rdb", minimum=0)
        self.sft = nn.Sequential(
            nn.Linear(emb_dim, sft_hidden), nn.PReLU(), nn.Linear(sft_hidden, n_feats), nn.Sigmoid()
        )
        self.fuse = FuseBlock(n_feats, kernel_size, reduction)
        self.rdbs = nn.Sequential(*[ResidualDenseBlock(n_feats, growth) for _ in range(n_rdb)])
        self.res_scale = float(res_scale)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.rdbs(self.fuse(x, self.sft(emb)))


class CDSRNet(nn.Module):
    """CDSR's SR network (official ``CDSR`` class).

    ``e = compress(fea')`` (n_compress x (Linear emb_dim -> emb_dim + PReLU)); ``x = conv3x3(lr)``;
    ``res = x + conv3x3(RRDBSFT_n(...RRDBSFT_1(x, e)..., e))``; ``sr = PixelShuffle_s(conv3x3(res))`` (C -> 3 s^2).

    Args:
        scale: SR factor (any integer >= 1).
        n_feats: channels C (64). n_blocks: RRDB-SFT blocks (10). growth: RDB growth (32). emb_dim: size of fea'
        (256). kernel_size: conv / dynamic kernel size (3). reduction: FuseBlock reduction (2). n_compress: layers
        of the embedding compressor (4).

    Shapes: lr (B, 3, h, w) in [0, 1], fea' (B, emb_dim) -> (B, 3, h * s, w * s), ~[0, 1], not clamped.
    """

    def __init__(
        self,
        scale: int,
        n_feats: int = 64,
        n_blocks: int = 10,
        growth: int = 32,
        emb_dim: int = 256,
        kernel_size: int = 3,
        reduction: int = 2,
        n_compress: int = 4,
    ):
        super().__init__()
        self.scale = check_positive_int(scale, "scale")
        check_positive_int(n_feats, "n_feats")
        check_positive_int(n_blocks, "n_blocks", minimum=0)
        check_positive_int(emb_dim, "emb_dim")
        check_positive_int(n_compress, "n_compress", minimum=0)
        self.emb_dim = emb_dim
        compress: list[nn.Module] = []
        for _ in range(n_compress):
            compress += [nn.Linear(emb_dim, emb_dim), nn.PReLU()]
        self.compress = nn.Sequential(*compress)
        self.conv_first = conv3x3(3, n_feats)
        self.trunk = nn.ModuleList(
            RRDBSFT(n_feats, growth, emb_dim, emb_dim, kernel_size, reduction) for _ in range(n_blocks)
        )
        self.trunk_conv = conv3x3(n_feats, n_feats)
        self.upsampler = nn.Sequential(conv3x3(n_feats, 3 * scale * scale), nn.PixelShuffle(scale))

    def forward(self, lr: torch.Tensor, fea: torch.Tensor) -> torch.Tensor:
        check_images(lr, "CDSRNet")
        if fea.shape != (lr.shape[0], self.emb_dim):
            raise ValueError(f"CDSRNet: expected fea of shape ({lr.shape[0]}, {self.emb_dim}), got {tuple(fea.shape)}")
        emb = self.compress(fea)
        x = self.conv_first(lr)
        res = x
        for block in self.trunk:
            res = block(res, emb)
        return self.upsampler(x + self.trunk_conv(res))


class CDSR(ContrastiveBlindSR):
    """CDSR: MoCo-trained :class:`CDSREncoder` (LPE + CSC) + :class:`CDSRNet` (official ``BlindSR`` of ``CDSR.py``).

    Args:
        scale: SR factor (integer >= 1).
        n_feats: SR network channels (64).
        n_blocks: RRDB-SFT blocks (10).
        growth: RDB growth channels (32).
        kernel_size: conv / dynamic kernel size (3).
        reduction: FuseBlock channel-attention reduction (2).
        n_compress: layers of the embedding compressor (4).
        enc_feats: LPE base width c (64: branch widths 64, 128, 256).
        emb_dim: embedding size (256).
        codebook_size: CSC codebook entries L (1024).
        patch_size: LPE patch size (12); LR inputs must be at least this large.
        proj_dim: MoCo projection / key size (256).
        queue_size: MoCo queue K (8192).
        momentum: MoCo momentum m (0.999; the recipe: :func:`srlib.recipes.blind_sr.moco_momentum`).
        temperature: MoCo temperature T (0.07).
        queue_generator: optional generator for the queue's initial noise (default: the global RNG).

    Modules: ``sr_net`` (:class:`CDSRNet`), ``moco`` (:class:`MoCo` with ``encoder_q``, ``encoder_k``, ``queue``),
    built in the official order (SR network first). The SR network consumes the post-CSC ``fea'``. See
    :class:`~srlib.archs.dasr.ContrastiveBlindSR` for ``forward(lr)``, ``forward_train(lr_query, lr_key)``,
    ``forward_encoder``, ``contrastive_loss`` and ``freeze_encoder``.
    """

    def __init__(
        self,
        scale: int,
        n_feats: int = 64,
        n_blocks: int = 10,
        growth: int = 32,
        kernel_size: int = 3,
        reduction: int = 2,
        n_compress: int = 4,
        enc_feats: int = 64,
        emb_dim: int = 256,
        codebook_size: int = 1024,
        patch_size: int = 12,
        proj_dim: int = 256,
        queue_size: int = 8192,
        momentum: float = 0.999,
        temperature: float = 0.07,
        queue_generator: torch.Generator | None = None,
    ):
        super().__init__()
        self.scale = scale
        self.min_size = check_positive_int(patch_size, "patch_size")
        self.sr_net = CDSRNet(scale, n_feats, n_blocks, growth, emb_dim, kernel_size, reduction, n_compress)
        encoder = CDSREncoder(enc_feats, emb_dim, codebook_size, patch_size, proj_dim)
        self.moco = MoCo(encoder, proj_dim, queue_size, momentum, temperature, generator=queue_generator)

    def embed(self, lr: torch.Tensor) -> dict[str, torch.Tensor]:
        """Degradation embeddings of the query encoder (for the nearest-neighbour accuracy of CDSR's Table 1 and
        plots): ``fea`` (B, emb_dim) the LPE output before CSC, ``fea_csc`` (B, emb_dim) after CSC (what the SR
        network consumes), ``attn`` (B, L) the CSC attention, ``q`` (B, proj_dim) the unit-norm MoCo projection."""
        self._check(lr, "embed")
        return self.moco.encoder_q.embed(lr)
