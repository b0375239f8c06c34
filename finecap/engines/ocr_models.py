"""PP-OCRv4's three ONNX models (text detection, line direction, recognition), one step at a time.

Why not rapidocr's own call: `RapidOCR(image)` runs det -> cls -> rec image by image, so
recognition batches only the lines of one image (1 to 3 on a typical photo), and its sessions
fall back to the CPU without a word when CUDA is asked for but missing. Here each step is its
own method over numpy arrays, so `engines/ocr.py` detects per image and recognises the lines of
many images in one forward. The steps compute what rapidocr 1.4.4 computes: the models it ships,
the settings of its config.yaml, its DB, direction and CTC decoders; tests/engines/test_ocr.py
holds the results equal to rapidocr's own call on the OCR scenes.

Recognition pads every line of a forward to one width, and that width changes the scores (up to
0.04 measured on 59 scene lines when they all went into one forward instead of rapidocr's per-image
batches of 6). So each line keeps the width rapidocr's per-image batching would give it
(`rec_widths`) and a forward only holds lines of one width: the batch size changes no result.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from finecap.typed_config import ConfigError

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


def package_dir() -> Path:
    import rapidocr_onnxruntime

    return Path(rapidocr_onnxruntime.__file__).parent


def onnx_providers(device: str) -> list:
    """Execution providers for `device` (cpu | cuda); cuda without onnxruntime's CUDA provider
    is an error naming the key, not rapidocr's silent fall back to the CPU."""
    import onnxruntime

    if device == "cpu":
        return [CPU]
    available = onnxruntime.get_available_providers()
    if CUDA not in available:
        raise ConfigError(f"ocr.device: cuda needs onnxruntime's {CUDA} (the onnxruntime-gpu package); "
                          f"this onnxruntime {onnxruntime.__version__} has {', '.join(available)}")
    # HEURISTIC: every image gives the detector another input shape; an EXHAUSTIVE cuDNN search
    # (rapidocr's setting) would run again for each.
    return [(CUDA, {"cudnn_conv_algo_search": "HEURISTIC"}), CPU]


def _session(path: Path, providers: list, threads: int):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 4
    options.enable_cpu_mem_arena = False  # as rapidocr: the arena would keep the largest image's buffers
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(path), sess_options=options, providers=providers)
    wanted = providers[0] if isinstance(providers[0], str) else providers[0][0]
    if session.get_providers()[0] != wanted:
        raise ConfigError(f"ocr.device: onnxruntime ran {path.name} on {session.get_providers()[0]}, not {wanted}")
    return session


class PpOcrModels:
    """The detector, direction classifier and recogniser, with rapidocr's settings and decoders."""

    def __init__(self, box_threshold: float, limit_side_len: int, threads: int = 1, device: str = "cpu"):
        os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")  # read when onnxruntime is imported
        from rapidocr_onnxruntime.ch_ppocr_cls.utils import ClsPostProcess
        from rapidocr_onnxruntime.ch_ppocr_det.utils import DBPostProcess
        from rapidocr_onnxruntime.ch_ppocr_rec.utils import CTCLabelDecode
        from rapidocr_onnxruntime.utils import read_yaml

        root = package_dir()
        config = read_yaml(root / "config.yaml")
        det, cls, rec = config["Det"], config["Cls"], config["Rec"]
        self.settings = config["Global"]
        providers = onnx_providers(device)
        self.det = _session(root / det["model_path"], providers, threads)
        self.cls = _session(root / cls["model_path"], providers, threads)
        self.rec = _session(root / rec["model_path"], providers, threads)
        self.limit_side_len = limit_side_len  # rapidocr's `min` rule: a shorter short side is scaled up
        self.det_threshold = float(det["thresh"])
        self.db = DBPostProcess(thresh=det["thresh"], box_thresh=box_threshold, max_candidates=det["max_candidates"],
                                unclip_ratio=det["unclip_ratio"], score_mode=det["score_mode"],
                                use_dilation=det["use_dilation"])
        self._det_table = _normalise_table(det["mean"], det["std"])
        self.cls_shape, self.cls_threshold = tuple(cls["cls_image_shape"]), float(cls["cls_thresh"])
        self.cls_decode = ClsPostProcess(cls["label_list"])
        self.rec_shape, self.rec_reference_batch = tuple(rec["rec_img_shape"]), int(rec["rec_batch_num"])
        characters = self.rec.get_modelmeta().custom_metadata_map["character"].splitlines()
        self.rec_decode = CTCLabelDecode(character=characters)

    def detect(self, image: np.ndarray) -> np.ndarray:
        """Text boxes (n, 4, 2) float32, clockwise from top-left, in `image`'s pixels (BGR uint8)."""
        pred = self._probabilities(image, self.limit_side_len, "min")
        if pred is None:
            return np.zeros((0, 4, 2), np.float32)
        boxes, _scores = self.db(pred, image.shape[:2])
        return _keep_boxes(boxes, *image.shape[:2])

    def any_text(self, image: np.ndarray, side: int) -> bool:
        """Whether the detector, on a copy of `image` at most `side` px long, marks any pixel as
        text (probability over its binarisation threshold): the probe of `ocr.probe_side`."""
        pred = self._probabilities(image, side, "max")
        return pred is not None and bool((pred > self.det_threshold).any())

    def _probabilities(self, image: np.ndarray, side: int, limit_type: str) -> np.ndarray | None:
        """The detector's (1, 1, h, w) text probabilities for `image` resized by rapidocr's rule."""
        import cv2

        height, width = _det_size(*image.shape[:2], side, limit_type)
        if height <= 0 or width <= 0:
            return None
        resized = cv2.resize(image, (width, height))
        pixels = np.empty((1, 3, height, width), np.float32)
        for c in range(3):  # a table per channel: rapidocr's float64 arithmetic to the bit, 4x faster (64 -> 15 ms)
            np.take(self._det_table[:, c], resized[:, :, c], out=pixels[0, c])
        return self.det.run(None, {self.det.get_inputs()[0].name: pixels})[0]

    def orient(self, crops: list[np.ndarray], batch_size: int) -> list[np.ndarray]:
        """`crops` with those the classifier reads as upside down (score over cls_thresh) turned."""
        import cv2

        out = list(crops)
        for start in range(0, len(crops), batch_size):
            batch = np.stack([_cls_input(c, self.cls_shape) for c in crops[start : start + batch_size]])
            probs = self.cls.run(None, {self.cls.get_inputs()[0].name: batch})[0]
            for n, (label, score) in enumerate(self.cls_decode(probs)):
                if "180" in label and score > self.cls_threshold:
                    out[start + n] = cv2.rotate(crops[start + n], cv2.ROTATE_180)
        return out

    def rec_widths(self, crops: Sequence[np.ndarray]) -> list[int]:
        """Per crop of one image, the input width rapidocr's per-image recognition gives it: the
        widest aspect ratio among the crops of its batch (crops sorted by aspect ratio, in batches
        of rec_batch_num), at least the model's own 320."""
        height, base = self.rec_shape[1], self.rec_shape[2]
        ratios = [c.shape[1] / float(c.shape[0]) for c in crops]
        order = np.argsort(np.array(ratios))
        widths = [0] * len(crops)
        for start in range(0, len(crops), self.rec_reference_batch):
            members = order[start : start + self.rec_reference_batch]
            widest = max([base / height, *(ratios[i] for i in members)])
            for i in members:
                widths[i] = int(height * widest)
        return widths

    def recognise(self, crops: Sequence[np.ndarray], widths: Sequence[int],
                  batch_size: int) -> list[tuple[str, float]]:
        """(text, score) per crop; a forward holds up to `batch_size` crops of one width."""
        by_width: dict[int, list[int]] = {}
        for i, width in enumerate(widths):
            by_width.setdefault(width, []).append(i)
        out: list[tuple[str, float]] = [("", 0.0)] * len(crops)
        for width, members in by_width.items():
            for start in range(0, len(members), batch_size):
                group = members[start : start + batch_size]
                batch = np.stack([_rec_input(crops[i], self.rec_shape[1], width) for i in group])
                preds = self.rec.run(None, {self.rec.get_inputs()[0].name: batch})[0]
                for i, (text, score) in zip(group, self.rec_decode(preds), strict=True):
                    out[i] = (text, float(score))
        return out


