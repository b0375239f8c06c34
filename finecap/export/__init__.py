"""FineViT-VL as a model folder: transformers classes, processor and the export of a stage III checkpoint.

Importing this package registers `finevit_vl` with transformers (AutoConfig and
AutoModelForImageTextToText), so an exported folder loads with plain
`AutoModelForImageTextToText.from_pretrained(folder)`, no trust_remote_code. It imports torch
and transformers (seconds), which is why the `finecap export` command is defined outside it
(finecap/export_command.py) and imports it only when run.
"""

from __future__ import annotations

from transformers import AutoConfig, AutoModelForImageTextToText

from finecap.export.export import ExportError, export_checkpoint
from finecap.export.hf_config import MODEL_TYPE, FineVitVLConfig
from finecap.export.hf_model import FineVitVLForConditionalGeneration
from finecap.export.processor import FineVitVLProcessor

AutoConfig.register(MODEL_TYPE, FineVitVLConfig, exist_ok=True)
AutoModelForImageTextToText.register(FineVitVLConfig, FineVitVLForConditionalGeneration, exist_ok=True)

__all__ = ["ExportError", "FineVitVLConfig", "FineVitVLForConditionalGeneration", "FineVitVLProcessor",
           "export_checkpoint"]
