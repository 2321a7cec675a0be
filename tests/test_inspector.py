"""The page's step inspector, error analysis and shared experiments (cnn_numpy/web/
inspector.py, stages.py, errors.py, static/inspector.js and share.js): the API against the
library's own trace, a paused run inspected without being changed, replays from a run's
JSON, bad requests and a fuzz, and the page in headless Chromium."""

from __future__ import annotations

import base64
import copy
import json
import time
import urllib.parse
import urllib.request

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnn_numpy import Net
from cnn_numpy.models import MODEL_LAYERS, build_model
from cnn_numpy.trace import trace_step
from cnn_numpy.training import weight_arrays

pytest.importorskip("starlette", reason='the web extra is not installed: pip install ".[web]"')
pytest.importorskip("httpx2", reason="Starlette's TestClient needs httpx2: pip install httpx2")
from starlette.testclient import TestClient  # noqa: E402

from cnn_numpy.web.server import create_app  # noqa: E402

CNN = MODEL_LAYERS["cnn"]
#: A tiny run: 58 training images (64 less the 10% held out), 2 steps an epoch.
TINY = {"layers": CNN, "limit": 64, "epochs": 2, "batch_size": 32, "learning_rate": 0.001,
        "optimizer": "adam", "schedule": "constant", "seed": 0, "validation": 0.1}


@pytest.fixture(scope="module")
def served(sample):
    net = build_model("cnn", seed=0, optimizer="adam")
    for i in range(0, 320, 32):
        net.train(sample.x_train[i : i + 32], sample.y_train[i : i + 32], 0.001)
    return net


@pytest.fixture()
def http(served, sample):
    with TestClient(create_app(copy.deepcopy(served), sample.x_test, sample.y_test)) as client:
        yield client


def wait_for(http, done, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        run = http.get("/api/train/state").json()["run"]
        if run is not None and done(run):
            return run
        time.sleep(0.03)
    raise AssertionError(f"the run did not get there: {run}")


def finished(run) -> bool:
    return run["status"] in ("done", "stopped", "diverged", "failed")


def unpacked(p: dict) -> np.ndarray:
    q = np.frombuffer(base64.b64decode(p["q"]), np.int8).reshape(p["shape"])
    return q * p["scale"] / 127


def same_weights(a: Net, b: Net) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(weight_arrays(a), weight_arrays(b),
                                                     strict=True))


def model_bytes_to_net(content: bytes, path) -> Net:
    path.write_bytes(content)
    return Net.load(path)


# -- the API ---------------------------------------------------------------------------------

def test_a_seeded_batch_is_traced_on_a_copy_stage_by_stage(http, sample):
    shown = http.app.state.trainer.model.net
    before = [w.copy() for w in weight_arrays(shown)]
    answer = http.post("/api/inspect/step", json={"source": "train", "seed": 3,
                                                  "batch_size": 8, "learning_rate": 0.01})
    assert answer.status_code == 200, answer.text
    step = answer.json()
    indices = np.random.default_rng(3).choice(len(sample.x_train), 8, replace=False)
    assert step["indices"] == indices.tolist() and step["n"] == 8
    assert step["labels"] == sample.y_train[indices].tolist()
    np.testing.assert_allclose(unpacked(step["images"]), sample.x_train[indices],
                               atol=1 / 254 + 1e-6)
    expected = trace_step(copy.deepcopy(shown), sample.x_train[indices],
                          sample.y_train[indices], 0.01)
    assert step["cce"] == expected.cce and step["loss"] == expected.loss.tolist()
    assert step["steps"] == expected.steps == 11 and step["optimizer"] == "adam"
    assert all(np.array_equal(a, b) for a, b in zip(before, weight_arrays(shown), strict=True))

    kinds = [(s["kind"], s["layer"]) for s in step["stages"]]
    assert kinds == [("forward", i) for i in range(5)] + [("loss", 4)] + [
        ("backward", i) for i in (4, 3, 2, 1, 0)] + [("update", i) for i in (0, 3, 4)]
    forward = {a["name"]: a for a in step["stages"][0]["arrays"]}
    assert list(forward) == ["A_prev", "W", "b", "Z", "A"] and forward["A_prev"]["label"] == "X"
    assert forward["Z"]["batch"] and forward["Z"]["shape"] == [26, 26, 32]
    update = {a["name"]: a for a in step["stages"][-2]["arrays"]}
    assert update["W"]["shape"] == [100, 5409] and not update["W"]["shown"]
    assert update["W_step"]["shown"] and "m_hat" in step["stages"][-2]["text"]

    z = http.get(f"/api/inspect/array?trace={step['trace']}&layer=0&name=Z&sample=5").json()
    assert z["shape"] == [26, 26, 32] and z["batch"] and z["sample"] == 5
    np.testing.assert_allclose(unpacked(z["values"]), expected[0, "Z"][5],
                               atol=z["values"]["scale"] / 254 + 1e-7)
    w = http.get("/api/inspect/array?layer=4&name=W_after").json()
    np.testing.assert_allclose(unpacked(w["values"]), expected[4, "W_after"],
                               atol=w["values"]["scale"] / 254 + 1e-7)

    for layer, name, index in ((0, "Z", (2, 3, 4, 7)), (0, "dW", (1, 1, 0, 5)),
                               (3, "W_step", (7, 300)), (4, "dZ", (6, 2)), (1, "dA_prev",
                                                                          (0, 10, 11, 3))):
        found = http.get(f"/api/inspect/explain?layer={layer}&name={name}&index="
                         + ",".join(map(str, index))).json()
        local = expected.explain(layer, name, index).to_dict(largest=20)
        assert found["equation"] == local["equation"] and found["value"] == local["value"]
        assert [t["label"] for t in found["terms"]] == [t["label"] for t in local["terms"]]
        assert found["total"] == pytest.approx(found["value"], rel=1e-5, abs=1e-7)


