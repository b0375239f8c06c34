"""Zero-shot classification of a stage II checkpoint (the CLIP protocol): top-1 and top-5 accuracy.

Each class is one text embedding: the class name put into every prompt template ("a photo of a
{}."), each embedding L2-normalised, averaged over the templates and normalised again (CLIP's
prompt ensembling; open_clip and big_vision do the same). An image's prediction is the class
with the highest cosine similarity. The default templates are CLIP's 80 ImageNet prompts,
shipped as `finecap/train/data/imagenet_templates.txt`.

Images come from an ImageNet-style folder (one subfolder per class; class index = position in
the sorted folder names, which for ImageNet is the synset order n01440764, ...) or from a labels
file (JSONL or CSV: an image path and a class index or name).
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass
from importlib import resources

import torch

from finecap.train.embedding import Encoder, batched, embed_text_batch
from finecap.train.eval_inputs import (
    EvalInputError,
    check_present,
    image_files,
    load_images,
    pick_field,
    read_table,
    read_text,
    resolve,
    subfolders,
)

KS = (1, 5)
DEFAULT_TEMPLATES = "imagenet_templates.txt"
IMAGE_FIELDS = ("image", "path", "file", "filename")
LABEL_FIELDS = ("label", "class", "class_index")


@dataclass(frozen=True)
class Labelled:
    """The images to classify, in evaluation order, and their class indices."""

    uris: list[str]
    labels: list[int]


def read_classes(uri: str) -> list[str]:
    """Class names: a JSON list of strings, or one name a line (blank lines skipped)."""
    text = read_text(uri, "--classes")
    if text.lstrip().startswith("["):
        try:
            names = json.loads(text)
        except json.JSONDecodeError as exc:
            raise EvalInputError(f"--classes {uri}: not a JSON list ({exc.msg})") from None
        if not all(isinstance(n, str) and n.strip() for n in names):
            raise EvalInputError(f"--classes {uri}: a JSON list of class names must hold non-empty strings only")
        names = [n.strip() for n in names]
    else:
        names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise EvalInputError(f"--classes {uri}: no class names")
    return names


def read_templates(uri: str | None) -> list[str]:
    """Prompt templates, one a line with `{}` once; `#` lines are comments. None: CLIP's 80."""
    if uri is None:
        text, where = resources.files("finecap.train").joinpath("data", DEFAULT_TEMPLATES).read_text("utf-8"), \
            DEFAULT_TEMPLATES
    else:
        text, where = read_text(uri, "--templates"), uri
    templates = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line.count("{}") != 1:
            raise EvalInputError(f"--templates {where}, line {number}: a template holds `{{}}` exactly once: {line!r}")
        templates.append(line.strip())
    if not templates:
        raise EvalInputError(f"--templates {where}: no templates")
    return templates


def folder_items(root: str, classes: list[str], limit: int | None) -> Labelled:
    """An ImageNet-style folder: class i is the i-th subfolder in sorted order.

    The order interleaves classes (each class's first image, then each one's second, ...), so
    `limit` keeps a sample that covers every class instead of the first few classes only.
    """
    names = subfolders(root, "--folder")
    if len(names) != len(classes):
        raise EvalInputError(f"--folder {root} has {len(names)} class folders, --classes lists {len(classes)}")
    per_class = [image_files(resolve(root, name)) for name in names]
    empty = [n for n, files in zip(names, per_class, strict=True) if not files]
    if empty:
        raise EvalInputError(f"--folder {root}: class folder {empty[0]} holds no images")
    uris, labels = [], []
    for rank in range(max(len(files) for files in per_class)):
        for label, files in enumerate(per_class):
            if rank < len(files):
                uris.append(files[rank])
                labels.append(label)
    return Labelled(uris[:limit], labels[:limit])


def labels_items(uri: str, classes: list[str], images: str | None, limit: int | None) -> Labelled:
    """A labels file: rows of an image path (relative to `images`, default the file's folder) and a label.

    A label is a class index (0-based, in the --classes order) or a class name; a name given
    twice in --classes is ambiguous and must be given by index.
    """
    rows = read_table(uri, "--labels")[:limit]
    if not rows:
        raise EvalInputError(f"--labels {uri}: no rows")
    root = images if images is not None else posixpath.dirname(uri) or "."
    index = {name: i for i, name in enumerate(classes)}
    twice = {name for name in classes if classes.count(name) > 1}
    uris, labels = [], []
    for number, row in enumerate(rows, start=1):
        where = f"{uri}, row {number}"
        path = str(pick_field(row, IMAGE_FIELDS, "--labels", where))
        label = _label(pick_field(row, LABEL_FIELDS, "--labels", where), index, twice, len(classes), where)
        uris.append(resolve(root, path))
        labels.append(label)
    return Labelled(uris, labels)


