"""Training losses; nothing is computed or loaded at import time.

* :mod:`srlib.losses.contrastive`: CRL-SR's contrastive losses (our reconstruction of the lost equations, DESIGN.md).
* :mod:`srlib.losses.pcl`: PCL-SR's losses (similarity, InfoNCE per positive with gradients and as released, the dual
  contrastive discriminator loss).
"""

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
from srlib.losses.pcl import dual_contrastive_d_loss, mean_cosine_similarity, pcl_infonce, pcl_loss

__all__ = [
    "sample_locations",
    "gather_locations",
    "patch_infonce",
    "bidirectional_contrastive_loss",
    "penalty_weights",
    "conditional_contrastive_loss",
    "infonce_refinement_loss",
    "hr_reconstruction_loss",
    "mean_cosine_similarity",
    "pcl_infonce",
    "pcl_loss",
    "dual_contrastive_d_loss",
]