EVERY_TYPE = ("ConvLayer(4, 3, padding=1), BatchNorm(), ReLULayer(), PoolLayer_Avg(2), "
              "Dropout(0.25), ConvLayer_ReLU(3, 3, stride=2), PoolLayer_Max(2), FlatLayer(), "
              "FCLayer(16), LeakyReLULayer(), FCLayer_Sigmoid(12), TanhLayer(), "
              "FCLayer_ReLU(12), SigmoidLayer(), FCLayer_Softmax(10)")


def test_every_layer_type_has_its_stages_and_every_array_explains(sample):
    """A network of every shipped layer type, momentum and weight decay: the stages hold
    every array the trace keeps, each one served, one number of each explained with terms
    that sum to it."""
    from cnn_numpy.architecture import parse_layers

    net = Net(parse_layers(EVERY_TYPE), seed=1, optimizer="momentum", weight_decay=0.01)
    net.train(sample.x_train[:8], sample.y_train[:8], 0.01)
    with TestClient(create_app(net, sample.x_test, sample.y_test)) as http:
        step = http.post("/api/inspect/step", json={"batch_size": 4, "seed": 2}).json()
        shown = {(a["layer"], a["name"]) for stage in step["stages"] for a in stage["arrays"]}
        expected = trace_step(copy.deepcopy(net), *_seeded(sample, 2, 4), 0.001)
        kept = {(lt.number, name) for lt in expected.layers for name in lt.arrays}
        assert shown == kept  # every array the trace keeps, in some stage
        assert "momentum * v_before" in step["stages"][-1]["text"]
        assert "Weight decay 0.01" in step["stages"][-1]["text"]
        rng = np.random.default_rng(0)
        for layer, name in sorted(shown):
            a = expected[layer, name]
            served = http.get(f"/api/inspect/array?layer={layer}&name={name}&sample=1").json()
            part = a[1] if name in ("A_prev", "A", "Z", "dA", "dZ", "dA_prev", "x_hat",
                                    "mask", "Y") else a
            assert served["shape"] == list(part.shape), (layer, name)
            index = ",".join(str(int(rng.integers(d))) for d in a.shape)
            found = http.get(f"/api/inspect/explain?layer={layer}&name={name}&index={index}")
            assert found.status_code == 200, (layer, name, found.text)
            e = found.json()
            assert e["total"] == pytest.approx(e["value"], rel=1e-4, abs=1e-6), (layer, name)


def _seeded(sample, seed: int, count: int):
    indices = np.random.default_rng(seed).choice(len(sample.x_train), count, replace=False)
    return sample.x_train[indices], sample.y_train[indices]


def test_a_paused_runs_next_step_is_inspected_without_changing_the_run(http, sample, tmp_path):
    """Step from nothing, inspect the next step (the last of epoch 1, then the first of
    epoch 2), step on: the run takes the traced batch, and ends with the weights of the same
    run not inspected, bit for bit."""
    assert http.post("/api/inspect/step", json={"source": "next"}).status_code == 409
    http.post("/api/train/step", json=TINY)
    wait_for(http, lambda r: r["status"] == "paused" and r["step"] == 1)
    for step, epoch, batch in ((1, 1, 2), (2, 2, 1)):
        traced = http.post("/api/inspect/step", json={"source": "next"}).json()
        assert traced["source"] == "next" and f"paused after step {step}" in traced["where"]
        assert traced["batch"] == f"the run's next batch: epoch {epoch}, batch {batch}"
        assert traced["n"] == (26 if batch == 2 else 32) and traced["steps"] == step + 1
        http.post("/api/train/step")
        run = wait_for(http, lambda r, step=step: r["status"] == "paused"
                       and r["step"] == step + 1)
        assert run["train"][step]["cce"] == pytest.approx(traced["cce"], rel=1e-5)
        net = http.app.state.trainer.active.prepared.net
        after = unpacked(http.get("/api/inspect/array?layer=0&name=W_after").json()["values"])
        np.testing.assert_allclose(after, net.layers[0].W, atol=np.abs(after).max() / 200)
    http.post("/api/train/step")
    wait_for(http, lambda r: r["status"] == "paused" and r["step"] == 4)
    traced = http.post("/api/inspect/step", json={"source": "next"})
    assert traced.status_code == 409 and "took its last step" in traced.json()["error"]
    http.post("/api/train/resume")
    assert wait_for(http, finished)["status"] == "done"
    http.post("/api/train/start", json=TINY)  # the same run, not inspected
    assert wait_for(http, lambda r: r["number"] == 2 and finished(r))["status"] == "done"
    inspected, plain = (model_bytes_to_net(http.get(f"/api/runs/{k}/model.npz").content,
                                           tmp_path / f"{k}.npz") for k in (1, 2))
    assert same_weights(inspected, plain)
    after_run = http.post("/api/inspect/step", json={"source": "train", "batch_size": 4}).json()
    assert after_run["where"].startswith("run 2's trained net") and after_run["steps"] == 5