def _label(value, index: dict[str, int], twice: set[str], n_classes: int, where: str) -> int:
    text = str(value).strip()
    if isinstance(value, int) or text.lstrip("-").isdigit():
        label = int(text)
        if not 0 <= label < n_classes:
            raise EvalInputError(f"--labels {where}: class index {label} is out of range (0..{n_classes - 1})")
        return label
    if text in twice:
        raise EvalInputError(f"--labels {where}: class name {text!r} appears twice in --classes; give its index")
    if text not in index:
        raise EvalInputError(f"--labels {where}: class {text!r} is not in --classes")
    return index[text]


def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor, ks: tuple[int, ...] = KS) -> dict[str, float]:
    """Fraction of rows whose label is among the k highest logits ([N, C], [N]); k is capped at C."""
    n_classes = logits.shape[1]
    top = logits.topk(min(max(ks), n_classes), dim=1).indices
    hits = top == labels.unsqueeze(1)
    return {f"top{k}": float(hits[:, : min(k, n_classes)].any(dim=1).float().mean()) for k in ks}


def prompts_of(classes: list[str], templates: list[str]) -> list[str]:
    """Every class in every template, class-major (class c owns rows c*T .. c*T+T-1)."""
    return [t.replace("{}", name) for name in classes for t in templates]


def class_embeddings(encoder: Encoder, classes: list[str], templates: list[str], text_length: int,
                     batch_size: int) -> torch.Tensor:
    """[C, D]: per class, the renormalised mean of its normalised template embeddings.

    Summed batch by batch: ImageNet's 1,000 classes x 80 templates are 80,000 prompts, whose
    embeddings held at once would take C*T*D*4 bytes (368 MB at D = 1152).
    """
    prompts = prompts_of(classes, templates)
    owners = torch.arange(len(classes)).repeat_interleave(len(templates))
    sums: torch.Tensor | None = None
    for rows in batched(range(len(prompts)), batch_size):
        emb = embed_text_batch(encoder.model, encoder.tokenizer, [prompts[i] for i in rows], text_length)
        sums = torch.zeros(len(classes), emb.shape[1]) if sums is None else sums
        sums.index_add_(0, owners[rows], emb)
    assert sums is not None  # read_classes and read_templates refuse empty lists
    return torch.nn.functional.normalize(sums / len(templates), dim=-1)


def evaluate_zeroshot(checkpoint: str, classes: str, templates: str | None = None, folder: str | None = None,
                      labels: str | None = None, images: str | None = None, limit: int | None = None,
                      batch_size: int = 64) -> dict:
    """Top-1 / top-5 accuracy over the images of `folder` or `labels`; inputs are checked before the model loads."""
    if (folder is None) == (labels is None):
        raise EvalInputError("eval zeroshot reads its images from --folder DIR or --labels FILE (one of them)")
    if images is not None and labels is None:
        raise EvalInputError("--images is the root of the --labels paths; with --folder leave it out")
    names, prompts = read_classes(classes), read_templates(templates)
    if folder is not None:
        items = folder_items(folder, names, limit)  # listed, so present
    else:
        items = labels_items(labels, names, images, limit)
        check_present(items.uris, "--labels")
    encoder = Encoder.load(checkpoint)
    text_length = encoder.text_length
    weights = class_embeddings(encoder, names, prompts, text_length, batch_size)
    features = encoder.images(load_images(items.uris), batch_size)
    accuracy = topk_accuracy(features @ weights.t(), torch.tensor(items.labels))
    return {
        "task": "zeroshot", "checkpoint": str(checkpoint), "source": folder or labels, "classes": classes,
        "templates": templates or f"default: {DEFAULT_TEMPLATES} (CLIP's ImageNet prompts)",
        "n": len(items.uris), "n_classes": len(names), "n_templates": len(prompts), **accuracy,
        "chance_top1": 1.0 / len(names), "resolution": encoder.resolution, "text_length": text_length,
        "prompts": encoder.truncation(prompts_of(names, prompts), text_length),
    }
