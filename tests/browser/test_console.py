"""The console in a real browser (Debian's Chromium through Playwright) against the real
tokens, router and audit services: every flow of issue #12, item 8."""

from __future__ import annotations

import re
import uuid
from urllib.parse import unquote, urlsplit

import httpx
import pytest
import yaml
from playwright.async_api import Browser, BrowserContext, Page, expect

from services.console.security import CONTENT_SECURITY_POLICY
from shared.auth import TOKEN_RE
from tests._waiting import eventually
from tests.browser.conftest import HOSTILE_SUMMARY, Stack

pytestmark = [pytest.mark.browser, pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow]


async def sign_in(context: BrowserContext, stack: Stack, token: str) -> Page:
    page = await context.new_page()
    await page.goto(stack.console + "/signin")
    await page.fill("#token", token)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/alerts")
    return page


def listed_ids(hrefs: list[str | None]) -> list[str]:
    return [unquote(urlsplit(h or "").path.removeprefix("/alerts/")) for h in hrefs]


async def page_ids(page: Page) -> list[str]:
    links = page.locator("table.alerts td.summary a")
    hrefs = [await links.nth(i).get_attribute("href") for i in range(await links.count())]
    return listed_ids(hrefs)


async def test_sign_in_and_out(browser: Browser, stack: Stack) -> None:
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(stack.console + "/alerts")
    assert urlsplit(page.url).path == "/signin"  # no session: sent to sign in

    await page.fill("#token", "ayu_" + "x" * 50)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator(".error")).to_contain_text("cannot sign in")

    await page.fill("#token", stack.admin_token)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/alerts")
    await expect(page.get_by_role("heading", name="Alerts")).to_be_visible()
    assert stack.admin_token not in page.url
    assert stack.admin_token not in await page.content()
    cookie = next(c for c in await context.cookies() if c["name"] == "alertyard_session")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert stack.admin_token not in cookie["value"]

    await page.keyboard.press("Tab")  # the first stop is the skip link, then the page
    assert await page.evaluate("document.activeElement.textContent") == "Skip to content"
    await page.keyboard.press("Enter")
    assert await page.evaluate("document.activeElement.id") == "main"

    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url("**/signin?ended=bye")
    await page.fill("#token", stack.admin_token)  # by keyboard alone: type, then Enter
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/alerts")
    await page.get_by_role("button", name="Sign out").focus()
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/signin?ended=bye")
    await page.goto(stack.console + "/alerts")
    assert urlsplit(page.url).path == "/signin"
    await context.close()


async def test_130_alerts_show_as_50_50_30(browser: Browser, stack: Stack) -> None:
    context = await browser.new_context()
    page = await sign_in(context, stack, stack.admin_token)
    expected = stack.alert_ids
    assert await page_ids(page) == expected[:50]
    first = page.locator("table.alerts tbody tr").nth(1)
    await expect(first).to_contain_text("payments-checkout")  # rule names, not ids
    await expect(first).to_contain_text("checkout")

    for number, rows in ((2, expected[50:100]), (3, expected[100:130])):
        await page.get_by_role("link", name="Next →").click()
        await expect(page.locator(".pager")).to_contain_text(f"Page {number}")  # loaded
        assert await page_ids(page) == rows
    await expect(page.get_by_role("link", name="Next →")).to_have_count(0)  # the last page

    for number, rows in ((2, expected[50:100]), (1, expected[:50])):
        await page.get_by_role("link", name="← Previous").click()
        await expect(page.locator(".pager")).to_contain_text(f"Page {number}")
        assert await page_ids(page) == rows

    await page.select_option("select[name=status]", "resolved")
    await page.get_by_role("button", name="Apply").click()
    await page.wait_for_url("**/alerts?*status=resolved*")
    statuses = await page.locator("table.alerts tbody .status").all_inner_texts()
    assert statuses
    assert set(statuses) == {"resolved"}
    await context.close()