def test_the_first_steps_update_ratio_is_measured(http):
    """|step| / |W| after the very first step: against the weights the seed builds."""
    http.post("/api/train/step", json=TINY)
    wait_for(http, lambda r: r["status"] == "paused" and r["step"] == 1)
    deadline = time.time() + 30
    while "stats" not in (views := http.get("/api/train/state").json()["views"]):
        assert time.time() < deadline, "no statistics after the first step"
        time.sleep(0.03)  # the pause's snapshot is on its way
    stats = views["stats"]
    trained = http.app.state.trainer.active.prepared.net.layers[0]
    initial = build_model("cnn", seed=0, optimizer="adam")
    initial.build((28, 28, 1))
    W0, b0 = initial.layers[0].W, initial.layers[0].b
    change = np.sqrt(np.sum((trained.W - W0) ** 2) + np.sum((trained.b - b0) ** 2))
    size = np.sqrt(np.sum(trained.W ** 2) + np.sum(trained.b ** 2))
    assert stats[0]["update_ratio"][-1] == pytest.approx(change / size, rel=1e-4)
    assert stats[2]["update_ratio"][-1] is None  # FlatLayer: no weights
    http.post("/api/train/reset")


def test_the_pixel_explanation_follows_the_net_shown(http, sample):
    image = sample.x_test[0].tolist()

    def pixel():
        found = http.post("/api/inspect/pixel", json={"image": image, "layer": 0,
                                                      "index": [10, 12, 5]}).json()
        shown = http.post("/api/predict", json={"image": image}).json()["layers"][0]
        return found, shown["values"][10][12][5]

    found, map_value = pixel()
    assert found["label"] == "Z[0, 10, 12, 5]" and found["count"] == 10  # 9 products + bias
    assert found["A"] == pytest.approx(map_value, rel=1e-6, abs=1e-7)
    assert found["total"] == pytest.approx(found["value"], rel=1e-6, abs=1e-7)
    assert found["A"] == pytest.approx(max(found["value"], 0), abs=1e-7)
    assert {t["inputs"][-1]["name"] for t in found["terms"]} == {"W", "b"}
    http.post("/api/train/start", json={**TINY, "epochs": 1})
    wait_for(http, finished)
    again, new_value = pixel()
    assert again["weights_version"] > found["weights_version"]
    assert again["A"] == pytest.approx(new_value, rel=1e-6, abs=1e-7) and again["A"] != found["A"]


def test_the_confusion_matrix_and_its_cells(http, served, sample):
    answer = http.get("/api/confusion").json()
    predicted = served.predict(sample.x_test[:1000]).argmax(axis=1)
    expected = np.zeros((10, 10), int)
    np.add.at(expected, (sample.y_test[:1000], predicted), 1)
    assert answer["counts"] == expected.tolist() and answer["images"] == 1000
    assert answer["errors"] == int((predicted != sample.y_test[:1000]).sum())
    off = expected - np.diag(np.diag(expected))
    true, pred = np.unravel_index(off.argmax(), off.shape)
    cell = http.get(f"/api/confusion/cell?true={true}&pred={pred}&limit=5").json()
    assert cell["count"] == off.max() and len(cell["images"]) == min(5, off.max())
    losses = [s["loss"] for s in cell["images"]]
    assert losses == sorted(losses, reverse=True)
    probabilities = served.predict(sample.x_test[[s["index"] for s in cell["images"]]])
    for shown, p in zip(cell["images"], probabilities, strict=True):
        assert sample.y_test[shown["index"]] == true and shown["prediction"] == pred
        assert shown["top"][0][0] == pred and shown["loss"] == pytest.approx(-np.log(p[true]),
                                                                            rel=1e-5)
        assert shown["saliency"]["shape"] == [28, 28] and shown["saliency"]["scale"] > 0
    opened = http.post("/api/inspect/step", json={"source": "test",
                                                  "indices": [cell["images"][0]["index"]]})
    assert opened.json()["labels"] == [true] and opened.json()["predictions"] == [pred]


def test_a_runs_json_replays_it_from_the_settings_it_started_with(http, tmp_path):
    http.post("/api/train/step", json={**TINY, "epochs": 1})
    wait_for(http, lambda r: r["status"] == "paused")
    http.post("/api/train/set", json={"learning_rate": 0.004})
    http.post("/api/train/resume")
    run = wait_for(http, finished)
    assert run["settings"]["learning_rate"] == 0.001 and run["live"]["learning_rate"] == 0.004
    saved = json.loads(http.get("/api/runs/1/history.json").text)["settings"]
    assert saved["learning_rate"] == 0.001 and saved["edits"] == [
        {"after_step": 1, "name": "learning_rate", "value": 0.004}]
    keys = ("layers", "dataset", "optimizer", "learning_rate", "momentum", "batch_size",
            "weight_decay", "schedule", "epochs", "limit", "engine", "seed", "augment",
            "validation", "edits")
    assert http.post("/api/train/start", json={k: saved[k] for k in keys}).status_code == 200
    wait_for(http, finished)
    first, replay = (model_bytes_to_net(http.get(f"/api/runs/{k}/model.npz").content,
                                        tmp_path / f"{k}.npz") for k in (1, 2))
    assert same_weights(first, replay)


