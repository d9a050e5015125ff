"""mas-demo: the page's prediction equals mas-predict's for an image, a recording and a text; the attention
map of a chosen layer and head is a PNG titled "layer L, head H"; a real headless Chromium loads the page,
clicks an example and sees the label and the map."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import train_cfg
from hydra.utils import instantiate
from PIL import Image

from core.serve.session import ATTENTION_PNG_SIZE, DemoSession, predict_options
from core.train.errors import InputError
from core.train.run import load_for_predict

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

TINY = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1", "threads=1"]
TEXT_MODEL = ["model.dim=32", "model.num_heads=2"]
AUDIO_MODEL = ["model.dim=32", "model.depth=1", "model.num_heads=2", "model.subsample_channels=8"]
RECIPES = {  # tiny budgets, as the predict tests of each domain train them; two layers where cheap
    "vision_cls": ["experiment=vision/digits", "model.dim=32", "model.depth=2", "model.num_heads=2"],
    "vision_seg": ["experiment=vision/digits_seg", "model.dim=32", "model.depth=1", "model.num_heads=2"],
    "nlp_cls": ["experiment=nlp/numbers_cls", "data.corpus_size=2000", "data.max_number=99", "data.max_len=40",
                "model.depth=2", *TEXT_MODEL],
    "nlp_mt": ["experiment=nlp/numbers_de", "data.max_number=999", "data.train_size=64", "data.val_size=16",
               "data.test_size=16", "model.enc_depth=1", "model.dec_depth=1", "module.num_alignment_plots=0",
               "data.max_src_len=30", "data.max_tgt_len=24", *TEXT_MODEL],
    "speech_ctc": ["experiment=speech/spoken_digits", "data.num_utterances={train:24,val:8,test:8}",
                   "data.batch_size=8", *AUDIO_MODEL],
    "speech_commands": ["experiment=speech/commands", "data.num_utterances={train:48,val:12,test:12}",
                        "data.batch_size=8", *AUDIO_MODEL],
}
KIND = {"vision_cls": "image", "vision_seg": "image", "nlp_cls": "text", "nlp_mt": "text", "speech_ctc": "audio",
        "speech_commands": "audio"}
TEXTS = {"nlp_cls": "Twenty-One | fifty two", "nlp_mt": "three hundred and twelve"}
NO_CHROMIUM = ("Chromium not found; install Debian's chromium package (apt-get install chromium) to run the "
               "browser test")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """``checkpoint(name)``: a tiny trained checkpoint of one recipe, trained once per module on first use."""
    done: dict[str, str] = {}

    def get(name: str) -> str:
        if name not in done:
            torch.set_num_threads(1)
            out = tmp_path_factory.mktemp(name)
            train_cfg([*RECIPES[name], *TINY], out)
            done[name] = str(out / "checkpoints" / "last.ckpt")
        return done[name]

    return get


@pytest.fixture(scope="module")
def uploads(tmp_path_factory):
    """An image (a scikit-learn digit scaled up, dark ink on white as a person draws it) and a recording."""
    from sklearn.datasets import load_digits

    d = tmp_path_factory.mktemp("uploads")
    scan = load_digits().images[7]  # 8x8, ink 0-16
    picture = Image.fromarray((255 - scan * 255 / 16).astype(np.uint8)).resize((48, 48), Image.NEAREST)
    picture.save(d / "digit.png")
    t = np.arange(int(0.9 * 22050)) / 22050  # a voiced burst between silences, at another rate than the model's
    noise = 0.003 * np.random.default_rng(0).standard_normal(len(t))
    burst = 0.4 * np.sin(2 * np.pi * 180 * t) * np.sin(np.pi * t / 0.9) + noise
    sf.write(d / "speech.wav", np.concatenate([np.zeros(4000), burst, np.zeros(4000)]).astype(np.float32), 22050)
    return {"image": str(d / "digit.png"), "audio": str(d / "speech.wav")}


def _upload(name: str, uploads) -> str:
    return TEXTS[name] if KIND[name] == "text" else uploads[KIND[name]]


def _mas_predict(ckpt: str, name: str, upload: str, out_dir) -> dict:
    """The record mas-predict's code path gives for the same input and options (a fresh load of the checkpoint)."""
    cfg, dm, module = load_for_predict(ckpt)
    key = "text" if KIND[name] == "text" else "input"
    request = {**predict_options(), key: upload}
    return instantiate(cfg.predictor)(module=module, datamodule=dm, request=request, out_dir=str(out_dir))[0]


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_page_prediction_equals_mas_predict_and_map_is_a_titled_png(name, checkpoint, uploads, tmp_path):
    pytest.importorskip("gradio")
    from core.serve.demo import build_app, page_values

    ckpt, upload = checkpoint(name), _upload(name, uploads)
    session = DemoSession(ckpt, out_dir=tmp_path / "demo")
    assert session.input_kind == KIND[name]
    build_app(session, examples=[upload])  # the page builds for every task
    layers, heads = session.demo.attention_shape()
    assert layers >= 1 and heads == 2
    answer = session.predict(upload, layer=layers - 1, head=1)
    expected = _mas_predict(ckpt, name, upload, tmp_path / "predict")
    if "top" in expected:
        assert [label for label, _ in answer.shown["top"]] == [label for label, _ in expected["top"]]
        assert [p for _, p in answer.shown["top"]] == pytest.approx([p for _, p in expected["top"]], abs=1e-6)
    elif "fractions" in expected:  # segmentation: class fractions and an overlay at the picture's size
        assert dict(answer.shown["top"]) == pytest.approx(expected["fractions"])
        assert Image.open(answer.shown["image"]).size == Image.open(upload).size
    else:
        assert answer.shown["text"] == expected.get("translation", expected.get("text"))  # a translation record keeps its source in "text"
    png = Image.open(answer.attention)
    assert png.format == "PNG" and png.size == ATTENTION_PNG_SIZE
    assert png.info["Title"] == f"layer {layers - 1}, head 1" and not answer.note
    values = page_values(answer, list(session.demo.outputs))
    assert values[-2] == str(answer.attention) and len(values) == len(session.demo.outputs) + 2


