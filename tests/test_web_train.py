"""The page's training (cnn_numpy/web/live.py) and the backward pass on a drawing
(cnn_numpy/visual/saliency.py): the API, exactness against the command line, pause and
replay, divergence, bad requests and a fuzz, bounded memory, and saliency against PyTorch."""

from __future__ import annotations

import csv
import io
import json
import statistics
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnn_numpy import Net
from cnn_numpy.cli import main
from cnn_numpy.models import MODEL_LAYERS, build_model
from cnn_numpy.runs import read_run
from cnn_numpy.training import weight_arrays
from cnn_numpy.visual import saliency

pytest.importorskip("starlette", reason='the web extra is not installed: pip install ".[web]"')
pytest.importorskip("httpx2", reason="Starlette's TestClient needs httpx2: pip install httpx2")
from starlette.testclient import TestClient  # noqa: E402

from cnn_numpy.web import live  # noqa: E402
from cnn_numpy.web.server import create_app  # noqa: E402

CNN = MODEL_LAYERS["cnn"]
#: A short run: 540 training images (600 less the 10% held out), 17 steps of 32.
SHORT = {"layers": CNN, "limit": 600, "epochs": 1, "batch_size": 32, "learning_rate": 0.001,
         "optimizer": "adam", "schedule": "constant", "seed": 0, "validation": 0.1}
#: 5,400 training images, 169 steps (about a second alone, more beside other tests), so
#: that an edit sent 0.1 s after Resume lands while the run goes on.
LONGER = {**SHORT, "limit": 6000}


@pytest.fixture(scope="module")
def served(sample):
    net = build_model("cnn", seed=0, optimizer="adam")
    net.train(sample.x_train[:64], sample.y_train[:64], 0.001)
    return net


@pytest.fixture()
def http(served, sample):
    with TestClient(create_app(served, sample.x_test, sample.y_test)) as client:
        yield client


def wait_for(http, done, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = http.get("/api/train/state").json()
        if state["run"] is not None and done(state["run"]):
            return state
        time.sleep(0.05)
    raise AssertionError(f"the run did not get there: {state['run']['status']}")


def finished(run) -> bool:
    return run["status"] in ("done", "stopped", "diverged", "failed")


def model_of(http, number, tmp_path) -> Net:
    response = http.get(f"/api/runs/{number}/model.npz")
    assert response.status_code == 200, response.text
    assert response.headers["content-disposition"] == \
        f'attachment; filename="cnn-numpy-run-{number}.npz"'
    path = tmp_path / f"run-{number}.npz"
    path.write_bytes(response.content)
    return Net.load(path)


def same_weights(a: Net, b: Net) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(weight_arrays(a), weight_arrays(b),
                                                     strict=True))


# -- a run, as the page makes one ---------------------------------------------------------

def test_a_run_ends_with_the_command_lines_weights(http, tmp_path):
    assert http.post("/api/train/start", json=SHORT).json() == {"run": 1}
    state = wait_for(http, finished)
    run = state["run"]
    assert run["status"] == "done" and run["message"] == ""
    assert run["step"] == 17 and run["images"] == 540 and run["epoch"] == 1
    assert [p["step"] for p in run["train"]] == list(range(1, 18))
    assert run["validation"] and all(0 <= p["ce"] <= 1 for p in run["validation"])
    assert run["test"]["images"] == 1000 and 0 < run["test"]["ce"] < 0.9
    page = model_of(http, 1, tmp_path)

    cli = tmp_path / "cli.npz"
    code = main(["train", "--layers", CNN, "--dataset", "mnist-sample", "--limit", "600",
                 "--epochs", "1", "--batch-size", "32", "--learning-rate", "0.001",
                 "--optimizer", "adam", "--schedule", "constant", "--seed", "0",
                 "--validation", "0.1", "--no-progress", "--save", str(cli)])
    assert code == 0
    assert same_weights(page, Net.load(cli))  # bit for bit, live views on
    assert page.describe() == CNN


