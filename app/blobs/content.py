"""What a stored file is, from its bytes and name, never from the type a client claims.

Images are recognised by Pillow from their header (``Image.open`` reads the header only, without decoding the
pixels), which also gives their dimensions. Other files get the type their extension names, except the types a
browser would run (HTML, SVG, XML, scripts), which are served as plain text so that an uploaded page cannot
act with this service's origin.
"""
from __future__ import annotations

import mimetypes
import re
import unicodedata
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image, UnidentifiedImageError

#: Discord's limit on a file name's length.
MAX_FILENAME_LENGTH = 255
_ACTIVE_TYPES = frozenset({"text/html", "application/xhtml+xml", "image/svg+xml", "text/xml", "application/xml",
                           "text/javascript", "application/javascript", "application/x-javascript",
                           "application/ecmascript", "text/ecmascript"})
_TEXT = "text/plain; charset=utf-8"
_UNSAFE_CHARACTERS = re.compile(r"[^\w.\-]+")
#: The image formats recognised: those clients show. Only their parsers ever see uploaded bytes, rather than every
#: format plugin Pillow has (a smaller surface for hostile files).
IMAGE_FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF", "ICO", "AVIF")


@dataclass(frozen=True, slots=True)
class FileKind:
    content_type: str
    width: int | None = None
    height: int | None = None

    @property
    def is_image(self) -> bool:
        return self.width is not None


def inspect_file(source: BinaryIO, filename: str) -> FileKind:
    """The file's content type (and dimensions for an image); leaves ``source`` at its start."""
    source.seek(0)
    try:
        with Image.open(source, formats=_available(IMAGE_FORMATS)) as image:
            mime = Image.MIME.get(image.format or "")
            width, height = image.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        mime = None
    source.seek(0)
    if mime is not None:
        return FileKind(mime, width, height)
    guessed, _ = mimetypes.guess_type(filename, strict=False)
    if guessed is None or guessed.startswith("image/"):
        # An image type the bytes do not bear out (or nothing at all): served as what it is, opaque bytes.
        return FileKind("application/octet-stream")
    if guessed in _ACTIVE_TYPES or guessed.startswith("text/"):
        return FileKind(_TEXT)
    return FileKind(guessed)


def _available(formats: tuple[str, ...]) -> tuple[str, ...]:
    """The formats this Pillow build can open (AVIF needs a recent one)."""
    Image.init()
    return tuple(name for name in formats if name in Image.OPEN)


def sanitize_filename(raw: str) -> str:
    """A file name as Discord keeps it: no directories, spaces as underscores, only letters, digits, ``.``, ``-``
    and ``_`` (others become ``_``), no leading dots, at most 255 characters with the extension kept."""
    name = unicodedata.normalize("NFC", raw).replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE_CHARACTERS.sub("_", name.strip()).lstrip(".")
    if len(name) > MAX_FILENAME_LENGTH:
        stem, dot, extension = name.rpartition(".")
        keep = extension[:16] if dot and stem else ""
        name = name[:MAX_FILENAME_LENGTH - len(keep) - (1 if keep else 0)] + (f".{keep}" if keep else "")
    return name or "unknown"
