"""Image files -> model-ready uint8 pixels, the one documented way (``csnets predict`` and folder datasets).

Pillow is optional (``pip install 'cs_nets[images]'``) and imported only inside
functions, so ``import cs_nets`` works without it and the CLI can say what to install.

The conversion, in order:
1. the file is opened (header only) and refused if it declares more than
   ``MAX_PIXELS`` pixels; Pillow's ``DecompressionBombWarning`` is an error too;
2. the first frame is decoded (a JPEG much larger than the target is decoded at a
   reduced DCT scale, still at least the target size: ``Image.draft``);
3. EXIF orientation is applied (``ImageOps.exif_transpose``);
4. the mode becomes 8-bit RGB: grayscale and palette are expanded, transparency
   (RGBA, LA, a palette's transparent colour) is composited onto white, 16-bit
   values keep their high byte (v >> 8), float images are clipped to 0..255;
5. a non-square image is centre-cropped to a square (the shorter side), which is
   resized to size x size with Lanczos (``Image.LANCZOS``, antialiased). An image
   already size x size is left exactly as decoded, so a PNG written from a CIFAR
   row gives back that row's bytes.

Shapes: one image is (size, size, 3) uint8 in height-width-channel order (the
image-library order); ``to_cifar_rows`` turns (N, S, S, 3) into CIFAR's
channel-height-width rows (N, 3 S S).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from cs_nets.errors import CsNetsError, DataError

MISSING_MESSAGE = "reading images needs Pillow: pip install 'cs_nets[images]'"
MAX_PIXELS = 1 << 26  # 67 million pixels (e.g. 8192 x 8192): about 270 MB decoded as RGBA
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")  # what a folder walk reads


def require_pillow():
    """``PIL.Image``, or CsNetsError naming the extra to install."""
    try:
        from PIL import Image
    except ImportError as err:
        raise CsNetsError(MISSING_MESSAGE) from err
    return Image


def load_image(source, size: int) -> np.ndarray:
    """One image file (a path or binary file object) or PIL image -> (size, size, 3) uint8, as the module says.

    Raises DataError (one line, without the file name: the caller names the file)
    for anything that is not a readable image of at most MAX_PIXELS pixels.
    """
    Image = require_pillow()
    if isinstance(source, Image.Image):
        _check_pixels(source)
        return _convert(source, size)
    if isinstance(source, (str, os.PathLike)):
        try:
            with open(source, "rb") as f:
                if os.fstat(f.fileno()).st_size == 0:
                    raise DataError("an empty file")
                return load_image(f, size)
        except OSError as err:
            raise DataError(f"cannot read it ({err.strerror or err})") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as im:
                _check_pixels(im)
                if im.format == "JPEG" and min(im.size) >= 2 * size:
                    im.draft("RGB", (size, size))  # DCT scaling: decodes at >= size, 2-8x faster
                return _convert(im, size)
    except DataError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise DataError(f"refused as a decompression bomb ({err})") from None
    except Image.UnidentifiedImageError:
        raise DataError("not an image Pillow can read") from None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError, TypeError, IndexError, KeyError) as err:
        # Pillow's decoders raise all of these on corrupt data (SyntaxError: a broken PNG chunk)
        reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
        raise DataError(f"cannot decode it ({type(err).__name__}: {reason})"[:240]) from None


def _check_pixels(im) -> None:
    width, height = im.size
    if width < 1 or height < 1:
        raise DataError(f"it is {width}x{height} pixels: empty")
    if width * height > MAX_PIXELS:
        raise DataError(f"it declares {width}x{height} pixels, more than the {MAX_PIXELS:,} read: refused "
                        f"(a decompression bomb, or a picture to downscale first)")


def _convert(im, size: int) -> np.ndarray:
    from PIL import ImageOps

    im = ImageOps.exif_transpose(im)  # a copy only when the EXIF orientation says to turn it
    im = to_rgb(im)
    width, height = im.size
    if (width, height) != (size, size):
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        if side != max(width, height):  # crop first: resize(box=...) would also read pixels outside the square
            im = im.crop((left, top, left + side, top + side))
        im = im.resize((size, size), resample=_lanczos())
    pixels = np.asarray(im, dtype=np.uint8)
    if pixels.shape != (size, size, 3):  # cannot happen for an RGB image; guards the contract
        raise DataError(f"decoded to shape {pixels.shape}, expected ({size}, {size}, 3)")
    return pixels


def _lanczos():
    from PIL import Image

    return getattr(Image, "Resampling", Image).LANCZOS  # Image.Resampling: Pillow >= 9.1


def to_rgb(im):
    """A PIL image of any mode -> an 8-bit RGB PIL image (transparency onto white, 16 bits -> high byte)."""
    from PIL import Image

    mode = im.mode
    if mode == "RGB":
        return im
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        mode = im.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode.startswith("I;16") or mode == "I":
        values = np.asarray(im).astype(np.int64)  # I;16 (16-bit PNG/TIFF) or I (32-bit, 16-bit data)
        gray = (np.clip(values, 0, 65535) >> 8).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    if mode == "F":
        gray = np.clip(np.rint(np.asarray(im, dtype=np.float32)), 0, 255).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    return im.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV, ...


def to_cifar_rows(images: np.ndarray) -> np.ndarray:
    """(N, S, S, 3) uint8 height-width-channel -> (N, 3 S S) uint8 CIFAR rows (all red, all green, all blue)."""
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2)).reshape(len(images), -1)


def from_cifar_rows(rows: np.ndarray, size: int = 32) -> np.ndarray:
    """(N, 3 S S) uint8 CIFAR rows -> (N, S, S, 3) uint8 height-width-channel (what an image file holds)."""
    return rows.reshape(len(rows), 3, size, size).transpose(0, 2, 3, 1)


# ------------------------------------------------------------------------- finding files


def walk_images(paths, recursive: bool = False):
    """Expand files and folders into the files to read, in order -> list of (path, error or None).

    A named file is always read (whatever its suffix); a folder contributes its
    files with an image suffix (IMAGE_SUFFIXES, any case), sorted by name, hidden
    ones (.name) skipped, and with ``recursive`` its subfolders too (sorted,
    symlinks followed, each real folder once: a loop back to a folder being walked
    is reported as an error entry, not followed). A folder that cannot be listed,
    or a path that does not exist, is an entry with its error.
    """
    found: list[tuple[Path, str | None]] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            _walk(path, recursive, found, active=set(), seen=set())
        elif path.is_file():
            found.append((path, None))
        elif path.exists():
            found.append((path, "not a regular file"))  # a FIFO or device would block or never end
        else:
            found.append((path, "no such file or directory"))
    return found


def _walk(folder: Path, recursive: bool, found: list, active: set, seen: set) -> None:
    try:
        st = folder.stat()
        key = (st.st_dev, st.st_ino)
        if key in active:
            found.append((folder, "a directory loop (a link back to a folder being walked): not followed"))
            return
        if key in seen:  # reached again through another link: its files are already listed
            return
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as err:
        found.append((folder, f"cannot list it ({err.strerror or err})"))
        return
    active.add(key)
    seen.add(key)
    for entry in entries:  # by name, a subfolder's files where its name sorts
        if entry.name.startswith("."):
            continue
        path = Path(entry.path)
        try:
            is_dir, is_file = entry.is_dir(), entry.is_file()  # both follow symlinks
        except OSError:
            is_dir, is_file = False, False
        if is_dir:
            if recursive:
                _walk(path, recursive, found, active, seen)
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            # a broken link is listed: reading it names the problem
            found.append((path, None if is_file or not path.exists() else "not a regular file"))
    active.discard(key)