def test_a_failed_runs_download_says_why_it_has_no_model(http):
    http.post("/api/train/start", json={**TINY, "limit": 600, "epochs": 1, "optimizer": "sgd",
                                        "learning_rate": 99,
                                        "layers": "ConvLayer(4, 3), FlatLayer(), "
                                                  "FCLayer_Softmax(10)"})
    assert wait_for(http, finished)["status"] == "diverged"
    answer = http.get("/api/runs/1/model.npz")
    assert answer.status_code == 409
    assert answer.json()["error"].startswith("run 1 has no model to download: it diverged (")


def test_random_images_come_from_the_dataset_the_net_shown_learned(served, sample):
    from cnn_numpy.data import available_datasets

    if "fashion-mnist" not in available_datasets():
        pytest.skip("Fashion-MNIST is not on this machine")
    app = create_app(copy.deepcopy(served), sample.x_test, sample.y_test,
                     datasets=["mnist-sample", "fashion-mnist"])
    with TestClient(app) as http:
        assert http.get("/api/random-image").json()["dataset"] is None
        http.post("/api/train/start", json={**TINY, "dataset": "fashion-mnist", "epochs": 1})
        wait_for(http, finished)
        fashion = http.app.state.trainer.load_data("fashion-mnist")  # read once
        shown = http.get("/api/random-image").json()
        assert shown["dataset"] == "fashion-mnist"
        np.testing.assert_array_equal(np.array(shown["image"], np.float32),
                                      fashion.x_test[shown["index"]])
        described = http.get("/api/model").json()
        assert described["class_names"] == list(fashion.class_names)
        assert described["dataset"] == "fashion-mnist"  # the page says the pad reads digits
        assert http.get("/api/confusion").json()["dataset"] == "fashion-mnist"


BAD = [
    ("post", "/api/inspect/step", {"source": "valid"}, 400, "source must be one of"),
    ("post", "/api/inspect/step", {"batch_size": 65}, 400, "at most 64"),
    ("post", "/api/inspect/step", {"batch_size": 0}, 400, "batch_size must be"),
    ("post", "/api/inspect/step", {"seed": -1}, 400, "seed must be"),
    ("post", "/api/inspect/step", {"learning_rate": 0}, 400, "learning_rate must be"),
    ("post", "/api/inspect/step", {"source": "test", "indices": []}, 400, "indices must be"),
    ("post", "/api/inspect/step", {"source": "test", "indices": [10**6]}, 400, "0..999"),
    ("post", "/api/inspect/step", {"sauce": 1}, 400, "unknown field 'sauce'"),
    ("post", "/api/inspect/step", [1], 400, "JSON object"),
    ("post", "/api/inspect/step", {"source": "next"}, 409, "no run is paused"),
    ("get", "/api/inspect/array?layer=0&name=Z&sample=0", None, 409, "no step traced yet"),
    ("get", "/api/inspect/explain?layer=0&name=Z&index=0", None, 409, "no step traced yet"),
    ("post", "/api/inspect/pixel", {"image": [[0] * 28] * 28, "layer": 1, "index": [0, 0, 0]},
     400, "no array 'Z'"),
    ("post", "/api/inspect/pixel", {"image": [[0] * 28] * 28, "layer": 0, "index": [26, 0, 0]},
     400, "outside"),
    ("post", "/api/inspect/pixel", {"image": [[0] * 28] * 28, "layer": True, "index": [0]},
     400, "layer must be"),
    ("post", "/api/inspect/pixel", {"layer": 0, "index": [0, 0, 0]}, 400, "exactly one"),
    ("get", "/api/confusion/cell?true=10&pred=0", None, 400, "true must be in 0..9"),
    ("get", "/api/confusion/cell?true=1&pred=x", None, 400, "pred must be a whole number"),
    ("get", "/api/confusion/cell?true=1&pred=2&limit=25", None, 400, "limit must be in 1..24"),
]


@pytest.mark.parametrize("method, path, body, status, message", BAD,
                         ids=[f"{b[3]} {b[4]}" for b in BAD])
def test_bad_inspector_requests_say_what_is_wrong(http, method, path, body, status, message):
    response = http.request(method.upper(), path,
                            content=None if body is None else json.dumps(body))
    assert response.status_code == status, response.text
    assert message in response.json()["error"]


def test_explanations_of_a_trace_name_what_is_wrong(http):
    number = http.post("/api/inspect/step", json={"batch_size": 2}).json()["trace"]
    for query, message in ((f"trace={number + 1}&layer=0&name=Z&index=0,0,0,0", "replaced"),
                           ("layer=9&name=Z&index=0", "layer must be 0..4"),
                           ("layer=0&name=Q&index=0", "has no array 'Q'"),
                           ("layer=0&name=Z&index=0,a", "whole numbers"),
                           ("layer=0&name=Z&index=0,0", "give 4 integer indices"),
                           ("layer=0&name=Z&index=2,0,0,0", "outside")):
        response = http.get("/api/inspect/explain?" + query)
        assert response.status_code in (400, 409) and message in response.json()["error"]
    response = http.get("/api/inspect/array?layer=0&name=Z&sample=2")
    assert response.status_code == 400 and "sample must be 0..1" in response.json()["error"]


queries = st.dictionaries(st.sampled_from(["layer", "name", "index", "sample", "trace", "true",
                                           "pred", "limit"]),
                          st.text(max_size=8) | st.integers(-3, 40).map(str), max_size=5)
