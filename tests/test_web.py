"""`cnn-numpy serve`: the JSON API (every endpoint, every bad request, a hypothesis fuzz), a
load test against the running server on 127.0.0.1, and the page in a real headless Chromium."""

from __future__ import annotations

import base64
import contextlib
import inspect
import io
import json
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnn_numpy.data.images import read_digit_image
from cnn_numpy.models import build_model
from cnn_numpy.visual.explain import stride_group_table

pytest.importorskip("starlette", reason='the web extra is not installed: pip install ".[web]"')
pytest.importorskip("httpx2", reason="Starlette's TestClient needs httpx2: pip install httpx2")
from starlette.testclient import TestClient  # noqa: E402

from cnn_numpy.web.server import create_app  # noqa: E402

Image = pytest.importorskip("PIL.Image", reason="Pillow is not installed")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, sample):
    """The spec's cnn, one epoch on 3,000 sample digits (about 95% right)."""
    net = build_model("cnn", seed=0, optimizer="adam")
    for i in range(0, 3000, 32):
        net.train(sample.x_train[i : i + 32], sample.y_train[i : i + 32], 0.001)
    path = tmp_path_factory.mktemp("web") / "cnn.npz"
    net.save(path)
    return path


@pytest.fixture(scope="module")
def client(model_file, sample):
    from cnn_numpy import Net

    net = Net.load(model_file)
    return TestClient(create_app(net, sample.x_test, sample.y_test)), net


def png_data_url(array: np.ndarray, mode: str = "L") -> str:
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


# -- the API ------------------------------------------------------------------------------

def test_model_describes_every_layer(client):
    http, net = client
    answer = http.get("/api/model").json()
    assert [layer["type"] for layer in answer["layers"]] == [
        "ConvLayer_ReLU", "PoolLayer_Max", "FlatLayer", "FCLayer_ReLU", "FCLayer_Softmax"]
    assert [layer["output_shape"] for layer in answer["layers"]] == [
        [26, 26, 32], [13, 13, 32], [5408], [100], [10]]
    assert sum(layer["parameters"] for layer in answer["layers"]) == 542_230
    np.testing.assert_array_equal(np.array(answer["first_conv"]["weights"], np.float32),
                                  net.layers[0].W)


@pytest.mark.parametrize("engine", [None, "naive", "stride_groups", "im2col"])
def test_predict_gives_exactly_net_predicts_probabilities(client, sample, engine):
    http, net = client
    image = sample.x_test[7]
    body = {"image": image.tolist(), **({"engine": engine} if engine else {})}
    answer = http.post("/api/predict", json=body).json()
    expected = net.predict(image[None])[0]
    if engine in (None, "im2col"):  # the engine the net runs: bit for bit
        np.testing.assert_array_equal(np.array(answer["probabilities"], np.float32), expected)
    else:  # another engine: the same numbers up to the order of additions
        np.testing.assert_allclose(answer["probabilities"], expected, rtol=1e-5, atol=1e-7)
    assert answer["prediction"] == int(expected.argmax()) == sample.y_test[7]
    assert [(layer["name"], np.array(layer["values"]).shape) for layer in answer["layers"]] == [
        ("0: ConvLayer_ReLU", (26, 26, 32)), ("1: PoolLayer_Max", (13, 13, 32)),
        ("2: FlatLayer", (5408,)), ("3: FCLayer_ReLU", (100,)), ("4: FCLayer_Softmax", (10,))]
    assert 0 < answer["milliseconds"] < 10_000
    assert net.engine is None  # the request's engine was for that request only


def test_png_is_read_like_the_predict_command(client, sample, tmp_path):
    http, net = client
    digit = (255 - sample.x_test[3] * 255).astype(np.uint8)  # black on white, like a scan
    big = np.asarray(Image.fromarray(digit).resize((200, 200)))
    Image.fromarray(big).save(tmp_path / "d.png")
    answer = http.post("/api/predict", json={"png": png_data_url(big)}).json()
    seen = read_digit_image(tmp_path / "d.png")  # what `cnn-numpy predict` reads
    np.testing.assert_array_equal(np.array(answer["image"], np.float32), seen)
    np.testing.assert_array_equal(np.array(answer["probabilities"], np.float32),
                                  net.predict(seen[None])[0])


