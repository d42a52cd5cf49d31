"""Every portal page as its users see it on a phone (issue 17, item 6): anonymous visitors, a vendor's
engineer and administrator, the authority's reviewer and a buyer, in zh-hans and in English, at 390 CSS
pixels wide. No page may scroll sideways (the document is no wider than the viewport), and axe-core
(the copy shipped by axe-playwright-python, evaluated in the page: nothing is fetched) finds no
critical accessibility violation. One browser for the whole sweep; each role logs in once (a session
made on the server, set as a cookie)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser import BROWSER_MARKS, chromium

WIDTH = 390  # an iPhone 12-15's CSS width: the narrowest phone the issue names
LANGUAGES = {"zh-hans": "zh-CN", "en": "en"}

pytestmark = [*BROWSER_MARKS, pytest.mark.slow]


def axe_source() -> str:
    import axe_playwright_python

    return (Path(axe_playwright_python.__file__).parent / "axe.min.js").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def browser():
    with chromium() as launched:
        yield launched


def session_cookie(user, live_server) -> list[dict]:
    from django.conf import settings
    from django.test import Client

    if user is None:
        return []
    client = Client()
    client.force_login(user)
    value = client.cookies[settings.SESSION_COOKIE_NAME].value
    return [{"name": settings.SESSION_COOKIE_NAME, "value": value, "url": live_server.url}]


def test_every_page_fits_390_px_and_has_no_critical_accessibility_violation(
    portal_pages, browser, live_server
):
    site = portal_pages
    script = axe_source()
    problems: list[str] = []
    serious: list[str] = []
    visited = 0
    external: list[str] = []  # nothing may come from the internet
    cookies = {user: session_cookie(user, live_server) for user in site}  # before Playwright's calls
    for language, accept in LANGUAGES.items():
        for user, paths in site.items():
            context = browser.new_context(
                base_url=live_server.url,
                viewport={"width": WIDTH, "height": 844},
                locale=accept,
                extra_http_headers={"Accept-Language": accept},
            )
            context.add_cookies(cookies[user])
            page = context.new_page()
            page.set_default_timeout(15_000)
            page.on(
                "request",
                lambda request: (
                    None
                    if request.url.startswith((live_server.url, "data:"))
                    else external.append(request.url)
                ),
            )
            who = getattr(user, "username", "anonymous")
            for path in paths:
                response = page.goto(path)
                where = f"{language} {who} {path}"
                if response is None or response.status != 200:
                    problems.append(f"{where}: HTTP {response and response.status}")
                    continue
                assert page.evaluate("document.documentElement.lang") == language, where
                width = page.evaluate("document.scrollingElement.scrollWidth")
                if width > WIDTH:
                    wide = page.evaluate(
                        """(limit) => [...document.querySelectorAll('body *')]
                        .filter(e => e.getBoundingClientRect().right > limit + 0.5
                                && !e.closest('.scroll, [data-scroll-region]'))
                        .slice(0, 4).map(e => e.tagName + '.' + e.className
                                + ' ' + Math.round(e.getBoundingClientRect().right))""",
                        WIDTH,
                    )
                    problems.append(f"{where}: {width} px wide ({'; '.join(wide)})")
                if not page.evaluate("() => typeof window.axe !== 'undefined'"):
                    page.evaluate(script)  # through the DevTools protocol: the page's CSP still holds
                violations = page.evaluate(
                    """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
                    .map(v => ({id: v.id, impact: v.impact,
                                nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))"""
                )
                for violation in violations:
                    line = f"{where}: {violation['id']} ({violation['impact']}) at {violation['nodes']}"
                    if violation["impact"] == "critical":
                        problems.append(line)
                    elif violation["impact"] == "serious":
                        serious.append(line)
                visited += 1
            context.close()
    assert external == [], external
    print(f"{visited} pages checked; serious (not failing) axe findings:", *serious, sep="\n  ")
    assert visited >= 2 * 40
    assert problems == [], "\n".join(problems)