bodies = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10**7) | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["source", "seed", "batch_size", "learning_rate", "indices", "image",
                         "layer", "index"]) | st.text(max_size=4), children, max_size=4),
    max_leaves=20)


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(["/api/inspect/array", "/api/inspect/explain", "/api/confusion/cell",
                             "/api/inspect/step", "/api/inspect/pixel"]),
       query=queries, body=bodies)
def test_fuzzed_inspector_requests_never_answer_500(http, path, query, body):
    if path.endswith(("step", "pixel")):
        if path.endswith("step") and isinstance(body, dict):
            body = {**body, "batch_size": 2} if body.get("source") != "test" else body
        response = http.post(path, content=json.dumps(body))
    else:
        if http.get("/api/inspect").json()["trace"] is None:
            http.post("/api/inspect/step", json={"batch_size": 2})
        response = http.get(path + "?" + urllib.parse.urlencode(query))
    assert response.status_code in (200, 400, 409), response.text
    if response.status_code != 200:
        assert response.json()["error"]


# -- the page in headless Chromium -------------------------------------------------------------

@pytest.fixture(scope="module")
def page(tmp_path_factory, served):
    """`cnn-numpy serve` of the served net, and a headless Chromium.  The tests check that
    a link and a run's JSON replay the run's settings and edits exactly, in a server
    whose other passes (predictions, traces) run between the two runs."""
    from test_web import _chromium, serving

    path = tmp_path_factory.mktemp("inspector") / "cnn.npz"
    served.save(path)
    browser = _chromium()
    try:
        with serving(path) as url:
            yield browser, url
    finally:
        browser.quit()


def _wait(driver, condition, timeout=60):
    from test_web import _wait as wait

    return wait(driver, condition, timeout)


def _run(driver, key):
    return driver.execute_script(f"return trainState && trainState.run && trainState.run.{key}")


def _js(driver, script: str):
    return driver.execute_script("return " + script)


def _severe(driver) -> list:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def _lit_outside(driver, low: int, high: int) -> int:
    """Pixels of the pad with ink outside the columns low..high."""
    return _js(driver, f"""(() => {{ const d = pad.getContext("2d").getImageData(0, 0, 280, 280)
        .data; let n = 0; for (let i = 0; i < d.length; i += 4) {{ const x = (i / 4) % 280;
        if ((x < {low} || x > {high}) && d[i] > 40) n++; }} return n; }})()""")


def test_the_page_inspects_a_step_explains_its_numbers_and_analyses_errors(page, tmp_path,
                                                                          capsys):
    """A link that hides two panels; the page before any run; the first stroke over a test
    image; the multiply-add panel; the inspector through its stages, cells explained; the
    error analysis; a phone."""
    from selenium.webdriver.common.by import By

    browser, url = page
    browser.set_window_size(1280, 900)
    browser.get(url + "/#hide=own,engines")
    _wait(browser, lambda d: d.find_element(By.ID, "predicted").text != ""
          and _js(d, "trainState !== null"))
    _check_the_page_before_any_run(browser)
    _check_the_first_stroke_and_the_multiply_adds(browser)
    _walk_the_inspector(browser, tmp_path)
    _analyse_errors(browser, url, tmp_path)
    assert _severe(browser) == []

    # a phone: nothing sideways, the header's sentence shown, the multiply-add total in its box
    browser.set_window_size(390, 844)
    browser.execute_script("document.getElementById('inspector-card').scrollIntoView()")
    browser.save_screenshot(str(tmp_path / "inspector-phone.png"))
    assert _js(browser, "document.documentElement.scrollWidth") <= 390
    assert browser.find_element(By.CSS_SELECTOR, "header .intro").is_displayed()
    assert _js(browser, """(() => { const box = mac.getBoundingClientRect(),
        total = document.querySelector('.mac-total').getBoundingClientRect();
        return total.bottom <= box.bottom && total.top >= box.top; })()""")
    browser.set_window_size(1280, 900)
    with capsys.disabled():
        print(f"\nscreenshots in {tmp_path}")


def _check_the_page_before_any_run(browser) -> None:
    """Two panels hidden by the link, which says so; placeholders where a run will show;
    only Start and Step enabled."""
    from selenium.webdriver.common.by import By

    find = browser.find_element
    assert not find(By.ID, "own-card").is_displayed()
    assert not find(By.ID, "engines-card").is_displayed()
    assert "This link hides 2 panels" in find(By.ID, "hidden-note").text
    assert "No runs yet" in find(By.ID, "runs").text
    assert "appear here" in find(By.ID, "stream").text
    assert "appear during a run" in find(By.ID, "stats").text
    assert "never overlap" in find(By.ID, "groups-card").text  # the stride groups' introduction
    _wait(browser, lambda d: _js(d, "document.getElementById('loss-chart').dataset.legend")
          == "")  # drawn, empty, with its axes
    enabled = {b: find(By.ID, b).is_enabled() for b in ("t-start", "t-step", "t-pause",
                                                        "t-reset", "t-inspect")}
    assert enabled == {"t-start": True, "t-step": True, "t-pause": False, "t-reset": False,
                       "t-inspect": False}


