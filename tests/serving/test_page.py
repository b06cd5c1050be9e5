"""End to end: the risk-calculator page (GET /) in headless Chromium against a real app.

The app serves a real model (calibrated logistic regression fitted on generated patients and
compiled as at registration) through uvicorn on a free local port; the browser is Debian's
``chromium`` (``make test`` installs it), driven by Playwright.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from sklearn.pipeline import Pipeline

from strokeops.config import Settings
from strokeops.features import feature_frame
from tests.serving.compiled_app import MODEL_VERSION, fitted_model, running_app, serving_model

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
API_KEY_ERROR = "missing or invalid API key (header X-API-Key)"
# the patient the tests type in; bmi is left blank (unknown)
PATIENT: dict[str, Any] = {
    "gender": "Female",
    "age": 72.0,
    "hypertension": 1,
    "heart_disease": 0,
    "ever_married": "Yes",
    "work_type": "Private",
    "Residence_type": "Urban",
    "avg_glucose_level": 210.0,
    "bmi": None,
    "smoking_status": "never smoked",
}


@pytest.fixture(scope="module")
def fitted() -> tuple[Pipeline, dict[str, Any]]:
    return fitted_model()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.is_file():
        message = f"the page test needs Debian's chromium at {CHROMIUM} (make test installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 900, "height": 1000})
    context.set_default_timeout(10_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def fill_patient(page: Page) -> None:
    """Type PATIENT into the form; fields not set here keep the page's defaults."""
    page.select_option("select[name=gender]", PATIENT["gender"])
    page.fill("input[name=age]", "72")
    page.select_option("select[name=hypertension]", "1")
    page.select_option("select[name=heart_disease]", "0")
    page.select_option("select[name=ever_married]", PATIENT["ever_married"])
    page.select_option("select[name=work_type]", PATIENT["work_type"])
    page.select_option("select[name=residence_type]", PATIENT["Residence_type"])
    page.fill("input[name=avg_glucose_level]", "210")
    page.fill("input[name=bmi]", "")
    page.select_option("select[name=smoking_status]", PATIENT["smoking_status"])


def test_page_shows_the_models_prediction(
    tmp_path: Path, fitted: tuple[Pipeline, dict[str, Any]], page: Page
) -> None:
    pipeline, spec = fitted
    expected = float(pipeline.predict_proba(feature_frame(pd.DataFrame([PATIENT])))[0, 1])
    model = serving_model(spec)

    with running_app(Settings(state_dir=tmp_path), spec) as base_url:
        page.goto(base_url + "/")
        expect(page).to_have_title("strokeops · stroke-risk calculator")
        fill_patient(page)
        page.click("button[type=submit]")

        expect(page.locator("#probability")).to_have_text(f"{expected * 100:.1f}%")
        expect(page.locator("#risk-level")).to_have_text(model.risk_level(expected))
        expect(page.locator("#risk-level")).to_have_class(model.risk_level(expected))
        expect(page.locator("#result")).to_contain_text(
            f"decision threshold {spec['threshold'] * 100:.1f}%"
        )
        expect(page.locator("#result")).to_contain_text(
            f"Model stroke-risk version {MODEL_VERSION}"
        )
        factor_rows = page.locator("#factors tr:has(td)")
        expect(factor_rows.first).to_be_visible()
        assert 1 <= factor_rows.count() <= 5
        expect(page.locator("#error")).to_have_count(0)


def test_page_sends_the_api_key(
    tmp_path: Path, fitted: tuple[Pipeline, dict[str, Any]], page: Page
) -> None:
    _, spec = fitted
    settings = Settings(state_dir=tmp_path, api_keys="k1")

    with running_app(settings, spec) as base_url:
        page.goto(base_url + "/")
        fill_patient(page)
        page.click("button[type=submit]")
        expect(page.locator("#error")).to_have_text(f"Error 401: {API_KEY_ERROR}")
        expect(page.locator("#probability")).to_have_count(0)

        page.fill("input[name=api_key]", "k1")
        page.click("button[type=submit]")
        expect(page.locator("#probability")).to_have_text(re.compile(r"^\d{1,3}\.\d%$"))
        expect(page.locator("#error")).to_have_count(0)


def test_page_reports_failures_instead_of_an_earlier_result(
    tmp_path: Path, fitted: tuple[Pipeline, dict[str, Any]], page: Page
) -> None:
    """A proxy's HTML error page or a dropped connection shows an error, and the previous
    patient's probability does not stay on screen as if it were this patient's."""
    _, spec = fitted

    with running_app(Settings(state_dir=tmp_path), spec) as base_url:
        page.goto(base_url + "/")
        page.click("button[type=submit]")
        expect(page.locator("#probability")).to_be_visible()

        page.route(
            "**/v1/predict*",
            lambda route: route.fulfill(
                status=502, content_type="text/html", body="<html>Bad Gateway</html>"
            ),
        )
        page.click("button[type=submit]")
        expect(page.locator("#error")).to_contain_text("Error 502")
        expect(page.locator("#probability")).to_have_count(0)

        page.unroute("**/v1/predict*")
        page.route("**/v1/predict*", lambda route: route.abort())
        page.click("button[type=submit]")
        expect(page.locator("#error")).to_contain_text("Could not reach the API")
        expect(page.locator("button[type=submit]")).to_be_enabled()
