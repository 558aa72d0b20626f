"""rankkit.llm.loading.load_causal_lm: set up for batched decoding, cached, clear errors; SmolLM2 GGUF."""

from __future__ import annotations

import pytest
from tiny_llm import tiny_llm_dir

from rankkit.errors import ConfigError, MissingResourceError
from rankkit.llm.loading import chat_prompt, clear_model_cache, load_causal_lm, render_plain

torch = pytest.importorskip("torch")


def test_loader_pads_left_and_caches_per_name_and_dtype():
    path = str(tiny_llm_dir())
    clear_model_cache()
    model, tok = load_causal_lm(path)
    assert tok.padding_side == "left" and tok.pad_token is not None
    assert model.generation_config.pad_token_id == tok.pad_token_id
    assert not model.training
    again = load_causal_lm(path)
    assert again[0] is model and again[1] is tok                     # one shared copy
    bf16, _ = load_causal_lm(path, dtype="bf16")
    assert bf16 is not model and bf16.dtype == torch.bfloat16
    assert load_causal_lm(path, dtype=torch.bfloat16)[0] is bf16     # same key, either spelling
    with pytest.raises(ConfigError, match="unknown dtype"):
        load_causal_lm(path, dtype="int3")


def test_loading_bars_only_on_request(capfd):
    from transformers.utils import logging as hf_logging

    path = str(tiny_llm_dir())
    hf_logging.enable_progress_bar()          # earlier tests (CLI runs) may have switched it off
    load_causal_lm(path, cache=False)
    assert "Loading weights" not in capfd.readouterr().err
    assert hf_logging.is_progress_bar_enabled()                      # the global switch is restored
    hf_logging.disable_progress_bar()                                # e.g. after quiet_transformers()
    try:
        load_causal_lm(path, cache=False, progress=True)
        assert "Loading weights" in capfd.readouterr().err
        assert not hf_logging.is_progress_bar_enabled()
    finally:
        hf_logging.enable_progress_bar()


def test_missing_models_name_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MissingResourceError, match="model path not found"):
        load_causal_lm(str(tmp_path / "nowhere" / "model"))
    with pytest.raises(MissingResourceError, match="huggingface-cli download"):
        load_causal_lm("some-org/not-downloaded-llm")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MissingResourceError, match="could not load model"):
        load_causal_lm(str(empty))


def test_plain_rendering_without_a_chat_template():
    class NoTemplate:
        chat_template = None

    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}]
    assert chat_prompt(NoTemplate(), msgs) == render_plain(msgs) == "Be brief.\n\nUser: Hi?\n\nAssistant:"


@pytest.mark.slow
def test_smollm2_gguf_loads_as_plain_weights_and_answers(capfd):
    try:
        model, tok = load_causal_lm("smollm2", cache=False)
    except MissingResourceError as e:
        pytest.skip(str(e))
    assert "GGUF" not in capfd.readouterr().err                      # conversion bar silenced
    assert getattr(model, "hf_quantizer", None) is None
    assert not hasattr(model.config, "quantization_config") and model.dtype == torch.float32
    prompt = chat_prompt(tok, [{"role": "user", "content": "What is the capital of France?"}])
    assert prompt.startswith("<|im_start|>") and prompt.endswith("<|im_start|>assistant\n")
    enc = tok(prompt, add_special_tokens=False, return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**enc, max_new_tokens=12, do_sample=False)
    assert "Paris" in tok.decode(out[0, enc["input_ids"].shape[1]:])
