"""config.json round-trips through AutoConfig, and a hand-edited one fails naming the key."""

from __future__ import annotations

import json
import shutil

import pytest


def test_config_round_trips_through_autoconfig(exported):
    from transformers import AutoConfig

    import finecap.export  # noqa: F401
    from finecap.export import FineVitVLConfig
    from finecap.train.vit import ViTConfig

    config = AutoConfig.from_pretrained(exported)
    assert isinstance(config, FineVitVLConfig) and config.architectures == ["FineVitVLForConditionalGeneration"]
    assert config.vit() == ViTConfig(**json.loads((exported / "config.json").read_text())["vision_config"])
    assert config.text_config.model_type == "llama" and config.projector_hidden_dim == config.text_config.hidden_size
    assert config.projector_input_dim == 4 * config.vit().width and config.max_pixels == 84 * 84


@pytest.mark.parametrize(("key", "value"), [("projector_input_dim", 100), ("merge_size", 3), ("image_token_id", None),
                                            ("vision_config", {"width": 96}), ("text_config", {"model_type": "nope"})])
def test_an_edited_config_fails_naming_the_key(exported, tmp_path, key, value):
    from transformers import AutoModelForImageTextToText

    import finecap.export  # noqa: F401
    from finecap.export.hf_config import ExportConfigError

    folder = tmp_path / "edited"
    shutil.copytree(exported, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, key: value}))
    with pytest.raises(ExportConfigError, match=key):
        AutoModelForImageTextToText.from_pretrained(folder)
