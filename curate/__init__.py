"""curate: build web-scale image-text datasets and train CLIP on them."""

__version__ = "0.1.0"
