"""Contact history → the ``history`` map that guardrail rules read (frequency caps, cooldowns, ignore streaks).

The decision log provides one customer's past contacts as rows ``(timestamp, action_id, channel, outcome)``:
a ``sent`` row for every action served (the control ``no_action`` is not a contact and is skipped), plus
feedback rows (``impression``, ``click``, ``conversion``, ``ignored``) for the same action and channel. The
scope is the customer: every count below is across all of that customer's contacts.

Definitions (documented in docs/rules.md):

* a **contact** is a ``sent`` row at or before ``now``; rows after ``now`` are ignored, so a replayed
  decision sees exactly the history it saw then;
* feedback belongs to the latest ``sent`` row of the same action and channel at or before it;
* a contact is **engaged** when it has a ``click`` or ``conversion``; an ``impression`` alone is not
  engagement;
* a contact is **ignored** when it is not engaged and either has an explicit ``ignored`` row or was sent
  more than ``ignore_after_hours`` (72 h) before ``now``; a younger contact without feedback is **pending**;
* ``ignored_streak[channel]`` counts ignored contacts on that channel from the most recent backwards,
  skipping pending ones, until the first engaged contact, walking at most the channel's latest
  ``STREAK_CONTACTS`` (16) contacts: a longer streak is reported as at most 16 (rules compare streaks with small
  numbers), and the read behind it stays small.

Contacts in the same second are ordered by their exact send time, then decision id (how the log returns them).

The service does not read a customer's whole history per request: the decision log keeps running counts per
channel and day (cumulated per hour), the latest send per channel and action, and the contacts as a compact
table (``nextbest/io/decision_log/history.py``), so it returns a :class:`ContactSummary` (per-channel counts per window,
the latest contact per action, and the rows the ignored streak walks) and :meth:`HistoryBuilder.summarize`
turns it into the same map :meth:`HistoryBuilder.build` makes from every row. The cost of a decision then does
not grow with the history.

``build`` is one pass over the rows in plain Python (faster than numpy at the tens of rows a customer has) and
pure: the same rows and ``now`` always give the same map.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

OUTCOMES = ("sent", "impression", "click", "conversion", "ignored")
ENGAGED = frozenset({"click", "conversion"})
IGNORE_AFTER_HOURS = 72.0
WINDOWS: tuple[tuple[str, int], ...] = (("24h", 86_400), ("7d", 7 * 86_400), ("30d", 30 * 86_400))
HISTORY_FIELDS: tuple[str, ...] = (
    *(f"contacts_{w}" for w, _ in WINDOWS),
    *(f"channel_{w}" for w, _ in WINDOWS),
    "days_since_action",
    "ignored_streak",
)
History = dict[str, object]
#: How many of a channel's latest contacts the ignored streak walks (see the module docstring).
STREAK_CONTACTS = 16
#: Spans of the log's running counts (seconds): a row per day, cumulated per hour.
HOUR, DAY = 3_600, 86_400
_OUTCOME_SET = frozenset(OUTCOMES)


class Contact(NamedTuple):
    ts: int  # Unix seconds
    action_id: str
    channel: str
    outcome: str


@dataclass(frozen=True)
class HistoryBuilder:
    """Builds ``history`` maps for one catalog: every catalog channel is present in the per-channel maps
    (0 by default) so rules can index them without ``has()``."""

    channels: tuple[str, ...]
    control: str = "no_action"
    ignore_after_hours: float = IGNORE_AFTER_HOURS
    streak_contacts: int = STREAK_CONTACTS

    def empty(self) -> History:
        """The history of a customer never contacted."""
        zeros = dict.fromkeys(self.channels, 0)
        out: History = {f"contacts_{w}": 0 for w, _ in WINDOWS}
        out.update({f"channel_{w}": dict(zeros) for w, _ in WINDOWS})
        out["days_since_action"] = {}
        out["ignored_streak"] = dict(zeros)
        return out

    def build(self, contacts: Iterable[Contact | tuple[int, str, str, str]], now: int) -> History:
        """The history map at ``now`` from one customer's contact rows (any order)."""
        control = self.control
        rows = []
        for ts, action, channel, outcome in contacts:
            if outcome not in _OUTCOME_SET:
                raise ValueError(f"unknown contact outcome {outcome!r}; expected one of {list(OUTCOMES)}")
            if ts <= now and action != control:
                rows.append((int(ts), action, channel, outcome))
        # Oldest first; at equal times the send precedes its feedback.
        rows.sort(key=lambda r: (r[0], r[3] != "sent"))
        return self._scan(rows, int(now))

    def build_columns(
        self, ts: Sequence[int], action_ids: Sequence[str], channels: Sequence[str], outcomes: Sequence[str], now: int
    ) -> History:
        """Columnar variant (as a log query returns them)."""
        return self.build(zip(ts, action_ids, channels, outcomes, strict=True), now)

    def summarize(self, summary: ContactSummary) -> History | None:
        """The map :meth:`build` makes from every row of the summarized window; None when the customer has no
        contact in it (no action was sent)."""
        if not summary.latest:
            return None
        now = summary.bounds.now
        out = self.empty()
        windows = [(f"contacts_{w}", out[f"channel_{w}"]) for w, _ in WINDOWS]
        totals = [0, 0, 0]
        for channel, counts in summary.counts.items():
            for j, n in enumerate(counts):
                if n:
                    per_channel: dict[str, int] = windows[j][1]  # type: ignore[assignment]
                    per_channel[channel] = n
                    totals[j] += n
        for (name, _), total in zip(windows, totals, strict=True):
            out[name] = total
        latest = sorted(summary.latest.items(), key=lambda kv: -kv[1])  # newest first, as build inserts them
        out["days_since_action"] = {a: (now - int(ts)) / 86_400.0 for a, ts in latest}
        recent = sorted(summary.recent, key=_walk_order)
        out["ignored_streak"] = self._streaks(recent, now)
        return out

    def _scan(self, rows: list[tuple[int, str, str, str]], now: int) -> History:
        (w1, s1), (w2, s2), (w3, s3) = WINDOWS
        totals = [0, 0, 0]
        per_channel: list[dict[str, int]] = [dict.fromkeys(self.channels, 0) for _ in WINDOWS]
        since: dict[str, float] = {}
        for ts, action, channel, outcome in reversed(rows):
            if outcome != "sent":
                continue
            age = now - ts
            for j, span in enumerate((s1, s2, s3)):
                if age < span:
                    totals[j] += 1
                    per_channel[j][channel] = per_channel[j].get(channel, 0) + 1
            if action not in since:
                since[action] = age / 86_400.0
        return {
            f"contacts_{w1}": totals[0],
            f"contacts_{w2}": totals[1],
            f"contacts_{w3}": totals[2],
            f"channel_{w1}": per_channel[0],
            f"channel_{w2}": per_channel[1],
            f"channel_{w3}": per_channel[2],
            "days_since_action": since,
            "ignored_streak": self._streaks(rows, now),
        }

    def _streaks(self, rows: Sequence[tuple[int, str, str, str] | RecentRow], now: int) -> dict[str, int]:
        """``ignored_streak`` from rows in walk order (oldest first), walked newest first."""
        streak = dict.fromkeys(self.channels, 0)
        walked: dict[str, int] = {}
        limit = self.streak_contacts
        done: set[str] = set()
        engaged: set[tuple[str, str]] = set()  # feedback seen (walking backwards) since the next send
        flagged: set[tuple[str, str]] = set()
        ignore_after = self.ignore_after_hours * 3600.0
        for row in reversed(rows):
            ts, action, channel, outcome = row[0], row[1], row[2], row[3]
            key = (action, channel)
            if outcome != "sent":
                if outcome in ENGAGED:
                    engaged.add(key)
                elif outcome == "ignored":
                    flagged.add(key)
                continue
            if channel in done:
                continue
            was_engaged, was_flagged = key in engaged, key in flagged
            engaged.discard(key)
            flagged.discard(key)
            walked[channel] = n = walked.get(channel, 0) + 1
            if was_engaged or n >= limit:
                done.add(channel)
            if not was_engaged and (was_flagged or now - ts > ignore_after):
                streak[channel] = streak.get(channel, 0) + 1
        return streak