def test_transparent_png_reads_the_ink(client, sample):
    """A black digit on a transparent background (a drawing tool's export) is the digit,
    not a blank image."""
    http, _ = client
    rgba = np.zeros((28, 28, 4), np.uint8)
    rgba[..., 3] = (sample.x_test[0] * 255).astype(np.uint8)  # ink = opaque black
    answer = http.post("/api/predict", json={"png": png_data_url(rgba, "RGBA")}).json()
    assert answer["prediction"] == sample.y_test[0]
    assert np.array(answer["image"]).max() == pytest.approx(1.0)


def test_engine_comparison(client, sample):
    http, _ = client
    answer = http.post("/api/engines", json={"image": sample.x_test[1].tolist()}).json()
    assert [e["engine"] for e in answer["engines"]] == ["im2col", "naive", "stride_groups"]
    for entry in answer["engines"]:
        assert entry["milliseconds"] > 0 and entry["largest_difference"] < 1e-4


def test_an_engine_asked_for_once_is_not_kept(client, sample):
    """A request's engine (and the engine comparison) apply to that request only."""
    from cnn_numpy.layers import ConvLayer, PoolLayer

    http, net = client
    engines = [layer.engine for layer in net.layers if isinstance(layer, (ConvLayer, PoolLayer))]
    image = sample.x_test[2].tolist()
    assert http.post("/api/predict", json={"image": image, "engine": "naive"}).status_code == 200
    assert http.post("/api/engines", json={"image": image}).status_code == 200
    assert net.engine is None
    assert [layer.engine for layer in net.layers
            if isinstance(layer, (ConvLayer, PoolLayer))] == engines


def test_stride_groups_are_explains(client):
    http, _ = client
    answer = http.get("/api/stride-groups?filter=3&stride=2&input=7").json()
    table = stride_group_table(3, 2, 7)
    assert answer["every"] == table.every == 2
    assert [g["positions"] for g in answer["groups"]] == [list(g.positions)
                                                          for g in table.groups]
    assert answer["untouched"] == []
    assert http.get("/api/stride-groups?filter=2&stride=3&input=7").json()["untouched"][:4] \
        == [3, 6, 7, 10]


def test_random_image_comes_from_the_test_set(client, sample):
    http, _ = client
    answer = http.get("/api/random-image").json()
    np.testing.assert_array_equal(np.array(answer["image"], np.float32),
                                  sample.x_test[answer["index"]])
    assert answer["label"] == sample.y_test[answer["index"]]


def _huge_png() -> bytes:
    """A 10,000 x 10,000 black PNG: 100 Mpixel (past Pillow's bomb limit) in ~100 KB."""
    buffer = io.BytesIO()
    Image.new("1", (10_000, 10_000)).save(buffer, "PNG")
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    return json.dumps({"png": url}).encode()


def _big_png() -> bytes:
    """A 2,100 x 2,000 PNG: a few KB, but over the 4 Mpixel the server decodes."""
    buffer = io.BytesIO()
    Image.new("L", (2_100, 2_000)).save(buffer, "PNG")
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    return json.dumps({"png": url}).encode()


