"""Saved attention is untrusted input: every malformed file is a one-line error, exit 2,
checked before anything large is inflated; nothing is unpickled."""

from __future__ import annotations

import io
import json
import resource
import zipfile

import numpy as np
import pytest
from helpers import invoke, random_result

from attnviz.result import AttentionResult


def _result() -> AttentionResult:
    return random_result(["[CLS]", "the", "cat", "[SEP]"], text="the cat")


def _npz_fields() -> dict:
    """The fields to_npz writes for a valid result."""
    result = _result()
    fields = dict(result._token_fields())
    fields["encoder"] = result.attentions["encoder"]
    fields["meta"] = np.array(json.dumps(result.meta()))
    return fields


def _write_npz(path, fields) -> None:
    np.savez(path, **fields)


def _meta(fields) -> dict:
    return json.loads(str(fields["meta"]))


def _with_meta(fields, **changes):
    meta = _meta(fields)
    for key, value in changes.items():
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    return {**fields, "meta": np.array(json.dumps(meta))}


def _without(fields, name):
    return {k: v for k, v in fields.items() if k != name}


def _array(fields, value):
    return {**fields, "encoder": value}


NAN = np.full((2, 3, 4, 4), np.nan, dtype=np.float32)
MUTATIONS = {
    "nan": (lambda f: _array(f, NAN), "NaN or infinite"),
    "inf": (
        lambda f: _array(
            f, np.where(np.eye(4, dtype=bool), np.inf, 0).astype(np.float32)[None, None].repeat(2, 0).repeat(3, 1)
        ),
        "NaN or infinite",
    ),
    "missing model": (lambda f: _with_meta(f, model=None), "'model' is missing"),
    "model not a string": (lambda f: _with_meta(f, model=7), "'model' is missing or not a string"),
    "missing tokens": (lambda f: _without(f, "tokens"), "'tokens' is missing"),
    "missing arrays": (lambda f: _without(f, "encoder"), "no attention arrays"),
    "missing meta": (lambda f: _without(f, "meta"), "no 'meta' record"),
    "meta not json": (lambda f: {**f, "meta": np.array("{not json")}, "'meta' record is not JSON"),
    "meta a list": (lambda f: {**f, "meta": np.array("[1, 2]")}, "no 'meta' object"),
    "wrong schema": (lambda f: _with_meta(f, schema="other/9"), "schema 'other/9'"),
    "0-d attention": (lambda f: _array(f, np.float32(0.5)), "not 0-d"),
    "3-d attention": (lambda f: _array(f, np.zeros((3, 4, 4), np.float32)), "not 3-d"),
    "empty attention": (lambda f: _array(f, np.zeros((0, 3, 4, 4), np.float32)), "is empty"),
    "mismatched keys": (lambda f: _array(f, np.full((2, 3, 4, 5), 0.2, np.float32)), "the tokens say 4 x 4"),
    "mismatched layers": (lambda f: _array(f, np.full((1, 3, 4, 4), 0.25, np.float32)), "meta lists 2 x 3"),
    "integer attention": (lambda f: _array(f, np.ones((2, 3, 4, 4), np.int32)), "floating-point"),
    "string attention": (lambda f: _array(f, np.full((2, 3, 4, 4), "x")), "floating-point"),
    "negative": (lambda f: _array(f, -np.full((2, 3, 4, 4), 0.25, np.float32)), "negative"),
    "tokens not strings": (lambda f: {**f, "tokens": np.arange(4)}, "must hold strings"),
    "word ids 2-d": (lambda f: {**f, "word_ids": np.zeros((2, 2), np.int32)}, "must be 1-d"),
    "word ids too short": (lambda f: {**f, "word_ids": np.zeros(3, np.int32)}, "has 3 entries"),
    "display tokens wrong": (lambda f: _with_meta(f, display_tokens=["a"]), "does not match the 4 tokens"),
    "layers not ints": (lambda f: _with_meta(f, layers={"encoder": ["a", "b"]}), "list of integers"),
    "object array": (lambda f: {**f, "encoder": np.array([object()], dtype=object)}, None),
    # issue #21, items 3 and 20: fields that passed the checks and crashed later
    "truncated_tokens infinite": (lambda f: _with_meta(f, truncated_tokens=float("inf")), "'truncated_tokens'"),
    "truncated_tokens a string": (lambda f: _with_meta(f, truncated_tokens="3"), "'truncated_tokens'"),
    "transforms not strings": (lambda f: _with_meta(f, transforms=[1, {"a": 2}]), "'transforms' must be a list"),
    "transforms a string": (lambda f: _with_meta(f, transforms="mean"), "'transforms' must be a list"),
    "averaged_heads a list": (lambda f: _with_meta(f, averaged_heads=[0, 1]), "'averaged_heads'"),
    "pair NaN": (lambda f: _with_meta(f, pair=float("nan")), "'pair' must be a string or null"),
    "target a number": (lambda f: _with_meta(f, target=3), "'target' must be a string or null"),
    "text lone surrogate": (lambda f: _with_meta(f, text="a\udc80b"), "lone surrogate U+DC80 at character 1"),
    "display token surrogate": (
        lambda f: _with_meta(f, display_tokens=["[CLS]", "\ud800", "cat", "[SEP]"]),
        "lone surrogate U+D800",
    ),
    "pair_start past the tokens": (lambda f: _with_meta(f, pair_start=99), "'pair_start'"),
    "norm_kind unknown": (lambda f: _with_meta(f, norm_kind="cross"), "'norm_kind' must name"),
    "1e308 survives float64 only": (lambda f: _array(f, np.full((2, 3, 4, 4), 1e308)), "NaN or infinite"),
    "rollout wrong shape": (lambda f: {**f, "rollout": np.full((2, 3, 3), 0.3, np.float32)}, "'rollout' is [2, 3, 3]"),
    "flow wrong shape": (lambda f: {**f, "flow": np.full((4, 5), 0.2, np.float32)}, "'flow' is [4, 5]"),
    "rollout of strings": (lambda f: {**f, "rollout": np.full((2, 4, 4), "x")}, "'rollout' must hold floating"),
    "norm wrong shape": (lambda f: {**f, "norm": np.ones((1, 3, 4, 4), np.float32)}, "'norm' is [1, 3, 4, 4]"),
    "norm NaN": (lambda f: {**f, "norm": np.full((2, 3, 4, 4), np.nan, np.float32)}, "'norm' holds 96 NaN"),
    "query wrong shape": (
        lambda f: {**f, "query": np.ones((2, 3, 5, 8), np.float32), "key": np.ones((2, 3, 4, 8), np.float32)},
        "'query' is [2, 3, 5, 8]",
    ),
    "query without key": (lambda f: {**f, "query": np.ones((2, 3, 4, 8), np.float32)}, "must come together"),
    "key 1e308": (
        lambda f: {**f, "query": np.ones((2, 3, 4, 8), np.float32), "key": np.full((2, 3, 4, 8), 1e308)},
        "'key' holds 192 NaN or infinite",
    ),
    "vector scaling negative": (
        lambda f: _with_meta(f, vectors={"encoder": {"scaling": [-1, 2]}}),
        "'scaling' must be a list of positive",
    ),
}


