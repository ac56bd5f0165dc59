"""Any PIL image as the 8-bit RGB the models read, upright and its pixel values scaled from their
own range.

A photo a phone took upright is often stored sideways with an EXIF orientation tag that viewers
apply; Pillow does not, so a model saw it lying on its side (torchvision's and Keras's loaders do
the same). It is turned as the tag says, as the user sees it.

Pillow's ``convert("RGB")`` clips high-bit-depth pixels to 255 instead of scaling them: a 16-bit PNG
or TIFF (microscopy, medical and astronomy images are often stored so) became almost white, and a
model trained or run on it learned or predicted from nothing, silently. Here 16-bit pixels are
mapped from 0..65535, and floating-point ones from 0..1 when they lie there (the usual convention
for normalised images); palette, grey, CMYK and images with alpha go through Pillow's conversion
(alpha dropped, as torchvision's and Keras's loaders drop it).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # "I": 32-bit ints, how Pillow holds 16-bit PNGs
# How files become pixels here, in words: what was computed from images (cached features) under
# another decoding is stale. Change it with as_rgb.
DECODING = "EXIF orientation applied; 16-bit pixels / 257; float pixels in 0..1 x 255; then RGB"


def as_rgb(image: Image.Image) -> Image.Image:
    """``image`` upright (its EXIF orientation applied) as 8-bit RGB, high-bit-depth pixels scaled to
    0..255 (see the module docstring)."""
    image = ImageOps.exif_transpose(image)
    if image.mode in SIXTEEN_BIT:
        pixels = np.asarray(image, dtype=np.float64) / 257.0  # 65535 -> 255
        image = Image.fromarray(pixels.clip(0, 255).round().astype(np.uint8), "L")
    elif image.mode == "F":
        pixels = np.asarray(image, dtype=np.float64)
        if pixels.size and pixels.min() >= 0.0 and pixels.max() <= 1.0:
            pixels = pixels * 255.0
        image = Image.fromarray(pixels.clip(0, 255).round().astype(np.uint8), "L")
    return image.convert("RGB")  # a copy even of an RGB image: the file it was read from may close