async def test_search_by_id_and_explain(browser: Browser, stack: Stack) -> None:
    context = await browser.new_context()
    page = await sign_in(context, stack, stack.admin_token)
    wanted = stack.alert_ids[70]
    await page.fill("#alert-id", wanted)
    await page.get_by_role("button", name="Find").click()
    await page.wait_for_url(f"**/alerts/{wanted}")
    facts = page.locator("dl.facts")
    await expect(facts).to_contain_text(wanted)
    await expect(facts).to_contain_text("payments-checkout")
    await expect(facts).to_contain_text("Ruleset version")
    await expect(facts).to_contain_text(".alerts")  # consumed from topic/partition/offset
    await expect(facts).to_contain_text(".team.payments")

    await page.get_by_role("link", name="Explain against the current ruleset").click()
    await expect(page.locator(".verdict")).to_contain_text("payments-checkout")
    matched = page.locator(".evaluated li.matched")
    await expect(matched).to_contain_text("payments-checkout")
    await expect(matched.locator("tr.pass")).to_have_count(2)  # service is one of, env is not

    await page.fill("#alert-id", "no-such-alert")
    await page.get_by_role("button", name="Find").click()
    await expect(page.locator("h1")).to_contain_text("404")
    await expect(page.locator("main")).to_contain_text("not visible to your token")
    await context.close()


async def test_hostile_summary_renders_as_text_and_runs_nothing(
    browser: Browser, stack: Stack
) -> None:
    context = await browser.new_context()
    page = await sign_in(context, stack, stack.admin_token)
    dialogs: list[str] = []
    page.on("dialog", lambda d: dialogs.append(d.message))
    link = page.locator("table.alerts td.summary a").first
    assert await link.inner_text() == HOSTILE_SUMMARY
    await expect(page.locator("table.alerts img, table.alerts svg, main script")).to_have_count(0)
    for path in (f"/alerts/{stack.hostile_id}", f"/alerts/{stack.hostile_id}/explain"):
        await page.goto(stack.console + path)
        await expect(page.locator("h1, .summary-title").first).to_be_visible()
        assert HOSTILE_SUMMARY in await page.locator("main").inner_text()
        await expect(page.locator("main img, main svg, main script")).to_have_count(0)
        assert await page.evaluate("window.__pwned") is None
    assert dialogs == []
    await context.close()


async def test_team_token_secret_once_then_revoked_ends_its_session(
    browser: Browser, stack: Stack
) -> None:
    admin_context = await browser.new_context()
    admin = await sign_in(admin_context, stack, stack.admin_token)
    await admin.get_by_role("link", name="Tokens").click()
    name = f"payments-ci-{uuid.uuid4().hex[:6]}"
    await admin.select_option("#kind", "team")
    await admin.fill("input[name=name]", name)
    await admin.select_option("select[name=team]", "payments")
    await admin.get_by_role("button", name="Create token").click()
    await admin.wait_for_url("**/settings/tokens/*?new=1")
    token_id = unquote(urlsplit(admin.url).path.rsplit("/", 1)[1])
    secret = await admin.input_value("#secret")
    assert re.fullmatch(r"ayt_[A-Za-z0-9]{40,}", secret)
    await expect(admin.locator(".secret")).to_contain_text("shown this once")

    await admin.reload()
    await expect(admin.locator("#secret")).to_have_count(0)
    await expect(admin.locator("main")).to_contain_text("cannot be shown again")
    assert secret not in await admin.content()

    team_context = await browser.new_context()
    team = await sign_in(team_context, stack, secret)
    teams = await team.locator("table.alerts tbody td:nth-child(6)").all_inner_texts()
    assert len(teams) == 50
    assert {t.strip() for t in teams} == {"payments"}
    await team.goto(f"{stack.console}/alerts/{stack.hostile_id}")  # routed to search only
    await expect(team.locator("h1")).to_contain_text("404")

    await admin.goto(f"{stack.console}/settings/tokens/{token_id}")
    await admin.get_by_role("link", name="Revoke…").click()
    await expect(admin.locator("h1")).to_contain_text(f"Revoke “{name}”?")
    await admin.get_by_role("button", name="Yes, revoke it").click()
    await admin.wait_for_url("**/settings/tokens?done=revoked")
    row = admin.locator("table.tokens tr", has_text=name)
    await expect(row).to_contain_text("revoked")

    await team.goto(stack.console + "/alerts")
    assert urlsplit(team.url).path == "/signin"
    await expect(team.locator("main")).to_contain_text("the token it used was revoked")

    async def audited() -> bool:
        async with httpx.AsyncClient(base_url=stack.audit) as http:
            found = await http.get(
                "/v1/audit/events",
                params={"token_id": token_id},
                headers={"authorization": f"Bearer {stack.admin_token}"},
            )
        types = {r["event"]["type"] for r in found.json()["records"]}
        return {"token.created", "token.revoked"} <= types

    await eventually(audited, what="the audit log to hold the token's events")
    await admin.goto(f"{stack.console}/audit?token_id={token_id}")
    table = admin.locator("table.audit")
    await expect(table).to_contain_text("token.created")
    await expect(table).to_contain_text("token.revoked")
    await expect(admin.locator(".verify")).to_contain_text("Chain intact")
    await admin.goto(f"{stack.console}/audit")
    await expect(admin.locator("table.audit")).to_contain_text("token.created")
    await team_context.close()
    await admin_context.close()


