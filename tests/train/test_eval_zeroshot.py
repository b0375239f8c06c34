"""`finecap eval zeroshot`: class and template files, folder and labels inputs, top-k, the CLIP ensemble."""

from __future__ import annotations

import json

import pytest
import torch

from finecap.cli import main
from finecap.train.eval_inputs import EvalInputError
from finecap.train.eval_zeroshot import (
    class_embeddings,
    folder_items,
    labels_items,
    prompts_of,
    read_classes,
    read_templates,
    topk_accuracy,
)
from tests.train.eval_sets import (
    draw_shape,
    finecap_retrieval,
    last_json,
    one_error_line,
    write_class_folder,
    write_heldout_images,
)


def test_classes_are_lines_or_a_json_list(tmp_path):
    lines = tmp_path / "classes.txt"
    lines.write_text("tench\n\ngoldfish\n great white shark \n")
    assert read_classes(str(lines)) == ["tench", "goldfish", "great white shark"]
    listed = tmp_path / "classes.json"
    listed.write_text(json.dumps(["tench", "goldfish"]))
    assert read_classes(str(listed)) == ["tench", "goldfish"]
    listed.write_text(json.dumps(["tench", 3]))
    with pytest.raises(EvalInputError, match="non-empty strings"):
        read_classes(str(listed))


def test_the_default_templates_are_clips_80_imagenet_prompts():
    templates = read_templates(None)
    assert len(templates) == len(set(templates)) == 80
    assert all(t.count("{}") == 1 for t in templates)
    assert templates[0] == "a bad photo of a {}." and templates[-1] == "a tattoo of the {}."
    assert "itap of a {}." in templates and "a photo of a {}." in templates


def test_a_template_without_its_placeholder_names_the_line(tmp_path):
    path = tmp_path / "templates.txt"
    path.write_text("# mine\na photo of a {}.\na photo.\n")
    with pytest.raises(EvalInputError, match=r"line 3: a template holds `\{\}` exactly once"):
        read_templates(str(path))
    path.write_text("# mine\nitap of a {}.\n")
    assert read_templates(str(path)) == ["itap of a {}."]


def test_prompts_are_class_major():
    assert prompts_of(["cat", "dog"], ["a {}.", "the {}!"]) == ["a cat.", "the cat!", "a dog.", "the dog!"]


def _folder(tmp_path, counts: dict[str, int]):
    return write_class_folder(tmp_path / "val", {name: [draw_shape("circle", "red")] * n
                                                 for name, n in counts.items()})


def test_folder_classes_follow_sorted_folder_order_and_interleave(tmp_path):
    root = _folder(tmp_path, {"circle": 2, "square": 1, "star": 3})
    items = folder_items(str(root), ["circle", "square", "star"], limit=None)
    assert items.labels == [0, 1, 2, 0, 2, 2]
    assert [u.split("/")[-2:] for u in items.uris[:2]] == [["n00000000_circle", "0000.png"],
                                                           ["n00000001_square", "0000.png"]]
    assert folder_items(str(root), ["circle", "square", "star"], limit=3).labels == [0, 1, 2]


def test_a_folder_with_another_number_of_classes_is_refused(tmp_path):
    root = _folder(tmp_path, {"circle": 1, "square": 1})
    with pytest.raises(EvalInputError, match="has 2 class folders, --classes lists 3"):
        folder_items(str(root), ["a", "b", "c"], limit=None)


def test_labels_take_indices_or_names_relative_to_the_labels_file(tmp_path):
    labels = tmp_path / "labels.jsonl"
    labels.write_text('{"image": "val/1.png", "label": 2}\n{"image": "val/2.png", "label": "goldfish"}\n')
    items = labels_items(str(labels), ["tench", "goldfish", "shark"], images=None, limit=None)
    assert items.labels == [2, 1]
    assert items.uris == [str(tmp_path / "val" / "1.png"), str(tmp_path / "val" / "2.png")]
    assert labels_items(str(labels), ["tench", "goldfish", "shark"], images="/imgs", limit=1).uris == ["/imgs/val/1.png"]


@pytest.mark.parametrize("label, says", [
    (3, r"class index 3 is out of range \(0..2\)"),
    (-1, "class index -1 is out of range"),
    ('"carp"', "class 'carp' is not in --classes"),
    ('"crane"', "class name 'crane' appears twice in --classes; give its index"),
])
def test_a_bad_label_names_its_row(tmp_path, label, says):
    labels = tmp_path / "labels.jsonl"
    labels.write_text(f'{{"image": "a.png", "label": 0}}\n{{"image": "b.png", "label": {label}}}\n')
    with pytest.raises(EvalInputError, match=f"labels.jsonl, row 2: {says}"):
        labels_items(str(labels), ["tench", "crane", "crane"], images=None, limit=None)


def test_topk_accuracy_known_answer():
    logits = torch.tensor([
        [0.9, 0.1, 0.0, 0.0, 0.0, 0.0],  # label 0: top-1
        [0.5, 0.4, 0.3, 0.2, 0.1, 0.0],  # label 4: 5th -> top-5 only
        [0.5, 0.4, 0.3, 0.2, 0.1, 0.0],  # label 5: 6th -> neither
        [0.0, 0.2, 0.1, 0.0, 0.0, 0.0],  # label 2: 2nd -> top-5 only
    ])
    assert topk_accuracy(logits, torch.tensor([0, 4, 5, 2])) == {"top1": 0.25, "top5": 0.75}
    # With fewer classes than k, top-k is capped at the number of classes.
    assert topk_accuracy(logits[:, :2], torch.tensor([0, 0, 1, 1])) == {"top1": 0.75, "top5": 1.0}


