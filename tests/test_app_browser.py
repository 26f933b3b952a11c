"""A clinician's path through the page, in headless Debian Chromium driven by Playwright."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from storage.db import Database
from storage.repository import Store
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
    """Pick the type and the example, and wait until the example has filled the form."""
    page.locator("#question-type").get_by_text(TYPE_LABELS[question_type], exact=True).click()
    expect(page.locator(f"#fields-{question_type}")).to_be_visible()
    page.locator("#example-picker input").click()
    page.get_by_role("option", name=title, exact=True).click()
    example = next(ex for ex in get_template(question_type, "en").examples if ex.title == title)
    text_field = next(name for name, value in example.fields.items() if isinstance(value, str))
    field = page.locator(f"#field-{question_type}-{text_field}").locator("textarea, input").first
    expect(field).to_have_value(str(example.fields[text_field]), timeout=30_000)


@pytest.mark.parametrize("question_type", ["diagnosis", "drug", "exam", "triage"])
def test_each_type_streams_reasoning_and_answer(page: Page, question_type: str):
    example = get_template(question_type, "en").examples[0]
    load_example(page, question_type, example.title)

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


def test_feedback_is_saved_and_history_lists_the_consultation(page: Page, app_on_postgres):
    _, database_url = app_on_postgres
    example = get_template("triage", "en").examples[0]
    load_example(page, "triage", example.title)
    page.locator("#submit-button").click()
    expect(page.locator("#answer")).not_to_be_empty(timeout=60_000)
    expect(page.locator("#consult-status")).not_to_contain_text("answering", timeout=60_000)

    page.locator("#feedback-helpful").get_by_text("Not helpful", exact=True).click()
    page.locator("#feedback-comment textarea").fill("Missed the sepsis screen.")
    page.locator("#feedback-button").click()
    expect(page.locator("#feedback-status")).to_contain_text("saved")

    page.locator("#history-accordion").get_by_text("My consultations").click()
    expect(page.locator("#history")).to_contain_text("triage")

    store = Store(Database.open(database_url))
    latest = store.list_consultations("anonymous", limit=1)[0]
    assert latest.question_type == "triage"
    feedback = store.list_feedback(latest.id)
    assert [(f.helpful, f.comment) for f in feedback] == [(False, "Missed the sepsis screen.")]


def test_switching_to_chinese_relabels_the_form(page: Page):
    page.locator("#language").get_by_text("中文", exact=True).click()
    expect(page.locator("#submit-button")).to_have_text("提交给 MedLite")
    expect(page.locator("#fields-diagnosis")).to_contain_text("主诉")
    page.locator("#field-diagnosis-sex input").click()
    expect(page.get_by_role("option", name="男", exact=True)).to_be_visible()
    page.keyboard.press("Escape")
    page.locator("#example-picker input").click()
    chinese_title = get_template("diagnosis", "zh").examples[0].title
    expect(page.get_by_role("option", name=chinese_title, exact=True)).to_be_visible()