def test_layer_and_head_choose_the_map(checkpoint, uploads, tmp_path):
    """Each (layer, head) is that module's own map: the same weights the whole model records in one pass."""
    from core.nn.attention import record_attention
    from vision.predict import model_input, read_image

    session = DemoSession(checkpoint("vision_cls"), out_dir=tmp_path)
    model = session.module.model
    x = model_input(read_image(uploads["image"], 1), session.datamodule, model.img_size)[None]
    with record_attention(model.encoder) as mods, torch.no_grad():
        model(x)
    full = [m.last_attn[0] for m in mods.values()]  # per layer (H, N, N)
    for layer in range(2):
        for head in range(2):
            ex = session.demo.attention(session.request(uploads["image"]), layer=layer, head=head)
            assert np.allclose(ex["attn"], full[layer][head].numpy(), atol=1e-6)
    assert not np.allclose(full[0][0].numpy(), full[0][1].numpy())  # the heads do differ


def test_bad_uploads_and_choices_get_one_sentence(checkpoint, uploads, tmp_path):
    session = DemoSession(checkpoint("vision_cls"), out_dir=tmp_path)
    (tmp_path / "notes.png").write_text("not an image")
    cases = [(None, {}, "upload an image first"), (str(tmp_path / "notes.png"), {}, "not a readable image"),
             (uploads["image"], {"layer": 5}, "layer=5 is out of range"),
             (uploads["image"], {"head": 2}, "head=2 is out of range")]
    for upload, choice, sentence in cases:
        with pytest.raises(InputError, match=sentence) as info:
            session.predict(upload, **choice)
        assert "\n" not in str(info.value)
    text = DemoSession(checkpoint("nlp_cls"), out_dir=tmp_path)
    with pytest.raises(InputError, match="type a text first"):
        text.predict("   ")


def _demo_cli(*args: str, env: dict | None = None, code: str = "pass") -> subprocess.CompletedProcess:
    script = f"import sys; {code}; sys.argv = ['mas-demo', *sys.argv[1:]]; from core.serve.demo import main; main()"
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def test_cli_errors_are_one_sentence(tmp_path):
    no_gradio = _demo_cli("ckpt_path=x.ckpt", code="sys.modules['gradio'] = None")
    assert no_gradio.returncode == 2
    assert no_gradio.stderr.strip() == "error: install the 'demo' extra: pip install -e '.[demo]'"
    if importlib.util.find_spec("gradio"):  # the other sentences come after gradio's check
        env = {"MAS_OUTPUT_DIR": str(tmp_path)}
        (tmp_path / "corrupt.ckpt").write_bytes(b"not a checkpoint")
        for args, sentence in [((), "mas-demo needs ckpt_path="),
                               ((f"ckpt_path={tmp_path / 'missing.ckpt'}",), "does not exist"),
                               ((f"ckpt_path={tmp_path / 'corrupt.ckpt'}",), "is not a checkpoint"),
                               (("ckpt_pth=x",), "did you mean ckpt_path")]:
            run = _demo_cli(*args, env=env)
            assert run.returncode == 2 and sentence in run.stderr, run.stderr
            assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr



