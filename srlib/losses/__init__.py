"""Training losses. CRL-SR's contrastive losses (our reconstruction of the lost equations, DESIGN.md) live in
:mod:`srlib.losses.contrastive`. Nothing is computed or loaded at import time."""

from srlib.losses.contrastive import (
    bidirectional_contrastive_loss,
    conditional_contrastive_loss,
    gather_locations,
    hr_reconstruction_loss,
    infonce_refinement_loss,
    patch_infonce,
    penalty_weights,
    sample_locations,
)

__all__ = [
    "sample_locations",
    "gather_locations",
    "patch_infonce",
    "bidirectional_contrastive_loss",
    "penalty_weights",
    "conditional_contrastive_loss",
    "infonce_refinement_loss",
    "hr_reconstruction_loss",
]
