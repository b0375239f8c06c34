"""The shared region view: one whole image per image, identical for all its regions, then the crop."""

from __future__ import annotations

from PIL import Image

from finecap.stages.region_views import region_view, region_views, shared_crop_side, thumbnail
from tests.stages.test_regions import _cfg, _image

BOXES = ([0.75, 0.25, 0.85, 0.45], [0.0, 0.0, 0.5, 0.5], [0.1, 0.6, 0.3, 0.9])


def test_shared_view_is_the_unmarked_whole_image_then_the_crop():
    cfg = _cfg(view="shared", view_max_side=200, crop_padding=0.0)
    whole, crop = region_view(_image(), BOXES[0], cfg)
    assert whole.size == (200, 100) and whole.tobytes() == thumbnail(_image(), 200).tobytes()
    assert shared_crop_side(cfg) == 100 and crop.size == (100, 100)  # the 40 px square, enlarged
    assert crop.getpixel((50, 50)) == (255, 255, 255)


def test_regions_of_one_image_share_one_whole_image_object():
    images = {0: _image(), 1: _image(colour=(255, 0, 255))}
    jobs = [(0, BOXES[0]), (0, BOXES[1]), (0, BOXES[2]), (1, BOXES[0]), (1, BOXES[1])]
    views = region_views(images, jobs, _cfg(view="shared", view_max_side=200))
    assert all(isinstance(v, tuple) and len(v) == 2 for v in views)
    assert views[0][0] is views[1][0] is views[2][0] and views[3][0] is views[4][0]
    assert views[0][0].tobytes() != views[3][0].tobytes()  # another image, another whole
    assert len({v[1].tobytes() for v in views[:3]}) == 3  # each region its own crop
    assert views[0][1].tobytes() == views[3][1].tobytes()  # same box, same pixels there


def test_other_views_stay_one_picture_per_region():
    images = {0: _image()}
    for view in ("composite", "marked", "crop", "whole"):
        cfg = _cfg(view=view, view_max_side=200)
        (built,) = region_views(images, [(0, BOXES[0])], cfg)
        assert isinstance(built, Image.Image) and built.tobytes() == region_view(_image(), BOXES[0], cfg).tobytes()
