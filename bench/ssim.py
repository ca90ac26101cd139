#!/usr/bin/env python3
"""SSIM of variants against a reference made from the full picture.

    ssim.py REFERENCE.tif VARIANT.png [VARIANT.png ...]

REFERENCE is the whole picture decoded, converted to sRGB and turned upright
(bench/variants.sh makes it with vips); each VARIANT (already decoded to PNG)
is compared with REFERENCE resized to the variant's size with Pillow's
Lanczos3. SSIM is computed on luma (BT.601) with a 7x7 uniform window and
the usual constants (K1 = 0.01, K2 = 0.03, L = 255), as scikit-image does by
default. Prints one line per variant: its path and the SSIM.
"""
import sys

import numpy as np
from PIL import Image

Image.MAX_IMAGE_PIXELS = None


def luma(img):
    a = np.asarray(img.convert("RGB"), dtype=np.float64)
    return a[..., 0] * 0.299 + a[..., 1] * 0.587 + a[..., 2] * 0.114


def box(a, k=7):
    """Mean over k x k windows (valid part only), with summed-area tables."""
    s = np.cumsum(np.cumsum(np.pad(a, ((1, 0), (1, 0))), axis=0), axis=1)
    return (s[k:, k:] - s[:-k, k:] - s[k:, :-k] + s[:-k, :-k]) / (k * k)


def ssim(x, y):
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    n = 49
    mx, my = box(x), box(y)
    # Sample (co)variances, as scikit-image computes them.
    vx = (box(x * x) - mx * mx) * n / (n - 1)
    vy = (box(y * y) - my * my) * n / (n - 1)
    cxy = (box(x * y) - mx * my) * n / (n - 1)
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s.mean())


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    ref = Image.open(sys.argv[1]).convert("RGB")
    cache = {}
    for path in sys.argv[2:]:
        var = Image.open(path)
        size = var.size
        if size not in cache:
            cache[size] = luma(ref.resize(size, Image.LANCZOS))
        print(f"{path} {ssim(cache[size], luma(var)):.4f}")


if __name__ == "__main__":
    main()
