"""Signed attachment links (app.blobs.links): what a link is made of, and what making none costs."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from app.blobs.links import AttachmentLinks


def unused(what: str):
    def refuse():
        raise AssertionError(f"the {what} was asked for though no link was signed")
    return refuse


def test_the_key_and_the_base_url_are_asked_for_only_when_a_link_is_signed():
    AttachmentLinks(unused("key"), 60, unused("base URL"))  # a page without files renders no link


def test_a_link_is_under_the_base_url_and_checks_out_until_it_expires():
    now = [1_700_000_000.0]
    bases = []

    def base_url():
        bases.append(1)
        return "https://files.example/"

    links = AttachmentLinks(lambda: b"k" * 32, 60, base_url, clock=lambda: now[0])
    url = links.url(1, 2, "a b.txt")
    assert links.url(1, 2, "c.txt").startswith("https://files.example/attachments/1/2/c.txt?")
    assert len(bases) == 1, "the base URL is worked out once"
    parts = urlsplit(url)
    assert url.startswith("https://files.example/attachments/1/2/a%20b.txt?ex=")
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    assert links.seconds_left(parts.path, query) == 60
    now[0] += 60
    assert links.seconds_left(parts.path, query) is None
