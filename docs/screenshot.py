"""Takes docs/live-page.png, the README's picture of `cnn-numpy serve`.

    cnn-numpy train cnn --dataset mnist-sample --save /tmp/cnn.npz --no-progress
    python docs/screenshot.py /tmp/cnn.npz

Needs the web extra, selenium, and Debian's chromium and chromium-driver.
The page opens on a random test image; the script hovers one pixel of a
feature map (so the multiply-add panel shows) and saves the top of the page
at 1280 pixels wide.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

OUTPUT = Path(__file__).resolve().parent / "live-page.png"


def main(model: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "cnn_numpy", "serve", model,
                               "--port", str(port)], stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                     "--window-size=1280,1400"):
        options.add_argument(argument)
    browser = webdriver.Chrome(service=webdriver.ChromeService("/usr/bin/chromedriver"),
                               options=options)
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(url + "api/model", timeout=2).close()
                break
            except OSError:
                time.sleep(0.2)
        browser.get(url)
        WebDriverWait(browser, 30).until(
            lambda d: d.execute_script("return !busy && !pending && last !== null"))
        maps = browser.find_elements(By.CSS_SELECTOR, ".maps.first canvas")
        ActionChains(browser).move_to_element_with_offset(maps[3], 1, 0).perform()
        time.sleep(0.5)
        browser.execute_script("window.scrollTo(0, 0)")
        browser.save_screenshot(str(OUTPUT))
        print(f"Wrote {OUTPUT}")
    finally:
        browser.quit()
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main(sys.argv[1])