def test_the_pages_defaults_are_the_command_lines(http):
    """The Train panel starts from the command line's settings for the served model (the
    cnn: Adam, cosine, batch 32, 6 epochs), and a run given only its layers gets them."""
    from cnn_numpy.models import MODEL_DEFAULTS

    assert http.get("/api/model").json()["defaults"] == MODEL_DEFAULTS["cnn"]
    http.post("/api/train/step", json={"layers": CNN, "limit": 64})
    run = wait_for(http, lambda r: r["status"] == "paused")["run"]
    http.post("/api/train/reset")
    shown = {k: run["settings"][k] for k in MODEL_DEFAULTS["cnn"]}
    assert shown == MODEL_DEFAULTS["cnn"]


def test_views_show_the_run(http, sample):
    http.post("/api/train/start", json=SHORT)
    state = wait_for(http, finished)
    views = state["views"]
    probe = views["probe"]
    assert probe["label"] == int(sample.y_test[0])
    assert [layer["shape"] for layer in probe["layers"]] == [[26, 26, 32], [13, 13, 32], [5408],
                                                             [100], [10]]
    # the packed output of the last layer is the viewing net's probabilities, to 1/127
    out = probe["layers"][-1]["A"]
    q = np.frombuffer(__import__("base64").b64decode(out["q"]), np.int8)
    view = http.app.state.trainer.model.net
    expected = view.predict(sample.x_test[:1])[0]
    np.testing.assert_allclose(q * out["scale"] / 127, expected, atol=out["scale"] / 254 + 1e-6)
    assert views["filters"]["layer"] == 0 and views["filters"]["W"]["shape"] == [3, 3, 32]
    stats = {s["name"]: s for s in views["stats"]}
    conv = stats["0: ConvLayer_ReLU"]
    assert 0 <= conv["dead"][-1] <= 1 and conv["grad_norm"][-1] > 0
    assert 1e-6 < conv["update_ratio"][-1] < 1
    assert stats["2: FlatLayer"]["grad_norm"][-1] is None
    assert len(views["stream"]) == live.STREAM_IMAGES
    assert state["run"]["measured"] == {"on": "validation", "images": 60}  # a tenth of 600
    for shown in views["stream"]:
        assert len(shown["top"]) == 3 and shown["top"][0][1] >= shown["top"][1][1]
    # the page shows the run's net now
    assert http.get("/api/model").json()["version"] == state["model_version"] >= 2


def test_one_training_at_a_time_and_reset(http):
    http.post("/api/train/start", json={**SHORT, "limit": None, "epochs": 3})
    second = http.post("/api/train/start", json=SHORT)
    assert second.status_code == 409 and "one training at a time" in second.json()["error"]
    assert http.get("/api/model").status_code == 200  # other requests are answered meanwhile
    assert http.post("/api/train/reset").json() == {"stopped": True}
    run = http.get("/api/train/state").json()["run"]
    assert run["status"] == "stopped" and run["message"].startswith("stopped by Stop")
    assert http.get("/api/runs/1/model.npz").status_code == 200
    assert http.post("/api/train/pause").status_code == 409  # nothing runs now