def _walk_order(row: RecentRow) -> tuple[int, bool, float, str]:
    return row[0], row[3] != "sent", row[4], row[5]


def floor_to(t: float, span: int) -> int:
    """The start of the ``span``-second bucket holding time ``t``."""
    return math.floor(t / span) * span


class Bounds(NamedTuple):
    """What a history at ``now`` covers: contacts sent in ``[since, until)`` (``until = now + 1``: rows with
    ``int(ts) <= now``), and for each window the start of its range, ``starts[j] = max(until - span, since)``
    (``now - int(ts) < span``), then ``until`` itself as a fourth point."""

    now: int
    since: float
    until: int
    points: tuple[float, float, float, float]

    @classmethod
    def at(cls, now: int, since: float) -> Bounds:
        until = int(now) + 1
        starts = [max(float(until - span), float(since)) for _, span in WINDOWS]
        return cls(int(now), float(since), until, (starts[0], starts[1], starts[2], float(until)))


#: ``(int ts, action, channel, outcome, send time, decision id)``: a contact or feedback row with what orders
#: rows of the same second (feedback after sends; sends by exact time, then decision id).
RecentRow = tuple[int, str, str, str, float, str]


@dataclass
class ContactSummary:
    """What the decision log reads for one history, bounded whatever the customer's history holds: per channel,
    its contacts in each window (``counts[channel] = (24h, 7d, 30d)``, from the log's running counts); per
    action, the send time of its latest contact in ``[since, until)`` (``latest``); and the ``recent`` rows a
    streak walks: per channel, its contacts in ``[since, until)`` back to where the walk stops (its latest
    ``STREAK_CONTACTS``, or fewer when a click or conversion ends the walk sooner) and the channel's ``click``,
    ``conversion`` and ``ignored`` rows since then."""

    bounds: Bounds
    counts: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    latest: dict[str, float] = field(default_factory=dict)
    recent: list[RecentRow] = field(default_factory=list)
