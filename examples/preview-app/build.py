"""Render the app's page as a static site in dist/ (what the S3 preview uploads)."""

from pathlib import Path

from app import STYLE, page

out = Path(__file__).with_name("dist")
out.mkdir(exist_ok=True)
(out / "index.html").write_text(page(), encoding="utf-8")
(out / "style.css").write_text(STYLE, encoding="utf-8")
print(f"wrote {out / 'index.html'} and {out / 'style.css'}")