def test_pause_step_edit_resume_is_exactly_its_replay(http, tmp_path):
    # step from nothing: a paused run that took one step
    assert http.post("/api/train/step", json=LONGER).json() == {"run": 1}
    wait_for(http, lambda r: r["status"] == "paused" and r["step"] == 1)
    for _ in range(3):
        http.post("/api/train/step")
        time.sleep(0.05)
    run = wait_for(http, lambda r: r["status"] == "paused" and r["step"] == 4)["run"]
    assert http.post("/api/train/set", json={"learning_rate": 0.003, "momentum": 0.8}).json() \
        == {"run": 1, "after_step": 4}
    http.post("/api/train/step")
    paused = wait_for(http, lambda r: r["status"] == "paused" and r["step"] == 5)["run"]
    assert paused["validation"][-1]["step"] == 5  # the curves end where the weights are
    http.post("/api/train/resume")
    time.sleep(0.1)
    http.post("/api/train/set", json={"weight_decay": 0.0001})
    run = wait_for(http, finished)["run"]
    assert run["status"] == "done"
    assert run["edits"][:2] == [{"after_step": 4, "name": "learning_rate", "value": 0.003},
                                {"after_step": 4, "name": "momentum", "value": 0.8}]
    assert run["edits"][2]["name"] == "weight_decay"
    edited = model_of(http, 1, tmp_path)

    replay = http.post("/api/train/start", json={**LONGER, "edits": run["edits"]}).json()
    assert wait_for(http, finished)["run"]["edits"] == run["edits"]
    assert same_weights(model_of(http, replay["run"], tmp_path), edited)

    plain = http.post("/api/train/start", json=LONGER).json()["run"]  # no edits: other weights
    wait_for(http, finished)
    assert not same_weights(model_of(http, plain, tmp_path), edited)

    rows = list(csv.DictReader(io.StringIO(http.get("/api/runs/1/history.csv").text)))
    assert [r["learning_rate"] for r in rows if r["train_cce"]][3:5] == ["0.001", "0.003"]
    path = tmp_path / "run-1.json"
    path.write_text(http.get("/api/runs/1/history.json").text)
    read = read_run(path)
    assert read.settings["edits"] == run["edits"] and len(read.history) == 1
    assert run["step"] == 169  # 5,400 images in batches of 32


def test_batch_size_changes_from_the_next_epoch(http):
    http.post("/api/train/step", json={**SHORT, "epochs": 2})
    wait_for(http, lambda r: r["status"] == "paused")
    http.post("/api/train/set", json={"batch_size": 60})
    http.post("/api/train/resume")
    run = wait_for(http, finished)["run"]
    assert run["status"] == "done" and run["images"] == 1080
    assert run["step"] == 17 + 9  # 540 images: 17 batches of 32, then 9 of 60


def test_a_diverging_run_stops_with_the_loops_message(http):
    http.post("/api/train/start", json={**SHORT, "optimizer": "sgd", "learning_rate": 99,
                                        "layers": "ConvLayer(4, 3), FlatLayer(), "
                                                  "FCLayer_Softmax(10)"})
    run = wait_for(http, finished)["run"]
    assert run["status"] == "diverged"
    assert "lower the learning rate" in run["message"] and "batch" in run["message"]
    assert http.get("/api/model").status_code == 200  # the server stays up
    assert http.post("/api/train/start", json=SHORT).status_code == 200
    wait_for(http, finished)


BAD = [
    ({"layres": CNN}, "unknown setting 'layres'"),
    ({"layers": "ConvLayer_ReLU(32, 3), Pool"}, "layers:"),
    ({"layers": "FlatLayer(), FCLayer_ReLU(10)"}, "layers:"),
    ({"layers": "ConvLayer(30000, 9), FlatLayer(), FCLayer_Softmax(10)"}, "weights"),
    ({"learning_rate": -1}, "learning_rate must be a number in (0, 100)"),
    ({"learning_rate": 0}, "learning_rate must be a number in (0, 100), got 0"),
    ({"batch_size": 2.5}, "batch_size must be a whole number"),
    ({"batch_size": True}, "batch_size must be a whole number"),
    ({"momentum": 1}, "momentum must be a number in [0, 1)"),
    ({"dataset": "cifar"}, "dataset must be one of mnist-sample"),
    ({"optimizer": "rmsprop"}, "optimizer must be one of"),
    ({"engine": "turbo"}, "engine must be one of"),
    ({"limit": 1, "validation": 0.5}, "a validation share of 0.5 of 1 images"),
    ({"batch_size": 65_537}, "batch_size must be a whole number in 1..65,536"),
    ({"edits": [{"after_step": 1, "name": "seed", "value": 1}]}, "an edit's name"),
    ({"edits": [{"after_step": 3, "name": "learning_rate", "value": 0.1},
                {"after_step": 1, "name": "learning_rate", "value": 0.1}]}, "in order"),
]