@pytest.mark.parametrize(
    ("name", "suffix"),
    # JSON has no object arrays: that case is the npz's alone
    [
        (name, suffix)
        for name in MUTATIONS
        for suffix in (".npz", ".json")
        if (name, suffix) != ("object array", ".json")
    ],
)
def test_malformed_saved_data_is_one_line_exit_2(name, suffix, tmp_path):
    mutate, message = MUTATIONS[name]
    fields = mutate(_npz_fields())
    path = tmp_path / f"bad{suffix}"
    if suffix == ".npz":
        if name == "object array":
            _object_npz(path, fields)
            message = "never loads pickles"
        else:
            _write_npz(path, fields)
    else:
        document = {k: v.tolist() for k, v in fields.items() if k != "meta"}
        if "meta" in fields:
            try:
                document["meta"] = json.loads(str(fields["meta"]))
            except ValueError:
                document["meta"] = str(fields["meta"])
        path.write_text(json.dumps(document))
    result = invoke("render", path, "-o", tmp_path / "x.png")
    assert result.exit_code == 2, (result.output, result.exception)
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr
    if suffix == ".json":  # JSON has no 'meta' record of its own, and no shape for empty arrays
        message = {"meta not json": "no 'meta' object", "missing meta": "no 'meta' object"}.get(name, message)
        message = {"empty attention": "not 1-d"}.get(name, message)
    assert message in lines[0], lines[0]
    assert not (tmp_path / "x.png").exists()


