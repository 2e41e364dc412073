"""Tiny random checkpoints built from a model's real hub files.

A folder of real hub files (config, processor and preprocessor configs, chat template,
tokenizer files, generation config; no weights) becomes a loadable checkpoint: every file is
copied as it is, except config.json, whose size dimensions (hidden sizes, layers, heads,
intermediate sizes, vision depth, experts) are shrunk; random weights of the family's own
model class are written beside them. Every token id, the vocabulary size (the embedding table
covers the real vocabulary), the template, the processor settings and the generation values
stay the real ones, so the production loader reads the folder exactly as it would read the hub
snapshot, only faster.

The output embedding rows of special, added and whitespace-only tokens (and of the padding
rows past the tokenizer) are zeroed: a random tiny model then writes visible text instead of
ending or repeating a special token, and an answer is never "empty" by chance.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# The only config keys a tiny build may change: size dimensions, and the lists whose length
# follows the number of layers or experts.
SIZE_KEYS = frozenset(
    {
        "hidden_size",
        "intermediate_size",
        "moe_intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "head_dim",
        "depth",
        "embed_dim",
        "num_heads",
        "out_hidden_size",
        "output_channels",
        "downsample_channels",
        "mlp_dim",
        "n_routed_experts",
        "n_shared_experts",
        "num_experts_per_tok",
        "max_window_layers",
        "layer_types",
        "mlp_layer_types",
        "global_attn_indexes",
        "deepstack_visual_indexes",
        "mrope_section",  # rotary sections scale with the head dimension they split
    }
)

_TEXT = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
_FULL2 = ["full_attention", "full_attention"]

# family → the size overrides, nested as in its config.json. Head dimensions stay real where the
# config names them (then mrope sections stay real too); where the head dimension follows
# hidden/heads (Qwen2-VL's text model), the sections are scaled to the tiny head.
TINY_SIZES: dict[str, dict[str, Any]] = {
    "qwen2_vl": {
        **_TEXT,
        "num_key_value_heads": 1,
        "max_window_layers": 2,
        "rope_scaling": {"mrope_section": [2, 3, 3]},  # 16:24:24 of a 16-dim head's 8 rotary pairs
        "vision_config": {"depth": 2, "embed_dim": 32, "num_heads": 2, "hidden_size": 32},
    },
    "qwen3_vl": {
        "text_config": {**_TEXT, "num_key_value_heads": 1},
        "vision_config": {
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "out_hidden_size": 32,
            "deepstack_visual_indexes": [0],
        },
    },
    "got_ocr2": {
        "text_config": {**_TEXT, "num_key_value_heads": 2, "max_window_layers": 2},
        "vision_config": {
            "hidden_size": 32,
            "output_channels": 16,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "mlp_dim": 64,
            "global_attn_indexes": [1],
        },
    },
    "dots_ocr": {
        **_TEXT,
        "num_key_value_heads": 1,
        "max_window_layers": 2,
        "vision_config": {
            "embed_dim": 32,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
        },
    },
    "lighton_ocr": {
        "text_config": {**_TEXT, "num_key_value_heads": 1, "max_window_layers": 2, "layer_types": _FULL2},
        "vision_config": {
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "head_dim": 16,
        },
    },
    "glm_ocr": {
        "text_config": {**_TEXT, "num_key_value_heads": 1},
        "vision_config": {
            "hidden_size": 32,
            "depth": 2,
            "num_heads": 2,
            "intermediate_size": 64,
            "out_hidden_size": 32,
        },
    },
    "paddleocr_vl": {
        **_TEXT,
        "num_key_value_heads": 1,
        "vision_config": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2},
    },
    "deepseek_ocr2": {
        "text_config": {
            **_TEXT,
            "num_key_value_heads": 2,
            "moe_intermediate_size": 16,
            "mlp_layer_types": ["dense", "sparse"],  # the real first layer is dense, the rest MoE
            "n_routed_experts": 4,
            "n_shared_experts": 1,
            "num_experts_per_tok": 2,
        },
        "vision_config": {
            "sam_config": {
                "hidden_size": 32,
                "mlp_dim": 64,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "global_attn_indexes": [1],
                "output_channels": 16,
                "downsample_channels": [32, 64],
            },
            "encoder_config": {
                "hidden_size": 64,  # = the SAM neck's last downsample channels, as in the real model
                "intermediate_size": 128,
                "num_hidden_layers": 2,
                "num_attention_heads": 4,
                "num_key_value_heads": 2,
                "max_window_layers": 2,
                "layer_types": _FULL2,
            },
        },
    },
    "granite_docling": {
        "text_config": {**_TEXT, "num_key_value_heads": 1},
        "vision_config": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2},
    },
}

_NOT_COPIED = {"config.json", "SOURCES.md"}


def shrink(config: Mapping[str, Any], sizes: Mapping[str, Any], where: str = "") -> dict[str, Any]:
    """`config` with `sizes` put over it; only SIZE_KEYS change, and only keys the config has."""
    tiny = dict(config)
    for key, value in sizes.items():
        if key not in config:
            raise KeyError(f"{where}{key} is not in the real config: a tiny build only shrinks what is there")
        if isinstance(value, Mapping):
            tiny[key] = shrink(config[key], value, f"{where}{key}.")
        elif key in SIZE_KEYS:
            tiny[key] = value
        else:
            raise KeyError(f"{where}{key} is not a size dimension; a tiny build keeps it as it is")
    return tiny


def shared_dir() -> Path:
    """`../shared` beside the checkout (the project's shared reference data); for a git worktree,
    the one beside its main checkout when the worktree has none."""
    repo = Path(__file__).resolve().parents[2]
    candidates = [repo.parent / "shared"]
    git = repo / ".git"
    if git.is_file() and git.read_text(encoding="utf-8").startswith("gitdir:"):
        # A worktree's .git file names <main checkout>/.git/worktrees/<name>.
        gitdir = Path(git.read_text(encoding="utf-8").split(":", 1)[1].strip())
        candidates.append(gitdir.parents[2].parent / "shared")
    return next((candidate for candidate in candidates if candidate.is_dir()), candidates[0])


def hubfiles_dir() -> Path:
    """The real hub files of the built-in models, one folder per family (`../shared/hubfiles`)."""
    return shared_dir() / "hubfiles"


@dataclass(frozen=True)
class HubFolder:
    """One family's real hub files, read as JSON (the small-vocabulary builders take their values here)."""

    path: Path

    @classmethod
    def of(cls, family: str) -> HubFolder:
        folder = hubfiles_dir() / family
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"no real hub files for {family} at {folder} (../shared/hubfiles/{family})")
        return cls(folder)

    def json(self, name: str) -> dict[str, Any]:
        return dict(json.loads((self.path / name).read_text(encoding="utf-8")))

    @property
    def config(self) -> dict[str, Any]:
        return self.json("config.json")

    @property
    def generation(self) -> dict[str, Any]:
        return self.json("generation_config.json") if (self.path / "generation_config.json").is_file() else {}

    def added_tokens(self) -> dict[int, str]:
        """Real id → token text of the tokenizer's added tokens, in id order."""
        decoder = self.json("tokenizer_config.json").get("added_tokens_decoder", {})
        return {int(i): entry["content"] for i, entry in sorted(decoder.items(), key=lambda item: int(item[0]))}

    def token(self, real_id: int) -> str:
        return self.added_tokens()[real_id]

    def special_token(self, name: str) -> str | None:
        """tokenizer_config.json's eos_token, pad_token, ... as text."""
        value = self.json("tokenizer_config.json").get(name)
        return value.get("content") if isinstance(value, dict) else value

    def chat_template(self) -> str | None:
        if (self.path / "chat_template.jinja").is_file():
            return (self.path / "chat_template.jinja").read_text(encoding="utf-8")
        if (self.path / "chat_template.json").is_file():
            return str(self.json("chat_template.json")["chat_template"])
        return self.json("tokenizer_config.json").get("chat_template")


