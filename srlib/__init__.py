"""srlib: the library behind the notebooks of the contrastive-learning SR companion (CRL-SR, PCL-SR, CDSR/DASR).

Modules (import what you need; importing ``srlib`` itself loads nothing):

* :mod:`srlib.degradation`: blur / MATLAB bicubic / noise / spatially variant degradations, test presets.
* :mod:`srlib.data`: image loading, the embedded and standard test sets, patch sampling, the cached test LR.
* :mod:`srlib.metrics`: PSNR/SSIM on Y, LPIPS (real backbone, offline), NIQE.
* :mod:`srlib.evaluate`: upscaler x set x degradation -> per-image metrics; protocol tables.
* :mod:`srlib.tables`, :mod:`srlib.reference`: our numbers beside the papers' (transcribed once, as data).
* :mod:`srlib.profiles`, :mod:`srlib.pipeline`, :mod:`srlib.cli`: run sizes, the papermill runner, the CLI.
* :mod:`srlib.viz`, :mod:`srlib.widgets`: figures and ipywidgets used by the notebooks.
"""
