"""Hand-made `ChangeEvent`s for sink and filter tests (what normalize would produce from stream records)."""

from __future__ import annotations

from bridge.normalize import ChangeEvent, Position

STREAM_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/Phones/stream/2026-11-28T00:00:00.000"


def change(
    sequence: int,
    company: str = "Acme",
    op: str = "c",
    table: str = "Phones",
    size: int = 1,
    ttl_expired: bool = False,
    extra: dict | None = None,
) -> ChangeEvent:
    """Change number `sequence` of item (`company`, "X"); `size` lands in `after` (or `before` for deletes)."""
    keys = {"Company": company, "Model": "X"}
    item = {**keys, "Size": size, **(extra or {})}
    before = None if op == "c" else {**item, "Size": size - 1} if op == "u" else item
    after = None if op == "d" else item
    return ChangeEvent(
        op=op,
        table=table,
        keys=keys,
        before=before,
        after=after,
        position=Position(STREAM_ARN, "shardId-00000001", f"{sequence:021d}"),
        event_id=f"event-{sequence}",
        approximate_creation_ms=1_795_000_000_000 + sequence,
        ttl_expired=ttl_expired,
        view_type="NEW_AND_OLD_IMAGES",
        region="us-east-1",
    )
