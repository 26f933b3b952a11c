"""A clinician's path through the page, in headless Debian Chromium driven by Playwright."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from templates import get_template

pytestmark = [pytest.mark.browser, pytest.mark.slow]
TYPE_LABELS = {"diagnosis": "Diagnosis", "drug": "Drug question", "exam": "Exam question", "triage": "Triage"}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            headless=True,
            args=["--no-sandbox", "--disable-background-networking", "--disable-gpu"],
        )
        yield browser
        browser.close()


@pytest.fixture()
def page(browser: Browser, app_on_postgres) -> Iterator[Page]:
    url, _ = app_on_postgres
    page = browser.new_page()
    page.goto(url)
    expect(page.locator("#submit-button")).to_be_visible(timeout=30_000)
    yield page
    page.close()


def load_example(page: Page, question_type: str, title: str) -> None:
    page.locator("#question-type").get_by_text(TYPE_LABELS[question_type], exact=True).click()
    expect(page.locator(f"#fields-{question_type}")).to_be_visible()
    page.locator("#example-picker input").click()
    page.get_by_role("option", name=title, exact=True).click()


@pytest.mark.parametrize("question_type", ["diagnosis", "drug", "exam", "triage"])
def test_each_type_streams_reasoning_and_answer(page: Page, question_type: str):
    example = get_template(question_type, "en").examples[0]
    load_example(page, question_type, example.title)
    first_field = next(iter(example.fields))
    expect(page.locator(f"#field-{question_type}-{first_field} textarea, #field-{question_type}-{first_field} input").first).not_to_have_value("")

    page.locator("#submit-button").click()
    expect(page.locator("#answer")).not_to_be_empty(timeout=60_000)
    expect(page.locator("#consult-status")).not_to_contain_text("answering", timeout=60_000)
    page.locator("#reasoning-accordion").get_by_text("Model reasoning").click()
    expect(page.locator("#reasoning")).not_to_be_empty()
    expect(page.locator("#disclaimer")).to_contain_text("never replaces")


def test_chest_pain_case_raises_the_banner(page: Page):
    chest_pain = next(ex for ex in get_template("diagnosis", "en").examples if "chest" in str(ex.fields).lower())
    load_example(page, "diagnosis", chest_pain.title)
    page.locator("#submit-button").click()
    banner = page.locator("#red-flag-banner")
    expect(banner).to_be_visible(timeout=30_000)
    expect(banner).to_contain_text("Chest pain")
    expect(page.locator("#answer")).not_to_be_empty(timeout=60_000)