BAD_REQUESTS = [
    ("post", "/api/predict", b"{not json", 400, "not valid JSON"),
    ("post", "/api/predict", b"[1, 2]", 400, "JSON object"),
    ("post", "/api/predict", b'{"image": [[0.5]]}', 400, "28 rows of 28"),
    ("post", "/api/predict", b'{"image": ' + json.dumps([[0] * 28] * 27).encode() + b"}", 400,
     "28 rows of 28"),
    ("post", "/api/predict", b'{"image": ' + json.dumps([[0] * 28] * 27 + [["a"] * 28]).encode()
     + b"}", 400, "only numbers"),
    ("post", "/api/predict", b'{"image": ' + json.dumps([[0] * 28] * 27 + [[2] * 28]).encode()
     + b"}", 400, "in 0..1"),
    ("post", "/api/predict", b'{"image": [[1e999]]}', 400, ""),  # infinity: refused either way
    ("post", "/api/predict", b'{"image": [[NaN]]}', 400, "not valid JSON"),
    ("post", "/api/predict", b'{"image": ' + json.dumps([[-1] * 28] * 28).encode() + b"}", 400,
     "values must be in 0..1"),
    ("post", "/api/predict", b'{"png": "data:image/png;base64,aGVsbG8="}', 400, "not a PNG"),
    ("post", "/api/predict", b'{"png": "data:image/png;base64,@@@"}', 400, "not valid base64"),
    ("post", "/api/predict", b'{"png": "data:image/jpeg;base64,AAAA"}', 400,
     "data:image/png;base64"),
    ("post", "/api/predict", _huge_png, 400, "too large"),
    ("post", "/api/predict", b'{"image": [], "png": ""}', 400, "exactly one"),
    ("post", "/api/predict", b'{"image": ' + json.dumps([[0] * 28] * 28).encode()
     + b', "engine": "turbo"}', 400, "unknown engine 'turbo'"),
    ("post", "/api/predict", b'{"image": ' + json.dumps([[0] * 28] * 28).encode()
     + b', "engine": ["naive"]}', 400, "unknown engine ['naive']"),
    ("post", "/api/predict", _big_png, 400, "2100 x 2000 pixels; the most this reads is 4,000,000"),
    ("post", "/api/predict", b"x" * (1 << 20 + 1), 413, "larger than 1,048,576 bytes"),
    ("post", "/api/engines", b"{}", 400, "exactly one"),
    ("get", "/api/stride-groups?filter=3&stride=1", None, 400, "input is missing"),
    ("get", "/api/stride-groups?filter=x&stride=1&input=4", None, 400, "whole number"),
    ("get", "/api/stride-groups?filter=5&stride=1&input=4", None, 400, "must fit"),
    ("get", "/api/stride-groups?filter=3&stride=1&input=999", None, 400, "1..32"),
    ("get", "/api/nothing", None, 404, "no such page: /api/nothing"),
    ("get", "/static/../../etc/passwd", None, 404, "no such"),
    ("delete", "/api/model", None, 405, "DELETE is not allowed on /api/model"),
    ("get", "/api/predict", None, 405, "GET is not allowed"),
]


@pytest.mark.parametrize("method, path, body, status, message", BAD_REQUESTS,
                         ids=[f"{r[3]} {r[4]}" for r in BAD_REQUESTS])
def test_bad_requests_are_answered_with_the_reason(client, method, path, body, status, message):
    http, _ = client
    response = http.request(method.upper(), path, content=body() if callable(body) else body)
    assert response.status_code == status
    assert message in response.json()["error"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10**20) | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=30) | st.dictionaries(
        st.sampled_from(["image", "png", "engine", "x"]) | st.text(max_size=5), children,
        max_size=4), max_leaves=200)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=json_values | st.builds(lambda rows: {"image": rows}, st.lists(
    st.lists(st.floats(-1, 2, allow_nan=False) | st.integers(-1, 2), min_size=27, max_size=29),
    min_size=27, max_size=29)) | st.binary(max_size=300).map(lambda b: b"RAW" + b))
def test_fuzzed_predict_bodies_never_answer_500(client, body):
    http, _ = client
    content = body[3:] if isinstance(body, bytes) else json.dumps(body).encode()
    response = http.post("/api/predict", content=content)
    assert response.status_code in (200, 400), response.text
    assert ("error" in response.json()) == (response.status_code == 400)


