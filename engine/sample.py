"""Sample digits the package draws itself, so the default model runs with no image and no network.

Each digit is a few pen strokes, drawn thick at 4x size and box-filtered down to 28x28: light
antialiased strokes on black inside the central 20x20 box, the way MNIST digits look.
"""

from __future__ import annotations

import math

from PIL import Image, ImageDraw

DEFAULT_DIGIT = 3


def _arc(cx: float, cy: float, rx: float, ry: float, start: float, stop: float, n: int = 24) -> list:
    """Points of an ellipse arc; angles in degrees, 0 = right, 90 = down (image coordinates)."""
    return [
        (
            cx + rx * math.cos(math.radians(start + (stop - start) * i / n)),
            cy + ry * math.sin(math.radians(start + (stop - start) * i / n)),
        )
        for i in range(n + 1)
    ]


# strokes in a unit box (x right, y down), each a polyline
STROKES: dict[int, list[list[tuple[float, float]]]] = {
    0: [_arc(0.5, 0.5, 0.3, 0.45, 0, 360, 40)],
    1: [[(0.35, 0.2), (0.55, 0.05), (0.55, 0.95)]],
    2: [_arc(0.5, 0.3, 0.3, 0.25, 200, 370) + [(0.2, 0.95), (0.85, 0.95)]],
    3: [_arc(0.48, 0.28, 0.3, 0.23, 200, 450), _arc(0.48, 0.72, 0.33, 0.24, 270, 520)],
    4: [[(0.65, 0.95), (0.65, 0.05), (0.15, 0.68), (0.9, 0.68)]],
    5: [[(0.8, 0.05), (0.3, 0.05), (0.25, 0.45)] + _arc(0.5, 0.66, 0.33, 0.3, 215, 500)],
    6: [[(0.72, 0.05), (0.5, 0.15), (0.3, 0.38)] + _arc(0.5, 0.7, 0.28, 0.25, 180, 540)],
    7: [[(0.15, 0.05), (0.85, 0.05), (0.4, 0.95)]],
    8: [_arc(0.5, 0.27, 0.25, 0.22, 0, 360), _arc(0.5, 0.72, 0.3, 0.24, 0, 360)],
    9: [_arc(0.5, 0.32, 0.28, 0.27, 0, 360), [(0.78, 0.32), (0.7, 0.95)]],
}


def sample_digit(digit: int = DEFAULT_DIGIT, size: int = 28) -> Image.Image:
    """A grayscale ('L') image of a handwritten-looking digit, white on black, MNIST style."""
    if digit not in STROKES:
        raise ValueError(f"digit must be 0..9, not {digit!r}")
    scale = 4
    big = size * scale
    box = 20 / 28 * big  # MNIST: the digit fits a 20x20 box centred in 28x28
    off = (big - box) / 2
    img = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(img)
    width = round(big * 0.1)
    for stroke in STROKES[digit]:
        pts = [(off + x * box, off + y * box) for x, y in stroke]
        draw.line(pts, fill=255, width=width, joint="curve")
        r = width / 2  # round pen ends
        for x, y in (pts[0], pts[-1]):
            draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
    return img.resize((size, size), Image.Resampling.BOX)