def _zeroshot(*argv: str) -> list[str]:
    return ["eval", "zeroshot", "--checkpoint", "nowhere", *argv]



def test_bad_input_is_one_error_line_before_the_model_loads(tmp_path, capsys):
    classes = tmp_path / "classes.txt"
    classes.write_text("circle\nsquare\n")
    root = _folder(tmp_path, {"circle": 1, "square": 1})
    assert main(_zeroshot("--classes", str(tmp_path / "absent.txt"), "--folder", str(root))) == 2
    assert "absent.txt: no such file" in one_error_line(capsys)
    assert main(_zeroshot("--classes", str(classes), "--folder", str(root), "--labels", "x.jsonl")) == 2
    assert "--folder DIR or --labels FILE (one of them)" in one_error_line(capsys)
    labels = tmp_path / "labels.csv"
    labels.write_text("image,label\nval/n00000000_circle/0000.png,7\n")
    assert main(_zeroshot("--classes", str(classes), "--labels", str(labels))) == 2
    assert "class index 7 is out of range" in one_error_line(capsys)
    labels.write_text("image,label\nval/n00000000_circle/0000.png,0\nval/missing.png,1\n")
    assert main(_zeroshot("--classes", str(classes), "--labels", str(labels))) == 2
    assert "missing.png not found" in one_error_line(capsys)
    # Inputs fine: now the checkpoint is what is missing.
    assert main(_zeroshot("--classes", str(classes), "--folder", str(root))) == 2
    assert "--checkpoint: no stage2 checkpoint at nowhere" in one_error_line(capsys)


@pytest.mark.slow
@pytest.mark.train
def test_each_image_its_own_caption_as_class_is_image_to_text_retrieval(stage2_run, synth, run_dir, tmp_path, capsys):
    """Zero-shot with the template "{}" and the held-out long captions as the 100 classes is the
    finecap protocol's long-caption image -> text retrieval: top-1/top-5 must equal its R@1/R@5."""
    reference = finecap_retrieval(run_dir / "stage2", synth / "heldout", capsys)["long"]["image_to_text"]
    images = write_heldout_images(synth / "heldout", tmp_path / "flat")
    root = write_class_folder(tmp_path / "val", {f"{i:03d}": [] for i in range(len(images))})
    for i, image in enumerate(images):  # one image per class folder, folder order = row order
        (tmp_path / "flat" / image["file"]).rename(next(root.glob(f"n{i:08d}_*")) / image["file"])
    (tmp_path / "classes.json").write_text(json.dumps([image["long"] for image in images]))
    (tmp_path / "templates.txt").write_text("{}\n")
    assert main(["eval", "zeroshot", "--checkpoint", str(run_dir / "stage2"), "--classes", str(tmp_path / "classes.json"),
                 "--templates", str(tmp_path / "templates.txt"), "--folder", str(root), "--json"]) == 0
    result = last_json(capsys)
    assert (result["n"], result["n_classes"], result["n_templates"]) == (100, 100, 1)
    assert result["top1"] == pytest.approx(reference["r1"]) and result["top5"] == pytest.approx(reference["r5"])
    assert result["top1"] >= 5 * result["chance_top1"], result  # the trained model, well above chance


@pytest.mark.slow
@pytest.mark.train
def test_class_embedding_is_the_renormalised_mean_of_normalised_template_embeddings(stage2_run, run_dir, tmp_path,
                                                                                    capsys):
    from finecap.train.embedding import Encoder

    encoder = Encoder.load(run_dir / "stage2")
    classes, templates = ["red circle", "blue square", "green star"], read_templates(None)
    got = class_embeddings(encoder, classes, templates, encoder.text_length, batch_size=50)
    for c, name in enumerate(classes):
        each = encoder.texts([t.replace("{}", name) for t in templates], encoder.text_length, batch_size=80)
        assert torch.allclose(each.norm(dim=1), torch.ones(80), atol=1e-5)
        assert torch.allclose(got[c], torch.nn.functional.normalize(each.mean(0), dim=0), atol=1e-5)
    # The command with the default templates: labels by name, relative to the labels file.
    drawn = {f"{colour} {shape}": [draw_shape(shape, colour, offset=(dx, 0)) for dx in (-20, 0, 20)]
             for colour, shape in (c.split() for c in classes)}
    write_class_folder(tmp_path / "val", drawn)
    (tmp_path / "classes.txt").write_text("\n".join(classes) + "\n")
    rows = [{"image": str(p.relative_to(tmp_path)), "label": classes[int(p.parent.name[1:9])]}
            for p in sorted((tmp_path / "val").glob("*/*.png"))]
    (tmp_path / "labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["eval", "zeroshot", "--checkpoint", str(run_dir / "stage2"), "--classes", str(tmp_path / "classes.txt"),
                 "--labels", str(tmp_path / "labels.jsonl"), "--json"]) == 0
    result = last_json(capsys)
    assert (result["n"], result["n_classes"], result["n_templates"]) == (9, 3, 80)
    assert result["top5"] == 1.0 and 0.0 <= result["top1"] <= 1.0 and result["prompts"]["truncated"] == 0
