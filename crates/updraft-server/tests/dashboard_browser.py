"""Drives the /admin dashboard in headless Chromium (Debian's, through
Playwright's library): run by tests/it/dashboard.rs against a real server.

    python3 dashboard_browser.py BASE_URL TOKEN SCREENSHOT_DIR

Prints one JSON object with what it saw; the Rust test asserts on it, and
every step here asserts too (a failure exits non-zero with the reason).
"""
import json
import os
import sys

from playwright.sync_api import sync_playwright

base, token, shots = sys.argv[1], sys.argv[2], sys.argv[3]
release = base + "/admin/releases/kuzflow/1.1.0"
seen = {}


def shot(page, name):
    page.screenshot(path=os.path.join(shots, name), full_page=True)


with sync_playwright() as p:
    browser = p.chromium.launch(
        executable_path=os.environ.get("UPDRAFT_CHROMIUM", "/usr/bin/chromium"),
        args=["--headless", "--no-sandbox", "--lang=en-US"],
    )

    # Without a session: every page goes to the sign-in page, a change is 401.
    anonymous = browser.new_context(locale="en-US")
    page = anonymous.new_page()
    seen["anonymous"] = {}
    for path in ["/admin", "/admin/audit", "/admin/releases/kuzflow/1.1.0",
                 "/admin/releases/kuzflow/1.1.0/confirm?action=halt"]:
        response = page.goto(base + path)
        assert page.url == base + "/admin/sign-in", (path, page.url)
        seen["anonymous"][path] = response.status
    response = page.request.post(release + "/halt", form={"csrf": "x"})
    seen["anonymous_change"] = response.status
    anonymous.close()

    context = browser.new_context(locale="en-US", viewport={"width": 1100, "height": 800})
    page = context.new_page()
    page.goto(base + "/admin")
    shot(page, "admin-sign-in.png")
    page.fill("#token", "not-the-token-0123456789")
    page.click("button[type=submit]")
    seen["wrong_token_alert"] = page.inner_text("[role=alert]")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/admin")
    cookie = [c for c in context.cookies() if c["name"] == "updraft_admin"][0]
    seen["cookie"] = {"httpOnly": cookie["httpOnly"], "sameSite": cookie["sameSite"],
                      "path": cookie["path"], "expires": cookie["expires"]}
    seen["home_rows"] = page.locator("tbody tr").count()
    shot(page, "admin-releases.png")

    page.click("text=1.1.0")
    page.wait_for_url(release)
    page.wait_for_selector("#adoption[data-drawn]")
    seen["chart_series"] = int(page.get_attribute("#adoption", "data-drawn"))
    seen["chart_canvas"] = page.locator("#adoption canvas").count()
    seen["chart_legend"] = page.inner_text("#adoption .u-legend")
    seen["installs"] = page.inner_text("#installs")
    seen["failure_rate"] = page.inner_text("#failure-rate")
    shot(page, "admin-release.png")

    # A change without the CSRF token, and with a wrong one, is refused.
    seen["no_csrf"] = page.request.post(release + "/halt", form={}).status
    seen["wrong_csrf"] = page.request.post(release + "/halt", form={"csrf": "0" * 64}).status

    # Halt, with the confirmation step.
    page.click('text="Halt"')
    page.wait_for_url(release + "/confirm?action=halt")
    shot(page, "admin-confirm.png")
    page.click("#confirm")
    page.wait_for_url(release)
    seen["after_halt"] = page.inner_text(".badge")
    page.click('text="Resume"')
    page.click("#confirm")
    page.wait_for_url(release)
    seen["after_resume"] = page.inner_text(".badge")
    page.fill("#percent", "40")
    page.click("form.inline button")
    page.click("#confirm")
    page.wait_for_url(release)
    seen["percent"] = page.inner_text("#rollout-percent")

    page.goto(base + "/admin/audit")
    seen["audit"] = [row.inner_text() for row in page.locator("#audit tbody tr").all()]
    shot(page, "admin-audit.png")

    page.goto(release + "?lang=zh-CN")
    page.wait_for_selector("#adoption[data-drawn]")
    seen["zh_heading"] = page.inner_text("main h2 >> nth=0")
    seen["zh_controls"] = page.locator("text=发布控制").count()
    shot(page, "admin-release-zh.png")
    page.goto(base + "/admin/audit")
    seen["zh_sticks"] = page.inner_text("main h1")

    # JavaScript off: everything but the chart works.
    nojs = browser.new_context(java_script_enabled=False, locale="en-US")
    nojs.add_cookies([{"name": "updraft_admin", "value": [c for c in context.cookies() if c["name"] == "updraft_admin"][0]["value"],
                       "url": base + "/admin"}])
    page = nojs.new_page()
    page.goto(release)
    page.click('text="Halt"')
    page.click("#confirm")
    page.wait_for_url(release)
    seen["nojs_halt"] = page.inner_text(".badge")
    page.click('text="Resume"')
    page.click("#confirm")
    page.wait_for_url(release)
    seen["nojs_resume"] = page.inner_text(".badge")
    browser.close()

print(json.dumps(seen, ensure_ascii=False))
