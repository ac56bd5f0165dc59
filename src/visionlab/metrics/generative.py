"""FID and KID of generated images in a configurable feature space, offline.

torchmetrics computes both from an Inception network whose weights it downloads; here the
feature network is configurable: the shipped ``shapes_net`` (pretrained on shapes, so it
knows what a shape looks like), the backbone of any visionlab classifier checkpoint, or
torchmetrics' Inception when its weights are already on the machine. An FID in a feature
space other than Inception's ranks models of the same data, but it is not comparable with
published FIDs.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from visionlab.downloads import RemoteFile, torch_hub_dir
from visionlab.errors import UserError, first_line
from visionlab.metrics.prdc import prdc
from visionlab.nets.backbone import Backbone
from visionlab.nets.backbone_input import BackboneInput
from visionlab.nets.factory import create_backbone


class BackboneFeatures(nn.Module):
    """Pooled features of a frozen backbone for images in [0, 1], any size, 1 or 3 channels."""

    def __init__(self, backbone: Backbone) -> None:
        super().__init__()
        self.backbone = backbone.eval().requires_grad_(False)
        self.input = BackboneInput(backbone.data_config)
        self.num_features = int(backbone.num_features)

    def train(self, mode: bool = True) -> BackboneFeatures:
        """Always evaluation mode: the feature network is a fixed measuring instrument."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, num_features)`` average-pooled features of ``images`` ``(N, C, H, W)`` in [0, 1]."""
        return self.backbone(self.input(images.float()))


INCEPTION_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"  # torch-fidelity's file name
INCEPTION_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{INCEPTION_WEIGHTS}"


def inception_weights_path() -> Path:
    """Where torch-fidelity keeps (and looks for) its Inception weights: the torch hub cache."""
    return torch_hub_dir() / INCEPTION_WEIGHTS


def inception_file() -> RemoteFile:
    """The Inception weights ``model.fid_features=inception`` reads, as torch-fidelity downloads them."""
    def cached() -> Path | None:
        path = inception_weights_path()
        return path if path.is_file() else None

    def fetch() -> None:
        torch.hub.load_state_dict_from_url(INCEPTION_URL, progress=True, weights_only=True)

    return RemoteFile("Inception weights of model.fid_features=inception (torch-fidelity)", INCEPTION_URL,
                      torch_hub_dir(), cached, fetch)


class InceptionFeatures(nn.Module):
    """The 2048-d pool features of torchmetrics' FID Inception (torch-fidelity's port of the
    TensorFlow graph), the feature space of published FIDs, for images in [0, 1] (gray ones
    repeated to RGB). Built from a local weights file only: nothing is downloaded."""

    num_features = 2048

    def __init__(self, weights: Path) -> None:
        super().__init__()
        try:
            import torch_fidelity  # noqa: F401  (NoTrainInceptionV3 needs it)
            from torchmetrics.image.fid import NoTrainInceptionV3
        except ImportError as err:
            raise UserError("model.fid_features=inception needs torch-fidelity: pip install "
                            "'visionlab[fid]' (or use shapes_net or a classifier .ckpt)") from err
        try:
            torch.load(weights, map_location="cpu", weights_only=True)  # tensors only, before it is unpickled
        except Exception as err:
            raise UserError(f"{weights} is not a readable Inception weights file ({first_line(err)}): delete "
                            "it and let torch-fidelity download it again on a machine with internet") from err
        self.inception = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"],
                                            feature_extractor_weights_path=str(weights))

    def train(self, mode: bool = True) -> InceptionFeatures:
        """Always evaluation mode: the feature network is a fixed measuring instrument."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, 2048)`` features of ``images`` ``(N, C, H, W)`` in [0, 1] (resized to 299 px inside)."""
        images = images.float().clamp(0, 1).expand(-1, 3, -1, -1)
        return self.inception((images * 255).to(torch.uint8)).reshape(len(images), -1)


def check_feature_spec(spec: str) -> None:
    """A UserError for a ``model.fid_features`` that names no feature network (a run checks this
    before it prepares its data, which takes seconds)."""
    if spec in ("shapes_net", "inception") or (Path(spec).suffix == ".ckpt" and Path(spec).is_file()):
        return
    raise UserError(f"model.fid_features={spec!r}: use shapes_net (shipped, offline), the path of a "
                    "visionlab classifier .ckpt whose backbone knows your data, or inception (when its "
                    "weights are present)")


