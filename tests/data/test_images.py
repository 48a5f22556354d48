"""dermtool.data.images: safe decoding of real and deliberately broken images."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from dermtool import DermtoolError
from dermtool.data import images as images_module
from dermtool.data.images import MAX_IMAGE_PIXELS, ImageError, inspect_image, load_rgb
from tests.data.conftest import Sample, encode, ham_image, jpeg_with_orientation, png_16bit_rgb, png_claiming_size


def test_guards_are_set_strictly() -> None:
    assert MAX_IMAGE_PIXELS == 40_000_000
    assert Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS <= MAX_IMAGE_PIXELS
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    assert issubclass(ImageError, DermtoolError)


def test_real_ham10000_image_decodes_to_uint8_rgb() -> None:
    path = ham_image("ISIC_0024306")
    pixels = load_rgb(path)
    assert pixels.dtype == np.uint8 and pixels.shape == (150, 200, 3)
    with Image.open(path) as reference:
        np.testing.assert_array_equal(pixels, np.asarray(reference.convert("RGB")))
    np.testing.assert_array_equal(load_rgb(path.read_bytes()), pixels)  # raw bytes, as the web app sends
    np.testing.assert_array_equal(load_rgb(str(path)), pixels)
    info = inspect_image(path)
    assert (info.width, info.height, info.mode, info.format, info.bits) == (200, 150, "RGB", "JPEG", 8)
    assert info.exif_orientation is None and info.problems == []


def test_every_broken_file_gets_its_reason(sample_files: dict[str, Path], samples: list[Sample]) -> None:
    broken = [sample for sample in samples if sample.reason]
    assert {sample.reason for sample in broken} == {"truncated", "not_an_image", "empty", "too_large"}
    for sample in broken:
        path = sample_files[sample.name]
        for function in (load_rgb, inspect_image):
            with pytest.raises(ImageError) as caught:
                function(path)
            assert caught.value.reason == sample.reason, (sample.name, function.__name__, str(caught.value))
            assert str(path) in str(caught.value)
        with pytest.raises(ImageError) as caught:
            load_rgb(sample.data)
        assert caught.value.reason == sample.reason


def test_truncated_jpeg_is_never_accepted_silently() -> None:
    data = ham_image("ISIC_0024306").read_bytes()
    for cut in (len(data) - 2, len(data) // 2, 200, 20, 4):
        with pytest.raises(ImageError) as caught:
            load_rgb(data[:cut])
        assert caught.value.reason == "truncated", (cut, str(caught.value))


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_header_claiming_50000_squared_is_refused_without_decoding(tmp_path: Path) -> None:
    data = png_claiming_size(50_000, 50_000)
    assert len(data) < 100  # nothing to decode: only the header claims 2.5 gigapixels
    started = time.perf_counter()
    with pytest.raises(ImageError) as caught:
        load_rgb(data)
    assert caught.value.reason == "too_large" and "2,500,000,000 pixels" in str(caught.value)
    assert time.perf_counter() - started < 1.0
    # Between our limit and twice it, Pillow only warns: our own check must still refuse it.
    path = tmp_path / "seven_thousand.png"
    path.write_bytes(png_claiming_size(7_000, 7_000))  # 49 M pixels > 40 M
    with pytest.raises(ImageError) as caught:
        inspect_image(path)
    assert caught.value.reason == "too_large" and "49,000,000" in str(caught.value)


def test_missing_file_and_folder_are_unreadable(tmp_path: Path) -> None:
    for path in (tmp_path / "absent.jpg", tmp_path):
        with pytest.raises(ImageError) as caught:
            load_rgb(path)
        assert caught.value.reason == "unreadable"


def test_unusual_images_are_usable_and_warned_about(sample_files: dict[str, Path], samples: list[Sample]) -> None:
    usable = [sample for sample in samples if sample.reason is None]
    for sample in usable:
        path = sample_files[sample.name]
        info = inspect_image(path)
        assert set(sample.problems) <= set(info.problems), (sample.name, info)
        pixels = load_rgb(path)
        assert pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] == 3, sample.name
    problems = {sample.name: inspect_image(sample_files[sample.name]) for sample in usable}
    assert problems["cmyk.jpg"].mode == "CMYK"
    assert problems["grey16.png"].bits == 16 and problems["rgb16.png"].bits == 16
    assert problems["palette.png"].mode == "P"
    assert problems["one_pixel.png"].width == 1
    assert problems["rotated.jpg"].exif_orientation == 6
    for name in ("cmyk.jpg", "rgba.png", "palette.png", "grey.jpg"):
        assert "tiny" not in problems[name].problems


def test_greyscale_is_repeated_into_three_equal_channels(sample_files: dict[str, Path]) -> None:
    pixels = load_rgb(sample_files["grey.jpg"])
    assert pixels.shape == (48, 64, 3)
    np.testing.assert_array_equal(pixels[..., 0], pixels[..., 1])
    np.testing.assert_array_equal(pixels[..., 0], pixels[..., 2])


def test_sixteen_bit_is_scaled_not_clipped() -> None:
    values = np.array([[0, 257 * 64, 257 * 128, 65535]], dtype=np.uint16)
    pixels = load_rgb(encode(Image.fromarray(values), "PNG"))
    np.testing.assert_array_equal(pixels[0, :, 0], [0, 64, 128, 255])
    rgb16 = load_rgb(png_16bit_rgb(value=0x8000))
    assert rgb16.dtype == np.uint8 and rgb16.shape == (4, 6, 3) and abs(int(rgb16[0, 0, 0]) - 128) <= 1


def test_cmyk_rgba_and_palette_colours_survive() -> None:
    cyan = load_rgb(encode(Image.new("CMYK", (40, 40), (255, 0, 0, 0)), "JPEG", quality=95))
    assert cyan[20, 20, 0] < 30 and cyan[20, 20, 1] > 220 and cyan[20, 20, 2] > 220
    rgba = load_rgb(encode(Image.new("RGBA", (40, 40), (10, 200, 30, 77)), "PNG"))
    np.testing.assert_array_equal(rgba[5, 5], [10, 200, 30])
    palette_image = Image.new("P", (40, 40), 1)
    palette_image.putpalette([0, 0, 0, 250, 120, 5] + [0] * 762)
    np.testing.assert_array_equal(load_rgb(encode(palette_image, "PNG"))[3, 3], [250, 120, 5])


def test_lab_is_colour_converted() -> None:
    from PIL import ImageCms

    to_lab = ImageCms.buildTransform(ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB"), "RGB", "LAB")
    lab = ImageCms.applyTransform(Image.new("RGB", (8, 8), (200, 100, 50)), to_lab)
    assert lab.mode == "LAB"
    assert np.abs(load_rgb(encode(lab, "TIFF"))[4, 4].astype(int) - [200, 100, 50]).max() <= 3


def test_exif_orientation_6_is_applied() -> None:
    data = jpeg_with_orientation(6)
    with Image.open(io.BytesIO(data)) as stored:
        assert stored.size == (64, 48)  # stored landscape, width 64
    pixels = load_rgb(data).astype(int)
    assert pixels.shape == (64, 48, 3)  # displayed portrait: rotated 90 degrees clockwise

    def colour(row: int, column: int) -> str:
        red, green, blue = pixels[row, column]
        return {0: "red", 1: "green", 2: "blue"}[int(np.argmax([red, green, blue]))]

    assert colour(8, 40) == "green"  # stored top-left corner -> displayed top-right
    assert colour(8, 8) == "red" and colour(24, 24) == "red"  # stored left half -> displayed top half
    assert colour(48, 8) == "blue" and colour(56, 40) == "blue"  # stored right half -> displayed bottom
    assert "exif_rotated" in images_module.inspect_bytes(data).problems


def test_metadata_is_dropped() -> None:
    pixels = load_rgb(jpeg_with_orientation(6))
    assert isinstance(pixels, np.ndarray) and pixels.flags.c_contiguous  # pixels only: no EXIF can travel on