def test_cli_serves_the_page_and_a_busy_port_gets_one_sentence(checkpoint, uploads, tmp_path):
    pytest.importorskip("gradio")
    import signal
    import time
    import urllib.request

    ckpt, port, env = checkpoint("vision_cls"), _free_port(), {"MAS_OUTPUT_DIR": str(tmp_path)}
    script = "import sys; sys.argv = ['mas-demo', *sys.argv[1:]]; from core.serve.demo import main; main()"
    args = [f"ckpt_path={ckpt}", f"port={port}", f"examples=[{uploads['image']}]", "threads=1"]
    server = subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env={**os.environ, **env})
    try:
        line = server.stdout.readline()  # printed once the server listens (before it: Hydra's log lines, if any)
        while line and not line.startswith("mas-demo:"):
            line = server.stdout.readline()
        assert line.startswith("mas-demo: vision/classification") and f"http://127.0.0.1:{port}" in line, line
        for _ in range(50):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as page:
                    assert page.status == 200 and "mas-demo" in page.read().decode()
                break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("the page did not answer")
        busy = _demo_cli(*args, env=env)  # the same port again, while it is taken
        assert busy.returncode == 2 and busy.stderr.strip() == (
            f"error: cannot serve on 127.0.0.1:{port}: the port is in use or cannot be opened; choose another with "
            "port=.")
    finally:
        server.send_signal(signal.SIGINT)  # Ctrl+C
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:  # cleanup only: Gradio's shutdown can outlast a minute on a loaded CPU
            server.kill()
            server.wait()


# ---- a real browser -------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's Chromium: found on PATH, or installed with apt-get when MAS_INSTALL_CHROMIUM=1 allows it."""
    def found():
        return shutil.which("chromium") or shutil.which("chromium-browser")

    if not found() and os.environ.get("MAS_INSTALL_CHROMIUM") == "1" and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update"], capture_output=True, timeout=300, env=env)
        subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "chromium"], capture_output=True,
                       timeout=600, env=env)
    if not found():
        pytest.skip(NO_CHROMIUM)
    return found()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("name", ["vision_cls", "nlp_cls", "speech_commands"])
def test_browser_clicks_an_example_and_sees_label_and_map(name, chromium, checkpoint, uploads, tmp_path):
    pytest.importorskip("gradio")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install "
                                                                  "playwright==1.65.2); the browser test needs it")
    from core.serve.demo import build_app

    ckpt, upload = checkpoint(name), _upload(name, uploads)
    expected = _mas_predict(ckpt, name, upload, tmp_path / "predict")["top"][0][0]
    app = build_app(DemoSession(ckpt, out_dir=tmp_path / "demo"), examples=[upload])
    port = _free_port()
    app.launch(server_name="127.0.0.1", server_port=port, share=False, prevent_thread_lock=True, quiet=True)
    try:
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/", wait_until="domcontentloaded", timeout=60_000)
            page.locator("#predict").wait_for(timeout=60_000)
            page.locator("#examples button").first.click()  # fills the upload with the example
            page.wait_for_timeout(500)
            page.locator("#predict").click()
            label = page.locator("#out-top [data-testid=label-output-value]")
            label.wait_for(timeout=60_000)
            sync_api.expect(label).to_have_text(expected, timeout=60_000)
            img = page.locator("#attention img")
            img.wait_for(timeout=60_000)
            src = img.get_attribute("src")
            page.wait_for_function("() => { const i = document.querySelector('#attention img');"
                                   " return i && i.complete && i.naturalWidth > 0; }", timeout=30_000)
            width = page.evaluate("document.querySelector('#attention img').naturalWidth")
            page.locator("#head input").click()  # another head: the map is redrawn without pressing Predict
            page.get_by_role("option", name="1", exact=True).click()
            sync_api.expect(img).to_have_attribute("src", re.compile(r"head1\.png$"), timeout=60_000)
            page.screenshot(path=str(tmp_path / f"demo_{name}.png"), full_page=True)
            browser.close()
    finally:
        app.close()
    assert src and src.endswith(".png") and width == ATTENTION_PNG_SIZE[0]
    assert Image.open(tmp_path / f"demo_{name}.png").size[0] == 1280