def feature_network(spec: str) -> nn.Module:
    """The feature network ``model.fid_features`` names: ``shapes_net``, a classifier checkpoint,
    or ``inception`` (torchmetrics' Inception, when its weights are in the torch hub cache)."""
    check_feature_spec(spec)
    if spec == "shapes_net":
        return BackboneFeatures(create_backbone("shapes_net", source="custom", pretrained=True))
    if spec == "inception":
        weights = inception_weights_path()
        if not weights.is_file():
            raise UserError(f"model.fid_features=inception needs the Inception weights at {weights}, and "
                            "this machine has none (they download only with internet: run `visionlab "
                            "prefetch model.fid_features=inception <the run's overrides>` once online); "
                            "offline use shapes_net or a visionlab classifier .ckpt")
        return InceptionFeatures(weights)
    state = torch.load(spec, map_location="cpu", weights_only=True)  # a .ckpt file, as checked
    info = state.get("hyper_parameters", {}).get("backbone")
    if not isinstance(info, dict) or "name" not in info:
        raise UserError(f"model.fid_features={spec} is not a visionlab classifier checkpoint")
    backbone = create_backbone(info["name"], source=info["source"], pretrained=False, weights=spec)
    return BackboneFeatures(backbone)


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """The Fréchet distance between Gaussians fitted to feature sets ``a`` and ``b`` ``(N, D)``:
    ``‖μa − μb‖² + Tr(Σa + Σb − 2 (Σa Σb)^½)``, FID's formula (in float64)."""
    a, b = a.double(), b.double()
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)
    root = torch.linalg.eigvals(cov_a @ cov_b).sqrt().real.sum()
    return float((a.mean(0) - b.mean(0)).square().sum() + cov_a.trace() + cov_b.trace() - 2 * root)


def class_fids(real: torch.Tensor, real_labels: torch.Tensor, fake: torch.Tensor, fake_labels: torch.Tensor,
               ) -> dict[int, float]:
    """Per class: the Fréchet distance between the real and the generated features of that class
    (classes with fewer than 2 images on either side are left out)."""
    scores = {}
    for c in torch.unique(real_labels).tolist():
        r, f = real[real_labels == c], fake[fake_labels == c]
        if len(r) > 1 and len(f) > 1:
            scores[int(c)] = frechet_distance(r, f)
    return scores


class GenerativeMetrics(nn.Module):
    """FID and KID between real and generated images, in one feature network's space.

    ``update(images, real)`` takes images in [-1, 1] (the generator's range), runs the feature
    network once and gives the features to FID and KID alike (torchmetrics would run it once for
    each) and back to the caller (the class metrics read them too). The KID subset size adapts
    to the number of samples seen, so small validation sets work. With ``keep_real`` the real
    images' features survive :meth:`reset`: a fixed real set (a validation split) is run through
    the feature network once per run, not at every evaluation (:attr:`has_real`).
    """

    def __init__(self, features: nn.Module, kid_subset_size: int = 100, keep_real: bool = False) -> None:
        super().__init__()
        self.features = features
        # FID and KID receive features: their own "network" passes them through.
        width = (int(features.num_features),)
        self.fid = FrechetInceptionDistance(feature=nn.Identity(), input_img_size=width,
                                            reset_real_features=not keep_real)
        self.kid_subset_size = kid_subset_size
        with warnings.catch_warnings():  # its note that features are kept in memory: a validation set's are
            warnings.filterwarnings("ignore", message=r".*will save all extracted features in buffer")
            self.kid = KernelInceptionDistance(feature=nn.Identity(), subset_size=kid_subset_size,
                                               reset_real_features=not keep_real)

    @property
    def has_real(self) -> bool:
        """Whether real features are held (kept from an earlier evaluation with ``keep_real``)."""
        return bool(self.kid.real_features)

    def extract(self, images: torch.Tensor) -> torch.Tensor:
        """The feature network's features of images in [-1, 1]."""
        return self.features((images.float() * 0.5 + 0.5).clamp(0, 1))

    def update(self, images: torch.Tensor, real: bool) -> torch.Tensor:
        """Add a batch of real or generated images in [-1, 1]; return their features."""
        features = self.extract(images)
        self.fid.update(features, real=real)
        self.kid.update(features, real=real)
        return features

    def compute(self) -> dict[str, float]:
        """``fid``, ``kid``, and ``precision``, ``recall``, ``density``, ``coverage``
        (:mod:`visionlab.metrics.prdc`, from the features KID keeps) over everything added since
        the last reset, and the numbers of images behind them (``real_samples``,
        ``generated_samples``: FID from a few hundred images is biased upwards and noisy)."""
        real, fake = torch.cat(self.kid.real_features), torch.cat(self.kid.fake_features)
        self.kid.subset_size = max(2, min(self.kid_subset_size, len(real), len(fake)))
        kid_mean, _ = self.kid.compute()
        return {"fid": float(self.fid.compute()), "kid": float(kid_mean), **prdc(real, fake),
                "real_samples": float(len(real)), "generated_samples": float(len(fake))}

    def class_fids(self, real_labels: torch.Tensor, fake_labels: torch.Tensor) -> dict[int, float]:
        """:func:`class_fids` of the features added so far, given the labels of the real images and
        the classes the generated ones were drawn for (both in the order they were added)."""
        return class_fids(torch.cat(self.kid.real_features), real_labels.cpu(),
                          torch.cat(self.kid.fake_features), fake_labels.cpu())

    def reset(self) -> None:
        """Forget the images added so far."""
        self.fid.reset()
        self.kid.reset()
