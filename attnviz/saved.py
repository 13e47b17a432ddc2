"""The saved format (``.npz`` / ``.json``, schema ``attnviz/1``): writing a result, and
reading one back as untrusted input (pure NumPy).

Nothing in a file is believed before it is checked:

* sizes first: an npz's members are checked against ``max_bytes`` from the zip directory
  and from each array's own header (shape x item size) **before** anything is inflated, so
  a zip bomb or a declared 35 PiB shape costs nothing; a JSON file is checked by its size;
* never pickles (``allow_pickle=False``; object arrays are refused);
* the schema: ``meta`` with its keys and types, token fields, attention arrays per kind;
* shapes: ``[layers, heads, query, key]`` against the tokens of each axis and the recorded
  layer and head ids;
* values: finite; rows that do not sum to about 1 (or 0, a row left empty by
  ``--no-special``) give a warning, not an error.

Every failure is an :class:`InputError` (exit 2) with one line that says what is wrong.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from attnviz.errors import InputError
from attnviz.result import KINDS, SCHEMA, AttentionResult, TokenSequence, _transformers_version

#: Largest total of array data read from one saved file, unless raised (``--max-bytes``).
DEFAULT_MAX_BYTES = 2 * 2**30
_ROW_TOLERANCE = 1e-3
#: Sizes past this (1 EiB) are refused: ``inf`` or a 5,000-digit number is a mistake.
_LARGEST_SIZE = 2**60


def parse_size(text: str) -> int:
    """``500M``, ``2G``, ``1048576`` -> bytes."""
    value = text.strip().upper().removesuffix("B")
    scale = 1
    for suffix, factor in (("K", 2**10), ("M", 2**20), ("G", 2**30), ("T", 2**40)):
        if value.endswith(suffix):
            value, scale = value[:-1], factor
            break
    try:
        number = float(value)
    except ValueError:
        raise InputError(
            "{max_bytes} '" + text[:40] + "' is not a size", hint="e.g. 500M, 4G or 1048576", option="max_bytes"
        ) from None
    shown = text if len(text) <= 40 else text[:30] + f"... ({len(text)} characters)"
    if not number > 0:
        raise InputError("{max_bytes} '" + shown + "' must be positive", option="max_bytes")
    if not math.isfinite(number * scale) or number * scale > _LARGEST_SIZE:
        raise InputError(
            "{max_bytes} '" + shown + "' is not a size a file can have",
            hint="at most 2**60 bytes, e.g. 500M or 8G",
            option="max_bytes",
        )
    return int(number * scale)


def _human(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if size < 1024 or unit == "PiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} PiB"  # pragma: no cover


def read_fields(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays and the ``meta`` document of a saved file, sizes checked first."""
    if not path.is_file():
        raise InputError(f"no such file: {path}", hint="pass an .npz or .json written by attnviz")
    size = path.stat().st_size
    if size == 0:
        raise InputError(f"{path} is empty", hint="pass an .npz or .json written by attnviz")
    too_big = "{max_bytes} " + f"{max_bytes} (or a larger size such as 8G) reads it anyway"
    if path.suffix.lower() == ".json":
        if size > max_bytes:
            raise InputError(
                f"{path} is {_human(size)}, over the {_human(max_bytes)} limit", hint=too_big, option="max_bytes"
            )
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except RecursionError:
            raise InputError(f"{path} is nested too deeply to be an attnviz data file") from None
        except UnicodeDecodeError as exc:
            raise InputError(f"{path} is not UTF-8 text (byte {exc.start})") from None
        except ValueError as exc:
            raise InputError(f"{path} is not valid JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise InputError(f"{path} is not an attnviz data file: the top level must be an object")
        meta = raw.get("meta")
        fields = {}
        for name, value in raw.items():
            if name == "meta":
                continue
            try:
                fields[name] = np.asarray(value)
            except (ValueError, TypeError):
                raise InputError(f"{path}: field '{name}' is not a regular array") from None
        return fields, _meta(path, meta)
    return _read_npz(path, max_bytes, too_big)


def _read_npz(path: Path, max_bytes: int, too_big: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        raise InputError(f"{path} is not an attnviz .npz file (not a zip archive)") from None
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        if not members:
            raise InputError(f"{path} holds no arrays", hint="pass an .npz written by attnviz")
        declared = sum(m.file_size for m in members)
        if declared > max_bytes:
            raise InputError(
                f"{path} would inflate to {_human(declared)}, over the {_human(max_bytes)} limit",
                hint=too_big,
                option="max_bytes",
            )
        fields: dict[str, np.ndarray] = {}
        total = 0
        for member in members:
            name = member.filename.removesuffix(".npy")
            try:
                with archive.open(member) as handle:
                    version = np.lib.format.read_magic(handle)
                    if version == (1, 0):
                        shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
                    elif version == (2, 0):
                        shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
                    else:
                        raise ValueError(f"unsupported .npy format version {version}")
                    if dtype.hasobject:
                        raise InputError(
                            f"{path}: array '{name}' holds Python objects; attnviz never loads pickles",
                            hint="attnviz files hold only numbers and strings",
                        )
                    count = int(np.prod(shape, dtype=object)) if shape else 1
                    needed = count * dtype.itemsize
                    total += needed
                    if total > max_bytes:
                        raise InputError(
                            f"{path}: array '{name}' declares {_human(needed)} ({'x'.join(map(str, shape)) or 'scalar'}), "
                            f"over the {_human(max_bytes)} limit",
                            hint=too_big,
                            option="max_bytes",
                        )
                    if needed > member.file_size:
                        raise InputError(f"{path}: array '{name}' is truncated or its header lies about its shape")
                    data = handle.read(needed)
                    if len(data) != needed:
                        raise ValueError("the array data is shorter than its header says")
                    flat = np.frombuffer(data, dtype=dtype)
                    array = flat.reshape(shape[::-1]).T if fortran else flat.reshape(shape)
                    fields[name] = array.copy(order="C")
            except InputError:
                raise
            except (ValueError, OSError, EOFError, zipfile.BadZipFile, RuntimeError, zlib.error) as exc:
                raise InputError(f"{path}: array '{name}' is not a readable NumPy array ({_first_line(exc)})") from None
    meta_field = fields.pop("meta", None)
    if meta_field is None:
        raise InputError(f"{path} is not an attnviz data file: it has no 'meta' record")
    try:
        meta = json.loads(str(meta_field.item() if meta_field.shape == () else meta_field))
    except RecursionError:
        raise InputError(f"{path}: its 'meta' record is nested too deeply") from None
    except ValueError as exc:
        raise InputError(f"{path}: its 'meta' record is not JSON ({exc})") from None
    return fields, _meta(path, meta)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _meta(path: Path, meta: Any) -> dict[str, Any]:
    if not isinstance(meta, dict):
        raise InputError(f"{path} is not an attnviz data file: it has no 'meta' object")
    return meta


def validate(path: Path, fields: dict[str, np.ndarray], meta: dict[str, Any]) -> list[str]:
    """Check the schema, shapes and values; return warnings (rows that do not sum to 1)."""
    where = str(path)
    if meta.get("schema") != SCHEMA:
        raise InputError(f"{where} has schema {meta.get('schema')!r}, expected {SCHEMA!r}")
    for key in ("model", "family", "text"):
        if not isinstance(meta.get(key), str):
            raise InputError(f"{where}: meta field '{key}' is missing or not a string")
    for key in ("layers", "heads"):
        value = meta.get(key)
        if not isinstance(value, dict) or not all(
            isinstance(v, list) and all(isinstance(i, int) and not isinstance(i, bool) for i in v)
            for v in value.values()
        ):
            raise InputError(f"{where}: meta field '{key}' must map each kind to a list of integers")
    for key in ("display_tokens", "target_display_tokens"):
        value = meta.get(key)
        if value is not None and not (isinstance(value, list) and all(isinstance(t, str) for t in value)):
            raise InputError(f"{where}: meta field '{key}' must be a list of strings")
    if not isinstance(meta.get("display_tokens"), list):
        raise InputError(f"{where}: meta field 'display_tokens' is missing")
    composite = "source_tokens" in fields
    lengths: dict[str, int] = {}
    for side, prefix, display in (
        ("source", "source_" if composite else "", "display_tokens"),
        ("target", "target_", "target_display_tokens"),
    ):
        if side == "target" and not composite:
            continue
        n = None
        for suffix in ("tokens", "word_ids", "special_mask", "segment_ids"):
            name = prefix + suffix
            array = fields.get(name)
            if array is None:
                raise InputError(f"{where}: the field '{name}' is missing")
            if array.ndim != 1:
                raise InputError(f"{where}: '{name}' must be 1-d, not {array.ndim}-d")
            if suffix != "tokens" and array.dtype.kind not in "biu":
                raise InputError(f"{where}: '{name}' must hold integers, not {array.dtype}")
            if suffix == "tokens" and array.dtype.kind not in "U":
                raise InputError(f"{where}: '{name}' must hold strings, not {array.dtype}")
            if n is None:
                n = len(array)
            elif len(array) != n:
                raise InputError(f"{where}: '{name}' has {len(array)} entries, '{prefix}tokens' has {n}")
        extra = fields.get(prefix + "tokenizer_word_ids")
        if extra is not None and (extra.ndim != 1 or len(extra) != n or extra.dtype.kind not in "iu"):
            raise InputError(f"{where}: '{prefix}tokenizer_word_ids' must be {n} integers")
        shown = meta.get(display)
        if not isinstance(shown, list) or len(shown) != n:
            raise InputError(f"{where}: meta '{display}' does not match the {n} tokens")
        if not n:
            raise InputError(f"{where}: the {side} side has no tokens")
        lengths[side] = int(n)
    kinds = [k for k in KINDS if k in fields]
    if not kinds:
        raise InputError(f"{where} holds no attention arrays (encoder, decoder or cross)")
    warnings = []
    for kind in kinds:
        array = fields[kind]
        if array.dtype.kind != "f":
            raise InputError(f"{where}: '{kind}' must hold floating-point numbers, not {array.dtype}")
        if array.ndim != 4:
            raise InputError(f"{where}: '{kind}' must be [layers, heads, query, key], not {array.ndim}-d")
        if 0 in array.shape:
            raise InputError(f"{where}: '{kind}' is empty (shape {list(array.shape)})")
        from attnviz.result import kind_axes

        q, k = kind_axes(kind, lengths["source"], lengths.get("target"))
        if array.shape[2:] != (q, k):
            raise InputError(
                f"{where}: '{kind}' is {array.shape[2]} x {array.shape[3]} (query x key), but the tokens say {q} x {k}"
            )
        layers, heads = meta["layers"].get(kind), meta["heads"].get(kind)
        if layers is None or heads is None or (len(layers), len(heads)) != array.shape[:2]:
            raise InputError(
                f"{where}: '{kind}' has {array.shape[0]} layers x {array.shape[1]} heads, "
                f"but meta lists {len(layers or [])} x {len(heads or [])}"
            )
        _finite_float32(where, kind, array)
        if (array < 0).any():
            raise InputError(f"{where}: '{kind}' holds negative weights; attention weights are probabilities")
        sums = array.sum(-1, dtype=np.float64)
        off = ~((np.abs(sums - 1) <= _ROW_TOLERANCE) | (sums <= _ROW_TOLERANCE))
        norm_weights = str(meta.get("weights", "")).startswith("norm")  # alpha x length: rows need not sum to 1
        if off.any() and not meta.get("attention_sinks") and not norm_weights:
            warnings.append(
                f"{where}: {int(off.sum())} of {off.size} '{kind}' rows do not sum to 1 "
                f"(from {float(sums.min()):.3g} to {float(sums.max()):.3g}); the weights may not be attention"
            )
    _validate_meta(where, meta, kinds, lengths)
    _validate_extras(where, fields, meta, kinds)
    return warnings


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _unicode_problem(text: str) -> int | None:
    """The position of the first lone surrogate (text that no UTF-8 page, JSON or terminal
    can carry), or None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


def _check_text(where: str, what: str, text: str) -> None:
    position = _unicode_problem(text)
    if position is not None:
        raise InputError(
            f"{where}: {what} is not valid Unicode: a lone surrogate U+{ord(text[position]):04X} at character {position}"
        )


def _validate_meta(where: str, meta: dict[str, Any], kinds: list[str], lengths: dict[str, int]) -> None:
    """The optional ``meta`` fields that later code relies on: types, ranges, valid Unicode."""
    for key in ("pair", "target"):
        if meta.get(key) is not None and not isinstance(meta[key], str):
            raise InputError(f"{where}: meta field '{key}' must be a string or null, not {type(meta[key]).__name__}")
    for key in ("model", "family", "text", "pair", "target"):
        if isinstance(meta.get(key), str):
            _check_text(where, f"meta field '{key}'", meta[key])
    for key in ("display_tokens", "target_display_tokens"):
        for position, token in enumerate(meta.get(key) or ()):
            _check_text(where, f"meta '{key}' entry {position}", token)
    truncated = meta.get("truncated_tokens", 0)
    if not _is_int(truncated) or truncated < 0:
        raise InputError(f"{where}: meta field 'truncated_tokens' must be a whole number >= 0, not {truncated!r:.40}")
    transforms = meta.get("transforms", [])
    if not isinstance(transforms, list) or not all(isinstance(t, str) for t in transforms):
        raise InputError(f"{where}: meta field 'transforms' must be a list of strings")
    for position, step in enumerate(transforms):
        _check_text(where, f"meta 'transforms' entry {position}", step)
    pair_start = meta.get("pair_start")
    if pair_start is not None and not (_is_int(pair_start) and 0 <= pair_start <= lengths["source"]):
        raise InputError(f"{where}: meta field 'pair_start' must be a token position or null")
    averaged = meta.get("averaged_heads")
    if averaged is not None and not (
        isinstance(averaged, dict)
        and all(
            k in kinds and isinstance(v, list) and all(_is_int(i) and i >= 0 for i in v) for k, v in averaged.items()
        )
    ):
        raise InputError(f"{where}: meta field 'averaged_heads' must map each kind to a list of head numbers")
    for key in ("norm_kind", "derived_kind"):
        if meta.get(key) is not None and meta[key] not in kinds:
            raise InputError(f"{where}: meta field '{key}' must name one of the file's kinds ({', '.join(kinds)})")
    vectors = meta.get("vectors")
    if vectors is not None:
        if not isinstance(vectors, dict) or not all(isinstance(v, dict) for v in vectors.values()):
            raise InputError(f"{where}: meta field 'vectors' must map each kind to its scaling and softcap lists")
        for kind, parts in vectors.items():
            for name in ("scaling", "softcap"):
                values = parts.get(name, [])
                if not isinstance(values, list) or not all(
                    v is None
                    or (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0)
                    for v in values
                ):
                    raise InputError(
                        f"{where}: meta 'vectors' of '{kind}': '{name}' must be a list of positive numbers"
                    )
            _check_windows(where, kind, parts.get("window"), meta["layers"].get(kind) if kind in kinds else None)


def _check_windows(where: str, kind: str, windows: Any, layers: list[int] | None) -> None:
    """``meta["vectors"][kind]["window"]`` (optional; files before it have none): one
    entry per layer of the kind, each a whole number of positions >= 1 or null."""
    if windows is None:
        return
    if not isinstance(windows, list) or not all(w is None or (_is_int(w) and 1 <= w < _LARGEST_SIZE) for w in windows):
        raise InputError(f"{where}: meta 'vectors' of '{kind}': 'window' must be a list of whole numbers >= 1 or null")
    if layers is not None and len(windows) != len(layers):
        raise InputError(
            f"{where}: meta 'vectors' of '{kind}': 'window' has {len(windows)} entries for {len(layers)} layers"
        )


def _finite_float32(where: str, name: str, value: np.ndarray) -> None:
    """Floating point, and finite once cast to float32 (1e308 is finite only in float64)."""
    if value.dtype.kind != "f":
        raise InputError(f"{where}: '{name}' must hold floating-point numbers, not {value.dtype}")
    with np.errstate(over="ignore", invalid="ignore"):
        finite = np.isfinite(value.astype(np.float32, copy=False))
    if not finite.all():
        bad = int((~finite).sum())
        raise InputError(
            f"{where}: '{name}' holds {bad} NaN or infinite value{'s' if bad != 1 else ''} "
            "(as float32, where numbers past 3.4e38 are infinite)"
        )


def _expect_shape(where: str, name: str, value: np.ndarray, shape: tuple[int, ...], axes: str) -> None:
    if value.shape != shape:
        raise InputError(
            f"{where}: '{name}' is {list(value.shape)}, but the file's attention says {list(shape)} ({axes})"
        )


def _validate_extras(where: str, fields: dict[str, np.ndarray], meta: dict[str, Any], kinds: list[str]) -> None:
    """Derived maps (rollout, flow, norm) and the neuron view's vectors: dtype, shape, finite."""
    derived_kind = meta.get("derived_kind") or kinds[0]
    layers, _, queries, keys = fields[derived_kind].shape
    for name in ("rollout", "flow"):
        if name in fields:
            _finite_float32(where, name, fields[name])
            # rollout keeps every layer's product; flow, its last layer's [query, key]
            shape = (layers, queries, keys) if fields[name].ndim == 3 else (queries, keys)
            _expect_shape(where, name, fields[name], shape, "[layers,] query, key")
    if "norm" in fields:
        _finite_float32(where, "norm", fields["norm"])
        norm_kind = meta.get("norm_kind") or kinds[0]
        _expect_shape(where, "norm", fields["norm"], fields[norm_kind].shape, "layers, heads, query, key")
        if (fields["norm"] < 0).any():
            raise InputError(f"{where}: 'norm' holds negative weights; norm-based weights are lengths")
    for position, kind in enumerate(kinds):
        n_layers, n_heads, queries, keys = fields[kind].shape
        for name in AttentionResult.VECTOR_NAMES:
            for key in (f"{kind}_{name}",) + ((name,) if position == 0 else ()):
                if key not in fields:
                    continue
                value = fields[key]
                _finite_float32(where, key, value)
                tokens = {"query": queries, "key": keys}.get(name)
                if tokens is not None:
                    if value.ndim != 4 or value.shape[:3] != (n_layers, n_heads, tokens) or value.shape[3] == 0:
                        raise InputError(
                            f"{where}: '{key}' is {list(value.shape)}, but the file's '{kind}' attention says "
                            f"[{n_layers}, {n_heads}, {tokens}, head_dim] (layers, heads, tokens, head_dim)"
                        )
                elif name == "sinks":
                    _expect_shape(where, key, value, (n_layers, n_heads), "layers, heads")
                else:
                    _expect_shape(where, key, value, (n_layers, n_heads, queries, keys), "layers, heads, query, key")
        query, key_field = fields.get(f"{kind}_query"), fields.get(f"{kind}_key")
        if position == 0:
            query, key_field = fields.get("query", query), fields.get("key", key_field)
        if (query is None) != (key_field is None) or (
            query is not None and key_field is not None and query.shape[3] != key_field.shape[3]
        ):
            raise InputError(f"{where}: the '{kind}' query and key vectors must come together, of one head_dim")


def load_checked(path: str | os.PathLike[str], max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[Any, list[str]]:
    """(:class:`~attnviz.result.AttentionResult`, warnings) of a saved file, checked."""
    path = Path(path)
    fields, meta = read_fields(path, max_bytes)
    warnings = validate(path, fields, meta)
    try:
        return from_fields(fields, meta), warnings
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path} is not an attnviz data file ({_first_line(exc)})") from None


# -- writing ------------------------------------------------------------------------------
def metadata(result: AttentionResult) -> dict[str, Any]:
    """The ``meta`` document: what the result is, where it came from, and its token labels."""
    from attnviz import __version__

    meta: dict[str, Any] = {
        "schema": SCHEMA,
        "model": result.model,
        "family": result.family,
        "text": result.text,
        "pair": result.pair,
        "target": result.target,
        "attnviz": __version__,
        "transformers": _transformers_version(),
        "transforms": list(result.transforms),
        "truncated_tokens": result.truncated_tokens,
        "layers": {k: list(v) for k, v in result.layer_ids.items()},
        "heads": {k: list(v) for k, v in result.head_ids.items()},
        "pair_start": result.tokens.pair_start,
        "display_tokens": list(result.tokens.display),
    }
    if result.target_tokens is not None:
        meta["target_display_tokens"] = list(result.target_tokens.display)
    meta.update(result.extra_meta)
    return meta


def token_fields(result: AttentionResult) -> dict[str, np.ndarray]:
    """The token arrays (``tokens``, ``word_ids``...; ``source_``/``target_`` for encoder-decoders)."""
    fields: dict[str, np.ndarray] = {}
    sides = (
        [("", result.tokens)]
        if result.target_tokens is None
        else [
            ("source_", result.tokens),
            ("target_", result.target_tokens),
        ]
    )
    for prefix, seq in sides:
        fields[f"{prefix}tokens"] = np.array(seq.tokens, dtype=np.str_)
        fields[f"{prefix}word_ids"] = seq.word_ids.astype(np.int32)
        if seq.tokenizer_word_ids is not None:
            fields[f"{prefix}tokenizer_word_ids"] = seq.tokenizer_word_ids.astype(np.int32)
        fields[f"{prefix}special_mask"] = seq.special_mask.astype(bool)
        fields[f"{prefix}segment_ids"] = seq.segment_ids.astype(np.int8)
    return fields


def vector_fields(result: AttentionResult) -> dict[str, np.ndarray]:
    """``query``, ``key`` (``sinks``, ``bias``) of the first kind under their own names,
    of other kinds as ``decoder_query``, ``cross_key``, ..."""
    out: dict[str, np.ndarray] = {}
    for position, kind in enumerate(k for k in result.kinds if k in result.vectors):
        prefix = "" if position == 0 and kind == result.default_kind else f"{kind}_"
        for name, value in result.vectors[kind].items():
            out[prefix + name] = np.asarray(value, dtype=np.float32)
    return out


def write_npz(result: AttentionResult, path: str | os.PathLike[str]) -> None:
    """Write the result as ``.npz`` (see DESIGN.md: arrays per kind, tokens, meta JSON)."""
    from attnviz.io import atomic_write

    arrays: dict[str, np.ndarray] = {k: result.attentions[k].astype(np.float32) for k in result.kinds}
    arrays.update({k: v.astype(np.float32) for k, v in result.derived.items()})
    arrays.update(vector_fields(result))
    arrays.update(token_fields(result))
    arrays["meta"] = np.array(json.dumps(metadata(result), ensure_ascii=False))

    def write(handle: Any) -> None:
        # uncompressed: attention floats shrink only ~5% under zlib, at several times the cost
        np.savez(handle, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as bool

    atomic_write(path, write, binary=True)


def to_document(result: AttentionResult) -> dict[str, Any]:
    """Everything in the npz as plain JSON types (attention as nested lists)."""
    document: dict[str, Any] = {"meta": metadata(result)}
    for name, value in token_fields(result).items():
        document[name] = value.tolist()
    for kind in result.kinds:
        document[kind] = result.attentions[kind].tolist()
    for name, value in result.derived.items():
        document[name] = value.tolist()
    for name, value in vector_fields(result).items():
        document[name] = value.tolist()
    return document


def write_json(result: AttentionResult, path: str | os.PathLike[str]) -> None:
    """Write :func:`to_document` as JSON, atomically."""
    from attnviz.io import atomic_write

    text = json.dumps(to_document(result), ensure_ascii=False)
    atomic_write(path, lambda handle: handle.write(text), binary=False)


def save(result: AttentionResult, path: str | os.PathLike[str]) -> None:
    """Write ``.npz`` or ``.json`` by the extension of ``path``."""
    suffix = Path(path).suffix.lower()
    if suffix == ".npz":
        write_npz(result, path)
    elif suffix == ".json":
        write_json(result, path)
    else:
        from attnviz.errors import OutputFormatError

        raise OutputFormatError(f"cannot save data as '{suffix}'", hint="use .npz or .json")


def from_fields(fields: dict[str, np.ndarray], meta: dict[str, Any]) -> AttentionResult:
    """The result that :func:`token_fields`, the arrays and :func:`metadata` describe (checked first by :func:`validate`)."""

    def sequence(prefix: str, display_key: str) -> TokenSequence:
        return TokenSequence(
            tokens=tuple(str(t) for t in fields[f"{prefix}tokens"].tolist()),
            display=tuple(meta[display_key]),
            word_ids=np.asarray(fields[f"{prefix}word_ids"], dtype=np.int32),
            special_mask=np.asarray(fields[f"{prefix}special_mask"], dtype=bool),
            segment_ids=np.asarray(fields[f"{prefix}segment_ids"], dtype=np.int8),
            tokenizer_word_ids=np.asarray(fields[f"{prefix}tokenizer_word_ids"], dtype=np.int32)
            if f"{prefix}tokenizer_word_ids" in fields
            else None,
        )

    if "source_tokens" in fields:
        tokens = sequence("source_", "display_tokens")
        target_tokens: TokenSequence | None = sequence("target_", "target_display_tokens")
    else:
        tokens, target_tokens = sequence("", "display_tokens"), None
    attentions = {k: np.asarray(fields[k], dtype=np.float32) for k in KINDS if k in fields}
    derived: dict[str, np.ndarray] = {
        k: np.asarray(fields[k], dtype=np.float32) for k in ("rollout", "flow", "norm") if k in fields
    }
    vectors: dict[str, dict[str, np.ndarray]] = {}
    first = next((k for k in KINDS if k in fields), None)
    for kind in KINDS:
        for name in AttentionResult.VECTOR_NAMES:
            for key in (f"{kind}_{name}",) + ((name,) if kind == first else ()):
                if key in fields:
                    vectors.setdefault(kind, {})[name] = np.asarray(fields[key], dtype=np.float32)
    known = {
        "schema",
        "model",
        "family",
        "text",
        "pair",
        "target",
        "attnviz",
        "transformers",
        "transforms",
        "truncated_tokens",
        "layers",
        "heads",
        "pair_start",
        "display_tokens",
        "target_display_tokens",
    }
    return AttentionResult(
        model=meta["model"],
        family=meta["family"],
        text=meta["text"],
        pair=meta.get("pair"),
        target=meta.get("target"),
        tokens=tokens,
        target_tokens=target_tokens,
        attentions=attentions,
        layer_ids={k: tuple(v) for k, v in meta["layers"].items()},
        head_ids={k: tuple(v) for k, v in meta["heads"].items()},
        transforms=tuple(meta.get("transforms", ())),
        truncated_tokens=int(meta.get("truncated_tokens", 0)),
        extra_meta={k: v for k, v in meta.items() if k not in known},
        derived=derived,
        vectors=vectors,
    )
