"""Stage II (SigLIP) learns: held-out retrieval is well above chance, through `finecap eval`.

Also the paper's text tower: a SigLIP / SigLIP2 text encoder given by path, frozen for the first
steps and then trained at its own learning-rate scale, across a checkpoint and resume.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from finecap.cli import main
from finecap.train.checkpoint import latest_checkpoint, load_heads, read_state
from finecap.train.stage2 import AttentionPool
from finecap.typed_config import ConfigError

from .conftest import tiny_config
from .tiny_siglip import POSITIONS, write_tiny_siglip


def test_attention_pool_keeps_packed_images_apart():
    torch.manual_seed(0)
    pool = AttentionPool(8, 2, 4)
    tokens = torch.randn(7, 8)
    ids = torch.tensor([0, 0, 0, 1, 1, 1, 1])
    both = pool(tokens, ids, 2)
    alone = pool(tokens[3:], torch.zeros(4, dtype=torch.long), 1)
    assert torch.allclose(both[1], alone[0], atol=1e-6)


@pytest.mark.slow
@pytest.mark.train
def test_stage2_heldout_recall_at_1_is_5x_chance(stage2_run, synth, run_dir, capsys):
    state = read_state(latest_checkpoint(run_dir / "stage2"))
    assert state["config"]["stage2"]["init_from"] == "previous"  # started from stage I's checkpoint
    assert main(["eval", "retrieval", "--checkpoint", str(run_dir / "stage2"), "--data", str(synth / "heldout"),
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["n"] == 100 and result["chance_r1"] == pytest.approx(0.01)
    # The detailed (long) captions carry what tells scenes apart; bar: 5x chance both ways.
    long = result["long"]
    assert long["image_to_text"]["r1"] >= 5 * result["chance_r1"], result
    assert long["text_to_image"]["r1"] >= 5 * result["chance_r1"], result
    assert long["image_to_text"]["r10"] >= long["image_to_text"]["r1"]


FREEZE, SCALE, STEPS = 2, 0.5, 4
# Phase 2 (from step 3) needs 40 positions: the 32-position tower grows 8 rows, trained once unfrozen.
PHASES = "stage2.phases=[{until_step: 3, resolution: 84, text_length: 24}, {resolution: 84, text_length: 40}]"


def _siglip_config(data, output, model_dir, *overrides: str):
    return tiny_config(data, output, f"model.text.model={model_dir}", f"model.text.freeze_until_step={FREEZE}",
                       f"model.text.lr_scale={SCALE}", f"stage2.steps={STEPS}", "stage2.init_from=null",
                       "stage2.batch_size=8", "stage2.optim.warmup_steps=1", "data.num_workers=0",
                       "run.checkpoint_every=1", "run.keep_checkpoints=10", "run.log_every=1000",
                       "model.vision.layers=1", PHASES, *overrides)


def _ckpt(output, step: int):
    return output / "stage2" / "checkpoints" / f"step-{step:06d}"


def _text(output, step: int) -> dict[str, torch.Tensor]:
    """The checkpoint's text encoder weights, as its text model class loads them."""
    from finecap.train.towers import load_text_encoder

    return load_text_encoder(_ckpt(output, step) / "text").state_dict()


def _groups(output, step: int) -> list[dict]:
    return torch.load(_ckpt(output, step) / "trainer.pt", weights_only=True)["optimizer"]["param_groups"]


@pytest.fixture(scope="module", params=["siglip", "siglip2"])
def siglip_run(request, small_synth, tmp_path_factory):
    """A 4-step stage II run on a tiny random SigLIP (text-only) or SigLIP2 (full model) by path."""
    from finecap.train.loop import run_stage

    root = tmp_path_factory.mktemp(f"stage2-{request.param}")
    source = write_tiny_siglip(root / "source", request.param)
    run_stage(_siglip_config(small_synth, root / "out", root / "source"), "stage2")
    return request.param, root, source


