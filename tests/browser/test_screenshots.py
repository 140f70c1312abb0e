"""Every page at 1280 px and at phone width. Saved to ``$ALERTYARD_SCREENSHOTS_DIR`` when set
(``docs/images`` is refreshed that way, see docs/console.md), else to a temporary directory;
either way each page must render without an error status and without scrolling sideways."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

import pytest
from playwright.async_api import Browser, Page

from tests.browser.conftest import Stack
from tests.browser.test_console import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow]

WIDTHS = {"desktop": (1280, 800), "phone": (390, 844)}
_TOO_WIDE = """() => {
  const limit = document.documentElement.clientWidth;
  if (document.documentElement.scrollWidth <= limit) return [];
  return [...document.querySelectorAll("main *")]
    .filter((el) => el.getBoundingClientRect().right > limit + 1)
    .slice(0, 5)
    .map((el) => `${el.tagName}.${el.className} ${Math.round(el.getBoundingClientRect().right)}`);
}"""
"""The elements that stick out on the right, when the page scrolls sideways."""


async def _new_token_page(page: Page, stack: Stack) -> str:
    await page.goto(stack.console + "/settings/tokens")
    await page.select_option("#kind", "team")
    await page.fill("input[name=name]", "search-pager")
    await page.select_option("select[name=team]", "search")
    await page.fill("input[name=description]", "the search team's pager bridge")
    await page.get_by_role("button", name="Create token").click()
    await page.wait_for_url("**/settings/tokens/*?new=1")
    return page.url.split("?")[0]


@pytest.fixture
def out(tmp_path: Path) -> Path:
    directory = Path(os.environ.get("ALERTYARD_SCREENSHOTS_DIR") or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.mark.parametrize("layout", sorted(WIDTHS))
async def test_every_page_renders(browser: Browser, stack: Stack, layout: str, out: Path) -> None:
    width, height = WIDTHS[layout]
    context = await browser.new_context(viewport={"width": width, "height": height})
    page = await context.new_page()

    async def shot(name: str, path: str | None = None) -> None:
        if path is not None:
            response = await page.goto(stack.console + path)
            assert response is not None
            assert response.status < 400 or name == "error", (path, response.status)
        wide = await page.evaluate(_TOO_WIDE)
        assert not wide, f"{name} scrolls sideways at {width} px: {wide}"
        # The 50-row list is very long on a phone: its first screens say enough there.
        whole = not (layout == "phone" and name == "alerts")
        await page.screenshot(path=out / f"console-{name}-{layout}.png", full_page=whole)

    await shot("signin", "/signin")
    await context.close()
    context = await browser.new_context(viewport={"width": width, "height": height})
    page = await sign_in(context, stack, stack.admin_token)
    problems: list[str] = []  # CSP violations and script errors: the pages must cause none
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    alert = quote(stack.alert_ids[3], safe="")
    await shot("alerts", "/alerts")
    await shot("alert", f"/alerts/{alert}")
    await shot("explain", f"/alerts/{alert}/explain")
    await shot("rules", "/rules")
    await page.goto(stack.console + "/rules/explain")
    await page.get_by_role("button", name="Explain").click()
    await page.locator(".verdict").wait_for()
    await shot("playground")
    await shot("tokens", "/settings/tokens")
    token_url = await _new_token_page(page, stack)
    await shot("token-secret")
    await page.goto(token_url + "/revoke")
    await shot("revoke")
    await shot("users", "/settings/users")
    await shot("teams", "/settings/teams")
    await shot("audit", "/audit")
    await shot("error", "/alerts/no-such-alert")
    await context.close()
    assert [p for p in problems if "404" not in p] == []
