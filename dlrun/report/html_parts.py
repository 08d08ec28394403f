"""The HTML report's building blocks, shared by its sections (html.py, html_searches.py)."""

from __future__ import annotations

import html


def escape(value) -> str:
    return html.escape(str(value), quote=True)


def section(anchor: str, title: str, body: str) -> str:
    return f"<section id='{anchor}'><h2>{title}</h2>{body}</section>"


def figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{escape(caption)}</figcaption></figure>" if svg else ""
