"""The blast-radius guard in a real browser against the embedded demo (with a limit of 3 leavers an
hour instead of 50, so a handful of events trips it): the overview shows the held batch loudly with
its size and first events, and an operator's confirm lets every held case finish."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect

from tests.browser.test_console import Demo, browser, run_demo, shot, sign_in, wait_for  # noqa: F401

pytestmark = pytest.mark.slow
PEOPLE = [f"user0{n:02d}" for n in range(5)]


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    yield from run_demo(tmp_path_factory.mktemp("guard-demo"), LEAVER_GUARD_MAX_LEAVERS="3")


def test_a_wave_of_leavers_waits_at_the_guard_until_an_operator_confirms(guarded: Demo, browser: Browser) -> None:  # noqa: F811
    events = [
        guarded.send(
            {
                "id": f"wave-{p}",
                "type": "user.terminated",
                "occurred_at": "2026-11-20T17:00:00Z",
                "user": {"username": p},
            }
        )
        for p in PEOPLE
    ]

    def states() -> list[str]:
        return [c["state"] for e in events for c in guarded.event(e)["cases"]]  # type: ignore[union-attr,index]

    wait_for(lambda: states().count("planned") == 2 * len(guarded.event(events[0])["cases"]), "the held cases")  # type: ignore[arg-type]
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, guarded, guarded.secret("ops-token"))
    page.goto(guarded.url)
    banners = page.locator("section.guard-held")
    expect(banners.first).to_contain_text("2 leavers")
    expect(banners.first).to_contain_text(events[3])
    shot(page, "guard")
    held = banners.count()
    assert held == len(guarded.event(events[0])["cases"])  # type: ignore[arg-type]  # one per demo target
    for _ in range(held):
        page.get_by_label("reason for Confirm: remove their access").first.fill("a real reorg")
        page.get_by_role("button", name="Confirm: remove their access").first.click()
        expect(page.get_by_role("status")).to_contain_text("confirm guard")
    wait_for(lambda: set(states()) == {"done"}, "every case done after the confirm")
    assert "GUARD HELD" not in guarded.leaver("attention", "--url", guarded.url)
    page.close()
