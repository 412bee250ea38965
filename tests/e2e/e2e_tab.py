"""What a browser test holds: the server it talks to, and a page with its console errors, its
screenshots and the accessibility check."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
AXE = HERE / "node_modules" / "axe-core" / "axe.min.js"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@dataclass
class Server:
    url: str
    keys: dict[str, str]


@dataclass
class Tab:
    """A page with its console errors, and the helpers the journeys share."""

    page: Any
    server: Server
    artifacts: Path
    errors: list[str] = field(default_factory=list)

    def sign_in(self, who: str, path: str = "/") -> None:
        self.page.goto(self.server.url + path)
        self.page.get_by_label("API key").fill(self.server.keys[who])
        self.page.get_by_role("button", name="Sign in").click()
        self.page.get_by_text(f"Signed in as {self.account(who)}").wait_for()
        self.page.locator("body[data-ready=true]").wait_for()

    @staticmethod
    def account(who: str) -> str:
        return {"admin": "trust-and-safety"}.get(who, who)

    def shot(self, name: str, *, full_page: bool = False) -> None:
        """A screenshot of the page as it is, at desktop width and at 390 px."""
        for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
            self.page.set_viewport_size(size)
            self.page.wait_for_timeout(100)
            # the chat scrolls to its newest message when it renders; do the same after resizing
            self.page.evaluate(
                "document.querySelector('.transcript')?.lastElementChild"
                "?.scrollIntoView({block: 'end'})"
            )
            wide = self.page.evaluate("document.documentElement.scrollWidth")
            assert wide <= size["width"], f"{name}: the page is {wide} px wide at {size['width']}"
            path = str(self.artifacts / f"{name}-{label}.png")
            self.page.screenshot(path=path, full_page=full_page)
        self.page.set_viewport_size(DESKTOP)

    def axe(self) -> list[dict[str, Any]]:
        """axe-core's serious and critical violations on the page as it is."""
        if not self.page.evaluate("typeof window.axe !== 'undefined'"):
            # evaluate() runs in the page without a <script> element, so the page's CSP stands
            self.page.evaluate(AXE.read_text(encoding="utf-8") + "\n;undefined")
        results: dict[str, Any] = self.page.evaluate(
            "axe.run(document, {resultTypes: ['violations']})"
        )
        return [
            {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]]}
            for v in results["violations"]
            if v["impact"] in ("serious", "critical")
        ]