def _normalise_table(mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """(256, 3) float32: what rapidocr's detector normalisation makes of each byte per channel."""
    levels = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)
    return ((levels.astype("float32") * (1 / 255.0) - np.array(mean)) / np.array(std)).astype(np.float32)


def _det_size(height: int, width: int, side: int, limit_type: str) -> tuple[int, int]:
    """rapidocr's detector input size: the short side scaled up to `side` (min) or the long side
    down to it (max), then each side rounded to a multiple of 32."""
    if limit_type == "min":
        ratio = side / min(height, width) if min(height, width) < side else 1.0
    else:
        ratio = side / max(height, width) if max(height, width) > side else 1.0
    return int(round(int(height * ratio) / 32) * 32), int(round(int(width * ratio) / 32) * 32)


def _keep_boxes(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """Corners ordered clockwise from top-left, clipped to whole pixels inside the image; boxes
    3 px wide or high or less dropped (rapidocr's filter)."""
    kept = []
    for box in boxes:
        by_x = box[np.argsort(box[:, 0]), :]
        left, right = by_x[:2], by_x[2:]
        (tl, bl), (tr, br) = left[np.argsort(left[:, 1]), :], right[np.argsort(right[:, 1]), :]
        quad = np.array([tl, tr, br, bl], dtype=np.float32)
        quad[:, 0] = np.floor(np.clip(quad[:, 0], 0, width - 1))
        quad[:, 1] = np.floor(np.clip(quad[:, 1], 0, height - 1))
        if int(np.linalg.norm(quad[0] - quad[1])) <= 3 or int(np.linalg.norm(quad[0] - quad[3])) <= 3:
            continue
        kept.append(quad)
    return np.array(kept, dtype=np.float32).reshape(-1, 4, 2)


def _scaled_line(crop: np.ndarray, height: int, width: int) -> np.ndarray:
    """`crop` resized to `height` keeping its aspect (at most `width`), as floats in [-1, 1], CHW,
    zero-padded on the right to `width`."""
    import cv2

    ratio = crop.shape[1] / float(crop.shape[0])
    resized_w = min(width, int(math.ceil(height * ratio)))
    line = cv2.resize(crop, (resized_w, height)).astype("float32").transpose((2, 0, 1)) / 255
    line -= 0.5
    line /= 0.5
    out = np.zeros((line.shape[0], height, width), dtype=np.float32)
    out[:, :, :resized_w] = line
    return out


def _cls_input(crop: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    return _scaled_line(crop, shape[1], shape[2])


def _rec_input(crop: np.ndarray, height: int, width: int) -> np.ndarray:
    return _scaled_line(crop, height, width)
