"""Server-rendered SVG charts: a bar per minute, no script, no library."""

from __future__ import annotations

from html import escape

from markupsafe import Markup


def bars(values: list[float], *, title: str, width: int = 360, height: int = 60, color: str = "#2f6fdf",
         bad: list[float] | None = None) -> Markup:
    """One bar per value (oldest left); ``bad`` (same length) stacked on top in red."""
    bad = bad or [0.0] * len(values)
    top = max([v + b for v, b in zip(values, bad, strict=True)] + [1.0])
    step = width / max(len(values), 1)
    parts = [f'<svg class="chart" role="img" viewBox="0 0 {width} {height + 14}" width="{width}" '
             f'height="{height + 14}" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>']
    for i, (value, extra) in enumerate(zip(values, bad, strict=True)):
        x = i * step
        h = height * value / top
        parts.append(f'<rect x="{x:.1f}" y="{height - h:.1f}" width="{max(step - 1, 1):.1f}" height="{h:.1f}" '
                     f'fill="{color}"><title>{value:g}</title></rect>')
        if extra:
            e = height * extra / top
            parts.append(f'<rect x="{x:.1f}" y="{height - h - e:.1f}" width="{max(step - 1, 1):.1f}" '
                         f'height="{e:.1f}" fill="#d33"><title>{extra:g}</title></rect>')
    parts.append(f'<line x1="0" y1="{height}" x2="{width}" y2="{height}" stroke="#999" stroke-width="0.5"/>')
    parts.append(f'<text x="0" y="{height + 12}" font-size="10" fill="#666">-{len(values)} min</text>')
    parts.append(f'<text x="{width}" y="{height + 12}" font-size="10" fill="#666" text-anchor="end">'
                 f'now · max {top:g}/min</text></svg>')
    return Markup("".join(parts))  # noqa: S704 - numbers and escape()d text only
