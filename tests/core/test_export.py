"""mas-export: safetensors + JSON that every loader accepts, ONNX graphs that onnxruntime runs like PyTorch.

The ONNX checks here run each exported graph on a real batch of the task's test split (not the example
inputs the export traced and checked with) and, for translation, decode greedily with onnxruntime alone.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import run_cli, train_cfg
from core.train.checkpoints import load_checkpoint
from core.train.errors import InputError
from core.train.finetune import load_pretrained
from core.train.run import restore
from core.train.weights_file import CONFIG_FILE, WEIGHTS_FILE, _from_json, _to_json, save_weights_dir

LIMITS = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
          "trainer.limit_test_batches=1", "threads=1"]
RECIPES = {
    "digits": ["experiment=vision/digits"],
    "digits_seg": ["experiment=vision/digits_seg"],
    "numbers_cls": ["experiment=nlp/numbers_cls"],
    "numbers_de": ["experiment=nlp/numbers_de"],
    "spoken_digits": ["experiment=speech/spoken_digits", "data.num_utterances={train:16,val:8,test:8}",
                      "data.batch_size=8", "model.augment=null"],
    "commands": ["experiment=speech/commands", "data.num_utterances={train:24,val:12,test:12}", "data.batch_size=8"],
}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """One briefly trained checkpoint per task kind, made on first use."""
    made: dict[str, str] = {}

    def get(name: str) -> str:
        if name not in made:
            out = tmp_path_factory.mktemp(name)
            train_cfg(RECIPES[name] + LIMITS, out)
            made[name] = str(out / "checkpoints" / "last.ckpt")
        return made[name]

    return get


def _first_test_batch(dm):
    loaders = dm.test_dataloader()  # a list where the datamodule adds test subsets: the main split first
    return next(iter(loaders[0] if isinstance(loaders, (list, tuple)) else loaders))


def _test_batch(ckpt: str):
    _, dm, module = restore(ckpt, "test")
    return _first_test_batch(dm), module.eval()


def test_json_codec_keeps_tensors_and_bytes_exactly():
    proto = torch.frombuffer(bytearray(b"\x00\x01\xfe\xff sentencepiece"), dtype=torch.uint8).clone()
    state = {"tokenizer": {"kind": "sp", "proto": proto}, "raw": b"\x00\xff", "classes": ("a", "b"),
             "grid": torch.arange(6, dtype=torch.float32).reshape(2, 3), "empty": torch.zeros(0, dtype=torch.int64)}
    back = _from_json(json.loads(json.dumps(_to_json(state))))
    assert torch.equal(back["tokenizer"]["proto"], proto) and back["tokenizer"]["proto"].dtype == torch.uint8
    assert back["raw"] == b"\x00\xff" and back["classes"] == ["a", "b"]
    assert torch.equal(back["grid"], state["grid"]) and back["empty"].shape == (0,)


def test_safetensors_export_is_read_by_predict_eval_and_finetune(checkpoints, tmp_path):
    ckpt = checkpoints("numbers_de")
    out = tmp_path / "export"
    run = run_cli("mas-export", f"ckpt_path={ckpt}", "format=safetensors", f"out={out}")
    assert run.returncode == 0, run.stderr
    assert (out / WEIGHTS_FILE).is_file() and (out / CONFIG_FILE).is_file()
    assert b"pickle" not in (out / WEIGHTS_FILE).read_bytes()[:2048]
    original, exported = load_checkpoint(ckpt), load_checkpoint(out / WEIGHTS_FILE)
    assert original["state_dict"].keys() == exported["state_dict"].keys()
    assert all(torch.equal(original["state_dict"][k], exported["state_dict"][k]) for k in original["state_dict"])
    # the rebuilt task translates exactly like the checkpoint's (tokenizer from config.json)
    _, dm, module = restore(ckpt, "test")
    module.eval()
    batch = _first_test_batch(dm)
    _, dm2, module2 = restore(str(out), "test")
    src, mask = batch[0], batch[1]
    from nlp.models import translate

    a = translate(module.model, src, mask, beam_size=2)
    b = translate(module2.eval().model, src, mask, beam_size=2)
    assert torch.equal(a, b)
    assert dm2.tokenizer.state_dict() == dm.tokenizer.state_dict()
    # finetune.from= accepts the directory and loads the same tensors as from the .ckpt
    from_dir = load_pretrained(module2.model, str(out))
    from_ckpt = load_pretrained(module.model, ckpt)
    assert from_dir.loaded == from_ckpt.loaded and len(from_dir.loaded) > 0


def test_safetensors_export_errors_are_one_sentence(checkpoints, tmp_path):
    out = tmp_path / "export"
    save_weights_dir(load_checkpoint(checkpoints("numbers_cls")), out)
    raw = (out / WEIGHTS_FILE).read_bytes()
    (out / WEIGHTS_FILE).write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputError, match="truncated or corrupt"):
        load_checkpoint(out)
    (out / CONFIG_FILE).write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        load_checkpoint(out)
    (out / CONFIG_FILE).unlink()
    with pytest.raises(InputError, match="config.json is missing"):
        load_checkpoint(out / WEIGHTS_FILE)
    bad = run_cli("mas-export", f"ckpt_path={checkpoints('numbers_cls')}", "format=tflite", f"out={tmp_path / 'x'}")
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error: format must be one of onnx, safetensors")
    assert "Traceback" not in bad.stderr


def _session(path):
    ort = pytest.importorskip("onnxruntime")
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("name, n_inputs", [("digits", 1), ("digits_seg", 1), ("numbers_cls", 2),
                                            ("spoken_digits", 2), ("commands", 2)])
def test_onnx_graph_matches_pytorch_on_a_test_batch(name, n_inputs, checkpoints, tmp_path):
    pytest.importorskip("onnxruntime")
    from core.export.onnx import export_onnx

    ckpt = checkpoints(name)
    batch, module = _test_batch(ckpt)
    records = export_onnx(module.model, tmp_path, atol=1e-4)
    assert [r["graph"] for r in records] == ["model"] and max(records[0]["max_abs_diff"]) <= 1e-4
    inputs = tuple(batch[:n_inputs])
    with torch.no_grad():
        want = module.model(*inputs)
    want = want if isinstance(want, tuple) else (want,)
    got = _session(tmp_path / "model.onnx").run(None, {n: t.numpy() for n, t in zip(records[0]["inputs"], inputs)})
    for g, w in zip(got, want):
        assert g.shape == tuple(w.shape)
        np.testing.assert_allclose(g, w.numpy(), atol=1e-4, rtol=0)
    assert (np.argmax(got[0], axis=-1) == want[0].argmax(-1).numpy()).all()


def test_onnx_translation_decodes_greedily_like_pytorch(checkpoints, tmp_path):
    pytest.importorskip("onnxruntime")
    from core.export.onnx import export_onnx
    from nlp.graphs import empty_cache
    from nlp.models import translate
    from nlp.tokenizers import BOS, EOS, PAD

    batch, module = _test_batch(checkpoints("numbers_de"))
    model = module.model
    records = export_onnx(model, tmp_path)
    assert [r["graph"] for r in records] == ["encoder", "decoder_step"]
    src, mask = batch[0][:4], batch[1][:4]
    encoder, step = _session(tmp_path / "encoder.onnx"), _session(tmp_path / "decoder_step.onnx")
    memory = encoder.run(None, {"src": src.numpy(), "src_mask": mask.numpy()})[0]
    keys = values = empty_cache(model, len(src)).numpy()
    token = np.full((len(src), 1), BOS, dtype=np.int64)
    out, done = [], np.zeros(len(src), dtype=bool)
    for _ in range(model.max_len):
        log_probs, keys, values = step.run(None, {"token": token, "memory": memory, "src_mask": mask.numpy(),
                                                  "past_keys": keys, "past_values": values})
        nxt = np.where(done, PAD, log_probs.argmax(-1))
        out.append(nxt)
        done |= nxt == EOS
        token = nxt[:, None].astype(np.int64)
        if done.all():
            break
    onnx_ids = np.stack(out, axis=1)
    torch_ids = translate(model, src, mask, beam_size=1).numpy()
    width = max(onnx_ids.shape[1], torch_ids.shape[1])
    pad = lambda a: np.pad(a, ((0, 0), (0, width - a.shape[1])), constant_values=PAD)  # noqa: E731
    np.testing.assert_array_equal(pad(onnx_ids), pad(torch_ids))


def test_mas_export_onnx_writes_config_and_record(checkpoints, tmp_path):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "onnx"
    run = run_cli("mas-export", f"ckpt_path={checkpoints('digits')}", "format=onnx", f"out={out}", "threads=1")
    assert run.returncode == 0, run.stderr
    assert "model.onnx: max |onnxruntime - torch| = " in run.stdout
    record = json.loads((out / "export.json").read_text())["graphs"][0]
    assert record["dynamic_axes"]["image"] == {"0": "batch"} and max(record["max_abs_diff"]) <= 1e-4
    config = json.loads((out / CONFIG_FILE).read_text())
    assert config["task"] == "vision/classification" and config["mas_config"]["model"]["_target_"] == "vision.models.ViT"
