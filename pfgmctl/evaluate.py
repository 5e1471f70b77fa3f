"""FD-digits (a Fréchet distance on a small digits classifier's features) and the optional FID path.

"FD-digits" is not FID: the feature net is an MLP trained in about a second on scikit-learn's 8×8
digits, deterministically (fixed generator, full-batch Adam), and cached under the user cache dir.
FID goes through torch-fidelity (the `fid` extra) with a local Inception weights file; nothing is
ever downloaded. torch-fidelity imports torchvision, which does not import beside the CPU torch
2.13 wheel, so the extra is for machines with a matching pair, e.g. on a GPU machine:
`pip install torch==2.14.1 torchvision==0.29.1 -e ".[fid]"`, then copy
weights-inception-2015-12-05-6726825d.pth there and pass `--inception-weights PATH`
(or set PFGMCTL_INCEPTION_WEIGHTS).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import torch
from torch import Tensor, nn

from pfgmctl.errors import PfgmctlError
from pfgmctl.metrics import frechet_from_features

CLASSIFIER_VERSION = 2
FEATURES = 64
INCEPTION_ENV = "PFGMCTL_INCEPTION_WEIGHTS"


class DigitsClassifier(nn.Module):
    """64 → 128 → FEATURES → 10 MLP on 8×8 digits in [−1, 1]; `features` is the penultimate layer."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Flatten(), nn.Linear(64, 128), nn.SiLU(), nn.Linear(128, FEATURES), nn.SiLU()
        )
        self.head = nn.Linear(FEATURES, 10)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate activations [n, FEATURES]."""
        return self.body(x.reshape(-1, 64).float())

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def _init(model: nn.Module, gen: torch.Generator) -> None:
    """Re-initialise every Linear from `gen` (no global RNG): N(0, 1/fan_in) weights, zero biases."""
    for m in model.modules():
        if isinstance(m, nn.Linear):
            with torch.no_grad():
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) / m.in_features**0.5)
                m.bias.zero_()


@torch.enable_grad()
def train_classifier(x: Tensor, labels: Tensor, *, steps: int = 100, seed: int = 0) -> nn.Module:
    """Full-batch Adam with weight decay on (x, labels); deterministic for a fixed seed."""
    gen = torch.Generator().manual_seed(seed)
    model = DigitsClassifier()
    _init(model, gen)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-3)
    for _ in range(steps):
        loss = nn.functional.cross_entropy(model(x), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()


def cache_dir() -> Path:
    """platformdirs' user cache dir for pfgmctl (respects XDG_CACHE_HOME)."""
    from platformdirs import user_cache_path

    return user_cache_path("pfgmctl", appauthor=False)


def classifier_path() -> Path:
    """Where the cached classifier weights live."""
    return cache_dir() / f"digits-classifier-v{CLASSIFIER_VERSION}.safetensors"


def digits_split() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(x_train, y_train, x_test, y_test): the digits data set's own holdout split (10 %)."""
    from pfgmctl.data import split_holdout
    from pfgmctl.data.digits import load_digits

    x, y = load_digits()
    order = torch.arange(len(x))
    i_train, i_test = split_holdout(order, 0.1)
    return x[i_train], y[i_train], x[i_test], y[i_test]


def digits_classifier() -> DigitsClassifier:
    """The cached classifier, trained (about a second) and saved on first use."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, save_file

    path = classifier_path()
    model = DigitsClassifier()
    if path.is_file():
        try:
            model.load_state_dict(load_file(str(path)))
            return model.eval()
        except (RuntimeError, OSError, KeyError, SafetensorError):
            pass  # a corrupt or stale cache file is rebuilt below
    x, y, _, _ = digits_split()
    trained = train_classifier(x, y)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file({k: v.contiguous() for k, v in trained.state_dict().items()}, str(tmp))
    tmp.replace(path)
    model.load_state_dict(trained.state_dict())
    return model.eval()


def _check_digits_shape(x: Tensor, what: str) -> None:
    if x[0].numel() != 64:
        raise PfgmctlError(
            f"FD-digits needs 8×8 digit images, but {what} rows have {x[0].numel()} values"
        )


@torch.no_grad()
def fd_digits(x: Tensor, ref: Tensor) -> float:
    """FD-digits: Fréchet distance between classifier features of samples and reference."""
    _check_digits_shape(x, "sample")
    _check_digits_shape(ref, "reference")
    net = digits_classifier()
    return frechet_from_features(net.features(x.cpu()), net.features(ref.cpu()))


@torch.no_grad()
def digits_class_stats(x: Tensor) -> dict[str, float]:
    """Mode coverage (classes predicted at least once), class-histogram entropy (nats), mean confidence."""
    _check_digits_shape(x, "sample")
    probs = digits_classifier()(x.cpu()).softmax(dim=1)
    hist = torch.bincount(probs.argmax(1), minlength=10).double() / len(x)
    nz = hist[hist > 0]
    return {
        "classes": float((hist > 0).sum()),
        "entropy": float(-(nz * nz.log()).sum()),
        "confidence": float(probs.max(1).values.mean()),
    }


def inception_weights(path: Path | None) -> Path:
    """The Inception weights file from --inception-weights or $PFGMCTL_INCEPTION_WEIGHTS, checked."""
    if importlib.util.find_spec("torch_fidelity") is None:
        raise PfgmctlError(
            "FID needs the optional 'fid' extra (torch-fidelity + a torchvision matching your torch): "
            "pip install 'pfgmctl[fid]'; or use --metric fd_digits/swd/kid, which need no download"
        )
    if path is None and os.environ.get(INCEPTION_ENV):
        path = Path(os.environ[INCEPTION_ENV])
    if path is None:
        raise PfgmctlError(
            f"FID needs local Inception weights (pfgmctl never downloads them): pass "
            f"--inception-weights PATH or set {INCEPTION_ENV}=PATH "
            "(weights-inception-2015-12-05-6726825d.pth)"
        )
    if not path.is_file():
        raise PfgmctlError(f"--inception-weights {path}: no such file")
    return path


def _as_uint8_rgb(x: Tensor) -> Tensor:
    """Samples in [−1, 1], [n, C, H, W] → uint8 [n, 3, H, W] (grey repeated to 3 channels)."""
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise PfgmctlError(
            f"FID needs images [n, 1|3, H, W], got rows of shape {tuple(x.shape[1:])}"
        )
    img = ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return img.expand(-1, 3, -1, -1) if img.shape[1] == 1 else img


def fid(x: Tensor, ref: Tensor, *, weights: Path | None = None) -> dict[str, float]:
    """FID (and KID) through torch-fidelity on the CPU with local weights; never downloads."""
    path = inception_weights(weights)
    torch_fidelity = importlib.import_module("torch_fidelity")  # the optional extra, checked above

    class _Images(torch.utils.data.Dataset[Tensor]):
        def __init__(self, imgs: Tensor) -> None:
            self.imgs = imgs

        def __len__(self) -> int:
            return len(self.imgs)

        def __getitem__(self, i: int) -> Tensor:
            return self.imgs[i]

    out = torch_fidelity.calculate_metrics(
        input1=_Images(_as_uint8_rgb(x)),
        input2=_Images(_as_uint8_rgb(ref)),
        cuda=torch.cuda.is_available(),
        fid=True,
        kid=True,
        kid_subset_size=min(1000, len(x), len(ref)),
        feature_extractor_weights_path=str(path),
        datasets_download=False,
        cache=False,
        verbose=False,
    )
    return {
        "fid": float(out["frechet_inception_distance"]),
        "kid": float(out["kernel_inception_distance_mean"]),
    }
