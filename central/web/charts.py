"""Server-drawn inline SVG charts: no chart library, no script, allowed by the strict CSP.

Only numbers and our own day labels go into the markup; colours are presentation
attributes (not ``style``), which the Content-Security-Policy's ``style-src 'self'`` allows.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime, timedelta

from markupsafe import Markup, escape

from central.storage.interface import Sample
from central.timestamps import from_iso
from central.web.i18n import BERLIN

WIDTH, HEIGHT = 700, 160
_LEFT, _RIGHT, _TOP, _BOTTOM = 44, 8, 10, 22
_WEEKDAYS = {"de": ("Mo", "Di", "Mi", "Do", "Fr", "Sa", "So"), "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")}


def power_chart(samples: Sequence[Sample], now: datetime, lang: str, label: str, days: int = 7) -> Markup:
    """A line chart of watts over the last ``days`` days; shaded where the charging window was.

    ``samples`` are one cabinet's points (``value`` W, ``flag`` 1 in the window), oldest first.
    A gap of more than an hour between points breaks the line (no data is not drawn as zero).
    """
    start = now - timedelta(days=days)
    span = (now - start).total_seconds()
    plot_w, plot_h = WIDTH - _LEFT - _RIGHT, HEIGHT - _TOP - _BOTTOM
    points = [(from_iso(s.at), s.value, s.flag) for s in samples]
    points = [(t, v, f) for t, v, f in points if t >= start]
    top = max([v for _, v, _ in points if v is not None] + [50.0]) * 1.1

    def x(moment: datetime) -> float:
        return _LEFT + plot_w * (moment - start).total_seconds() / span

    def y(value: float) -> float:
        return _TOP + plot_h * (1 - value / top)

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(label)}" '
        'xmlns="http://www.w3.org/2000/svg">',
        f'<rect x="{_LEFT}" y="{_TOP}" width="{plot_w}" height="{plot_h}" fill="#fafafa" stroke="#ccc"/>',
    ]
    # Charging window: shade between consecutive points that are both inside it.
    for (t1, _, f1), (t2, _, f2) in itertools.pairwise(points):
        if f1 == 1 and f2 == 1 and t2 - t1 <= timedelta(hours=1):
            parts.append(
                f'<rect x="{x(t1):.1f}" y="{_TOP}" width="{max(x(t2) - x(t1), 0.5):.1f}" height="{plot_h}" '
                'fill="#dbeafe"/>'
            )
    for fraction in (0.0, 0.5, 1.0):
        tick = top / 1.1 * fraction
        parts.append(
            f'<text x="{_LEFT - 4}" y="{y(tick) + 4:.1f}" text-anchor="end" font-size="11" fill="#555">'
            f"{tick:.0f} W</text>"
        )
    midnight = now.astimezone(BERLIN).replace(hour=0, minute=0, second=0, microsecond=0)
    for back in range(days):
        day = midnight - timedelta(days=back)
        if day < start:
            break
        parts.append(f'<line x1="{x(day):.1f}" x2="{x(day):.1f}" y1="{_TOP}" y2="{_TOP + plot_h}" stroke="#ddd"/>')
        name = _WEEKDAYS.get(lang, _WEEKDAYS["de"])[day.weekday()]
        parts.append(
            f'<text x="{x(day) + 3:.1f}" y="{HEIGHT - 6}" font-size="11" fill="#555">{name} {day:%d.%m.}</text>'
        )
    line: list[str] = []
    segments: list[list[str]] = [line]
    previous: datetime | None = None
    for moment, value, _ in points:
        if value is None or (previous is not None and moment - previous > timedelta(hours=1)):
            line = []
            segments.append(line)
        if value is not None:
            line.append(f"{x(moment):.1f},{y(value):.1f}")
        previous = moment
    for segment in segments:
        if len(segment) > 1:
            parts.append(f'<polyline points="{" ".join(segment)}" fill="none" stroke="#1d4ed8" stroke-width="1.5"/>')
        elif segment:
            cx, cy = segment[0].split(",")
            parts.append(f'<circle cx="{cx}" cy="{cy}" r="2" fill="#1d4ed8"/>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - built from numbers and our own escaped label only
