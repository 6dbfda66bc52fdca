"""open_clip's inference preprocessing, step for step, with PIL and torch (no torchvision).

open_clip (transform.py, `image_transform(..., is_train=False)`, resize_mode "shortest") runs torchvision's
Resize(size, BICUBIC) on the PIL image in its own mode (short side to `size`, long side truncated), a
CenterCrop(size) with torchvision's rounding, then convert("RGB"), to_tensor (/255) and Normalize. A model's
scores are only comparable with published thresholds when its input pixels are these.

The CPU-heavy part (decode, resize, crop) returns uint8 HWC arrays and runs in worker threads; `normalize`
turns a batch of them into model input on the model's device, where the division is cheap.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)  # open_clip.constants.OPENAI_DATASET_MEAN
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class ImageTransform:
    size: int = 224
    mean: tuple[float, float, float] = OPENAI_MEAN
    std: tuple[float, float, float] = OPENAI_STD

    def pixels(self, image: Image.Image) -> np.ndarray:
        """(size, size, 3) uint8: bicubic resize of the short side, centre crop, RGB."""
        w, h = image.size
        short, long = (w, h) if w <= h else (h, w)
        if short != self.size:
            new_long = int(self.size * long / short)
            new = (self.size, new_long) if w <= h else (new_long, self.size)
            image = image.resize(new, Image.Resampling.BICUBIC)
            w, h = new
        top, left = int(round((h - self.size) / 2.0)), int(round((w - self.size) / 2.0))
        image = image.crop((left, top, left + self.size, top + self.size))
        return np.array(image.convert("RGB"))  # a writable copy: torch refuses read-only buffers

    def pixels_from_bytes(self, data: bytes) -> np.ndarray:
        """Decode encoded image bytes and transform them; raises curate.annotate.decode.DECODE_ERRORS."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                image.load()
                return self.pixels(image)

    def normalize(
        self,
        batch: np.ndarray | torch.Tensor,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """(B, H, W, 3) uint8 -> (B, 3, H, W) model input: /255, then (x - mean) / std in fp32 (open_clip)."""
        x = torch.as_tensor(batch).to(device, non_blocking=True).permute(0, 3, 1, 2).float().div(255)
        mean = torch.tensor(self.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, 3, 1, 1)
        return x.sub(mean).div(std).to(dtype)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        """One PIL image -> (3, size, size) fp32, what open_clip's preprocess returns."""
        return self.normalize(self.pixels(image)[None])[0]
