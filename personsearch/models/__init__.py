"""Networks: backbones with named stages, the C4 person detector, the pyramid re-id network,
their losses, one model registry, pretrained-weight resolution and the fast inference path."""

from personsearch.models.backbones import FeatureBackbone, build_backbone
from personsearch.models.detector import DetectorConfig, PersonDetector, build_detector
from personsearch.models.fast import autocast_for, prepare_for_inference
from personsearch.models.losses import cross_level_alignment_loss, identity_losses, reid_loss
from personsearch.models.registry import create_model, list_models, list_pretrained, register_model
from personsearch.models.reid import PyramidReID, ReIDConfig, build_reid
from personsearch.models.weights import WEIGHTS, WeightSpec, resolve_weights

__all__ = [
    "WEIGHTS",
    "DetectorConfig",
    "FeatureBackbone",
    "PersonDetector",
    "PyramidReID",
    "ReIDConfig",
    "WeightSpec",
    "autocast_for",
    "build_backbone",
    "build_detector",
    "build_reid",
    "create_model",
    "cross_level_alignment_loss",
    "identity_losses",
    "list_models",
    "list_pretrained",
    "prepare_for_inference",
    "register_model",
    "reid_loss",
    "resolve_weights",
]
