"""What the browser tests do the same way: screenshots, and signing in to the test Airflow."""
from __future__ import annotations

import re
from pathlib import Path

from airflow_server import REPO

SHOTS = REPO / "artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def shot(tab, name: str, **kwargs) -> Path:
    path = SHOTS / f"ui_{name}.png"
    tab.screenshot(path=str(path), **kwargs)
    return path


def log_in(tab, airflow, user: str = "admin", password: str | None = None) -> None:
    """Sign in through Airflow's login form, then wait for the plugin's entry in the navigation."""
    tab.goto(airflow.url + "/")
    tab.wait_for_url(re.compile(r".*/auth/login.*"))
    tab.fill("input[name=username]", user)
    tab.fill("input[name=password]", password or airflow.password)
    tab.keyboard.press("Enter")
    tab.wait_for_url(airflow.url + "/")
    tab.get_by_role("link", name="Trade migration").wait_for()