@pytest.mark.train
def test_siglip_text_tower_frozen_then_trained_at_its_scale(siglip_run):
    kind, root, source = siglip_run
    out = root / "out"
    start = (source.text_model if kind == "siglip2" else source).state_dict()
    for step in range(1, FREEZE + 1):  # steps 0 .. FREEZE-1 leave the encoder bit-identical
        text = _text(out, step)
        assert text.keys() == start.keys()
        for key, value in text.items():
            if key.endswith("position_embedding.weight"):
                assert value.shape[0] == 40 and torch.equal(value[:POSITIONS], start[key]), key
            else:
                assert torch.equal(value, start[key]), key
    assert all(torch.equal(v, _text(out, FREEZE)[k]) for k, v in _text(out, 1).items())  # new rows too
    for step in range(FREEZE + 1, STEPS + 1):
        before, after = _text(out, step - 1), _text(out, step)
        assert any(not torch.equal(before[k], after[k]) for k in after), step
    # the projection head trains throughout
    assert not torch.equal(load_heads(_ckpt(out, 1))["text.proj.weight"], load_heads(_ckpt(out, 2))["text.proj.weight"])
    # lr of the encoder's groups: 0 while frozen, the stage's scheduled lr x lr_scale after
    for step, frozen in ((1, True), (FREEZE, False), (STEPS - 1, False)):  # groups hold the lr of step `step`
        groups = _groups(out, step)
        rest = [g for g in groups if "frozen_until" not in g]
        encoder = [g for g in groups if g.get("frozen_until") == FREEZE]
        assert len(encoder) == 2 and len(rest) == 2
        for g in encoder:
            assert g["lr"] == (0.0 if frozen else pytest.approx(rest[0]["lr"] * SCALE)), (step, g["lr"])


@pytest.mark.train
def test_trained_siglip_tower_pools_as_siglip_text_model(siglip_run):
    from transformers import Siglip2TextModel, SiglipTextModel

    from finecap.train.eval_retrieval import load_contrastive
    from finecap.train.tokens import encode_batch

    kind, root, _ = siglip_run
    ckpt = _ckpt(root / "out", STEPS)
    model, tokenizer, meta = load_contrastive(ckpt)
    assert meta["text_length"] == 40 and model.text.pooling == "model"
    tokens = encode_batch(tokenizer, ["a small yellow star next to a large purple square", "two squares"], 40)
    reference = {"siglip": SiglipTextModel, "siglip2": Siglip2TextModel}[kind].from_pretrained(ckpt / "text").eval()
    with torch.no_grad():
        pooled = model.text.pool(tokens["input_ids"], tokens["attention_mask"])
        assert torch.allclose(pooled, reference(input_ids=tokens["input_ids"]).pooler_output, atol=1e-6)


@pytest.mark.train
@pytest.mark.parametrize("cut", [1, FREEZE + 1])
def test_resume_across_the_freeze_boundary_matches_the_uninterrupted_run(siglip_run, small_synth, tmp_path, cut):
    from finecap.train.loop import run_stage

    kind, root, _ = siglip_run
    if kind != "siglip":
        pytest.skip("the schedule does not depend on the tower's class; one kind keeps the suite short")
    cut_dir = tmp_path / "cut"
    shutil.copytree(_ckpt(root / "out", cut), _ckpt(cut_dir, cut))
    config = _siglip_config(small_synth, cut_dir, root / "source")
    assert run_stage(config, "stage2").resumed_from == cut
    for step in range(cut + 1, STEPS + 1):
        whole, resumed = _text(root / "out", step), _text(cut_dir, step)
        assert all(torch.allclose(whole[k], resumed[k], atol=1e-6) for k in whole), step
        assert [g["lr"] for g in _groups(root / "out", step)] == pytest.approx([g["lr"] for g in _groups(cut_dir, step)])
    if cut < FREEZE:  # resumed while frozen: still frozen until the step
        assert all(torch.equal(v, _text(root / "out", 1)[k]) for k, v in _text(cut_dir, FREEZE).items())
    whole_heads, resumed_heads = load_heads(_ckpt(root / "out", STEPS)), load_heads(_ckpt(cut_dir, STEPS))
    assert all(torch.allclose(whole_heads[k], resumed_heads[k], atol=1e-6) for k in whole_heads)


@pytest.mark.train
def test_resume_refuses_a_changed_schedule_and_a_freeze_over_new_positions(siglip_run, small_synth, tmp_path):
    from finecap.train.loop import run_stage

    _, root, _ = siglip_run
    shutil.copytree(_ckpt(root / "out", 1), _ckpt(tmp_path / "cut", 1))
    changed = _siglip_config(small_synth, tmp_path / "cut", root / "source", "model.text.freeze_until_step=3")
    with pytest.raises(ConfigError, match="model.text.freeze_until_step: the checkpoint step-000001 trained with 2"):
        run_stage(changed, "stage2")
    late = _siglip_config(small_synth, tmp_path / "fresh", root / "source", "model.text.freeze_until_step=4")
    with pytest.raises(ConfigError, match="model.text.freeze_until_step: the encoder is frozen at step 3"):
        run_stage(late, "stage2")