def _object_npz(path, fields) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, value in fields.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asarray(value), allow_pickle=True)
            archive.writestr(f"{name}.npy", buffer.getvalue())


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"not a zip", "not a zip archive"),
    ],
)
def test_empty_and_junk_npz(content, message, tmp_path):
    path = tmp_path / "x.npz"
    path.write_bytes(content)
    result = invoke("render", path)
    assert result.exit_code == 2 and message in result.stderr and "pickle" not in result.stderr


def test_an_npz_with_no_arrays(tmp_path):
    path = tmp_path / "x.npz"
    with zipfile.ZipFile(path, "w"):
        pass
    result = invoke("render", path)
    assert result.exit_code == 2 and "holds no arrays" in result.stderr


def test_json_nested_a_million_deep(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 1_000_000 + "]" * 1_000_000)
    result = invoke("render", path)
    assert result.exit_code == 2 and "nested too deeply" in result.stderr


def test_a_declared_35_pib_shape_is_refused_from_its_header(tmp_path):
    """The header claims 2^52 float64s; the file is a few hundred bytes."""
    fields = _npz_fields()
    path = tmp_path / "huge.npz"
    header = {"descr": "<f8", "fortran_order": False, "shape": (2**26, 2**26)}
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    with zipfile.ZipFile(path, "w") as archive:
        for name, value in fields.items():
            data = io.BytesIO()
            np.lib.format.write_array(data, np.asarray(value))
            archive.writestr(f"{name}.npy", buffer.getvalue() + b"\0" * 64 if name == "encoder" else data.getvalue())
    result = invoke("render", path)
    assert result.exit_code == 2
    assert "array 'encoder' declares 32.0 PiB (67108864x67108864), over the 2.0 GiB limit" in result.stderr


def test_a_zip_bomb_is_refused_before_it_is_inflated(tmp_path):
    """200 MB of zeros compress to about 200 KB; with a 50M limit it is refused from the
    zip directory, and the process never grows by the inflated size."""
    fields = _npz_fields()
    path = tmp_path / "bomb.npz"
    zeros = np.zeros((50, 1000, 1000), np.float32)  # 200 MB
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, value in {**fields, "encoder": zeros}.items():
            data = io.BytesIO()
            np.lib.format.write_array(data, np.asarray(value))
            archive.writestr(f"{name}.npy", data.getvalue())
    del zeros
    assert path.stat().st_size < 2_000_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = invoke("render", path, "--max-bytes", "50M")
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert result.exit_code == 2 and "would inflate to 190.7 MiB, over the 50.0 MiB limit" in result.stderr
    assert "--max-bytes" in result.stderr
    assert grown_mb < 100


def test_rows_that_do_not_sum_to_one_warn_but_draw(tmp_path):
    fields = _npz_fields()
    path = tmp_path / "odd.npz"
    _write_npz(path, _array(fields, np.full((2, 3, 4, 4), 0.5, np.float32)))
    result = invoke("render", path, "-o", tmp_path / "x.png")
    assert result.exit_code == 0
    assert "warning:" in result.stderr and "rows do not sum to 1" in result.stderr


def test_a_saved_layer_is_picked_by_its_own_number(tiny_models, tmp_path):
    saved = tmp_path / "h.json"
    assert invoke("show", "the cat", "-m", tiny_models["bert"], "--layer", "2", "-o", saved).exit_code == 0
    good = invoke("render", saved, "-l", "2", "--json")
    assert good.exit_code == 0 and json.loads(good.stdout)["layers"] == [2]
    bad = invoke("render", saved, "-l", "1")
    assert bad.exit_code == 2 and "--layer 1 is not in this file: it holds layers 2" in bad.stderr


def test_python_load_reads_the_same_checks(tmp_path):
    from attnviz.errors import InputError

    path = tmp_path / "x.npz"
    _write_npz(path, _array(_npz_fields(), NAN))
    with pytest.raises(InputError, match="NaN"):
        AttentionResult.load(path)