def _check_the_first_stroke_and_the_multiply_adds(browser) -> None:
    """The first stroke clears the random test image; the multiply-add panel is the
    server's explanation, agrees with the map, and its window mark goes with the pointer."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    find = browser.find_element
    assert "Drawing on the pad clears it" in find(By.ID, "truth").text
    assert _lit_outside(browser, 110, 170) > 0  # the test image's ink
    strokes = ActionChains(browser).move_to_element_with_offset(find(By.ID, "pad"), 0, -90)
    strokes.click_and_hold()
    for _ in range(6):
        strokes.move_by_offset(0, 30)
    strokes.release().perform()
    assert _lit_outside(browser, 110, 170) == 0
    _wait(browser, lambda d: _js(d, "!busy && !pending && last !== null"))
    maps = browser.find_elements(By.CSS_SELECTOR, ".maps.first canvas")
    ActionChains(browser).move_to_element_with_offset(maps[5], 2, 3).perform()
    mac = find(By.ID, "mac")
    _wait(browser, lambda d: "sum of products" in mac.text)
    text = mac.text
    total = float(text.split("+ bias ")[1].split(" = ")[1].split(";")[0])
    parts = text.split("sum of products ")[1].split(" + bias ")
    assert float(parts[0]) + float(parts[1].split()[0]) == pytest.approx(total, abs=2e-4)
    row = int(text.split("output row ")[1].split(",")[0])
    col = int(text.split("column ")[1].split()[0])
    shown = _js(browser, f"last.layers[0].values[{row}][{col}][5]")
    assert float(find(By.ID, "mac-value").text) == pytest.approx(shown, abs=1e-4)
    assert "code: cnn_numpy/" in text and find(By.ID, "seen-mark").is_displayed()
    ActionChains(browser).move_to_element(find(By.ID, "t-layers")).perform()
    _wait(browser, lambda d: not d.find_element(By.ID, "seen-mark").is_displayed())


def _walk_the_inspector(browser, tmp_path) -> None:
    """A seeded batch of 8: a forward number explained and one of its terms followed, the
    loss stage, a weight gradient, an update; another sample chosen."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    find = browser.find_element
    browser.execute_script("document.getElementById('inspector-card').scrollIntoView()")
    seed = find(By.ID, "i-seed")
    seed.clear()
    seed.send_keys("1")
    find(By.ID, "i-trace").click()
    _wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#i-batch-strip figure")) == 8
          and len(d.find_elements(By.CSS_SELECTOR, "#i-arrays canvas")) > 60)
    assert find(By.ID, "i-stage-name").text == "stage 1 of 14: Forward, layer 0: ConvLayer_ReLU"
    assert "the served model" in find(By.ID, "i-where").text
    z = browser.find_elements(By.CSS_SELECTOR, '#i-arrays [data-k="3"] canvas')[7]
    ActionChains(browser).move_to_element_with_offset(z, 10, -15).click().perform()
    explain = find(By.ID, "i-explain")
    _wait(browser, lambda d: "sum to" in explain.text and explain.text.startswith("Z[0, "))
    assert ", 7] " in explain.text.split("\n")[0]  # the 8th map: filter 7
    _check_total(browser)
    browser.save_screenshot(str(tmp_path / "inspector-forward.png"))
    label = explain.text.split(" ")[0]
    find(By.CSS_SELECTOR, "#i-explain table.terms a").click()  # a term's own number
    _wait(browser, lambda d: d.find_element(By.ID, "i-explain").text.split(" ")[0] != label)
    _check_total(browser)
    for _ in range(5):
        find(By.ID, "i-next").click()
    _wait(browser, lambda d: d.find_element(By.ID, "i-stage-name").text.endswith("The loss"))
    find(By.CSS_SELECTOR, '#i-stages button[data-stage="10"]').click()  # backward, layer 0
    _wait(browser, lambda d: "Backward, layer 0" in d.find_element(By.ID, "i-stage-name").text
          and len(d.find_elements(By.CSS_SELECTOR, '#i-arrays [data-k="2"] canvas')) == 32)
    browser.find_elements(By.CSS_SELECTOR, '#i-arrays [data-k="2"] canvas')[4].click()  # dW
    _wait(browser, lambda d: d.find_element(By.ID, "i-explain").text.startswith("dW["))
    assert "5,408 terms sum to" in explain.text  # 8 images x 26 x 26 positions
    _check_total(browser)
    find(By.CSS_SELECTOR, '#i-stages button[data-stage="11"]').click()  # update, layer 0
    _wait(browser, lambda d: "Update, layer 0" in d.find_element(By.ID, "i-stage-name").text)
    step = next(a for a in browser.find_elements(By.CSS_SELECTOR, "#i-arrays .array")
                if a.text.startswith("W_step "))
    _wait(browser, lambda d: len(step.find_elements(By.TAG_NAME, "canvas")) == 32)
    step.find_elements(By.TAG_NAME, "canvas")[0].click()
    _wait(browser, lambda d: d.find_element(By.ID, "i-explain").text.startswith("W_step["))
    assert "m_hat" in explain.text and "optimizers.py" in explain.text
    _check_total(browser)
    find(By.CSS_SELECTOR, '#i-stages button[data-stage="0"]').click()
    browser.find_elements(By.CSS_SELECTOR, "#i-batch-strip figure")[3].click()
    _wait(browser, lambda d: "sample 3" in d.find_element(By.ID, "i-arrays").text)


