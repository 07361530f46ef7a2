"""Screenshots of the decision explorer and the analytics page of a running service (e.g. after ``make demo``).

    python scripts/screenshots.py --base http://127.0.0.1:3000 --customer 42 --channel email \\
        [--api-key KEY] [--whatif proposed.yaml] [--out docs/screenshots]

Uses Debian's chromium (``apt-get install -y chromium``) through Playwright; nothing is downloaded. Looking a
customer up records nothing, so this is safe against a live service. The committed screenshots come from the
browser test, which seeds a week of decisions first:
``NEXTBEST_SCREENSHOTS=docs/screenshots pytest tests/e2e/test_explorer_browser.py``.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="http://127.0.0.1:3000")
    parser.add_argument("--customer", type=int, required=True)
    parser.add_argument("--channel", default="any")
    parser.add_argument("--api-key", default=os.environ.get("NEXTBEST_SERVING__API_KEY"))
    parser.add_argument("--whatif", type=Path, help="A proposed rule file to show the what-if with.")
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()
    if not Path(args.chromium).is_file():
        raise SystemExit(f"error: no chromium at {args.chromium}: apt-get install -y chromium")

    from playwright.sync_api import expect, sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=args.chromium, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        page.goto(f"{args.base}/explorer")
        if args.api_key:
            page.fill("#api-key", args.api_key)
            page.dispatch_event("#api-key", "change")
        expect(page.locator("#channel option")).not_to_have_count(1)
        page.fill("#customer", str(args.customer))
        page.select_option("#channel", args.channel)
        if args.whatif:
            page.check("#whatif-on")
            page.fill("#whatif-yaml", args.whatif.read_text())
        page.click("#go")
        expect(page.locator("#result")).to_be_visible()
        page.screenshot(path=str(args.out / "explorer.png"), full_page=True)
        page.goto(f"{args.base}/analytics")
        expect(page.locator("body[data-loaded=true]")).to_have_count(1)
        page.screenshot(path=str(args.out / "analytics.png"), full_page=True)
        browser.close()
    print(f"wrote {args.out / 'explorer.png'} and {args.out / 'analytics.png'}")


if __name__ == "__main__":
    main()
