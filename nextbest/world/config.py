"""Parameters of a synthetic customer world. The same seed and ``as_of`` give the same world, byte for byte."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DAY = 86_400
WEEK = 7 * DAY


def _now_floor_minute() -> datetime:
    return datetime.now(UTC).replace(second=0, microsecond=0)


class WorldConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    customers: int = Field(20_000, ge=100, le=5_000_000)
    seed: int = Field(7, ge=0)
    as_of: datetime = Field(default_factory=_now_floor_minute)
    history_days: int = Field(220, ge=120, le=1_000, description="Days of raw event history before as_of.")
    snapshot_weeks: int = Field(26, ge=14, le=104, description="Weekly feature snapshots before as_of.")
    waves_weeks_ago: tuple[int, ...] = Field(
        (13, 11, 9, 7, 5, 3), description="Campaign waves, in weeks before as_of (each customer gets one)."
    )
    conversion_window_days: int = Field(7, ge=1, le=13)

    @field_validator("as_of")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).replace(microsecond=0)

    @model_validator(mode="after")
    def _waves_inside_history(self) -> WorldConfig:
        if not self.waves_weeks_ago:
            raise ValueError("waves_weeks_ago: at least one campaign wave is needed")
        if min(self.waves_weeks_ago) * 7 <= self.conversion_window_days:
            raise ValueError("waves_weeks_ago: every wave's conversion window must close before as_of")
        if max(self.waves_weeks_ago) > self.snapshot_weeks:
            raise ValueError("waves_weeks_ago: waves must fall on weekly snapshots")
        if self.snapshot_weeks * 7 + 30 > self.history_days:
            raise ValueError("history_days must cover the snapshots plus a 30-day window")
        return self

    @property
    def as_of_ts(self) -> int:
        return int(self.as_of.timestamp())

    @property
    def start_ts(self) -> int:
        return self.as_of_ts - self.history_days * DAY

    def snapshot_times(self) -> list[int]:
        """Weekly snapshot times, oldest first, ending exactly at ``as_of``."""
        return [self.as_of_ts - k * WEEK for k in range(self.snapshot_weeks, -1, -1)]

    def wave_times(self) -> list[int]:
        return [self.as_of_ts - k * WEEK for k in sorted(self.waves_weeks_ago, reverse=True)]
