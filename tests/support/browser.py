"""Headless Chromium driven through ChromeDriver, both Debian's packages (never a downloaded browser),
and the executions page as a user sees it: its rows, its message, its controls.

Selenium is synchronous: tests call these from a thread (`asyncio.to_thread`), so that the loop
keeps serving the GitHub stand-in the worker dispatches to while the browser waits.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.support.paths import project_root

T = TypeVar("T")
MISSING = (
    "the browser tests need Debian's chromium and chromium-driver: `make test` installs them where it "
    "runs as root (apt-get install chromium chromium-driver); or name them in "
    "EXECUTION_STREAM_TEST_CHROMIUM and EXECUTION_STREAM_TEST_CHROMEDRIVER. Missing: {missing}"
)
# The flags the machine's closed network needs: without the background ones Chromium keeps
# trying to reach Google's hosts.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1500,1000",
)
WAIT_SECONDS = 60.0
UI_FILES = resources.files("execution_stream.api") / "ui"
# Screenshots land beside the other build outputs, kept by CI with the test log.
TEST_OUTPUT = project_root() / "build" / "test-output"

_ROWS_SCRIPT = """
return Array.from(document.querySelectorAll('#executions tbody tr.execution')).map(row => {
  const cell = name => (row.querySelector('td.' + name) || {textContent: ''}).textContent.trim();
  const link = row.querySelector('a.run-link');
  return {execution_id: row.dataset.executionId, status: cell('status'), plan_item: cell('plan-item'),
          waiting: cell('waiting'), run: link ? link.href : null};
});
"""


def browser_paths() -> tuple[str, str]:
    chromium = os.environ.get("EXECUTION_STREAM_TEST_CHROMIUM") or shutil.which("chromium")
    driver = os.environ.get("EXECUTION_STREAM_TEST_CHROMEDRIVER") or shutil.which("chromedriver")
    missing = [name for name, path in (("chromium", chromium), ("chromedriver", driver)) if not path]
    if chromium is None or driver is None:
        pytest.fail(MISSING.format(missing=", ".join(missing)), pytrace=False)
    return chromium, driver


@contextmanager
def headless_chromium(work_dir: Path) -> Iterator[WebDriver]:
    chromium, driver_path = browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={work_dir / 'profile'}"):
        options.add_argument(flag)
    # With both paths given, Selenium runs no driver manager and downloads nothing.
    service = webdriver.ChromeService(
        executable_path=driver_path, log_output=str(work_dir / "chromedriver.log")
    )
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()


class _QuietFiles(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def page_on_its_own_origin() -> Iterator[str]:
    """The page's files served as a web view's host would: another origin than the API's."""
    with resources.as_file(UI_FILES) as folder:
        handler = functools.partial(_QuietFiles, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            server.server_close()


@dataclass
class ExecutionsPage:
    driver: WebDriver

    def open(self, url: str) -> None:
        self.driver.get(url)

    def rows(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.driver.execute_script(_ROWS_SCRIPT)
        return rows

    def ids(self) -> list[str]:
        return [row["execution_id"] for row in self.rows()]

    def text_of(self, element_id: str) -> str:
        return str(self.driver.find_element(By.ID, element_id).text)

    def error(self) -> str:
        return self.text_of("error")

    def state(self) -> str:
        return str(self.driver.find_element(By.TAG_NAME, "body").get_attribute("data-state") or "")

    def wait_until(self, found: Callable[[ExecutionsPage], T | None], what: str) -> T:
        """What `found` gives once it is truthy; fails with the page's state and message otherwise."""
        try:
            result = WebDriverWait(self.driver, WAIT_SECONDS, poll_frequency=0.2).until(lambda _: found(self))
        except TimeoutException:
            raise AssertionError(
                f"the page never showed {what}: state {self.state()!r}, error {self.error()!r}, "
                f"rows {self.rows()}"
            ) from None
        assert result is not None  # until() returns only what is truthy
        return result

    def show(self, api: str | None = None, token: str | None = None) -> None:
        for element_id, value in (("api", api), ("token", token)):
            if value is not None:
                field = self.driver.find_element(By.ID, element_id)
                field.clear()
                field.send_keys(value)
        self.driver.find_element(By.ID, "load").click()

    def filter_status(self, status: str) -> None:
        Select(self.driver.find_element(By.ID, "status")).select_by_value(status)

    def filter_plan_item(self, slug: str) -> None:
        field = self.driver.find_element(By.ID, "plan-item")
        field.clear()
        field.send_keys(slug + "\n")

    def page_size(self, limit: int) -> None:
        Select(self.driver.find_element(By.ID, "limit")).select_by_value(str(limit))

    def click(self, element_id: str) -> None:
        self.driver.find_element(By.ID, element_id).click()

    def enabled(self, element_id: str) -> bool:
        return bool(self.driver.find_element(By.ID, element_id).is_enabled())

    def screenshot(self, name: str) -> Path:
        TEST_OUTPUT.mkdir(parents=True, exist_ok=True)
        path = TEST_OUTPUT / name
        assert self.driver.save_screenshot(str(path)), f"no screenshot written to {path}"
        return path
