"""What a checkpoint's weights can hold, read from the safetensors headers alone (no tensor
data, no torch): an untrusted ``config.json`` that claims ``num_hidden_layers: 10**9`` is
refused before transformers builds a single layer.

The bounds are loose on purpose, so that no real model is refused: every layer owns at
least one tensor of its own (weight sharing, as in ALBERT, still keeps fewer layers than
tensors in every checkpoint we know of), and every head has at least one row in some
projection, so a kind's heads cannot outnumber the largest dimension of any tensor.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from attnviz.errors import ModelLoadError

#: A header larger than this is not read (real ones are kilobytes to a few MiB).
_MAX_HEADER_BYTES = 100 * 2**20
_INDEX = "model.safetensors.index.json"


@dataclass(frozen=True)
class WeightBounds:
    """What the headers say: ``tensors`` (how many), ``largest_dimension`` (of any tensor)
    and the ``files`` read."""

    tensors: int
    largest_dimension: int
    files: tuple[str, ...]


def _header(path: Path) -> dict[str, object] | None:
    """The JSON header of one safetensors file: 8 bytes of little-endian length, then JSON.
    None when it is missing or not understood (the full load reports a damaged file)."""
    try:
        with path.open("rb") as handle:
            prefix = handle.read(8)
            if len(prefix) != 8:
                return None
            length = int.from_bytes(prefix, "little")
            if not 0 < length <= _MAX_HEADER_BYTES:
                return None
            document = json.loads(handle.read(length).decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return document if isinstance(document, dict) else None


def _weight_files(folder: Path) -> list[Path]:
    index = folder / _INDEX
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map")
        except (OSError, ValueError, AttributeError, RecursionError):
            return []
        if not isinstance(weight_map, dict):
            return []
        # only plain file names inside the folder: an index is as untrusted as the config
        names = {n for n in weight_map.values() if isinstance(n, str) and n == Path(n).name}
        return [folder / name for name in sorted(names)]
    single = folder / "model.safetensors"
    return [single] if single.is_file() else []


def weight_bounds(folder: str | Path) -> WeightBounds | None:
    """Count the tensors and find the largest dimension in a local checkpoint's safetensors
    headers; None when there are none to read (pickle weights, a hub id not downloaded)."""
    tensors, largest, files = 0, 0, []
    for path in _weight_files(Path(folder)):
        header = _header(path)
        if header is None:
            return None
        for name, entry in header.items():
            if name == "__metadata__" or not isinstance(entry, dict):
                continue
            tensors += 1
            shape = entry.get("shape")
            if isinstance(shape, list):
                largest = max([largest, *(d for d in shape if isinstance(d, int) and not isinstance(d, bool))])
        files.append(path.name)
    return WeightBounds(tensors, largest, tuple(files)) if tensors else None


#: Config fields that shape a tensor transformers builds (a width, a vocabulary, key-value
#: heads). Each must be at most a few times the largest dimension in the weights: the margin
#: leaves room for packed (quantized) tensors, and position counts are left out because
#: rotary models have no position tensor.
SIZE_FIELDS = (
    "hidden_size",
    "intermediate_size",
    "vocab_size",
    "num_key_value_heads",
    "d_model",
    "d_ff",
    "d_kv",
    "n_embd",
    "n_inner",
    "dim",
    "hidden_dim",
    "head_dim",
)
_PACKING_MARGIN = 8


def check_counts_fit_weights(
    name: str, folder: str | Path, counts: dict[str, tuple[int, int]], sizes: dict[str, int] | None = None
) -> None:
    """Refuse layer or head counts (per kind, from the config) and ``sizes`` (config fields
    of :data:`SIZE_FIELDS`) that the weights in ``folder`` cannot hold, comparing numbers
    only (a count of 10**9 is never enumerated, and no tensor is built from it)."""
    bounds = weight_bounds(folder)
    if bounds is None:
        return
    where = ", ".join(bounds.files[:2]) + (f" and {len(bounds.files) - 2} more" if len(bounds.files) > 2 else "")
    for field, value in (sizes or {}).items():
        if value > _PACKING_MARGIN * bounds.largest_dimension:
            raise ModelLoadError(
                f"the config of '{name}' says {field} {value}, but no tensor in its weights ({where}) is larger "
                f"than {bounds.largest_dimension} in any dimension",
                hint=f"fix {field} in config.json to match the checkpoint",
            )
    for kind, (layers, heads) in counts.items():
        if layers > bounds.tensors:
            raise ModelLoadError(
                f"the config of '{name}' says {layers} {kind} layers, but its weights ({where}) hold only "
                f"{bounds.tensors} tensors",
                hint="fix the layer count in config.json to match the checkpoint",
            )
        if heads > bounds.largest_dimension:
            raise ModelLoadError(
                f"the config of '{name}' says {heads} {kind} heads per layer, but no tensor in its weights "
                f"({where}) is larger than {bounds.largest_dimension} in any dimension",
                hint="fix the head count in config.json to match the checkpoint",
            )
