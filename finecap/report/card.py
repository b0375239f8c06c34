"""OUTPUT/README.md: the Hugging Face dataset card.

The YAML header is what the Hub and `datasets.load_dataset(OUTPUT)` read: one `default` config
whose data_files are the data shards only (rejects and report files stay out), and the features
derived from the schema version the shards were written with (`load_schema(v).features()`, the
same ones stored in every shard; the current version when the shards mix versions), so the card
cannot drift from the data and a v1 output keeps loading after the schema moves on. Split sizes are left out on purpose: `datasets` verifies
them, and a card written before a resumed build would then refuse to load the larger output.
The body says how the data was made, from the shard manifests: config hash, models, revisions,
prompts and counts.
"""

from __future__ import annotations

from html import escape

from datasets.info import DatasetInfo, DatasetInfosDict
from huggingface_hub import DatasetCardData

from finecap import storage
from finecap.redact import public_uri
from finecap.schema import SCHEMA_VERSION, FinecapSchema, load_schema

SIZE_CATEGORIES = (
    (1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"),
    (10_000_000_000, "1B<n<10B"),
)


def size_category(rows: int) -> str:
    return next((name for bound, name in SIZE_CATEGORIES if rows < bound), "n>10B")


def shard_schema(stats: dict) -> FinecapSchema:
    """The schema the shards were written with (the manifests' one version), else the current one."""
    versions = stats["provenance"]["schema_versions"]
    return load_schema(versions[0] if len(versions) == 1 else SCHEMA_VERSION)


def card_header(stats: dict, data_bytes: int, name: str) -> str:
    schema = shard_schema(stats)
    data = DatasetCardData(
        pretty_name=name,
        license="unknown",
        language=["en"],
        task_categories=["image-to-text", "object-detection"],
        tags=["finecap", "dense-captioning", "region-captioning", "ocr", "synthetic-captions"],
        size_categories=[size_category(stats["rows"])],
        configs=[{"config_name": "default", "default": True,
                  "data_files": [{"split": "train", "path": "data/*.parquet"}]}],
    )
    info = DatasetInfo(features=schema.features(), download_size=data_bytes, dataset_size=data_bytes)
    DatasetInfosDict({"default": info}).to_dataset_card_data(data)
    return f"---\n{data.to_yaml()}\n---\n"


def _md(value) -> str:
    """A value safe inside a Markdown table cell."""
    return escape(str(value if value is not None else ""), quote=False).replace("|", "\\|").replace("\n", " ")


def _table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_md(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) if rows else "_none_"


def _fields(schema: FinecapSchema) -> str:
    rows = [[f"`{f['name']}`", _type_name(f["type"]), f.get("doc", "")] for f in schema.spec["fields"]]
    return _table(["field", "type", "meaning"], rows)


def _type_name(spec) -> str:
    if isinstance(spec, str):
        return spec
    if "list" in spec:
        return f"list of {_type_name(spec['list'])}"
    return "struct {" + ", ".join(f["name"] for f in spec["struct"]) + "}"


def card_body(stats: dict, output: str, name: str) -> str:
    prov = stats["provenance"]
    models = [[m.get("stage"), m.get("name"), m.get("model"), m.get("revision"), m.get("prompt_id")]
              for m in prov["models"]]
    tiny = any(str(m.get("model", "")).startswith("tiny:") for m in prov["models"])
    warning = ("\n> **Captions are noise.** This output was built with FineCap's tiny random-weight "
               "models (the offline CPU default); point the pipeline at real checkpoints for real captions.\n"
               if tiny else "")
    rejects = [[s, r, n] for s, reasons in stats["rejects_by_stage"].items() for r, n in reasons.items()]
    seconds = [[k, v, stats["stage_seconds_per_row"].get(k)] for k, v in stats["stage_seconds"].items()]
    origins = [[o, v["regions"], v["images_with"]] for o, v in stats["regions"]["by_origin"].items()]
    load_path = output.rstrip("/")
    return f"""
# {name}

A dense-recaption image dataset built by FineCap (the FineCap-450M recipe of FineViT,
arXiv 2603.17326): every image has global captions with their model, revision and prompt,
grounded regions (detector) and text regions (OCR) with boxes normalised to [0, 1], region
captions, quality scores and provenance.
{warning}
## Contents

| | |
|---|---|
| images (rows) | {stats["rows"]:,} |
| input rows | {stats["rows_in"]:,} |
| rejected rows | {stats["rejects"]:,} (in `rejects/*.parquet`, with stage and reason) |
| shards | {stats["shards"]:,} |
| global captions | {sum(c["captions"] for c in stats["captions"].values()):,} |
| regions | {stats["regions"]["total"]:,} |

Regions by origin:

{_table(["origin", "regions", "images with one"], origins)}

## How it was made

- Built with finecap {_md(", ".join(prov["finecap_versions"]))}, schema {_md(", ".join(prov["schema_versions"]))}
- Pipeline config hash: `{_md(", ".join(prov["config_hashes"]))}` (every row's `provenance.config_hash`)
- Source: `{_md(", ".join(map(public_uri, prov["sources"])))}`

Models:

{_table(["stage", "name", "model", "revision", "prompt"], models)}

Region captions by model:

{_table(["caption model", "regions"], [list(kv) for kv in stats["regions"]["captioned_by"].items()])}

Regions kept without a caption because their generation failed (boxes kept for a rebuild;
`region_caption_failures` in the shard manifests):

{_table(["reason", "regions"], [list(kv) for kv in stats.get("region_caption_failures", {}).items()])}

Prompts (ids as in `captions.prompt_id`, sha256 of the prompt text):

{_table(["prompt", "sha256"], [list(kv) for kv in prov["prompts"].items()])}

Rejected rows:

{_table(["stage", "reason", "rows"], rejects)}

Time per stage, summed over workers:

{_table(["stage", "seconds", "seconds per input row"], seconds)}

## Record

{_fields(shard_schema(stats))}

## How to load

```python
import datasets
ds = datasets.load_dataset("{load_path}", split="train")   # this folder, or its Hub repo id once pushed
ds[0]["image"]      # a PIL image
ds[0]["captions"]   # [{{"text", "model", "model_revision", "prompt_id", "num_tokens"}}]
ds[0]["regions"]    # [{{"bbox": [x1, y1, x2, y2], "phrase", "category", "origin", "caption", ...}}]
```

or, without this card, `datasets.load_dataset("parquet", data_files="{load_path}/data/*.parquet", split="train")`.
Statistics and plots are in `report/index.html`, sample images with their boxes in
`report/gallery/index.html`.
"""


def write_card(output: str, stats: dict, name: str | None = None) -> str:
    name = name or f"FineCap: {output.rstrip('/').rsplit('/', 1)[-1]}"
    path = storage.join(output, "README.md")
    card = card_header(stats, stats["data_bytes"], name) + card_body(stats, output, name)
    storage.write_bytes(path, card.encode())
    return path
