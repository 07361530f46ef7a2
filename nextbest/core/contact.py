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
  skipping pending ones, until the first engaged contact.

This runs on every request, so it is one pass over the rows in plain Python (faster than numpy at the tens
of rows one customer has) and pure: the same rows and ``now`` always give the same map.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
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

    def _scan(self, rows: list[tuple[int, str, str, str]], now: int) -> History:
        (w1, s1), (w2, s2), (w3, s3) = WINDOWS
        totals = [0, 0, 0]
        per_channel: list[dict[str, int]] = [dict.fromkeys(self.channels, 0) for _ in WINDOWS]
        since: dict[str, float] = {}
        streak = dict.fromkeys(self.channels, 0)
        done: set[str] = set()
        engaged: set[tuple[str, str]] = set()  # feedback seen (walking backwards) since the next send
        flagged: set[tuple[str, str]] = set()
        ignore_after = self.ignore_after_hours * 3600.0
        for ts, action, channel, outcome in reversed(rows):
            key = (action, channel)
            if outcome != "sent":
                if outcome in ENGAGED:
                    engaged.add(key)
                elif outcome == "ignored":
                    flagged.add(key)
                continue
            age = now - ts
            for j, span in enumerate((s1, s2, s3)):
                if age < span:
                    totals[j] += 1
                    per_channel[j][channel] = per_channel[j].get(channel, 0) + 1
            if action not in since:
                since[action] = age / 86_400.0
            was_engaged, was_flagged = key in engaged, key in flagged
            engaged.discard(key)
            flagged.discard(key)
            if channel in done:
                continue
            if was_engaged:
                done.add(channel)
            elif was_flagged or age > ignore_after:
                streak[channel] = streak.get(channel, 0) + 1
        return {
            f"contacts_{w1}": totals[0],
            f"contacts_{w2}": totals[1],
            f"contacts_{w3}": totals[2],
            f"channel_{w1}": per_channel[0],
            f"channel_{w2}": per_channel[1],
            f"channel_{w3}": per_channel[2],
            "days_since_action": since,
            "ignored_streak": streak,
        }
