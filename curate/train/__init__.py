"""The bundled minimal CLIP trainer."""
