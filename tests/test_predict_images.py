"""cs_nets.data.images: how a file becomes (S, S, 3) uint8 pixels, and which files a folder gives."""

import os
import struct
import zlib

import numpy as np
import pytest

from cs_nets.data.images import MAX_PIXELS, from_cifar_rows, load_image, to_cifar_rows, walk_images
from cs_nets.errors import DataError

Image = pytest.importorskip("PIL.Image")


def png_header_only(path, width, height):
    """A PNG whose IHDR declares width x height 8-bit RGB, with a tiny (wrong) IDAT: header checks must refuse it."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16))
                     + chunk(b"IEND", b""))
    return path


def random_rgb(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def test_an_image_at_the_size_is_read_back_byte_for_byte(tmp_path):
    pixels = random_rgb((32, 32, 3))
    for suffix in ("png", "bmp", "tiff", "webp"):
        path = tmp_path / f"a.{suffix}"
        Image.fromarray(pixels).save(path, **({"lossless": True} if suffix == "webp" else {}))
        assert np.array_equal(load_image(path, 32), pixels), suffix


def test_cifar_rows_and_images_are_inverse_layouts():
    rows = random_rgb((5, 3072))
    images = from_cifar_rows(rows)
    assert images.shape == (5, 32, 32, 3)
    # a CIFAR row: 1024 red bytes, then green, then blue; row-major 32 x 32 each
    assert images[2, 4, 7, 1] == rows[2, 1024 + 4 * 32 + 7]
    assert np.array_equal(to_cifar_rows(images), rows)


def test_exif_orientation_is_applied(tmp_path):
    pixels = random_rgb((32, 32, 3), seed=1)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    path = tmp_path / "turned.png"
    Image.fromarray(pixels).save(path, exif=exif.tobytes())
    assert np.array_equal(load_image(path, 32), np.rot90(pixels, k=-1))


def test_grayscale_palette_and_16_bit_become_8_bit_rgb(tmp_path):
    gray = random_rgb((32, 32), seed=2)
    Image.fromarray(gray, "L").save(tmp_path / "gray.png")
    assert np.array_equal(load_image(tmp_path / "gray.png", 32), np.repeat(gray[..., None], 3, axis=2))

    deep = (gray.astype(np.uint16) << 8) | 0x5A  # 16-bit values: their high byte is the 8-bit value
    Image.fromarray(deep).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    assert np.array_equal(load_image(tmp_path / "deep.png", 32), np.repeat(gray[..., None], 3, axis=2))

    palette = Image.fromarray(random_rgb((32, 32, 3), seed=3)).quantize(16)
    palette.save(tmp_path / "palette.png")
    assert np.array_equal(load_image(tmp_path / "palette.png", 32), np.asarray(palette.convert("RGB")))


def test_transparency_is_composited_onto_white(tmp_path):
    rgba = np.zeros((32, 32, 4), dtype=np.uint8)
    rgba[..., 0] = 255  # red
    rgba[:, :16, 3] = 0  # left half transparent: white
    rgba[:, 16:, 3] = 128  # right half half-transparent red over white
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    out = load_image(tmp_path / "alpha.png", 32).astype(int)
    assert np.all(out[:, :16] == 255)
    expected = np.array([255, 255 * 127 / 255, 255 * 127 / 255])
    assert np.abs(out[:, 16:] - expected).max() <= 1

    palette = Image.new("P", (32, 32), 1)
    palette.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    palette.save(tmp_path / "ptrans.png", transparency=1)
    assert np.all(load_image(tmp_path / "ptrans.png", 32) == 255)


def test_a_non_square_image_is_centre_cropped_then_resized_with_lanczos(tmp_path):
    pixels = random_rgb((40, 64, 3), seed=4)  # 64 wide, 40 high: the square is columns 12..51
    Image.fromarray(pixels).save(tmp_path / "wide.png")
    expected = Image.fromarray(pixels[:, 12:52]).resize((16, 16), Image.Resampling.LANCZOS)
    assert np.array_equal(load_image(tmp_path / "wide.png", 16), np.asarray(expected))
    tall = Image.fromarray(pixels.transpose(1, 0, 2).copy())  # 40 wide, 64 high: rows 12..51
    tall.save(tmp_path / "tall.png")
    expected = Image.fromarray(np.asarray(tall)[12:52]).resize((16, 16), Image.Resampling.LANCZOS)
    assert np.array_equal(load_image(tmp_path / "tall.png", 16), np.asarray(expected))
    small = load_image(tmp_path / "wide.png", 100)  # upsampled too
    assert small.shape == (100, 100, 3) and small.dtype == np.uint8


def test_a_large_jpeg_is_decoded_close_to_a_full_decode(tmp_path):
    yy, xx = np.mgrid[0:512, 0:512]
    smooth = np.stack([xx // 2, yy // 2, (xx + yy) // 4], axis=2).astype(np.uint8)
    Image.fromarray(smooth).save(tmp_path / "big.jpg", quality=95)
    full = np.asarray(Image.open(tmp_path / "big.jpg").convert("RGB").resize((32, 32), Image.Resampling.LANCZOS))
    fast = load_image(tmp_path / "big.jpg", 32)  # DCT-scaled decode: not bit-equal, but the same picture
    assert np.abs(fast.astype(int) - full.astype(int)).mean() < 2


@pytest.mark.parametrize("case", ["empty", "text", "zip", "truncated", "huge_header"])
def test_a_file_that_is_not_a_readable_image_is_one_data_error(tmp_path, case):
    path = tmp_path / "bad.png"
    if case == "empty":
        path.write_bytes(b"")
        reason = "empty"
    elif case == "text":
        path.write_text("hello, I am not a picture\n")
        reason = "not an image"
    elif case == "zip":
        import zipfile

        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("x.txt", "zip, renamed .png")
        reason = "not an image"
    elif case == "truncated":
        Image.fromarray(random_rgb((64, 64, 3))).save(path)
        path.write_bytes(path.read_bytes()[:300])
        reason = "cannot decode"
    else:
        png_header_only(path, 60_000, 60_000)
        reason = "decompression bomb"
    with pytest.raises(DataError) as err:
        load_image(path, 32)
    message = str(err.value)
    assert reason in message and "\n" not in message


def test_a_header_over_the_pixel_limit_is_refused_before_decoding(tmp_path):
    side = int(MAX_PIXELS ** 0.5) + 1  # just over the limit, far under Pillow's own 2x bomb error
    png_header_only(tmp_path / "big.png", side, side)
    with pytest.raises(DataError, match="decompression bomb"):
        load_image(tmp_path / "big.png", 32)


def test_pillows_bomb_warning_is_an_error(tmp_path, monkeypatch):
    import cs_nets.data.images as images

    Image.fromarray(random_rgb((40, 40, 3))).save(tmp_path / "a.png")
    monkeypatch.setattr(images, "MAX_PIXELS", 10**9)  # our limit out of the way: Pillow's warning decides
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 1,600 pixels > 1,000: a warning (under 2x)
    with pytest.raises(DataError, match="decompression bomb"):
        load_image(tmp_path / "a.png", 32)


def test_walk_lists_image_files_in_name_order_and_recurses_only_when_asked(tmp_path):
    for name in ("b.png", "a.JPG", "c.txt", ".hidden.png", "sub/z.png", "sub/deeper/y.bmp", "a0/x.gif"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    flat = [p.relative_to(tmp_path).as_posix() for p, e in walk_images([tmp_path])]
    assert flat == ["a.JPG", "b.png"]
    deep = [p.relative_to(tmp_path).as_posix() for p, e in walk_images([tmp_path], recursive=True)]
    assert deep == ["a.JPG", "a0/x.gif", "b.png", "sub/deeper/y.bmp", "sub/z.png"]
    named = walk_images([tmp_path / "c.txt", tmp_path / "missing.png"])  # named files are read whatever they are
    assert named[0] == (tmp_path / "c.txt", None) and "no such file" in named[1][1]


def test_walk_reports_a_directory_loop_once_and_lists_every_file_once(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.png").write_bytes(b"x")
    os.symlink(tmp_path, tmp_path / "sub" / "loop")
    os.symlink(tmp_path / "sub", tmp_path / "again")  # the same folder by another name: listed once
    found = walk_images([tmp_path], recursive=True)
    files = [p for p, e in found if e is None]
    loops = [(p, e) for p, e in found if e is not None]
    assert files == [tmp_path / "again" / "a.png"]
    assert len(loops) == 1 and "loop" in loops[0][1] and loops[0][0].name == "loop"


def test_a_file_that_cannot_be_opened_is_one_data_error(tmp_path):
    """The branch unreadable permissions take (tests run as root, who reads anything): open() fails."""
    with pytest.raises(DataError, match=r"^cannot read it \(No such file or directory\)$"):
        load_image(tmp_path / "vanished.png", 32)  # listed, then removed before it was read
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(DataError, match=r"^cannot read it \(Is a directory\)$"):
        load_image(tmp_path / "dir.png", 32)
