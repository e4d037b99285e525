"""Reading image files of every common mode, and the reasons given for files that cannot be read."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from resnetlab.data.images import BadImageError, image_to_array, load_image, resize_for_model


def _pattern(size=(12, 8)):
    """An asymmetric grayscale pattern (width 12, height 8), so rotations and flips show."""
    array = np.zeros((size[1], size[0]), dtype=np.uint8)
    array[1:3, 1:9] = 200
    array[5, 10] = 255
    return array


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "WEBP", "TIFF"])
def test_lossless_formats_read_exactly(tmp_path, fmt):
    array = _pattern()
    path = tmp_path / f"img.{fmt.lower()}"
    save_kwargs = {"lossless": True} if fmt == "WEBP" else {}
    Image.fromarray(array, "L").convert("RGB").save(path, fmt, **save_kwargs)
    assert np.array_equal(np.asarray(load_image(path, channels=1)), array)
    assert np.asarray(load_image(path, channels=3)).shape == (8, 12, 3)


def test_jpeg_reads_close(tmp_path):
    array = _pattern()
    Image.fromarray(array, "L").save(tmp_path / "a.jpg", quality=95)
    assert np.abs(np.asarray(load_image(tmp_path / "a.jpg", 1)).astype(int) - array).mean() < 6


def test_rgba_and_la_are_composited_on_white(tmp_path):
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)  # black everywhere, opaque only on the top row
    rgba[0, :, 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    gray = np.asarray(load_image(tmp_path / "a.png", channels=1))
    assert (gray[0] == 0).all() and (gray[1:] == 255).all()
    Image.fromarray(rgba, "RGBA").convert("LA").save(tmp_path / "la.png")
    assert np.array_equal(np.asarray(load_image(tmp_path / "la.png", channels=1)), gray)


def test_palette_with_and_without_transparency(tmp_path):
    rgb = np.zeros((4, 4, 3), dtype=np.uint8)
    rgb[:2] = (255, 0, 0)
    image = Image.fromarray(rgb, "RGB").convert("P")
    image.save(tmp_path / "p.png")
    assert np.array_equal(np.asarray(load_image(tmp_path / "p.png")), rgb)
    index_black = image.getpixel((0, 3))
    image.info["transparency"] = index_black
    image.save(tmp_path / "pt.png", transparency=index_black)
    out = np.asarray(load_image(tmp_path / "pt.png"))
    assert (out[:2] == (255, 0, 0)).all() and (out[2:] == 255).all()  # transparent black -> white


def test_16_bit_grayscale_is_scaled_not_clipped(tmp_path):
    array = np.array([[0, 32768, 65535]], dtype=np.uint16)
    Image.fromarray(array).save(tmp_path / "deep.png")
    assert np.asarray(load_image(tmp_path / "deep.png", 1)).tolist() == [[0, 128, 255]]


def test_cmyk_jpeg(tmp_path):
    Image.new("CMYK", (4, 4), (0, 255, 255, 0)).save(tmp_path / "c.jpg")  # pure red in CMYK
    red = np.asarray(load_image(tmp_path / "c.jpg"))
    assert red[..., 0].min() > 200 and red[..., 1:].max() < 60


@pytest.mark.parametrize("orientation, undo", [(6, Image.Transpose.ROTATE_270), (8, Image.Transpose.ROTATE_90),
                                               (3, Image.Transpose.ROTATE_180)])
def test_exif_orientation_is_applied(tmp_path, orientation, undo):
    upright = Image.fromarray(_pattern(), "L")
    stored = upright.transpose({6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270,
                                3: Image.Transpose.ROTATE_180}[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(tmp_path / "r.png", exif=exif)
    assert np.array_equal(np.asarray(load_image(tmp_path / "r.png", 1)), _pattern())


def test_bad_files_name_file_and_reason(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("not an image at all")
    Image.fromarray(_pattern(), "L").save(tmp_path / "ok.png")
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    cases = {"empty.png": "empty file", "text.jpg": "not an image", "cut.png": "truncated or corrupt",
             "missing.png": "no such file"}
    for name, reason in cases.items():
        with pytest.raises(BadImageError, match=reason) as err:
            load_image(tmp_path / name)
        assert name in str(err.value)


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    import resnetlab.data.images as images

    Image.new("L", (100, 100)).save(tmp_path / "big.png")
    monkeypatch.setattr(images, "MAX_PIXELS", 5000)
    with pytest.raises(BadImageError, match="exceeds the limit"):
        load_image(tmp_path / "big.png")


def test_resize_straight_and_center_crop():
    image = Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8), "L")
    assert resize_for_model(image, (4, 4), "box").size == (4, 4)
    # box-filtering an 8x8 to 4x4 averages each 2x2 block
    first_block = (0 + 1 + 8 + 9) / 4  # 4.5, which Pillow rounds up
    assert image_to_array(resize_for_model(image, (4, 4), "box"))[0, 0, 0] == int(first_block + 0.5)
    wide = np.zeros((200, 400, 3), dtype=np.uint8)  # black, with white side bands (x < 100 and x >= 300)
    wide[:, :100] = wide[:, 300:] = 255
    cropped = resize_for_model(Image.fromarray(wide), (224, 224), "bilinear", crop_pct=0.875)
    array = image_to_array(cropped)
    assert array.shape == (3, 224, 224)
    # short side 200 -> 256 (scale 1.28): bands end at x = 128 and start at 384 of 512; the centre crop
    # keeps x = 144..368, inside the black middle: a squashed (uncropped) image would show the bands
    assert array.max() <= 3
