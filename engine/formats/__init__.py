"""Model file formats: the .tflite reader (tflite.py) and the engine's own .npz format (npz.py)."""
