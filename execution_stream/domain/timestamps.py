"""Timestamps as the seed stores them: UTC, microseconds always present, no offset."""

from datetime import UTC, datetime, timedelta

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%f"
UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_SECOND = timedelta(seconds=1)


def as_utc(moment: datetime) -> datetime:
    """Return `moment` as an aware UTC datetime; a naive one is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def format_timestamp(moment: datetime) -> str:
    # strftime rather than isoformat(): isoformat drops ".000000" when microseconds are 0.
    return as_utc(moment).strftime(TIMESTAMP_FORMAT)


def epoch_seconds(moment: datetime) -> int:
    """Whole seconds since the Unix epoch, floored (exact integer arithmetic, no float rounding)."""
    return (as_utc(moment) - UNIX_EPOCH) // _ONE_SECOND


def parse_timestamp(text: str) -> datetime:
    """Parse an ISO 8601 timestamp into an aware UTC datetime; no offset means UTC."""
    return as_utc(datetime.fromisoformat(text))
