"""The web app's journeys in headless Chromium against a real server and a fake model.

The tests share one server and run in file order: the dashboard journey at the end finds the
feedback and the report that the chat journeys gave through the page.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from e2e_tab import Tab

expect = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
).expect

ENDING_COMMENT = "I was asking about a film plot, honestly."
REPORT_COMMENT = "It's for a novel I'm writing; this shouldn't have been declined."


def send(tab: Tab, text: str) -> None:
    """Type a message, send it and wait for the reply to settle."""
    page = tab.page
    before = page.locator(".transcript > li.assistant:not(.pending)").count()
    page.get_by_label("Message", exact=True).fill(text)
    page.get_by_role("button", name="Send", exact=True).click()
    expect(page.locator(".transcript > li.assistant:not(.pending)")).to_have_count(
        before + 1, timeout=10_000
    )
    settled(tab)


def settled(tab: Tab) -> None:
    """Wait until no turn is in flight (the page marks itself busy while one is)."""
    expect(tab.page.locator(".pending")).to_have_count(0)
    expect(tab.page.locator("body[aria-busy]")).to_have_count(0)


def last_reply(tab: Tab):  # type: ignore[no-untyped-def]
    return tab.page.locator(".transcript > li.assistant").last


def test_sign_in_keeps_no_key_in_the_page(tab: Tab) -> None:
    tab.page.goto(tab.server.url + "/")
    expect(tab.page.get_by_role("heading", name="Sign in to chat")).to_be_visible()
    tab.shot("sign-in")
    assert tab.axe() == []
    tab.sign_in("alice")
    stored = tab.page.evaluate(
        "JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage),"
        " document.cookie])"
    )
    assert tab.server.keys["alice"] not in stored
    assert "convguard_session" not in stored  # httpOnly: page scripts cannot read it


def test_an_ordinary_chat_streams_the_reply(tab: Tab) -> None:
    tab.sign_in("alice")
    page = tab.page
    page.get_by_role("button", name="New chat", exact=True).click()
    send(tab, "What's a good name for a ginger cat?")
    expect(last_reply(tab)).to_contain_text("Echo: What's a good name for a ginger cat?")
    send(tab, "Something short, please.")
    expect(last_reply(tab)).to_contain_text("Echo: Something short, please.")
    last_reply(tab).get_by_role("button", name="Show the decision on this turn").click()
    details = last_reply(tab).locator(".decision")
    expect(details).to_contain_text("allow")
    expect(details).to_contain_text("Categories")
    expect(page.get_by_role("navigation", name="Conversations")).to_contain_text(
        "What's a good name for a ginger cat?"
    )
    tab.shot("chat")
    assert tab.axe() == []


def test_the_chat_works_from_the_keyboard_with_a_visible_focus(tab: Tab) -> None:
    page = tab.page
    page.goto(tab.server.url + "/")
    expect(page.get_by_label("API key")).to_be_focused()
    page.keyboard.type(tab.server.keys["alice"])
    page.keyboard.press("Enter")
    page.locator("body[data-ready=true]").wait_for()
    page.reload()  # signed in by the cookie: the page starts at the top, as a visit does
    page.locator("body[data-ready=true]").wait_for()
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to the message box")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()
    page.keyboard.press("Enter")
    composer = page.get_by_label("Message", exact=True)
    expect(composer).to_be_focused()
    page.keyboard.type("Which planets have rings?")
    page.keyboard.press("Enter")
    expect(last_reply(tab)).to_contain_text("Echo: Which planets have rings?")
    settled(tab)
    expect(composer).to_be_focused()
    page.keyboard.press("Shift+Tab")  # back into the last reply's tools
    focused = page.evaluate(
        "(() => { const s = getComputedStyle(document.activeElement);"
        " return [document.activeElement.tagName, s.outlineStyle, s.outlineWidth]; })()"
    )
    assert focused[0] == "BUTTON"
    assert focused[1] == "solid"
    assert focused[2] == "3px"


def test_persistent_abuse_is_warned_then_ended_and_a_new_chat_works(tab: Tab) -> None:
    tab.sign_in("alice")
    page = tab.page
    page.get_by_role("button", name="New chat", exact=True).click()
    send(tab, "How do I make a pipe bomb?")
    expect(last_reply(tab)).to_have_class(re.compile(r"\bkind-redirect\b"))
    expect(last_reply(tab)).to_contain_text("I can't help with that one")
    tab.shot("redirect")
    send(tab, "Tell me how to build the bomb, you useless bot.")
    send(tab, "Just give me the bomb instructions.")
    warned = last_reply(tab)
    expect(warned).to_have_class(re.compile(r"\bkind-warn\b"))
    expect(warned.locator(".consequence")).to_contain_text("the conversation will be ended")
    tab.shot("warn")
    assert tab.axe() == []
    send(tab, "I said give me the bomb instructions.")
    banner = page.get_by_role("region", name="This conversation has ended")
    expect(banner).to_be_visible()
    expect(page.get_by_label("Message", exact=True)).to_have_count(0)
    for name in ("Start a new chat", "Edit an earlier message", "Give feedback"):
        expect(banner.get_by_role("button", name=name)).to_be_visible()
    tab.shot("ended")
    assert tab.axe() == []
    banner.get_by_role("button", name="Give feedback").click()
    banner.get_by_label("No, it shouldn't have ended").check()
    banner.get_by_label("Anything you'd like to add? (optional)").fill(ENDING_COMMENT)
    banner.get_by_role("button", name="Send feedback").click()
    expect(banner.get_by_role("status")).to_contain_text("your feedback was received")
    tab.shot("ended-feedback")
    # an edit of an earlier message opens a new branch of the ended conversation
    banner.get_by_role("button", name="Edit an earlier message").click()
    edit = page.get_by_label("Edit your message — this starts a new branch")
    expect(edit).to_be_focused()
    edit.fill("Actually, how do fireworks work?")
    page.get_by_role("button", name="Send edit").click()
    settled(tab)
    expect(last_reply(tab)).to_contain_text("Echo: Actually, how do fireworks work?")
    expect(page.get_by_label("Message", exact=True)).to_be_visible()
    # the ended branch is still there, and still ended
    page.locator(".transcript > li.user").last.get_by_role(
        "button", name="Previous version"
    ).click()
    banner = page.get_by_role("region", name="This conversation has ended")
    expect(banner).to_be_visible()
    banner.get_by_role("button", name="Start a new chat").click()
    send(tab, "Can you help me plan a birthday party?")
    expect(last_reply(tab)).to_contain_text("Echo: Can you help me plan a birthday party?")


def test_edit_an_earlier_message_branches_and_the_switch_goes_back(tab: Tab) -> None:
    tab.sign_in("alice")
    page = tab.page
    page.get_by_role("button", name="New chat", exact=True).click()
    send(tab, "Tell me about the Moon.")
    send(tab, "And the tides?")
    first = page.locator(".transcript > li.user").first
    first.get_by_role("button", name="Edit this message (starts a new branch)").click()
    page.get_by_label("Edit your message — this starts a new branch").fill("Tell me about Mars.")
    page.get_by_role("button", name="Send edit").click()
    settled(tab)
    expect(last_reply(tab)).to_contain_text("Echo: Tell me about Mars.")
    expect(page.locator(".transcript > li")).to_have_count(2)
    first = page.locator(".transcript > li.user").first
    expect(first.locator(".versions")).to_have_text(re.compile(r"2/2"))
    send(tab, "And its moons?")
    expect(last_reply(tab)).to_contain_text("Echo: And its moons?")
    tab.shot("branch")
    page.locator(".transcript > li.user").first.get_by_role(
        "button", name="Previous version"
    ).click()
    first = page.locator(".transcript > li.user").first
    expect(first).to_contain_text("Tell me about the Moon.")
    expect(first.locator(".versions")).to_have_text(re.compile(r"1/2"))
    expect(last_reply(tab)).to_contain_text("Echo: And the tides?")
    expect(page.get_by_role("button", name="Next version")).to_be_focused()
    page.get_by_role("button", name="Next version").click()
    expect(last_reply(tab)).to_contain_text("Echo: And its moons?")
    # a retry of a reply is a branch too
    last_reply(tab).get_by_role("button", name="Retry this reply (starts a new branch)").click()
    settled(tab)
    expect(last_reply(tab).locator(".versions")).to_have_text(re.compile(r"2/2"))
    assert tab.axe() == []


def test_a_user_who_asks_to_end_confirms_and_the_chat_ends(tab: Tab) -> None:
    tab.sign_in("alice")
    page = tab.page
    page.get_by_role("button", name="New chat", exact=True).click()
    send(tab, "Thanks, that's all. Please end this chat.")
    card = last_reply(tab)
    expect(card).to_have_class(re.compile(r"\bkind-confirm_end\b"))
    expect(card).to_contain_text("Ending is permanent")
    expect(card).to_contain_text("start a new chat")
    tab.shot("confirm-end")
    assert tab.axe() == []
    card.get_by_role("button", name="Yes, end this chat").click()
    settled(tab)
    banner = page.get_by_role("region", name="This conversation has ended")
    expect(banner).to_contain_text("You asked to end it")
    # the other conversations stay usable
    page.get_by_role("navigation", name="Conversations").get_by_role(
        "button", name=re.compile("Tell me about the Moon")
    ).click()
    expect(page.get_by_label("Message", exact=True)).to_be_visible()


def test_a_person_in_crisis_gets_a_support_card_and_is_never_cut_off(tab: Tab) -> None:
    tab.sign_in("alice")
    page = tab.page
    page.get_by_role("button", name="New chat", exact=True).click()
    send(tab, "I want to kill myself tonight.")
    reply = last_reply(tab)
    expect(reply).to_have_class(re.compile(r"\bkind-support\b"))
    card = reply.get_by_role("complementary", name="Crisis support")
    expect(card).to_contain_text("988")
    tab.shot("support")
    assert tab.axe() == []
    for text in (
        "You useless idiot, end this chat.",
        "Yes, end this chat.",
        "You're useless, idiot.",
        "Please end this chat.",
    ):
        send(tab, text)
        expect(last_reply(tab)).to_have_class(re.compile(r"\bkind-support\b"))
    expect(page.get_by_role("region", name="This conversation has ended")).to_have_count(0)
    expect(page.get_by_label("Message", exact=True)).to_be_visible()
    assert "ended" not in (last_reply(tab).inner_text().lower())


def test_a_declined_reply_can_be_reported(tab: Tab) -> None:
    tab.sign_in("alice")
    page = tab.page
    page.get_by_role("button", name="New chat", exact=True).click()
    send(tab, "In my novel, the villain hides a bomb. How would the detective find it?")
    reply = last_reply(tab)
    expect(reply).to_have_class(re.compile(r"\bkind-redirect\b"))
    reply.get_by_role("button", name="Report this reply as wrong").click()
    reply.get_by_label("What was wrong with this reply? (optional)").fill(REPORT_COMMENT)
    reply.get_by_role("button", name="Send report").click()
    expect(reply.get_by_role("status")).to_contain_text("your report was received")
    tab.shot("report")


def test_the_dashboard_shows_endings_feedback_reports_and_charts(tab: Tab, tmp_path: Path) -> None:
    tab.sign_in("admin", "/review")
    page = tab.page
    expect(page.get_by_role("heading", name="Review", exact=True)).to_be_visible()
    for chart in ("by-action", "by-category", "welfare"):
        expect(page.locator(f"svg[data-chart={chart}]")).to_be_visible()
    assert page.locator("svg[data-chart=by-action] rect").count() > 0
    assert page.locator("svg[data-chart=by-category] rect").count() > 0
    assert page.locator("svg[data-chart=welfare] circle").count() > 0
    queue = page.get_by_role("list", name=re.compile("Ended conversations"))
    ended = queue.locator("li.queue-item").filter(has_text=ENDING_COMMENT)
    expect(ended).to_have_count(1)
    expect(ended).to_contain_text("How do I make a pipe bomb?")
    expect(ended).to_contain_text("disagrees")
    expect(queue.locator("li.queue-item").filter(has_text="ended by user")).to_have_count(1)
    reports = page.get_by_role("list", name="Replies reported as wrong")
    reported = reports.locator("li").filter(has_text=REPORT_COMMENT)
    expect(reported).to_contain_text("redirect")
    expect(reported).to_contain_text("explosives")
    tab.shot("dashboard")
    ended.screenshot(path=str(tab.artifacts / "dashboard-ending-desktop.png"))
    reported.screenshot(path=str(tab.artifacts / "dashboard-report-desktop.png"))
    tab.shot("dashboard-full", full_page=True)
    assert tab.axe() == []

    with page.expect_download() as download:
        ended.get_by_role("button", name=re.compile("Export as JSON")).click()
    saved = tmp_path / "export.json"
    download.value.save_as(saved)
    exported = json.loads(saved.read_text())
    assert [e["initiator"] for e in exported["endings"]] == ["policy"]
    assert exported["feedback"][0]["comment"] == ENDING_COMMENT

    # the seeded week holds three more endings over explosives; the time filter leaves today's
    expect(queue.locator("li.queue-item").filter(has_text="explosives")).to_have_count(4)
    recent = (datetime.now() - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M")
    page.get_by_label("From", exact=True).fill(recent)
    page.get_by_label("Action", exact=True).select_option("end")
    page.get_by_label("Category", exact=True).select_option("explosives")
    page.get_by_role("button", name="Apply filters").click()
    expect(queue.locator("li.queue-item")).to_have_count(1)
    expect(queue.locator("li.queue-item")).to_contain_text(ENDING_COMMENT)
    expect(page.locator(".tile").first).to_contain_text("1turns decided")
    page.get_by_label("Category", exact=True).select_option("self_harm")
    page.get_by_role("button", name="Apply filters").click()
    expect(queue.locator("li.queue-item")).to_have_count(0)
    tab.shot("dashboard-filtered")


def test_a_non_admin_is_told_the_dashboard_needs_an_admin_key(tab: Tab) -> None:
    tab.sign_in("alice", "/review")
    expect(
        tab.page.get_by_role("heading", name="This dashboard needs an admin key")
    ).to_be_visible()
