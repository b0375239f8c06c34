import pytest
import torch

from finecap.train.patches import pack
from finecap.train.vit import FineViT, count_parameters, vit_config


def test_finevit_086b_preset_on_meta_device():
    cfg = vit_config("finevit-0.86b")
    assert (cfg.layers, cfg.width, cfg.heads, cfg.ffn) == (28, 1536, 16, 4608)
    with torch.device("meta"):
        model = FineViT(cfg)
    n = count_parameters(model)
    assert abs(n - 0.86e9) <= 0.03 * 0.86e9, n
    assert len(model.blocks) == 28
    assert model.blocks[0].mlp.down.in_features == 4608
    assert next(model.parameters()).device.type == "meta"


def _image(n_rows, n_cols, seed):
    g = torch.Generator().manual_seed(seed)
    rr, cc = torch.meshgrid(torch.arange(n_rows), torch.arange(n_cols), indexing="ij")
    return torch.randn(n_rows * n_cols, 588, generator=g), torch.stack([rr.ravel(), cc.ravel()], 1)


def test_packing_does_not_change_an_images_features():
    torch.manual_seed(0)
    model = FineViT(vit_config("tiny", layers=2)).eval()
    a, b = _image(4, 4, 1), _image(2, 6, 2)
    with torch.no_grad():
        alone = pack([a])
        out_alone = alone.unpack(model(alone.pixels, alone.positions, alone.segments))
        both = pack([b, a], row_length=28)  # one row: 12 + 16 tokens attend only within their image
        out_both = both.unpack(model(both.pixels, both.positions, both.segments))
    assert both.pixels.shape[0] == 1
    assert torch.allclose(out_alone, out_both[12:], atol=1e-5)


def test_rope_makes_attention_depend_on_relative_position():
    torch.manual_seed(0)
    model = FineViT(vit_config("tiny", layers=1)).eval()
    pixels, pos = _image(3, 3, 5)
    seg = torch.zeros(1, 9, dtype=torch.long)
    with torch.no_grad():
        out = model(pixels[None], pos[None], seg)
        shifted = model(pixels[None], (pos + torch.tensor([5, 7]))[None], seg)
        scrambled = model(pixels[None], pos.flip(0)[None], seg)
    assert torch.allclose(out, shifted, atol=1e-4)
    assert not torch.allclose(out, scrambled, atol=1e-3)


def test_unknown_preset_is_refused():
    with pytest.raises(ValueError, match="unknown vision preset"):
        vit_config("huge")