# -- the running server --------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, body: dict, timeout: float = 30) -> tuple[int, dict]:
    request = urllib.request.Request(url, json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@contextlib.contextmanager
def serving(model_file):
    """`cnn-numpy serve MODEL` on a free port of 127.0.0.1: its URL, until the block ends."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "cnn_numpy", "serve", str(model_file),
                             "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            urllib.request.urlopen(url + "/api/model", timeout=2).close()
            break
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail(f"the server did not start: {proc.communicate()}")
            time.sleep(0.2)
    try:
        yield url
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


@pytest.fixture(scope="module")
def server(model_file):
    with serving(model_file) as url:
        yield url


def test_serve_prints_the_address_and_refuses_a_missing_extra(model_file):
    code = ("import sys; sys.modules['uvicorn'] = None\n"
            "from cnn_numpy.cli import main\n"
            f"sys.exit(main(['serve', {str(model_file)!r}]))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr == ('cnn-numpy: error: uvicorn is not installed; install it with pip '
                             'install "cnn-numpy[web]"\n')


def test_serve_on_a_busy_port_is_a_one_line_error(model_file):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "cnn_numpy", "serve", str(model_file),
                                 "--port", str(port)], capture_output=True, text=True,
                                timeout=60)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (f"cnn-numpy: error: cannot listen on 127.0.0.1 port {port}: "
                             "Address already in use; choose another --port (or --host)\n")


def test_load_8_clients_400_requests_no_errors(server, sample, capsys):
    latencies, failures = [], []
    lock = threading.Lock()

    def client(k: int) -> None:
        for i in range(50):
            image = sample.x_test[(k * 50 + i) % len(sample.x_test)]
            start = time.perf_counter()
            status, answer = post(server + "/api/predict", {"image": image.tolist()})
            elapsed = time.perf_counter() - start
            with lock:
                latencies.append(elapsed)
                if status != 200 or len(answer["probabilities"]) != 10:
                    failures.append(status)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == [] and len(latencies) == 400
    p95 = statistics.quantiles(latencies, n=20)[-1]
    with capsys.disabled():
        print(f"\n/api/predict under 8 concurrent clients: 400 requests, 0 errors, "
              f"p50 {1000 * statistics.median(latencies):.1f} ms, p95 {1000 * p95:.1f} ms")


# -- the page in a real browser ------------------------------------------------------------

def _chromium():
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (browser and driver):
        pytest.skip("headless browser tests need Debian's chromium and chromium-driver "
                    "(apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver",
                                    reason="selenium is not installed: pip install selenium")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1280,800"):
        options.add_argument(argument)
    return webdriver.Chrome(service=webdriver.ChromeService(driver), options=options)


@pytest.fixture(scope="module")
def browser():
    driver = _chromium()
    yield driver
    driver.quit()


def _wait(driver, condition, timeout=20):
    """condition(driver), once it is true within timeout seconds.  A timeout fails saying
    which condition it was, what the page's run was doing and the browser's last log
    lines (Selenium's own message is empty)."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: condition(d))
    except TimeoutException as error:
        run = driver.execute_script("return typeof trainState === 'undefined' ? 'no trainState'"
                                    " : JSON.stringify(trainState && trainState.run)")
        raise AssertionError(f"waited {timeout} s for {inspect.getsource(condition).strip()}\n"
                             f"the page's run: {str(run)[:2000]}\n"
                             f"the browser's log: {driver.get_log('browser')[-5:]}") from error


def _idle(driver) -> bool:
    return driver.execute_script("return !busy && !pending && last !== null")


def draw_a_one(browser) -> None:
    """Clear the pad and draw a "1": one vertical stroke, with pointer events."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    browser.find_element(By.ID, "clear").click()
    pad = browser.find_element(By.ID, "pad")
    strokes = ActionChains(browser).move_to_element_with_offset(pad, 0, -90).click_and_hold()
    for _ in range(6):
        strokes.move_by_offset(0, 30)
    strokes.release().perform()


def test_page_draw_hover_and_stride_groups(browser, server, tmp_path, capsys):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    browser.get(server + "/")
    _wait(browser, lambda d: d.find_element(By.ID, "predicted").text != "" and _idle(d))
    assert "true label is" in browser.find_element(By.ID, "truth").text

    draw_a_one(browser)
    _wait(browser, _idle)
    time.sleep(0.3)
    _wait(browser, _idle)
    canvas = browser.execute_script("return document.getElementById('pad').toDataURL()")
    status, answer = post(server + "/api/predict", {"png": canvas})
    assert status == 200
    shown = browser.find_element(By.ID, "predicted").text
    assert shown == str(answer["prediction"]) == "1"
    bars = [b.text.split()[-1] for b in browser.find_elements(By.CSS_SELECTOR, ".bar")]
    assert bars == [f"{p:.3f}" for p in answer["probabilities"]]
    redraw = browser.execute_script("return window.redrawMilliseconds")
    browser.save_screenshot(str(tmp_path / "desktop-drawn-1.png"))

    # hover a feature-map pixel of the first conv layer: the multiply-add panel
    maps = browser.find_elements(By.CSS_SELECTOR, ".maps.first canvas")
    assert len(maps) == 32
    mac = browser.find_element(By.ID, "mac")
    top = mac.location["y"], maps[5].location["y"]
    ActionChains(browser).move_to_element_with_offset(maps[5], 2, 3).perform()
    _wait(browser, lambda d: "sum of products" in mac.text)
    assert (mac.location["y"], maps[5].location["y"]) == top  # its space was kept: no shift
    text = mac.text
    assert "filter 5" in text and "sum of products" in text and "+ bias" in text
    row = int(text.split("output row ")[1].split(",")[0])
    col = int(text.split("column ")[1].split()[0])
    expected = browser.execute_script(f"return last.layers[0].values[{row}][{col}][5]")
    computed = float(browser.find_element(By.ID, "mac-value").text)
    relu = float(text.split("ReLU: max(")[1].split(") = ")[1].split()[0])
    assert computed == pytest.approx(expected, abs=1e-4) and relu == pytest.approx(computed,
                                                                                   abs=2e-4)
    assert browser.find_element(By.ID, "seen-mark").is_displayed()
    browser.save_screenshot(str(tmp_path / "desktop-hover.png"))

    # the stride-group panel opens with the model's conv (3 x 3, stride 1) on an input small
    # enough to step through: 8 x 8, 36 positions
    assert browser.find_element(By.ID, "g-status").text == "position 1 of 36"
    browser.find_element(By.ID, "g-next").click()
    assert browser.find_element(By.ID, "g-status").text == "position 2 of 36"
    # padding counts: ConvLayer(8, 5, stride=2, padding="same") on 28 x 28 computes 14 x 14
    for name, value in (("g-filter", "5"), ("g-stride", "2"), ("g-input", "28"), ("g-pad", "2")):
        field = browser.find_element(By.ID, name)
        field.clear()
        field.send_keys(value)
    browser.find_element(By.CSS_SELECTOR, "#groups-form button").click()
    _wait(browser, lambda d: d.find_element(By.ID, "g-status").text == "position 1 of 196")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#g-grid div.padding")) == 32 ** 2 - 28 ** 2
    assert "2 cells of zero padding on each side of the 28 x 28 input" in \
        browser.find_element(By.ID, "g-text").text
    # the stride skips the last row and column, which are padding, not input
    assert "Hatched cells: no window touches them (63 padding cells)." in \
        browser.find_element(By.ID, "g-text").text
    field = browser.find_element(By.ID, "g-pad")  # an error leaves no stale grid
    field.clear()
    field.send_keys("9")
    browser.find_element(By.CSS_SELECTOR, "#groups-form button").click()
    _wait(browser, lambda d: d.find_element(By.ID, "g-status").text.startswith("Error:"))
    assert browser.find_elements(By.CSS_SELECTOR, "#g-grid div") == []
    field.clear()
    field.send_keys("0")
    for name, value in (("g-filter", "2"), ("g-stride", "1"), ("g-input", "4")):
        field = browser.find_element(By.ID, name)
        field.clear()
        field.send_keys(value)
    browser.find_element(By.CSS_SELECTOR, "#groups-form button").click()
    _wait(browser, lambda d: d.find_element(By.ID, "g-status").text == "position 1 of 9")
    cells = browser.find_elements(By.CSS_SELECTOR, "#g-grid div")
    assert [c.text for c in cells] == [str(k) for k in range(1, 17)]
    lit = [c.text for c in cells if "in" in c.get_attribute("class").split()]
    assert lit == ["1", "2", "5", "6"]  # the first window of group 1
    browser.find_element(By.ID, "engines").click()
    _wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#engine-table tr")) == 4)
    assert "median of several runs" in browser.find_element(By.ID, "engine-note").text
    browser.execute_script("document.getElementById('groups-card').scrollIntoView()")
    browser.save_screenshot(str(tmp_path / "desktop-panels.png"))

    browser.set_window_size(390, 844)
    browser.execute_script("window.scrollTo(0, 0)")
    browser.save_screenshot(str(tmp_path / "phone.png"))
    width = browser.execute_script("return document.documentElement.scrollWidth")
    assert width <= 390  # nothing sticks out sideways on a phone
    browser.set_window_size(1280, 800)
    with capsys.disabled():
        print(f"\nredraw after the last stroke: {redraw:.0f} ms (request + drawing); "
              f"screenshots in {tmp_path}")
