from __future__ import annotations

import pytest

from dermtool import DermtoolError
from dermtool.cli.image_keys import ImageKeyed, image_stem


def test_an_image_is_found_by_path_then_name_then_stem() -> None:
    table = ImageKeyed({"./a/ISIC_1.jpg": "one", "b/ISIC_2.png": "two", "ISIC_3": "three"}, "--lesions", "l.csv",
                       "lesions")
    assert table.find("a/ISIC_1.jpg") == "one"  # normalised path
    assert table.find("elsewhere/ISIC_2.png") == "two"  # file name
    assert table.find("photos/ISIC_3.JPG") == "three"  # stem: the image suffix dropped, any case
    assert table.find("ISIC_4.jpg") is None


def test_a_name_matching_entries_that_disagree_is_an_error_that_asks_for_paths() -> None:
    table = ImageKeyed({"a/x.jpg": "lesion 1", "b/x.jpg": "lesion 2", "c/y.jpg": "same", "d/y.jpg": "same"},
                       "--lesions", "l.csv", "lesions")
    with pytest.raises(DermtoolError, match=r"--lesions l.csv: z/x.jpg matches 2 entries with different lesions .* "
                                            r"key the entries by the image's path"):
        table.find("z/x.jpg")
    assert table.find("a/x.jpg") == "lesion 1"  # the exact path is never ambiguous
    assert table.find("z/y.jpg") == "same"  # several entries, one value: no doubt


def test_the_stem_drops_only_an_image_suffix() -> None:
    assert image_stem("ISIC_0024306.jpg") == "ISIC_0024306"
    assert image_stem("patient.v2.tiff") == "patient.v2"
    assert image_stem("notes.txt") == "notes.txt"