def scaled_sections(sections: list[int], real_head_dim: int, tiny_head_dim: int) -> list[int]:
    """Rotary sections (mrope) of a real head, in the same proportions over a tiny head."""
    pairs = tiny_head_dim // 2
    scaled = [max(1, round(section * pairs / (real_head_dim // 2))) for section in sections]
    scaled[0] += pairs - sum(scaled)  # rounding goes to the temporal section
    return scaled


def family_of(folder: Path) -> str:
    """The family the production `--model-path` lookup gives this folder."""
    from chatvlmllm.models.catalog import spec_from_path

    return spec_from_path(folder).family


def build_tiny_from_hub(hub_folder: str | Path, out_dir: str | Path, seed: int = 0) -> Path:
    """A loadable tiny checkpoint of the model whose real hub files are in `hub_folder`."""
    hub, out = Path(hub_folder), Path(out_dir)
    if not (hub / "config.json").is_file():
        raise FileNotFoundError(f"{hub} holds no config.json: not a folder of real hub files")
    out.mkdir(parents=True, exist_ok=True)
    for file in sorted(hub.iterdir()):
        if file.is_file() and file.name not in _NOT_COPIED:
            shutil.copyfile(file, out / file.name)  # copyfile: the copies are writable, the originals read-only
    family = family_of(hub)
    real = json.loads((hub / "config.json").read_text(encoding="utf-8"))
    tiny = shrink(real, TINY_SIZES[family])
    (out / "config.json").write_text(json.dumps(tiny, indent=2), encoding="utf-8")
    model = _random_model(family, out, seed)
    silence_invisible_tokens(model, out)
    model.save_pretrained(str(out))
    # save_pretrained rewrote the configs in its own layout: the folder keeps the hub's files.
    (out / "config.json").write_text(json.dumps(tiny, indent=2), encoding="utf-8")
    if (hub / "generation_config.json").is_file():
        shutil.copyfile(hub / "generation_config.json", out / "generation_config.json")
    else:
        (out / "generation_config.json").unlink(missing_ok=True)
    log.info("tiny %s checkpoint from %s in %s", family, hub, out)
    return out


def _random_model(family: str, folder: Path, seed: int) -> Any:
    """A randomly initialised model of the class the family's engine loads, from the tiny config."""
    import torch

    from chatvlmllm.models.families import family_info

    torch.manual_seed(seed)
    if family == "dots_ocr":  # chatvlmllm's own model code (the hub's needs remote code)
        from chatvlmllm.engines._dots_vision import DotsOcrForGeneration, language_config

        raw = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        return DotsOcrForGeneration(language_config(raw))
    import transformers

    class_name = family_info(family).model_class
    if class_name is None:
        config = transformers.AutoConfig.from_pretrained(str(folder))
        return transformers.AutoModelForImageTextToText.from_config(config)
    model_class = getattr(transformers, class_name)
    return model_class(model_class.config_class.from_pretrained(str(folder)))


def invisible_token_ids(tokenizer: Any, table_size: int) -> list[int]:
    """Ids a tiny model should never write: special and added tokens, whitespace-only tokens
    (byte-level spellings of spaces and line breaks), and rows past the tokenizer's vocabulary."""
    blank = str.maketrans("", "", "ĠĊĉčċČ \n\t")
    ids = {i for i, token in enumerate(tokenizer.convert_ids_to_tokens(range(len(tokenizer)))) if not token}
    ids |= {i for token, i in tokenizer.get_vocab().items() if not token.translate(blank)}
    ids |= set(tokenizer.added_tokens_decoder) | set(tokenizer.all_special_ids)
    ids |= set(range(len(tokenizer), table_size))
    return sorted(i for i in ids if 0 <= i < table_size)


def silence_invisible_tokens(model: Any, folder: Path) -> None:
    """Zero the output embedding rows of `invisible_token_ids` (tied tables: the input rows too)."""
    import torch
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False)  # dots.ocr's auto_map
    output = model.get_output_embeddings()
    with torch.no_grad():
        output.weight[invisible_token_ids(tokenizer, output.weight.shape[0])] = 0.0


def main(argv: list[str] | None = None) -> int:
    """`python -m chatvlmllm.devtools.hub_tiny HUB_FOLDER OUT_DIR`: a tiny checkpoint from real hub files."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("hub_folder", type=Path, help="real hub files, e.g. ../shared/hubfiles/lighton_ocr")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(build_tiny_from_hub(args.hub_folder, args.out_dir, args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
