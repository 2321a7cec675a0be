"""The page's own classes through its API: name classes, add drawn examples (PNG pictures
made here) with shifted copies, remove one, train a network on them with the live views,
classify a new drawing by its class name, download the set as class folders and as an
.npz that the command line trains on; bad requests are 400s naming the problem."""

from __future__ import annotations

import base64
import io
import time
import zipfile

import numpy as np
import pytest

from cnn_numpy import Net
from cnn_numpy.cli import main
from cnn_numpy.models import build_model

pytest.importorskip("starlette", reason='the web extra is not installed: pip install ".[web]"')
Image = pytest.importorskip("PIL.Image", reason="Pillow is not installed")
ImageDraw = pytest.importorskip("PIL.ImageDraw", reason="Pillow is not installed")
from starlette.testclient import TestClient  # noqa: E402
from test_web_train import finished, wait_for  # noqa: E402

from cnn_numpy.web.server import create_app  # noqa: E402

KINDS = ("ring", "cross", "bar")


def drawing(kind: str, rng) -> str:
    """A drawing as the page's pad makes one: white strokes on black, as a PNG data URL."""
    image = Image.new("L", (280, 280), 0)
    draw = ImageDraw.Draw(image)
    cx, cy, r = (int(v) for v in (*rng.integers(100, 180, 2), rng.integers(50, 90)))
    if kind == "ring":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=255, width=18)
    elif kind == "cross":
        draw.line([cx - r, cy - r, cx + r, cy + r], fill=255, width=18)
        draw.line([cx - r, cy + r, cx + r, cy - r], fill=255, width=18)
    else:
        draw.line([cx - r, cy, cx + r, cy], fill=255, width=18)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture()
def http(sample):
    net = build_model("cnn", seed=0, optimizer="adam")
    net.build((28, 28, 1))
    with TestClient(create_app(net, sample.x_test, sample.y_test)) as client:
        yield client


def fill(http, per_class: int = 6, copies: int = 3) -> dict:
    rng = np.random.default_rng(0)
    assert http.post("/api/own/classes", json={"names": list(KINDS)}).status_code == 200
    for k, kind in enumerate(KINDS):
        for _ in range(per_class):
            answer = http.post("/api/own/examples", json={"class": k, "png": drawing(kind, rng),
                                                          "copies": copies})
            assert answer.status_code == 200, answer.text
    return http.get("/api/own").json()


def train_on_yours(http, epochs: int = 2) -> dict:
    """Train a dense net on your three classes to the end; the last state."""
    body = {"layers": "FlatLayer(), FCLayer_Softmax(3)", "dataset": "own", "epochs": epochs}
    assert http.post("/api/train/start", json=body).status_code == 200
    return wait_for(http, finished)


def test_classes_examples_and_removal(http):
    state = fill(http, per_class=2, copies=1)
    assert [c["count"] for c in state["classes"]] == [4, 4, 4] and state["ready"]
    first = state["examples"][0]
    image = np.array(first["image"])
    assert image.shape == (28, 28) and 0 <= image.min() and image.max() <= 1 and image.any()
    state = http.post("/api/own/remove", json={"id": first["id"]}).json()
    assert [c["count"] for c in state["classes"]] == [3, 4, 4]
    # renaming keeps the examples of the names that stay, in their new places
    state = http.post("/api/own/classes", json={"names": ["bar", "ring"]}).json()
    assert [(c["name"], c["count"]) for c in state["classes"]] == [("bar", 4), ("ring", 3)]


def test_training_on_your_classes_names_them_everywhere(http, tmp_path):
    fill(http)
    body = {"layers": "ConvLayer_ReLU(8, 3), PoolLayer_Max(2), FlatLayer(), "
                      "FCLayer_Softmax(3)", "dataset": "own", "epochs": 40, "augment": 2}
    assert http.post("/api/train/start", json=body).status_code == 200, "start"
    for _ in range(600):
        run = http.get("/api/train/state").json()["run"]
        if run["status"] not in ("starting", "running"):
            break
        time.sleep(0.1)
    assert run["status"] == "done", run["message"]
    assert http.get("/api/model").json()["class_names"] == list(KINDS)
    assert run["test"]["ce"] < 0.5  # chance is 0.67
    views = http.get("/api/train/state").json()["views"]
    assert views["probe"]["layers"][0]["shape"] == [26, 26, 8] and views["stream"]
    assert views["class_names"] == list(KINDS)  # the views say whose classes they show
    assert run["measured"] == {"on": "validation", "images": 6}  # a tenth of 57 (72 - 15 tested)
    new = http.post("/api/predict", json={"png": drawing("cross", np.random.default_rng(9))})
    assert len(new.json()["probabilities"]) == 3
    model = tmp_path / "m.npz"
    model.write_bytes(http.get("/api/runs/1/model.npz").content)
    assert Net.load(model).class_names == KINDS


