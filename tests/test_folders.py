"""rankkit.folders: one manifest contract for every folder, the weight fingerprint, and
inference loading reranker folders without importing rankkit.training."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rankkit.errors import ConfigError, DataFormatError, MissingResourceError
from rankkit.folders import MANIFEST, read_manifest, require_manifest, write_manifest

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "rankkit" / "rerankers" / "models" / "minilm-scifact-lora"


def test_round_trip_and_kind(tmp_path):
    write_manifest(tmp_path, {"kind": "bm25", "k1": 0.9})
    assert read_manifest(tmp_path) == {"kind": "bm25", "k1": 0.9}
    assert read_manifest(tmp_path, kind=("dense", "bm25"))["k1"] == 0.9
    with pytest.raises(ConfigError, match="holds a 'bm25' folder, not 'dense'"):
        read_manifest(tmp_path, kind="dense")
    with pytest.raises(ConfigError, match="kind"):
        write_manifest(tmp_path, {"k1": 1})


def test_absent_manifest(tmp_path):
    assert read_manifest(tmp_path) is None                    # e.g. a plain HF model folder
    with pytest.raises(MissingResourceError, match="is not a rankkit index"):
        require_manifest(tmp_path)
    with pytest.raises(MissingResourceError, match="index folder not found"):
        require_manifest(tmp_path / "nowhere")


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"k1": 1}', '{"kind": 3}'])
def test_malformed_manifest_names_the_file(tmp_path, text):
    (tmp_path / MANIFEST).write_text(text)
    with pytest.raises(DataFormatError) as e:
        read_manifest(tmp_path)
    assert str(tmp_path / MANIFEST) in str(e.value)


def test_bm25_and_dense_indexes_use_the_contract(tmp_path):
    import rankkit as rk

    idx = rk.BM25.build({"d1": "a b c", "d2": "b c d"}, show_progress=False)
    idx.save(tmp_path / "idx")
    assert read_manifest(tmp_path / "idx", kind="bm25")["num_docs"] == 2
    (tmp_path / "idx" / MANIFEST).write_text("{oops")
    with pytest.raises(DataFormatError, match="not valid JSON"):
        rk.load_index(tmp_path / "idx")


def test_model_fingerprint_sees_every_weight():
    torch = pytest.importorskip("torch")
    from rankkit.folders import model_fingerprint

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 1))
    before = model_fingerprint(net)
    assert before == model_fingerprint(net) and len(before) == 16
    assert model_fingerprint(net, "dim=1") != before
    with torch.no_grad():
        net[1].bias.add_(1.0)
    assert model_fingerprint(net) != before


def test_inference_loads_the_shipped_reranker_without_training():
    pytest.importorskip("peft")
    code = (
        "import sys, rankkit as rk\n"
        f"ce = rk.CrossEncoder({str(SHIPPED)!r}, show_progress=False)\n"
        "print(ce.predict(['aspirin heart attack'], ['Daily aspirin reduces myocardial infarction.']).tolist())\n"
        "print('rankkit.training' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    scores, trained = out.stdout.strip().splitlines()[-2:]
    assert trained == "False"
    assert float(scores.strip("[]")) == pytest.approx(7.3938355, abs=1e-4)   # as before the move
    manifest = json.loads((SHIPPED / MANIFEST).read_text())
    assert read_manifest(SHIPPED, kind="cross-encoder-adapter") == manifest
