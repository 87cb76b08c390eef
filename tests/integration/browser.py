"""Headless Chromium driven through Selenium and Debian's chromedriver.

The status page tests act as a person would: open the page, type into the
forms, press the buttons, read what the page then says.  ``--dump-dom``
(test_status_page.py) can only load one URL; these tests need a browser that
keeps its cookies between pages, so they use the WebDriver protocol.  The
driver and the browser are the system's (``chromium``, ``chromium-driver``
from ``scripts/setup.sh``); Selenium never downloads anything.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


def _exe(*names: str) -> str:
    for n in names:
        if path := shutil.which(n):
            return path
    pytest.fail(f"{names[0]} is not installed: run ./scripts/setup.sh")


class Browser:
    """One headless Chromium with its own profile and download directory."""

    def __init__(self, tmp: Path) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.downloads = tmp / "downloads"
        self.downloads.mkdir(parents=True, exist_ok=True)
        opts = webdriver.ChromeOptions()
        opts.binary_location = _exe("chromium", "chromium-browser")
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--disable-extensions", f"--user-data-dir={tmp / 'profile'}"):
            opts.add_argument(arg)
        opts.add_experimental_option("prefs", {"download.default_directory": str(self.downloads),
                                               "download.prompt_for_download": False})
        self.driver = webdriver.Chrome(service=Service(_exe("chromedriver")), options=opts)
        self.driver.set_page_load_timeout(60)
        self.driver.execute_cdp_cmd("Page.setDownloadBehavior",
                                    {"behavior": "allow", "downloadPath": str(self.downloads)})

    def close(self) -> None:
        self.driver.quit()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ acting
    def open(self, url: str) -> None:
        self.driver.get(url)

    def el(self, css: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def all(self, css: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def has(self, css: str) -> bool:
        return bool(self.all(css))

    def fill(self, css: str, text: str) -> None:
        e = self.el(css)
        e.clear()
        e.send_keys(text)

    def click(self, css: str) -> None:
        """Press a button and wait for the page it submits to."""
        from selenium.common.exceptions import StaleElementReferenceException

        old = self.el("html")
        for attempt in range(5):  # the live update may swap the button out under us
            try:
                self.el(css).click()
                break
            except StaleElementReferenceException:
                if attempt == 4:
                    raise
        self.wait(lambda: self._stale(old), what=f"the page after clicking {css}")

    def _stale(self, element: Any) -> bool:
        from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

        try:
            element.tag_name  # noqa: B018 -- touching it tells whether the page was replaced
            return False
        except StaleElementReferenceException:
            return True
        except WebDriverException as e:
            # Chromium answers this instead of "stale element" when the element is
            # touched while the navigation that detaches it is still under way.
            if "does not belong to the document" in str(e.msg):
                return True
            raise

    def text(self, css: str = "body") -> str:
        return str(self.el(css).text)

    @property
    def html(self) -> str:
        return str(self.driver.page_source)

    def rows(self, table: str) -> list[tuple[dict[str, str], list[str]]]:
        """``(data-* attributes, cell texts)`` of every body row of ``table``, read
        in one script call: the page's live update replaces the tables every two
        seconds, so elements found one by one may be gone by the next call."""
        return [(dict(a), list(c)) for a, c in self.js(
            "return [...document.querySelectorAll(arguments[0] + ' tbody tr')]"
            ".map(r => [Object.assign({}, r.dataset), [...r.cells].map(c => c.innerText)])", table)]

    def cookies(self) -> dict[str, dict[str, Any]]:
        return {c["name"]: c for c in self.driver.get_cookies()}

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    @staticmethod
    def wait(cond: Callable[[], Any], *, timeout: float = 30, what: str = "condition",
             every: float = 0.2) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            got = cond()
            if got:
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(every)