def test_a_run_of_few_images_says_it_measures_test_images(http):
    fill(http, per_class=2, copies=1)  # 12 images: too few to hold validation images out
    state = train_on_yours(http)
    assert state["run"]["measured"] == {"on": "test", "images": 3}
    shown = [s["index"] for s in state["views"]["stream"]]
    assert sorted(shown) == [0, 1, 2]  # each of the few test images once
    header = http.get("/api/runs/1/history.csv").text.splitlines()[0]
    assert header.startswith("step,images,train_cce,train_ce,test_cce,test_ce,")


def test_a_test_image_keeps_its_label_only_for_a_net_of_its_classes(http):
    """A test digit, a 7 or a 1 of the sample's, shown before a run on your classes: its
    label means nothing there, and the run's views read it as a drawing (class 7 of 3
    failed the run).  A test image of your classes keeps its label with their net."""
    digit = np.zeros((28, 28))
    digit[4:24, 12:16] = 1.0
    bad = http.post("/api/train/probe", json={"image": digit.tolist(), "label": 1,
                                              "dataset": 3})
    assert bad.status_code == 400 and "dataset must be" in bad.json()["error"]
    for label in (7, 1):
        answer = http.post("/api/train/probe", json={"image": digit.tolist(), "label": label,
                                                     "dataset": "mnist-sample"})
        assert answer.status_code == 200
    assert http.get("/api/train/state").json()["views"]["probe"]["label"] == 1  # the cnn's
    fill(http, per_class=2, copies=1)
    state = train_on_yours(http)
    assert state["run"]["status"] == "done", state["run"]["message"]
    probe = state["views"]["probe"]
    assert probe["label"] is None and probe["loss_class"] == probe["prediction"]
    mine = http.post("/api/train/probe", json={"image": digit.tolist(), "label": 2,
                                               "dataset": "own"})
    assert mine.status_code == 200  # a test image of your classes, with their net shown
    probe = http.get("/api/train/state").json()["views"]["probe"]
    assert probe["label"] == probe["loss_class"] == 2
    beyond = http.post("/api/train/probe", json={"image": digit.tolist(), "label": 3,
                                                 "dataset": "own"})
    assert beyond.status_code == 400 and beyond.json()["error"] == \
        "label must be one of your classes: 0..2, got 3"


def test_your_classes_changed_after_a_run_are_refused_where_labels_would_lie(http):
    """After a run on your classes, an added example changes the error analysis's images
    (its matrix is made again, its cells work); renamed classes would give the net's
    outputs other meanings, so test images, traced batches and the matrix are refused."""
    fill(http, per_class=3, copies=1)
    train_on_yours(http, epochs=3)
    before = http.get("/api/confusion").json()
    more = http.post("/api/own/examples", json={"class": 0, "copies": 4,
                                               "png": drawing(KINDS[0],
                                                              np.random.default_rng(5))})
    assert more.status_code == 200
    old = http.get(f"/api/confusion/cell?true=0&pred=0&matrix={before['matrix']}")
    assert old.status_code == 400 and "compute the matrix again" in old.json()["error"]
    after = http.get("/api/confusion").json()
    assert after["test_images"] == before["test_images"] + 1  # made again, not the cached
    true, pred = next((t, p) for t, row in enumerate(after["counts"])
                      for p, count in enumerate(row) if count)
    cell = http.get(f"/api/confusion/cell?true={true}&pred={pred}&matrix={after['matrix']}")
    assert cell.status_code == 200 and cell.json()["count"] == after["counts"][true][pred]
    assert http.post("/api/own/classes", json={"names": list(KINDS[::-1])}).status_code == 200
    for answer in (http.get("/api/random-image"), http.get("/api/confusion"),
                   http.post("/api/inspect/step", json={"source": "train"})):
        assert answer.status_code == 400 and answer.json()["error"] == (
            "your classes are now bar, cross, ring; the net shown was trained on ring, cross, "
            "bar: train it again on your classes")


def test_the_drawn_set_downloads_for_the_command_line(http, tmp_path, capsys):
    fill(http, per_class=4, copies=1)
    archive = http.get("/api/own/classes.zip")
    assert archive.status_code == 200
    with zipfile.ZipFile(io.BytesIO(archive.content)) as files:
        names = files.namelist()
        files.extractall(tmp_path / "drawn")
    assert sorted({name.split("/")[0] for name in names}) == sorted(KINDS) and len(names) == 24
    assert main(["train", "flat", "--images", str(tmp_path / "drawn"), "--epochs", "2",
                 "--no-progress"]) == 0
    assert "Training flat on drawn (" in capsys.readouterr().out
    (tmp_path / "drawn.npz").write_bytes(http.get("/api/own/classes.npz").content)
    assert main(["train", "flat", "--images", str(tmp_path / "drawn.npz"), "--epochs", "2",
                 "--no-progress"]) == 0
    capsys.readouterr()