@pytest.mark.parametrize("body, message", BAD, ids=[m for _, m in BAD])
def test_bad_settings_are_400_naming_the_problem(http, body, message):
    response = http.post("/api/train/start", json=body)
    assert response.status_code == 400 and message in response.json()["error"]
    assert http.get("/api/train/state").json()["run"] is None  # nothing started


def test_live_edits_are_checked(http):
    assert http.post("/api/train/set", json={"learning_rate": 0.1}).status_code == 409
    http.post("/api/train/step", json={**SHORT, "optimizer": "sgd"})
    wait_for(http, lambda r: r["status"] == "paused")
    for body, message in (({"epochs": 3}, "cannot change during a run"),
                          ({}, "give one or more"), ({"learning_rate": "fast"}, "a number"),
                          ({"momentum": 0.5}, "sgd has no momentum")):
        response = http.post("/api/train/set", json=body)
        assert response.status_code == 400 and message in response.json()["error"]
    http.post("/api/train/reset")
    assert http.get("/api/runs/7/model.npz").status_code == 404
    assert "no run '7'" in http.get("/api/runs/7/history.csv").json()["error"]


ENDPOINTS = ["/api/train/start", "/api/train/step", "/api/train/set", "/api/train/probe",
             "/api/saliency", "/api/train/pause", "/api/train/resume"]
values = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10**12) | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(
        st.sampled_from([*live.NUMBERS, *live.CHOICES, "layers", "dataset", "edits", "image",
                         "label", "png"]) | st.text(max_size=5), children, max_size=4),
    max_leaves=30)


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(ENDPOINTS), body=values)
def test_fuzzed_training_requests_never_answer_500(http, path, body):
    if path == "/api/train/start" and isinstance(body, dict):
        body = {**body, "limit": 64, "epochs": 1}  # a valid one stays short
    response = http.post(path, content=json.dumps(body))
    assert response.status_code in (200, 400, 409), response.text
    if response.status_code != 200:
        assert response.json()["error"]
    http.post("/api/train/reset")
    assert http.get("/api/train/state").status_code == 200


# -- the pieces ------------------------------------------------------------------------------

def test_curves_are_thinned_keeping_their_mean():
    curve = live.Curve(("cce",))
    values = np.random.default_rng(0).random(5000)
    for step, v in enumerate(values, start=1):
        curve.add({"step": step, "images": 32 * step, "cce": float(v)})
    assert live.MAX_POINTS // 2 <= len(curve.points) <= live.MAX_POINTS
    assert sum(p["n"] for p in curve.points) == 5000
    mean = sum(p["cce"] * p["n"] for p in curve.points) / 5000
    assert mean == pytest.approx(values.mean(), rel=1e-12)
    assert curve.points[-1]["step"] == 5000


def test_packed_arrays_round_trip_to_a_127th():
    values = np.random.default_rng(1).normal(size=(5, 4, 3)).astype(np.float32)
    p = live.packed(values)
    q = np.frombuffer(__import__("base64").b64decode(p["q"]), np.int8).reshape(p["shape"])
    np.testing.assert_allclose(q * p["scale"] / 127, values, atol=p["scale"] / 254 + 1e-7)
    assert live.packed(np.zeros(3))["scale"] == 0


def test_saliency_is_pytorchs_input_gradient(served, sample):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    from cnn_numpy.interop.pytorch import to_torch

    image = sample.x_test[3][..., None]
    found = saliency.saliency(served, image)
    model = to_torch(served).eval()
    x = torch.tensor(image.transpose(2, 0, 1)[None], requires_grad=True)
    logits = model(x)
    assert int(logits.argmax()) == found.prediction
    logits[0, found.prediction].backward()
    expected = x.grad[0].numpy().transpose(1, 2, 0)
    np.testing.assert_allclose(found.gradient, expected, atol=1e-5 * np.abs(expected).max())