def _analyse_errors(browser, url: str, tmp_path) -> None:
    """The matrix as the API counts it; its largest mistake's images; one opened in the
    inspector."""
    from selenium.webdriver.common.by import By

    find = browser.find_element
    browser.execute_script("document.getElementById('errors-card').scrollIntoView()")
    find(By.ID, "e-compute").click()
    _wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#e-matrix td")) == 100)
    cells = browser.find_elements(By.CSS_SELECTOR, "#e-matrix td")
    _, answer = _get(url + "/api/confusion")
    assert [int(td.text) for td in cells] == [c for row in answer["counts"] for c in row]
    assert sum(int(td.text) for td in cells) == 1000
    worst = max((td for td in cells if "diagonal" not in td.get_attribute("class")),
                key=lambda td: int(td.text))
    true, pred = int(worst.get_attribute("data-true")), int(worst.get_attribute("data-pred"))
    worst.click()
    _wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#e-cell figure")) > 0)
    assert find(By.CSS_SELECTOR, "#e-cell h3").text.startswith(
        f"{answer['counts'][true][pred]} images of {true} predicted {pred}")
    browser.save_screenshot(str(tmp_path / "errors.png"))
    find(By.CSS_SELECTOR, "#e-cell button[data-open]").click()
    _wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#i-batch-strip figure")) == 1)
    assert "test image" in find(By.ID, "i-batch-strip").text
    assert find(By.CSS_SELECTOR, "#i-batch-strip figcaption").text.startswith(str(true))
    assert find(By.ID, "i-message").text.startswith("traced the test image opened from Error")


def _check_total(browser) -> None:
    """The explanation's terms add up to what the layer computed."""
    from selenium.webdriver.common.by import By

    total = float(browser.find_element(By.CSS_SELECTOR, "#i-explain [data-total]")
                  .get_attribute("data-total"))
    value = float(browser.find_element(By.CSS_SELECTOR, "#i-explain [data-value]")
                  .get_attribute("data-value"))
    assert total == pytest.approx(value, rel=1e-5, abs=1e-7)


def _get(url: str):
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, json.loads(response.read())


def _download_net(url: str, number: int, path) -> Net:
    with urllib.request.urlopen(f"{url}/api/runs/{number}/model.npz", timeout=30) as response:
        path.write_bytes(response.read())
    return Net.load(path)


def _start_and_finish(browser, number: int) -> None:
    from selenium.webdriver.common.by import By

    browser.find_element(By.ID, "t-start").click()
    _wait(browser, lambda d: _run(d, "number") == number and _run(d, "status") == "done", 120)


def test_a_shared_link_and_a_runs_json_replay_the_run(page, tmp_path, capsys):
    """Step, a refused and an accepted live edit, Resume; the address replays the run to the
    same weights, and so does the run's JSON loaded back; the panels show the trained net;
    the Runs table says what each run did."""
    from selenium.webdriver.common.by import By

    browser, url = page
    browser.set_window_size(1280, 900)
    browser.get("about:blank")
    browser.get(url + "/")
    _wait(browser, lambda d: d.find_element(By.ID, "predicted").text != ""
          and _js(d, "trainState !== null"))
    first = len(_get(url + "/api/runs")[1]["runs"]) + 1
    link = _step_edit_and_resume(browser, first)
    _check_the_panels_show_the_trained_net(browser, url)

    # the link opens the same form, and Start replays the run to the same weights
    browser.get("about:blank")
    browser.get(url + "/" + link)
    _wait(browser, lambda d: "2 live edits" in d.find_element(By.ID, "t-replay-note").text)
    assert [browser.find_element(By.ID, k).get_attribute("value")
            for k in ("t-learning_rate", "t-seed", "t-limit", "t-epochs")] == [
        "0.001", "5", "300", "1"]
    _start_and_finish(browser, first + 1)
    original = _download_net(url, first, tmp_path / "first.npz")
    assert same_weights(original, _download_net(url, first + 1, tmp_path / "linked.npz"))

    # the run's JSON, loaded back, replays it too
    browser.find_element(By.ID, "t-forget").click()
    assert "live edit" not in browser.find_element(By.ID, "t-replay-note").text
    saved = tmp_path / "run.json"
    with urllib.request.urlopen(f"{url}/api/runs/{first}/history.json", timeout=30) as response:
        saved.write_bytes(response.read())
    browser.find_element(By.ID, "t-replay").send_keys(str(saved))
    _wait(browser, lambda d: "2 live edits from run.json" in d.find_element(By.ID,
                                                                          "t-replay-note").text)
    _start_and_finish(browser, first + 2)
    assert same_weights(original, _download_net(url, first + 2, tmp_path / "loaded.npz"))
    _check_the_runs_table(browser, url, first, tmp_path)
    assert _severe(browser) == []
    with capsys.disabled():
        print(f"\nscreenshots in {tmp_path}")


