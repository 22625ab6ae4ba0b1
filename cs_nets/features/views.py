"""Views of an image for test-time augmentation: the image mirrored left-right, moved a few pixels, or both.

A model scored on several views of each image and their scores averaged is a
little more accurate than on the image alone (``data.hflip_average``,
``data.shift_average``). A ``View`` names one: the image, left-right mirrored when
``mirrored``, then moved ``dy`` pixels down and ``dx`` right (negative: up, left),
the rows and columns it uncovers filled with copies of the nearest edge pixels.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from cs_nets.errors import ArgumentError


class View(NamedTuple):
    dy: int = 0
    dx: int = 0
    mirrored: bool = False

    @property
    def shifted(self) -> bool:
        return bool(self.dy or self.dx)


ORIGINAL = View()
MIRROR = View(mirrored=True)


def averaged_views(shift: int = 0, mirrors: bool = False) -> list[View]:
    """The views averaged at test time, the image first: then its mirror (`mirrors`), then the
    image moved `shift` pixels right, left, down and up (each followed by its mirror's view)."""
    moves = [(0, 0)] + ([(0, shift), (0, -shift), (shift, 0), (-shift, 0)] if shift else [])
    return [View(dy, dx, m) for dy, dx in moves for m in ((False, True) if mirrors else (False,))]


def view_images(images: np.ndarray, view: View) -> np.ndarray:
    """images (n, 3, S, S) -> the same images as `view` shows them (n, 3, S, S).

    The image itself and its mirror are views of `images` (no copy); a moved view is a new array.
    """
    side = images.shape[-1]
    if max(abs(view.dy), abs(view.dx)) >= side:
        raise ArgumentError(f"view {view}: a move of {max(abs(view.dy), abs(view.dx))} pixels leaves nothing "
                            f"of a {side}x{side} image")
    source = images[..., ::-1] if view.mirrored else images
    if not view.shifted:
        return source
    # Output row y shows source row clip(y - dy): the edge rows repeat where the image moved away.
    rows = np.clip(np.arange(side) - view.dy, 0, side - 1)
    columns = np.clip(np.arange(side) - view.dx, 0, side - 1)
    return source[:, :, rows[:, None], columns[None, :]]