async def test_headers_and_csrf_on_every_form(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.console, follow_redirects=False) as http:
        form = await http.get("/signin")
        assert form.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
        assert form.headers["x-frame-options"] == "DENY"
        assert form.headers["cache-control"] == "no-store"
        refused = await http.post("/signin", data={"token": stack.admin_token})
        assert refused.status_code == 403  # no double-submit value
        nonce = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert nonce is not None
        signed_in = await http.post(
            "/signin", data={"token": stack.admin_token, "csrf": nonce.group(1)}
        )
        assert signed_in.status_code == 303
        cookie = signed_in.headers["set-cookie"].lower()
        assert "httponly" in cookie
        assert "samesite=strict" in cookie
        page = await http.get("/settings/teams")
        assert page.status_code == 200
        assert stack.admin_token not in page.text
        for path, data in [
            ("/settings/teams", {"name": "sneaky"}),
            ("/rules/explain", {"alert_json": "{}"}),
            ("/signout", {}),
            ("/settings/users", {"email": "x@example.com", "role": "owner"}),
        ]:
            for csrf in (None, "forged"):
                sent = {**data, **({"csrf": csrf} if csrf else {})}
                answer = await http.post(path, data=sent)
                assert answer.status_code == 403, (path, csrf, answer.status_code)
        teams = await http.get("/settings/teams")
        assert "sneaky" not in teams.text
        assert (await http.get("/alerts")).status_code == 200  # still signed in


async def test_rules_are_edited_where_the_principal_may(browser: Browser, stack: Stack) -> None:
    admin_auth = {"authorization": f"Bearer {stack.admin_token}"}
    async with httpx.AsyncClient() as http:
        created = await http.post(
            stack.tokens + "/v1/tokens",
            json={"kind": "team", "name": "payments-rules", "team": "payments"},
            headers=admin_auth,
        )
        rules = (await http.get(stack.router + "/v1/rules", headers=admin_auth)).json()
    ids = {r["name"]: r["id"] for r in rules["rules"]}
    context = await browser.new_context()
    page = await sign_in(context, stack, created.json()["secret"])
    await page.get_by_role("link", name="Rules").click()
    ours = page.locator(f"#rule-{ids['payments-own']}")
    theirs = page.locator(f"#rule-{ids['search-everything']}")
    await expect(ours.get_by_role("link", name="Edit")).to_have_count(1)
    await expect(theirs.get_by_role("link", name="Edit")).to_have_count(0)
    await expect(theirs.get_by_role("button")).to_have_count(0)

    await ours.get_by_role("link", name="Edit").click()
    rule = yaml.safe_load(await page.input_value("#text"))
    rule["condition_groups"][0]["conditions"][0]["values"].append("ledger-v2")
    await page.fill("#text", yaml.safe_dump(rule))
    await page.get_by_role("button", name="Save").click()
    await page.wait_for_url("**/rules?done=saved*")
    await expect(ours).to_contain_text("ledger-v2")
    # payments-checkout is payments' but an org rule (an admin wrote it): no edit offered
    org_rule = page.locator(f"#rule-{ids['payments-checkout']}")
    await expect(org_rule.get_by_role("link", name="Edit")).to_have_count(0)

    await page.goto(f"{stack.console}/rules/{ids['search-everything']}/edit")  # reading is fine
    theirs_rule = yaml.safe_load(await page.input_value("#text"))
    theirs_rule["destinations"] = ["payments"]  # taking another team's alerts: refused
    await page.fill("#text", yaml.safe_dump(theirs_rule))
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator(".error")).to_contain_text("forbidden")
    await page.fill("#text", "name: [unclosed")
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator(".error")).to_contain_text("not valid YAML")
    await context.close()