def _step_edit_and_resume(browser, number: int) -> str:
    """A run of 300 images, seed 5: Step, inspect its next step, two refused learning rates
    (the field shows again the rate the run keeps), one taken, Resume; the address then."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    find = browser.find_element
    for name, value in (("t-epochs", "1"), ("t-limit", "300"), ("t-seed", "5")):
        find(By.ID, name).clear()
        find(By.ID, name).send_keys(value)
    find(By.ID, "t-step").click()
    _wait(browser, lambda d: _run(d, "status") == "paused" and _run(d, "step") == 1)
    assert find(By.ID, "t-start").text == "Resume" and find(By.ID, "t-start").is_enabled()
    assert find(By.ID, "t-step").is_enabled() and not find(By.ID, "t-pause").is_enabled()
    find(By.ID, "t-inspect").click()  # the step the paused run takes next
    _wait(browser, lambda d: "paused after step 1" in d.find_element(By.ID, "i-where").text)
    assert "the run's next batch: epoch 1, batch 2" in find(By.ID, "i-batch-strip").text
    assert find(By.ID, "i-source").get_attribute("value") == "next"  # the form says so too
    rate = find(By.ID, "t-learning_rate")
    for typed, said in (("", "not a number"), ("0", "must be a number in (0, 100), got 0")):
        rate.send_keys(Keys.CONTROL, "a", Keys.NULL, Keys.DELETE, typed, Keys.ENTER)
        _wait(browser, lambda d, said=said: said in d.find_element(By.ID, "t-message").text)
        assert "the run keeps learning rate 0.001" in find(By.ID, "t-message").text.lower()
        assert rate.get_attribute("value") == "0.001"
    rate.send_keys(Keys.CONTROL, "a", Keys.NULL, "0.002", Keys.ENTER)
    _wait(browser, lambda d: _run(d, "edits") == [
        {"after_step": 1, "name": "learning_rate", "value": 0.002}])
    assert "learning rate 0.002 from step 2" in find(By.ID, "t-message").text
    batch = find(By.ID, "t-batch_size")  # taken, and said to wait for the next epoch
    batch.send_keys(Keys.CONTROL, "a", Keys.NULL, "16", Keys.ENTER)  # (this run has one)
    _wait(browser, lambda d: len(_run(d, "edits")) == 2)
    assert "batch size 16 from the next epoch" in find(By.ID, "t-message").text
    url = _js(browser, "location.origin")
    browser.get("about:blank")  # a page opened on the paused run, from an address without
    browser.get(url + "/")       # its settings, shows them and the values it runs with now
    _wait(browser, lambda d: _js(d, "trainState !== null")
          and d.find_element(By.ID, "t-start").text == "Resume")
    assert [find(By.ID, k).get_attribute("value") for k in (
        "t-learning_rate", "t-batch_size", "t-seed", "t-limit")] == ["0.002", "16", "5", "300"]
    find(By.ID, "t-start").click()  # Resume
    _wait(browser, lambda d: _run(d, "number") == number and _run(d, "status") == "done", 120)
    # the form is the run as it started again, with its edits to replay: what the link says
    _wait(browser, lambda d: f"Start replays 2 live edits from run {number}" in
          d.find_element(By.ID, "t-replay-note").text)
    assert [find(By.ID, k).get_attribute("value") for k in ("t-learning_rate",
                                                            "t-batch_size")] == ["0.001", "32"]
    link = _js(browser, "location.hash")
    shared = urllib.parse.parse_qs(link[1:])
    assert shared["learning_rate"] == ["0.001"] and shared["seed"] == ["5"]
    assert json.loads(shared["edits"][0]) == [{"after_step": 1, "name": "learning_rate",
                                               "value": 0.002},
                                              {"after_step": 1, "name": "batch_size",
                                               "value": 16}]
    return link


def _check_the_panels_show_the_trained_net(browser, url: str) -> None:
    """After a run, the prediction is /api/predict's and the filters are the model's."""
    from test_web import post

    _wait(browser, lambda d: _js(d, "!busy && !pending"))
    image, shown = _js(browser, "[last.image, last.probabilities]")
    _, answer = post(url + "/api/predict", {"image": image})
    np.testing.assert_allclose(shown, answer["probabilities"], atol=1e-6)
    assert _js(browser, "model.first_conv.weights") == _get(url + "/api/model")[1][
        "first_conv"]["weights"]


def _check_the_runs_table(browser, url: str, first: int, tmp_path) -> None:
    """A diverged run says why; a run's epochs and error rates; two runs overlaid, each
    named in the legend; on a phone each run on one line."""
    from selenium.webdriver.common.by import By
    from test_web import post

    find = browser.find_element
    post(url + "/api/train/start", {"layers": "ConvLayer(4, 3), FlatLayer(), FCLayer_Softmax(10)",
                                    "optimizer": "sgd", "learning_rate": 99, "limit": 600})
    _wait(browser, lambda d: _run(d, "number") == first + 3 and _run(d, "status") == "diverged")
    _wait(browser, lambda d: "diverged: Net:" in d.find_element(By.ID, "runs").text)
    row = find(By.CSS_SELECTOR, f'#runs input[data-run="{first}"]').find_element(By.XPATH, "../..")
    assert "1 of 1" in row.text and "%" in row.text.split("1 of 1")[1]
    for k in (first, first + 1):
        find(By.CSS_SELECTOR, f'#runs input[data-run="{k}"]').click()
        time.sleep(0.3)
    _wait(browser, lambda d: d.find_element(By.ID, "overlay-title").is_displayed())
    legend = _js(browser, "document.getElementById('overlay-chart').dataset.legend").split("|")
    assert f"run {first} validation" in legend and f"run {first + 1} validation" in legend
    browser.execute_script("document.getElementById('runs-card').scrollIntoView()")
    browser.save_screenshot(str(tmp_path / "runs.png"))
    browser.set_window_size(390, 844)
    time.sleep(0.5)  # the charts are drawn again at the new size
    browser.execute_script("document.getElementById('runs-card').scrollIntoView()")
    browser.save_screenshot(str(tmp_path / "runs-phone.png"))
    heights = _js(browser, "[...document.querySelectorAll('#runs tr:not(.reason)')]"
                           ".map((r) => r.getBoundingClientRect().height)")
    assert max(heights) < 40 and _js(browser, "document.documentElement.scrollWidth") <= 390
    browser.set_window_size(1280, 900)
