"""Customer state at any (customer, time): the exact feature values the Feast views hold at that moment.

The same computation writes the weekly snapshot tables, the event-driven view rows and the state the true
response is evaluated on, so the ground truth and the point-in-time features can never disagree.
"""

from __future__ import annotations

import numpy as np

from nextbest.core.features import REQUEST_TS, request_time_features
from nextbest.world.config import DAY
from nextbest.world.events import CHANNELS, History
from nextbest.world.population import Population
from nextbest.world.timeline import EventIndex

Columns = dict[str, np.ndarray]


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _last_ts(index: EventIndex, cust: np.ndarray, t: np.ndarray) -> np.ndarray:
    found, ts = index.last(cust, t)
    return np.where(found, ts.astype(np.float64), np.nan)


class StateComputer:
    """Indexes the history once; :meth:`at` then answers any batch of (customer, time) queries."""

    def __init__(self, pop: Population, history: History, origin: int) -> None:
        self.pop = pop
        h = history
        self.orders = EventIndex(
            h.orders["customer_id"],
            h.orders["ts"],
            origin,
            amount=h.orders["amount"],
            coupon=h.orders["coupon_used"],
        )
        self.sessions = EventIndex(h.sessions["customer_id"], h.sessions["ts"], origin, app=h.sessions["is_app"])
        self.carts = EventIndex(h.carts["customer_id"], h.carts["ts"], origin, value=h.carts["cart_value"])
        t = h.tickets
        self.ticket_table = t
        self.tickets_opened = EventIndex(t["customer_id"], t["opened_ts"], origin)
        self.tickets_by_severity = [
            (
                s,
                EventIndex(t["customer_id"][t["severity"] == s], t["opened_ts"][t["severity"] == s], origin),
                EventIndex(t["customer_id"][t["severity"] == s], t["closed_ts"][t["severity"] == s], origin),
            )
            for s in (3, 2, 1)
        ]
        c = h.consents
        self.consents = {
            ch: EventIndex(
                c["customer_id"][c["channel"] == ch],
                c["ts"][c["channel"] == ch],
                0,
                opt_in=c["opt_in"][c["channel"] == ch],
            )
            for ch in CHANNELS
        }
        k = h.contacts
        self.contacts = EventIndex(k["customer_id"], k["ts"], origin)
        self.contacts_by_channel = {
            ch: EventIndex(
                k["customer_id"][k["channel"] == ch],
                k["ts"][k["channel"] == ch],
                origin,
                opened=k["opened"][k["channel"] == ch],
            )
            for ch in CHANNELS
        }

    def at(self, customer_id: np.ndarray, t: np.ndarray) -> Columns:
        """Every view feature (NaN where a value does not exist) for each (customer, time) pair."""
        cust = np.asarray(customer_id, dtype=np.int64)
        t = np.broadcast_to(np.asarray(t, dtype=np.int64), cust.shape)
        row = cust - 1
        p = self.pop
        out: Columns = {
            "age": p.age[row],
            "region": p.region[row],
            "tier": p.tier[row],
            "app_user": p.app_user[row],
            "signup_ts": p.signup_ts[row],
        }
        o = self.orders
        n180 = o.count(cust, t, 180 * DAY)
        out.update(
            orders_30d=o.count(cust, t, 30 * DAY),
            orders_90d=o.count(cust, t, 90 * DAY),
            orders_180d=n180,
            revenue_90d=np.round(o.total("amount", cust, t, 90 * DAY), 2),
            aov_180d=np.round(_ratio(np.round(o.total("amount", cust, t, 180 * DAY), 2), n180), 2),
            coupon_order_share_180d=_ratio(o.total("coupon", cust, t, 180 * DAY), n180),
            last_order_ts=_last_ts(o, cust, t),
        )
        email = self.contacts_by_channel["email"]
        out.update(
            sessions_7d=self.sessions.count(cust, t, 7 * DAY),
            sessions_30d=self.sessions.count(cust, t, 30 * DAY),
            app_sessions_30d=self.sessions.total("app", cust, t, 30 * DAY).astype(np.int64),
            carts_abandoned_30d=self.carts.count(cust, t, 30 * DAY),
            email_open_rate_90d=_ratio(email.total("opened", cust, t, 90 * DAY), email.count(cust, t, 90 * DAY)),
        )
        found_cart, cart_value = self.carts.last(cust, t, "value")
        last_cart = _last_ts(self.carts, cust, t)
        last_order = out["last_order_ts"]
        out.update(
            cart_open=(found_cart & ~(last_order >= last_cart)).astype(np.int64),
            last_cart_abandoned_ts=last_cart,
            last_cart_value=np.where(found_cart, cart_value, np.nan),
        )
        open_total = np.zeros(cust.shape, np.int64)
        max_sev = np.zeros(cust.shape, np.int64)
        for severity, opened, closed in self.tickets_by_severity:
            n_open = opened.count(cust, t, int(t.max()) + 1) - closed.count(cust, t, int(t.max()) + 1)
            open_total += n_open
            max_sev = np.where((max_sev == 0) & (n_open > 0), severity, max_sev)
        out.update(
            open_tickets=open_total,
            max_open_severity=max_sev,
            last_ticket_opened_ts=_last_ts(self.tickets_opened, cust, t),
        )
        for ch in CHANNELS:
            found, value = self.consents[ch].last(cust, t, "opt_in")
            out[f"{ch}_opt_in"] = np.where(found, value, 0).astype(np.int64)
        out.update(
            contacts_7d=self.contacts.count(cust, t, 7 * DAY),
            contacts_30d=self.contacts.count(cust, t, 30 * DAY),
            email_contacts_30d=email.count(cust, t, 30 * DAY),
            sms_contacts_30d=self.contacts_by_channel["sms"].count(cust, t, 30 * DAY),
            push_contacts_30d=self.contacts_by_channel["push"].count(cust, t, 30 * DAY),
            last_contact_ts=_last_ts(self.contacts, cust, t),
        )
        return out

    def open_ticket_ids(self, customer_id: np.ndarray, t: np.ndarray) -> np.ndarray:
        """The ``id:severity;...`` list of tickets open at t: what real-time ticket events update."""
        import pandas as pd

        queries = pd.DataFrame({"q": np.arange(customer_id.size), "customer_id": customer_id, "t": t})
        tickets = pd.DataFrame(self.ticket_table)
        m = queries.merge(tickets, on="customer_id")
        m = m[(m["opened_ts"] <= m["t"]) & (m["closed_ts"] > m["t"])].sort_values(["q", "ticket_id"])
        joined = (m["ticket_id"].astype(str) + ":" + m["severity"].astype(str)).groupby(m["q"]).agg(";".join)
        out = np.full(customer_id.size, "", dtype=object)
        out[joined.index.to_numpy()] = joined.to_numpy()
        return out


def with_request_features(state: Columns, t: np.ndarray | int) -> Columns:
    """State plus the request-time features a decision at time ``t`` would see."""
    out = dict(state)
    out.update(request_time_features(state, np.asarray(t, dtype=np.float64)))
    out[REQUEST_TS] = np.asarray(t, dtype=np.int64)
    return out
