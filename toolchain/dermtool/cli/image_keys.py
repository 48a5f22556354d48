"""Files that name images (``--answers FILE``, ``--lesions FILE``): find an image's entry as a user means it.

An entry is found by the image's exact (normalised) path, then by its file name, then by its stem (the name
without an image suffix: ``ISIC_0024306.jpg`` -> ``ISIC_0024306``), so a file keyed ``ISIC_0024306`` serves
``images/ISIC_0024306.jpg``. A name or stem that matches several entries with different values is an error
naming the file and asking for paths, never a guess.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Generic, Mapping, TypeVar

from dermtool import DermtoolError

Value = TypeVar("Value")


def image_stem(name: str) -> str:
    """A file name without its image suffix (``ISIC_0024306.jpg`` -> ``ISIC_0024306``; other dots stay)."""
    from dermtool.data.images import IMAGE_SUFFIXES  # deferred: it loads numpy and Pillow, --help must not

    stem, suffix = os.path.splitext(name)
    return stem if suffix.lower() in IMAGE_SUFFIXES else name


class ImageKeyed(Generic[Value]):
    """``entries`` ({image key: value}) of the file ``source`` given as ``option``, looked up by :meth:`find`.

    ``what``: what the values are, in words, for the error of an ambiguous name ("answers", "lesions").
    """

    def __init__(self, entries: Mapping[str, Value], option: str, source: str | Path, what: str) -> None:
        self.entries: dict[str, Value] = {os.path.normpath(key): value for key, value in entries.items()}
        self.option, self.source, self.what = option, str(source), what
        self._by_name: dict[str, list[str]] = {}
        self._by_stem: dict[str, list[str]] = {}
        for key in self.entries:
            self._by_name.setdefault(os.path.basename(key), []).append(key)
            self._by_stem.setdefault(image_stem(os.path.basename(key)), []).append(key)

    def find(self, image: str | Path) -> Value | None:
        """The entry of ``image``, or None when the file does not name it."""
        path = os.path.normpath(str(image))
        if path in self.entries:
            return self.entries[path]
        name = os.path.basename(path)
        for index, key in ((self._by_name, name), (self._by_stem, image_stem(name))):
            keys = index.get(key)
            if not keys:
                continue
            values = [self.entries[item] for item in keys]
            if any(value != values[0] for value in values[1:]):
                raise DermtoolError(f"{self.option} {self.source}: {image} matches {len(keys)} entries with different "
                                    f"{self.what} ({', '.join(sorted(keys)[:3])}); key the entries by the image's path")
            return values[0]
        return None


__all__ = ["ImageKeyed", "image_stem"]
