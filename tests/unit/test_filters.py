"""filters: include_ops, drop_ttl_deletes and exclude_attributes, applied per table in one place."""

from __future__ import annotations

from bridge.config import TableConfig
from bridge.filters import filter_events
from tests.change_events import change


def test_default_filters_keep_every_event_unchanged():
    events = [change(1), change(2, op="u"), change(3, op="d"), change(4, op="d", ttl_expired=True)]
    assert filter_events(events, TableConfig(name="Phones")) == events


def test_include_ops_keeps_only_the_listed_operations_in_order():
    events = [change(1), change(2, op="u"), change(3, op="d"), change(4, op="u")]
    kept = filter_events(events, TableConfig(name="Phones", include_ops=("u", "d")))
    assert [e.position.sequence_number[-1] for e in kept] == ["2", "3", "4"]


def test_drop_ttl_deletes_drops_only_deletes_made_by_ttl():
    events = [change(1, op="d", ttl_expired=True), change(2, op="d"), change(3, op="u")]
    kept = filter_events(events, TableConfig(name="Phones", drop_ttl_deletes=True))
    assert [(e.op, e.ttl_expired) for e in kept] == [("d", False), ("u", False)]


def test_exclude_attributes_removes_them_from_before_and_after_but_not_from_keys():
    event = change(1, op="u", extra={"Email": "a@b.c", "Phone": "555"})
    (kept,) = filter_events([event], TableConfig(name="Phones", exclude_attributes=("Email", "Phone", "Company")))
    assert kept.after == {"Model": "X", "Size": 1} and kept.before == {"Model": "X", "Size": 0}
    assert kept.keys == {"Company": "Acme", "Model": "X"}
    assert event.after["Email"] == "a@b.c"  # the original event is untouched (frozen)


def test_exclude_attributes_leaves_a_missing_side_missing():
    (kept,) = filter_events([change(1, op="d")], TableConfig(name="Phones", exclude_attributes=("Size",)))
    assert kept.after is None and kept.before == {"Company": "Acme", "Model": "X"}
