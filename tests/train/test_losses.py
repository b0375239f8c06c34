import torch
import torch.nn.functional as F

from finecap.train.losses import IGNORE, answer_loss, masked_feature_loss, siglip_loss


def test_siglip_loss_prefers_matched_pairs():
    g = torch.Generator().manual_seed(0)
    emb = F.normalize(torch.randn(16, 32, generator=g), dim=-1)
    scale, bias = torch.tensor(2.3), torch.tensor(-3.0)
    matched = siglip_loss(emb, emb, scale, bias)
    shuffled = siglip_loss(emb, emb.roll(1, 0), scale, bias)
    assert matched < shuffled


def test_siglip_loss_with_gathered_texts_matches_the_local_loss():
    g = torch.Generator().manual_seed(1)
    img = F.normalize(torch.randn(4, 8, generator=g), dim=-1)
    txt = F.normalize(torch.randn(4, 8, generator=g), dim=-1)
    scale, bias = torch.tensor(1.0), torch.tensor(-2.0)
    pad = torch.cat([torch.randn(3, 8, generator=g), txt, torch.zeros(2, 8)])  # rank 1 of 3, padded
    valid = torch.tensor([True] * 7 + [False] * 2)
    local = siglip_loss(img, txt, scale, bias)
    gathered = siglip_loss(img, pad, scale, bias, valid, positive_offset=3)
    extra = -F.logsigmoid(-(img @ pad[:3].t() * scale.exp() + bias)).sum() / 4
    assert torch.allclose(gathered, local + extra, atol=1e-6)


def test_answer_loss_ignores_prompt_tokens():
    logits = torch.zeros(1, 4, 10)
    logits[0, 1, 7] = 50.0  # predicts token 7 at position 2
    labels = torch.tensor([[IGNORE, IGNORE, 7, IGNORE]])
    assert answer_loss(logits, labels) < 1e-6
    wrong = torch.tensor([[IGNORE, IGNORE, 3, IGNORE]])
    assert answer_loss(logits, wrong) > 10


def test_masked_feature_loss_reads_only_masked_tokens():
    target = torch.randn(6, 4)
    pred = F.layer_norm(target, (4,)).clone()
    mask = torch.tensor([True, True, False, False, True, False])
    pred[~mask] = 100.0
    assert masked_feature_loss(pred, target, mask) < 1e-6
