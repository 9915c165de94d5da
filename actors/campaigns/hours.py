"""Calling hours in the callee's local time, from the number's time zones.

A number that spans several zones (a US area code across a zone line) may be dialled only when
the moment is inside the window in every one of them: the most restrictive reading.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as number_zones

from actors.campaigns.models import CallingHours

_UNKNOWN = "Etc/Unknown"
_SEARCH_DAYS = 9  # a window opens within a week (at least one weekday is allowed)


def zones_for(number: str | None, fallback: str) -> tuple[ZoneInfo, ...]:
    """The number's zones; ``fallback`` for no number or one phonenumbers cannot place."""
    names: tuple[str, ...] = ()
    if number:
        try:
            names = tuple(number_zones.time_zones_for_number(phonenumbers.parse(number, None)))
        except phonenumbers.NumberParseException:
            names = ()
    names = tuple(n for n in names if n != _UNKNOWN) or (fallback,)
    zones = []
    for name in names:
        try:
            zones.append(ZoneInfo(name))
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return tuple(zones) or (ZoneInfo(fallback),)


def _hm(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def _inside_zone(hours: CallingHours, zone: ZoneInfo, at: float) -> bool:
    local = datetime.fromtimestamp(at, zone)
    now = local.time().replace(tzinfo=None)
    return local.weekday() in hours.days and _hm(hours.start) <= now < _hm(hours.end)


def inside(hours: CallingHours, zones: tuple[ZoneInfo, ...], at: float) -> bool:
    return all(_inside_zone(hours, zone, at) for zone in zones)


def _local_instant(day: date, at: time, zone: ZoneInfo) -> float:
    """``day at`` in ``zone`` as epoch seconds; a wall time skipped by a DST jump counts from
    the first real minute after it."""
    naive = datetime.combine(day, at)
    aware = naive.replace(tzinfo=zone)
    back = aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
    if back != naive:  # in the spring-forward gap
        aware = (naive + timedelta(hours=1)).replace(tzinfo=zone)
    return aware.timestamp()


def next_opening(hours: CallingHours, zones: tuple[ZoneInfo, ...], after: float) -> float:
    """The first moment at or after ``after`` when every zone is inside the window.

    Where several windows overlap, their common part starts at ``after`` or at one zone's
    opening, so those instants are the only candidates."""
    if inside(hours, zones, after):
        return after
    candidates: set[float] = set()
    for zone in zones:
        first = datetime.fromtimestamp(after, zone).date()
        for offset in range(_SEARCH_DAYS):
            moment = _local_instant(first + timedelta(days=offset), _hm(hours.start), zone)
            if moment > after:
                candidates.add(moment)
    for moment in sorted(candidates):
        if inside(hours, zones, moment):
            return moment
    raise ValueError("these calling hours never overlap across the number's time zones")