BAD = [
    ("/api/own/classes", {"names": ["only"]}, "a list of 2 to 10 class names"),
    ("/api/own/classes", {"names": ["a", "a"]}, "its own name"),
    ("/api/own/classes", {"names": ["circle", "Circle"]}, "differ only in capitals"),
    ("/api/own/classes", {"names": ["a", "../etc"]}, "a class name is 1 to 40"),
    ("/api/own/examples", {"class": 0, "image": [[0] * 28] * 28}, "name the classes first"),
    ("/api/own/remove", {"id": 99}, "no example 99"),
    ("/api/train/start", {"dataset": "own"}, "need 2 or more names"),
]


@pytest.mark.parametrize("path, body, message", BAD, ids=[m for *_, m in BAD])
def test_bad_requests_are_400_naming_the_problem(http, path, body, message):
    answer = http.post(path, json=body)
    assert answer.status_code == 400 and message in answer.json()["error"]


def test_examples_are_bounded(http):
    http.post("/api/own/classes", json={"names": ["a", "b"]})
    empty = http.post("/api/own/examples", json={"class": 0, "image": [[0] * 28] * 28})
    assert empty.status_code == 400 and "empty" in empty.json()["error"]
    dot = [[0.0] * 28 for _ in range(28)]
    dot[14][14] = 1.0
    too_many = http.post("/api/own/examples", json={"class": 0, "image": dot, "copies": 9})
    assert too_many.status_code == 400 and "copies must be" in too_many.json()["error"]
    from cnn_numpy.web import own

    for _ in range(own.MAX_EXAMPLES // (own.MAX_COPIES + 1)):
        http.post("/api/own/examples", json={"class": 0, "image": dot, "copies": 8})
    over = http.post("/api/own/examples", json={"class": 0, "image": dot, "copies": 8})
    assert over.status_code == 400 and "at most 200 examples a class" in over.json()["error"]


def _draw(browser, kind: str) -> None:
    """Clear the pad and draw a shape with pointer strokes: a bar or a cross."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    browser.find_element(By.ID, "clear").click()
    pad = browser.find_element(By.ID, "pad")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", pad)
    half = pad.size["width"] // 3
    lines = [((-half, 0), (2 * half, 0))] if kind == "bar" else [
        ((-half, -half), (2 * half, 2 * half)), ((-half, half), (2 * half, -2 * half))]
    for (x, y), (dx, dy) in lines:
        strokes = ActionChains(browser).move_to_element_with_offset(pad, x, y).click_and_hold()
        for _ in range(4):
            strokes.move_by_offset(dx // 4, dy // 4)
        strokes.release().perform()


def test_the_page_trains_on_classes_drawn_in_it(tmp_path, capsys):
    """In headless Chromium: name two classes, draw and add examples (with shifted
    copies), train on them, and see a new drawing classified by name; no console errors;
    screenshots at 1280 x 900 and 390 x 844."""
    from selenium.webdriver.common.by import By
    from test_inspector import _js
    from test_web import _chromium, serving
    from test_web_train import _run, _wait

    browser = _chromium()
    net = build_model("cnn", seed=0, optimizer="adam")
    net.build((28, 28, 1))
    net.save(tmp_path / "cnn.npz")
    try:
        with serving(tmp_path / "cnn.npz") as url:
            browser.set_window_size(1280, 900)
            browser.get(url + "/")
            _wait(browser, lambda d: d.find_element(By.ID, "predicted").text != "")
            names = browser.find_element(By.ID, "own-names")
            names.send_keys("bar, cross")
            browser.find_element(By.ID, "own-set").click()
            _wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR,
                                                         "#own-class option")) == 2)
            copies = browser.find_element(By.ID, "own-copies")
            copies.clear()
            copies.send_keys("3")
            for k, kind in enumerate(("bar", "cross")):
                browser.find_element(By.CSS_SELECTOR, f'#own-class option[value="{k}"]').click()
                for _ in range(3):  # the class chosen stays chosen from one add to the next
                    _draw(browser, kind)
                    browser.find_element(By.ID, "own-add").click()
                    time.sleep(0.3)
            thumbs = "#own-grid canvas"
            _wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, thumbs)) == 24)
            counts = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "#own-grid h3")]
            assert counts == ["bar 12 examples", "cross 12 examples"]
            browser.find_element(By.CSS_SELECTOR, "#own-grid [data-remove]").click()
            _wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, thumbs)) == 23)
            assert "Ready to train" in browser.find_element(By.ID, "own-message").text
            browser.find_element(By.ID, "random").click()  # a test image is not an example
            _wait(browser, lambda d: d.find_element(By.ID, "truth").text.startswith("Test"))
            browser.find_element(By.ID, "own-add").click()
            _wait(browser, lambda d: "shows a test image, not a drawing" in
                  d.find_element(By.ID, "own-message").text)
            assert len(browser.find_elements(By.CSS_SELECTOR, thumbs)) == 23
            browser.execute_script("document.getElementById('own-card').scrollIntoView()")
            browser.save_screenshot(str(tmp_path / "own-desktop.png"))
            layers = browser.find_element(By.ID, "t-layers")
            layers.clear()
            layers.send_keys("ConvLayer_ReLU(8, 3), PoolLayer_Max(2), FlatLayer(), "
                             "FCLayer_Softmax(2)")
            epochs = browser.find_element(By.ID, "t-epochs")
            before = epochs.get_attribute("value")
            browser.find_element(By.CSS_SELECTOR, '#t-dataset option[value="own"]').click()
            _wait(browser, lambda d: int(epochs.get_attribute("value")) > 6)  # the suggestion
            suggested = epochs.get_attribute("value")
            _wait(browser, lambda d: f"epochs={suggested}" in _js(d, "location.hash"))
            browser.find_element(By.CSS_SELECTOR,
                                 '#t-dataset option[value="mnist-sample"]').click()
            _wait(browser, lambda d: epochs.get_attribute("value") == before)  # given back
            browser.find_element(By.CSS_SELECTOR, '#t-dataset option[value="own"]').click()
            _wait(browser, lambda d: epochs.get_attribute("value") == suggested)
            epochs.clear()
            epochs.send_keys("60")  # enough to tell a bar from a cross, and quick
            browser.find_element(By.ID, "t-start").click()
            _wait(browser, lambda d: _run(d) is not None and _run(d, "status") == "done", 180)
            captions = [f.text for f in browser.find_elements(By.CSS_SELECTOR,
                                                              "#stream figcaption")]
            assert captions and {line.removeprefix("truly ").split()[0] for caption in captions
                                 for line in caption.splitlines()} <= {"bar", "cross"}
            _draw(browser, "cross")
            _wait(browser, lambda d: d.find_element(By.ID, "predicted").text in ("bar", "cross"))
            labels = [b.text for b in browser.find_elements(By.CSS_SELECTOR, "#bars .bar b")]
            assert labels == ["bar", "cross"]
            browser.find_element(By.ID, "explain").click()  # the saliency names the class
            _wait(browser, lambda d: "backpropagate" in d.find_element(By.ID,
                                                                       "explain-note").text)
            note = browser.find_element(By.ID, "explain-note").text
            assert note.startswith(("Saliency: the gradient of class bar's score",
                                    "Saliency: the gradient of class cross's score")), note
            errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
            assert not errors, errors
            browser.save_screenshot(str(tmp_path / "own-trained.png"))
            browser.set_window_size(390, 844)
            browser.execute_script("document.getElementById('own-card').scrollIntoView()")
            browser.save_screenshot(str(tmp_path / "own-phone.png"))
            width = browser.execute_script("return document.documentElement.scrollWidth")
            assert width <= 390  # nothing sideways on a phone
    finally:
        browser.quit()
    with capsys.disabled():
        print(f"\nscreenshots in {tmp_path}")


@pytest.mark.parametrize("per_class", [3, 7, 15, 40])
def test_the_suggested_epochs_make_the_steps_a_drawn_set_needs(per_class):
    """The page's suggestion counts the images a run really trains on (prepare_run's split)."""
    from cnn_numpy.models import OWN_IMAGES
    from cnn_numpy.training import prepare_run, run_settings
    from cnn_numpy.web.own import OwnClasses

    drawn, rng = OwnClasses(), np.random.default_rng(per_class)
    drawn.set_classes({"names": list(KINDS)})
    for k in range(len(KINDS)):
        for _ in range(per_class):
            drawn.add({"class": k, "image": rng.random((28, 28)).tolist()})
    epochs = drawn.state()["suggested"]["epochs"]
    data = drawn.dataset()
    net = build_model("cnn", seed=0, classes=len(KINDS))
    steps = []
    for tried in (epochs - 1, epochs):
        run = prepare_run(net, run_settings("cnn", epochs=max(tried, 1), batch_size=32),
                          data.x_train, data.y_train)
        steps.append(run.settings.epochs * -(-len(run.x_train) // 32))
    assert steps[1] >= OWN_IMAGES["min_steps"] > (steps[0] if epochs > 1 else 0)
