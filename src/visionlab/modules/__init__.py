"""LightningModules: the classifier and the adversarial family (GAN, LAPGAN, SRGAN, inpainting).

Importing the package registers every built-in model kind (:mod:`visionlab.modules.base`).
"""

from visionlab.modules import classifier, gan, inpaint, lapgan, srgan  # noqa: F401  (register their kinds)
