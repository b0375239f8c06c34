"""`finecap eval ablation`: the average and table rules, the inputs' errors, the probe's config, and
an end-to-end run on the fixtures' stage II and III checkpoints (frozen encoder, determinism)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import load_file, save_file

from finecap.cli import main
from finecap.errors import UserError
from finecap.train.eval_ablation import (
    StageCheckpoint,
    average_local,
    find_checkpoints,
    format_table,
    make_row,
    probe_config,
    probe_data,
    reference_checkpoint,
    same_weights,
    write_encoder,
)
from finecap.typed_config import ConfigError, to_dict
from tests.train.conftest import tiny_config
from tests.train.eval_sets import last_json, one_error_line


def _scores(c2b=0.1, iou=0.2, match=0.5, b2c=0.4, t2b=None, b2t=None) -> dict:
    return {"caption_to_box": {"n": 10, "acc_iou50": c2b, "mean_iou": iou},
            "caption_to_box_match": {"n": 8, "acc": match}, "box_to_caption": {"n": 8, "acc": b2c},
            "ocr_to_box": {"n": 0 if t2b is None else 5, "acc_iou50": t2b},
            "box_to_ocr": {"n": 0 if b2t is None else 5, "exact": b2t}}


def _checkpoint(stage: str, step: int, resolution: int = 84, config: dict | None = None) -> StageCheckpoint:
    return StageCheckpoint(Path(f"/runs/{stage}/step-{step:06d}"), stage, step, resolution, config or {})


def test_average_local_is_the_mean_of_the_accuracies_the_data_allowed():
    assert average_local(_scores()) == pytest.approx((0.1 + 0.5 + 0.4) / 3)  # no OCR regions: left out
    assert average_local(_scores(t2b=0.2, b2t=0.0)) == pytest.approx((0.1 + 0.5 + 0.4 + 0.2 + 0.0) / 5)
    assert average_local(_scores(iou=0.9)) == average_local(_scores(iou=0.0))  # mean IoU is no accuracy
    assert average_local(_scores(None, None, None, None)) is None


def test_table_has_the_papers_rows_and_columns():
    rows = [make_row(_checkpoint("stage1", 60, 112), "probe", 112, _scores(c2b=0.0, match=0.3, b2c=0.3)),
            make_row(_checkpoint("stage2", 200), "probe", 84, _scores()),
            make_row(_checkpoint("stage3", 300), "probe", 84, _scores(c2b=0.05, match=0.75, b2c=0.5)),
            make_row(_checkpoint("stage3", 300), "as trained", 84, _scores(c2b=0.0, iou=0.07, match=0.8, b2c=0.55))]
    result = {"rows": rows, "data": "d/heldout", "train_data": "d/train",
              "probe": {"lm": "tiny", "steps": 150, "batch_size": 16, "seed": 0}}
    lines = format_table(result).splitlines()
    assert lines[0].split("  ")[0].strip() == "encoder" and lines[0].rstrip().endswith("average local")
    labels = [line[: len("after I+II+III (step 300)")].strip() for line in lines[1:5]]
    assert labels == ["after stage I (step 60)", "after I+II (step 200)", "after I+II+III (step 300)",
                      "after I+II+III (step 300)"]
    assert lines[3].split()[4] == "probe" and lines[4].split()[4:6] == ["as", "trained"]
    # cap->box@.5, IoU, match, box->cap, ocr->box, box->ocr, average, in percent; no OCR -> "-"
    assert lines[4].split()[-7:] == ["0.0", "7.0", "80.0", "55.0", "-", "-", "45.0"]
    assert "150 steps x batch 16" in lines[5] and "d/heldout" in lines[5]


def _fake_checkpoint(folder: Path, stage: str, step: int, vision: bool = True) -> Path:
    ckpt = folder / "checkpoints" / f"step-{step:06d}"
    ckpt.mkdir(parents=True)
    (ckpt / "state.json").write_text(json.dumps({"stage": stage, "step": step, "meta": {"resolution": 84},
                                                 "config": {}}))
    if vision:
        save_file({"w": torch.zeros(2)}, ckpt / "vision.safetensors")
        (ckpt / "vision.json").write_text("{}")
    return ckpt


def test_checkpoints_resolve_from_folders_and_run_outputs(tmp_path):
    s1 = _fake_checkpoint(tmp_path / "run" / "stage1", "stage1", 60)
    s3 = _fake_checkpoint(tmp_path / "run" / "stage3", "stage3", 300)
    found = find_checkpoints([str(tmp_path / "run"), str(s1), str(tmp_path / "run" / "stage3")])
    assert [(c.path, c.stage, c.step) for c in found] == [(s1, "stage1", 60), (s3, "stage3", 300),
                                                          (s1, "stage1", 60), (s3, "stage3", 300)]
    assert reference_checkpoint(found).stage == "stage3"


def test_a_missing_or_foreign_checkpoint_is_one_error_line(tmp_path, capsys):
    (tmp_path / "heldout").mkdir()
    base = ["eval", "ablation", "--data", str(tmp_path / "heldout"), "--json", "--checkpoints"]
    assert main([*base, str(tmp_path / "nowhere")]) == 2
    assert f"--checkpoints: no checkpoint at {tmp_path / 'nowhere'}" in one_error_line(capsys)
    foreign = _fake_checkpoint(tmp_path / "other", "stage2", 10, vision=False)
    assert main([*base, str(foreign)]) == 2
    assert "is not a FineViT checkpoint (no vision.safetensors)" in one_error_line(capsys)
    (foreign / "state.json").write_text("{not json")
    assert main([*base, str(foreign)]) == 2
    assert "is not a FineViT checkpoint (state.json:" in one_error_line(capsys)


def _parquet(folder: Path) -> Path:
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"key": ["a"]}), folder / "part-000000.parquet")
    return folder


def test_flags_that_cannot_work_fail_before_any_probe(tmp_path, capsys):
    ckpt = _fake_checkpoint(tmp_path / "run" / "stage2", "stage2", 10)
    heldout, _ = _parquet(tmp_path / "synth" / "heldout"), _parquet(tmp_path / "synth" / "train")
    base = ["eval", "ablation", "--checkpoints", str(ckpt), "--data", str(heldout)]
    assert main([*base, "--probe-steps", "0"]) == 2
    assert "--probe-steps: must be >= 1 (got 0)" in one_error_line(capsys)
    assert main([*base, "--keep-probes"]) == 2
    assert "--keep-probes: needs --work DIR" in one_error_line(capsys)
    (tmp_path / "work" / "probe-00-stage2-step000010").mkdir(parents=True)
    assert main([*base, "--work", str(tmp_path / "work"), "--keep-probes"]) == 2
    assert "probe-00-stage2-step000010 exists; remove it" in one_error_line(capsys)
    assert main([*base, "--set", "run.output=elsewhere"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["config error: run.output: probes live under --work; drop the --set"]


def test_train_data_defaults_to_the_sibling_train_split(tmp_path):
    heldout = _parquet(tmp_path / "synth" / "heldout")
    with pytest.raises(UserError, match=r"--train-data: not given, and --data's sibling .*synth/train does not exist"):
        probe_data(str(heldout), None)
    (tmp_path / "synth" / "train").mkdir()
    with pytest.raises(UserError, match=r"--train-data: no parquet files under .*synth/train"):
        probe_data(str(heldout), None)
    pq.write_table(pa.table({"key": ["b"]}), tmp_path / "synth" / "train" / "part-000000.parquet")
    assert probe_data(str(heldout) + "/", None) == str(tmp_path / "synth" / "train")
    with pytest.raises(UserError, match=r"--train-data: .*synth/train is --data"):
        probe_data(str(tmp_path / "synth" / "train"), None)
    other = _parquet(tmp_path / "other")
    assert probe_data(str(heldout), str(other)) == str(other)


def test_probe_config_freezes_the_encoder_and_changes_only_init_and_resolution(tmp_path):
    saved = to_dict(tiny_config(tmp_path / "first-run-data", tmp_path / "first-run"))
    reference = _checkpoint("stage3", 300, 84, saved)
    stage1 = _checkpoint("stage1", 60, 112, {"unused": "a probe reads the reference's config"})
    config = probe_config(reference, stage1, tmp_path / "probe-00", "d/train", 7, ["run.threads=1"])
    s3 = config.stage3
    batch = saved["stage3"]["batch_size"]  # the curriculum's own stage III batch
    assert (s3.vision_lr_scale, s3.steps, s3.batch_size, s3.init_from) == (0.0, 7, batch, str(tmp_path / "probe-00/encoder"))
    own_budget = probe_config(reference, stage1, tmp_path / "probe-00", "d/train").stage3
    assert (own_budget.steps, own_budget.batch_size) == (saved["stage3"]["steps"], batch)
    assert [(p.resolution, p.text_length) for p in s3.phases] == [(112, saved["stage3"]["phases"][-1]["text_length"])]
    assert (config.data.uri, config.run.output, config.run.resume) == ("d/train", str(tmp_path / "probe-00"), False)
    assert (config.run.threads, config.run.checkpoint_every, config.run.seed) == (1, 7, saved["run"]["seed"])
    assert s3.tasks == saved["stage3"]["tasks"] and config.model.lm == tiny_config(tmp_path, tmp_path).model.lm
    other = probe_config(reference, _checkpoint("stage2", 200, 84), tmp_path / "probe-01", "d/train", 7,
                         ["run.threads=1"])
    differs = {k for k, v in to_dict(other).items() if v != to_dict(config)[k]}
    assert differs == {"stage3", "run"}
    assert to_dict(other)["stage3"]["phases"][0]["resolution"] == 84 and other.run.output.endswith("probe-01")
    with pytest.raises(ConfigError, match=r"^stage3.vision_lr_scale: the probe keeps the encoder frozen"):
        probe_config(reference, stage1, tmp_path / "p", "d/train", 7, ["stage3.vision_lr_scale=0.3"])
    with pytest.raises(ConfigError, match=r"unknown key 'stage3.stepz'"):
        probe_config(reference, stage1, tmp_path / "p", "d/train", 7, ["stage3.stepz=3"])


def test_encoder_folder_links_the_vision_tower_only(tmp_path):
    source = _fake_checkpoint(tmp_path / "run" / "stage3", "stage3", 300)
    (source / "lm").mkdir()
    (source / "lm" / "config.json").write_text("{}")
    checkpoint = find_checkpoints([str(source)])[0]
    folder = write_encoder(checkpoint, tmp_path / "probe" / "encoder")
    assert sorted(p.name for p in folder.iterdir()) == ["state.json", "vision.json", "vision.safetensors"]
    assert same_weights(source / "vision.safetensors", folder / "vision.safetensors")
    save_file({"w": torch.tensor([0.0, 1e-7])}, tmp_path / "changed.safetensors")
    assert not same_weights(source / "vision.safetensors", tmp_path / "changed.safetensors")


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_file(path)


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
@pytest.mark.train
def test_ablation_end_to_end_on_stage2_and_stage3(stage3_run, synth, run_dir, tmp_path, capsys):
    """Three probes (stage II, stage III twice) of 3 steps, scored on 4 held-out scenes."""
    from finecap.train.eval_grounding import evaluate_grounding

    work = tmp_path / "work"
    args = ["eval", "ablation", "--checkpoints", str(run_dir / "stage2"), str(run_dir / "stage3"),
            str(run_dir / "stage3"), "--data", str(synth / "heldout"), "--probe-steps", "3", "--limit", "4",
            "--work", str(work), "--keep-probes", "--json"]
    assert main(args) == 0
    result = last_json(capsys)
    assert result["train_data"] == str(synth / "train") and result["probe"]["steps"] == 3
    rows = result["rows"]
    assert [(r["stage"], r["measured"]) for r in rows] == [
        ("stage2", "probe"), ("stage3", "probe"), ("stage3", "as trained"), ("stage3", "probe"), ("stage3", "as trained")]
    for row in rows:
        assert {"caption_to_box", "caption_to_box_match", "box_to_caption", "ocr_to_box", "box_to_ocr"} <= row.keys()
        assert row["caption_to_box"]["n"] > 0 and row["average_local"] == pytest.approx(average_local(row))
    probes = [r for r in rows if r["measured"] == "probe"]
    for row in probes:  # frozen: the probe's vision weights are the checkpoint's, bit for bit
        assert row["encoder_unchanged"] is True
        probe = Path(row["probe_checkpoint"])
        assert _equal(_tensors(Path(row["checkpoint"]) / "vision.safetensors"), _tensors(probe / "vision.safetensors"))
    lms = [_tensors(Path(r["probe_checkpoint"]) / "lm" / "model.safetensors") for r in probes]
    trained_lm = _tensors(Path(rows[2]["checkpoint"]) / "lm" / "model.safetensors")
    assert not _equal(lms[1], trained_lm)  # a fresh LM, not the stage III checkpoint's
    assert _equal(lms[1], lms[2]) and not _equal(lms[0], lms[1])  # same encoder, same probe; another, another
    task_keys = ("caption_to_box", "caption_to_box_match", "box_to_caption", "ocr_to_box", "box_to_ocr")
    assert all(rows[1][k] == rows[3][k] for k in task_keys)  # identical encoders score identically
    own = evaluate_grounding(str(run_dir / "stage3"), str(synth / "heldout"), limit=4)
    assert all(rows[2][k] == own[k] for k in task_keys)  # "as trained" is the checkpoint's own VLM
    table = format_table(result).splitlines()
    assert [line.split("  ")[0] for line in table[1:4]] == ["after I+II (step 200)", "after I+II+III (step 300)",
                                                           "after I+II+III (step 300)"]