async def test_rotation_shows_the_new_secret_once_with_a_grace(
    browser: Browser, stack: Stack
) -> None:
    context = await browser.new_context()
    page = await sign_in(context, stack, stack.admin_token)
    await page.goto(stack.console + "/settings/tokens")
    await page.select_option("#kind", "team")
    await page.fill("input[name=name]", "search-rotated")
    await page.select_option("select[name=team]", "search")
    await page.get_by_role("button", name="Create token").click()
    await page.wait_for_url("**/settings/tokens/*?new=1")
    first = await page.input_value("#secret")
    await page.select_option("select[name=grace]", "5 minutes")
    await page.get_by_role("button", name="Rotate").click()
    await expect(page.locator("#secret")).not_to_have_value(first)
    second = await page.input_value("#secret")
    assert second.startswith("ayt_")
    await expect(page.locator("dl.facts")).to_contain_text("the old secret works until")
    await page.reload()
    await expect(page.locator("#secret")).to_have_count(0)
    await context.close()


async def test_deactivating_a_user_ends_their_session(browser: Browser, stack: Stack) -> None:
    admin_context = await browser.new_context()
    admin = await sign_in(admin_context, stack, stack.admin_token)
    email = f"dev-{uuid.uuid4().hex[:6]}@example.com"
    await admin.goto(stack.console + "/settings/users")
    await admin.fill("input[name=email]", email)
    await admin.select_option("form.grid select[name=role]", "member")
    await admin.get_by_label("payments").check()
    await admin.get_by_role("button", name="Add user").click()
    await admin.wait_for_url("**/settings/users?done=user_created")
    await expect(admin.locator("table")).to_contain_text(email)

    await admin.goto(stack.console + "/settings/tokens")
    await admin.select_option("#kind", "user")
    await admin.fill("input[name=name]", "dev-laptop")
    await admin.select_option("select[name=user_id]", label=email)
    await admin.get_by_role("button", name="Create token").click()
    await admin.wait_for_url("**/settings/tokens/*?new=1")
    secret = await admin.input_value("#secret")
    assert secret.startswith("ayu_")

    member_context = await browser.new_context()
    member = await sign_in(member_context, stack, secret)
    await expect(member.locator(".identity")).to_contain_text("payments")
    await expect(member.get_by_role("link", name="Users")).to_have_count(0)  # not an admin

    await admin.goto(stack.console + "/settings/users")
    row = admin.locator("tr", has_text=email)
    await row.get_by_role("button", name="Deactivate").click()
    await admin.wait_for_url("**/settings/users?done=user_deactivated")
    await expect(admin.locator("tr", has_text=email)).to_contain_text("deactivated")

    await member.reload()
    assert urlsplit(member.url).path == "/signin"
    await expect(member.locator("main")).to_contain_text("your user was deactivated")
    await member_context.close()
    await admin_context.close()


async def test_no_service_logged_a_token(stack: Stack) -> None:
    """Runs last in this module: every token used above (sign-ins, created and revoked team
    tokens, the producer's) went through the services; none may appear in their logs."""
    logs = {path.name: path.read_text() for path in sorted(stack.logs.glob("*.log"))}
    assert set(logs) == {"tokens.log", "router.log", "audit.log", "console.log"}
    assert any("http_request" in text for text in logs.values())
    for name, text in logs.items():
        assert TOKEN_RE.search(text) is None, f"{name} holds a token"
        assert stack.admin_token not in text