def test_fgsm_finds_the_smallest_step_that_changes_the_answer(served, sample):
    image = sample.x_test[3][..., None]
    before = int(served.predict(image[None]).argmax())
    nudge = saliency.fgsm(served, image)
    assert nudge.step is not None and nudge.prediction != before
    assert int(served.predict(nudge.image[None]).argmax()) == nudge.prediction
    assert 0 <= nudge.image.min() and nudge.image.max() <= 1
    assert np.abs(nudge.image - image).max() <= nudge.step + 1e-6
    k = list(saliency.FGSM_STEPS).index(nudge.step)
    if k:  # one step smaller still gives the old answer
        _, dZ = None, None
        smaller = saliency.FGSM_STEPS[k - 1]
        outputs = saliency.forward(served, image[None])
        _, dZ = served.layers[-1].loss(saliency.one_hot([before], 10, served.dtype))
        _, dX = saliency.backward(served, dZ)
        assert outputs[-1].shape == (1, 10)
        x = np.clip(image[None] + smaller * np.sign(dX), 0, 1)
        assert int(served.predict(x).argmax()) == before


def test_saliency_endpoint(http, sample):
    answer = http.post("/api/saliency", json={"image": sample.x_test[3].tolist()}).json()
    found = saliency.saliency(http.app.state.trainer.model.net, sample.x_test[3][..., None])
    assert answer["prediction"] == found.prediction
    np.testing.assert_allclose(np.array(answer["saliency"]), found.gradient[..., 0], rtol=1e-6)
    assert answer["nudge"]["prediction"] != answer["prediction"]


def test_the_probe_is_the_drawing(http, sample):
    image = sample.x_test[5].tolist()
    assert http.post("/api/train/probe", json={"image": image, "label": None}).status_code == 200
    probe = http.get("/api/train/state").json()["views"]["probe"]
    assert probe["label"] is None
    assert probe["loss_class"] == probe["prediction"]
    np.testing.assert_array_equal(np.array(probe["image"], np.float32), sample.x_test[5])
    bad = http.post("/api/train/probe", json={"image": image, "label": 12})
    assert bad.status_code == 400 and "label" in bad.json()["error"]


def test_favicon(http):
    response = http.get("/favicon.ico")
    assert response.status_code == 200 and response.text.startswith("<svg")


# -- the running server: many clients while it trains, and the page in a browser -------------

@pytest.fixture(scope="module")
def server(tmp_path_factory, served):
    """`cnn-numpy serve MODEL` on a free port of 127.0.0.1."""
    from test_web import serving

    path = tmp_path_factory.mktemp("served") / "cnn.npz"
    served.save(path)
    with serving(path) as url:
        yield url


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_8_clients_watch_a_training_with_no_errors(server, sample, capsys):
    from test_web import post

    status, _ = post(server + "/api/train/start", {**SHORT, "limit": 3000, "epochs": 2})
    assert status == 200
    latencies = {"state": [], "predict": []}
    failures, versions = [], []
    lock = threading.Lock()

    def client(k: int) -> None:
        since, i = None, 0
        while True:
            start = time.perf_counter()
            status, state = get(server + "/api/train/state"
                                + ("" if since is None else f"?since={since}"))
            elapsed = time.perf_counter() - start
            with lock:
                latencies["state"].append(elapsed)
                if status != 200:
                    failures.append(("state", status))
            since = state.get("version", since)
            if not state.get("unchanged"):
                with lock:
                    versions.append((time.perf_counter(), state["version"]))
                if state["run"] is not None and finished(state["run"]):
                    return
            if i % 4 == k % 4:
                image = sample.x_test[(k * 50 + i) % len(sample.x_test)]
                start = time.perf_counter()
                status, answer = post(server + "/api/predict", {"image": image.tolist()})
                with lock:
                    latencies["predict"].append(time.perf_counter() - start)
                    if status != 200 or len(answer["probabilities"]) != 10:
                        failures.append(("predict", status))
            i += 1
            time.sleep(0.1)

    started = time.perf_counter()
    clients = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join(timeout=300)
    seconds = time.perf_counter() - started
    assert failures == []
    status, state = get(server + "/api/train/state")
    assert state["run"]["status"] == "done" and state["run"]["images"] == 2 * 2700
    updates = len({v for _, v in versions})
    p95 = {key: 1000 * statistics.quantiles(values, n=20)[-1]
           for key, values in latencies.items()}
    with capsys.disabled():
        print(f"\n8 clients during a {seconds:.1f} s training: "
              f"{sum(map(len, latencies.values()))} requests, 0 errors; /api/train/state p95 "
              f"{p95['state']:.0f} ms, /api/predict p95 {p95['predict']:.0f} ms; "
              f"{updates / seconds:.1f} view updates a second")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from test_web import _chromium

    downloads = tmp_path_factory.mktemp("downloads")
    driver = _chromium()
    driver.execute_cdp_cmd("Browser.setDownloadBehavior",
                           {"behavior": "allow", "downloadPath": str(downloads)})
    driver.downloads = downloads
    yield driver
    driver.quit()


