"""Bundled photos load from the installed wheel, with no network."""

from __future__ import annotations

import socket

import pytest

from finecap.samples.photos import PHOTOS, load_photo, load_photos

SIZES = {
    "astronaut": (512, 512),
    "chelsea": (451, 300),
    "coffee": (600, 400),
    "rocket": (640, 427),
    "stereo_motorcycle": (741, 500),
}


def test_every_photo_loads_offline(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access attempted while loading bundled photos")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    photos = load_photos()
    assert [name for name, _ in photos] == list(PHOTOS) == list(SIZES)
    for name, image in photos:
        assert image.mode == "RGB" and image.size == SIZES[name]
        assert PHOTOS[name].caption and PHOTOS[name].credit


def test_unknown_photo_is_refused_with_the_known_names():
    with pytest.raises(KeyError, match="astronaut"):
        load_photo("camera")
