import numpy as np
import pytest
import torch
from PIL import Image

from finecap.train.patches import FACTOR, fit_size, pack, patchify
from finecap.train.vit import PATCH_SIZE


@pytest.mark.parametrize("size", [(640, 480), (333, 1001), (97, 96), (4000, 3000), (30, 40)])
def test_fit_size_keeps_aspect_with_sides_multiple_of_28(size):
    w, h = fit_size(*size, max_pixels=448 * 448)
    assert w % FACTOR == 0 and h % FACTOR == 0
    assert w * h <= 448 * 448
    assert abs(np.log((w / h) / (size[0] / size[1]))) < 0.35


def test_fit_size_rejects_extreme_aspect():
    with pytest.raises(ValueError, match="aspect"):
        fit_size(3000, 20, 448 * 448)


def test_patchify_orders_patches_by_2x2_windows():
    img = Image.fromarray(np.arange(56 * 84 * 3, dtype=np.uint8).reshape(56, 84, 3) % 251)
    patches, positions = patchify(img, 10**6)
    assert patches.shape == (24, 3 * PATCH_SIZE * PATCH_SIZE)  # 4 patch rows x 6 patch cols
    assert positions.tolist()[:5] == [[0, 0], [0, 1], [1, 0], [1, 1], [0, 2]]
    arr = np.asarray(img, dtype=np.float32) / 127.5 - 1
    r, c = positions[4].tolist()
    expected = arr[r * 14 : (r + 1) * 14, c * 14 : (c + 1) * 14].transpose(2, 0, 1).ravel()
    assert np.allclose(patches[4].numpy(), expected)


def test_pack_places_images_first_fit_and_unpacks_in_order():
    images = [(torch.full((n, 588), float(i)), torch.zeros(n, 2, dtype=torch.long)) for i, n in enumerate([8, 4, 4, 12])]
    packed = pack(images, row_length=12)
    assert packed.pixels.shape[:2] == (3, 12)  # 12 | 8+4 | 4
    flat = packed.unpack(packed.pixels)[:, 0]
    assert flat.tolist() == [0.0] * 8 + [1.0] * 4 + [2.0] * 4 + [3.0] * 12
    pooled = packed.mean_pool(packed.unpack(packed.pixels))[:, 0]
    assert pooled.tolist() == [0.0, 1.0, 2.0, 3.0]
    assert int((packed.segments == -1).sum()) == 3 * 12 - 28


def test_pack_rejects_an_image_longer_than_the_row():
    with pytest.raises(ValueError, match="row length"):
        pack([(torch.zeros(20, 588), torch.zeros(20, 2, dtype=torch.long))], row_length=16)