def _wait(driver, condition, timeout=60):
    from test_web import _wait as wait

    return wait(driver, condition, timeout)


def _run(driver, key=None):
    run = driver.execute_script("return trainState && trainState.run")
    return run if key is None or run is None else run[key]


def test_page_trains_pauses_edits_steps_explains_overlays_and_downloads(browser, server,
                                                                        tmp_path, capsys):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    shots = tmp_path
    browser.set_window_size(1280, 900)
    browser.get(server + "/")
    _wait(browser, lambda d: d.find_element(By.ID, "predicted").text != "")
    assert browser.find_element(By.ID, "t-layers").get_attribute("value") == CNN
    epochs = browser.find_element(By.ID, "t-epochs")
    epochs.clear()
    epochs.send_keys("50")  # long enough to watch; Reset ends it
    before = len(get(server + "/api/runs")[1]["runs"])  # the load test's run, if it ran
    first, second = before + 1, before + 2
    browser.find_element(By.ID, "t-start").click()
    _wait(browser, lambda d: _run(d) is not None and _run(d, "number") == first
          and len(_run(d, "train")) > 20)
    gradient_map = "return document.querySelector('canvas[data-probe=\"0\"][data-kind=\"dA\"]')" \
                   ".toDataURL()"
    loss = browser.execute_script("return document.getElementById('loss-chart').toDataURL()")
    first_map, points = browser.execute_script(gradient_map), len(_run(browser, "train"))
    # while it trains, Start and Step would be refused: they are disabled
    assert not browser.find_element(By.ID, "t-start").is_enabled()
    assert not browser.find_element(By.ID, "t-step").is_enabled()
    browser.execute_script("document.getElementById('train-card').scrollIntoView()")
    browser.save_screenshot(str(shots / "desktop-training.png"))
    _wait(browser, lambda d: len(_run(d, "train")) > points + 20
          and d.execute_script(gradient_map) != first_map)  # the curve grows, the maps change
    assert browser.execute_script(
        "return document.getElementById('loss-chart').toDataURL()") != loss
    assert len(browser.find_elements(By.CSS_SELECTOR, "#stream figure")) == live.STREAM_IMAGES

    # pause, change the learning rate, step once, resume
    browser.find_element(By.ID, "t-pause").click()
    _wait(browser, lambda d: _run(d, "status") == "paused")
    paused_at = _run(browser, "step")
    assert browser.find_element(By.ID, "t-start").text == "Resume"
    rate = browser.find_element(By.ID, "t-learning_rate")
    rate.send_keys(Keys.CONTROL, "a", Keys.NULL, "0.0005", Keys.TAB)  # leaving the field applies
    _wait(browser, lambda d: _run(d, "edits") == [
        {"after_step": paused_at, "name": "learning_rate", "value": 0.0005}])
    browser.find_element(By.ID, "t-step").click()
    _wait(browser, lambda d: _run(d, "step") == paused_at + 1 and _run(d, "status") == "paused")
    browser.find_element(By.ID, "t-start").click()  # Resume
    _wait(browser, lambda d: _run(d, "status") == "running" and _run(d, "step") > paused_at + 5)
    browser.find_element(By.ID, "t-reset").click()
    _wait(browser, lambda d: _run(d, "status") == "stopped")

    # draw a digit: its saliency map and an adversarial nudge
    from test_web import draw_a_one

    draw_a_one(browser)
    time.sleep(0.5)
    browser.find_element(By.ID, "explain").click()
    _wait(browser, lambda d: d.find_element(By.ID, "saliency-box").is_displayed()
          and "backpropagate" in d.find_element(By.ID, "explain-note").text)
    note = browser.find_element(By.ID, "explain-note").text
    assert "Nudge: every pixel moved by" in note
    assert browser.find_element(By.ID, "nudge-box").is_displayed()
    _wait(browser, lambda d: "your drawing" in d.find_element(By.ID, "probe-note").text)

    # a second run, of a network without a conv layer, overlaid on the first
    layers = browser.find_element(By.ID, "t-layers")
    layers.clear()
    layers.send_keys("FlatLayer(), FCLayer_ReLU(50), FCLayer_Softmax(10)")
    epochs.clear()
    epochs.send_keys("1")
    browser.find_element(By.ID, "t-limit").send_keys("1500")
    browser.find_element(By.ID, "t-start").click()
    _wait(browser, lambda d: _run(d, "number") == second and _run(d, "status") == "done", 120)
    status = browser.find_element(By.ID, "run-status").text
    assert "test error rate" in status and ", 1 of 1 epoch completed," in status
    _wait(browser, lambda d: not d.find_element(By.ID, "groups-card").is_displayed())
    assert not browser.find_element(By.ID, "engines-card").is_displayed()
    assert not browser.find_element(By.ID, "mac").is_displayed()  # conv-only panels hidden
    _wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#runs input")) == second)
    for k in (first, second):
        browser.find_element(By.CSS_SELECTOR, f'#runs input[data-run="{k}"]').click()
        time.sleep(0.3)
    _wait(browser, lambda d: d.find_element(By.ID, "overlay-chart").is_displayed())
    browser.execute_script("document.getElementById('runs-card').scrollIntoView()")
    browser.save_screenshot(str(shots / "desktop-runs.png"))

    # download run 1's model and load it
    browser.find_element(By.CSS_SELECTOR, f'a[href="/api/runs/{first}/model.npz"]').click()
    target = browser.downloads / f"cnn-numpy-run-{first}.npz"
    _wait(browser, lambda d: target.exists() and target.stat().st_size > 1_000_000)
    time.sleep(0.5)
    net = Net.load(target)
    assert net.describe() == CNN
    status, answer = get(server + "/api/runs")
    assert answer["runs"][first - 1]["edits"][0]["value"] == 0.0005

    browser.set_window_size(390, 844)
    browser.execute_script("window.scrollTo(0, 0)")
    browser.save_screenshot(str(shots / "phone.png"))
    width = browser.execute_script("return document.documentElement.scrollWidth")
    bars, height = browser.execute_script(
        "return [document.getElementById('bars').getBoundingClientRect().bottom, innerHeight]")
    assert width <= 390 and bars <= height  # nothing sideways; the bars in sight while drawing
    with capsys.disabled():
        print(f"\nscreenshots in {shots}")


def test_the_page_offers_the_datasets_found_here(sample):
    """`serve --data-dir DIR`: full MNIST where its official files are, never downloaded."""
    from pathlib import Path

    from cnn_numpy.data import available_datasets
    from cnn_numpy.web.server import dataset_loader

    shared = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
    if not shared.is_dir():
        pytest.skip(f"the official MNIST files are not in {shared}")
    assert available_datasets(shared)[:2] == ["mnist-sample", "mnist"]
    load = dataset_loader(shared)
    assert load("mnist").x_train.shape == (60_000, 28, 28)
    assert load("mnist") is load("mnist")  # read once


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(number=st.text(max_size=8), kind=st.sampled_from(["model.npz", "history.csv",
                                                         "history.json"]))
def test_fuzzed_downloads_never_answer_500(http, number, kind):
    import urllib.parse

    response = http.get(f"/api/runs/{urllib.parse.quote(number, safe='')}/{kind}")
    assert response.status_code in (404, 409), response.text
    assert response.json()["error"]
