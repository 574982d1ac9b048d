"""The bus: every event reaches the store writer; other subscribers get summaries, the kinds of event they asked for
and bounded queues."""

from __future__ import annotations

from proxycap.capture.bus import Bus, Committed, FlowEvent, LogEvent


def test_only_the_writer_holds_bodies_and_a_full_queue_lags() -> None:
    bus = Bus()
    writer = bus.subscribe("writer", with_state=True)
    ui = bus.subscribe("ui", limit=2)
    state = {"response": {"content": b"x" * 1000}}
    for i in range(3):
        bus.publish(FlowEvent("response", f"id{i}", {"n": i}, state))
    bus.publish(LogEvent(0.0, "WARNING", "hello"))

    got = writer.drain()
    assert [e.state for e in got[:3]] == [state] * 3 and isinstance(got[3], LogEvent)
    seen = ui.drain()
    assert [(e.flow_id, e.state) for e in seen] == [("id0", None), ("id1", None)]
    assert ui.take_lagged() and not ui.take_lagged()
    bus.publish(FlowEvent("request", "id9", {}))
    assert [e.flow_id for e in ui.drain()] == ["id9"]
    ui.close()
    bus.publish(FlowEvent("request", "id10", {}))
    assert ui.drain() == [] and len(writer.drain()) == 2


def test_the_backlog_counts_bodies_held_not_bodies_streamed_past() -> None:
    bus = Bus()
    writer = bus.subscribe("writer", with_state=True)
    gigabyte = 1 << 30
    streamed = {"request": {"content": b""}, "response": {"content": None}}  # passed through, not captured
    bus.publish(FlowEvent("response", "a", {"response_size": gigabyte, "streamed": "response"}, streamed))
    assert bus.backlog() < 4096
    bus.publish(FlowEvent("response", "b", None, {**streamed, "request": {"content": b"x" * 10_000}}))
    assert 10_000 < bus.backlog() < 20_000
    assert len(writer.drain()) == 2


def test_summaries_are_wanted_while_a_subscriber_reading_them_listens() -> None:
    """Only then does the proxy's thread make them; a summary-less event never reaches such a subscriber."""
    bus = Bus()
    writer = bus.subscribe("writer", with_state=True)
    ui = bus.subscribe("ui", limit=10, kinds=(Committed, LogEvent))  # it reads rows from the store
    assert not bus.wants_summaries
    printer = bus.subscribe("printer", limit=10)
    assert bus.wants_summaries
    bus.publish(FlowEvent("response", "a", None, {"response": {"content": b"x"}}))  # made before the printer came
    assert printer.drain() == [] and printer.take_lagged()  # it reloads from the store
    bus.publish(FlowEvent("response", "b", {"n": 1}, {}))
    assert [e.summary for e in printer.drain()] == [{"n": 1}]
    assert ui.drain() == []
    printer.close()
    assert not bus.wants_summaries
    assert [e.flow_id for e in writer.drain()] == ["a", "b"]


def test_subscribers_get_only_the_kinds_they_asked_for() -> None:
    bus = Bus()
    writer = bus.subscribe("writer", with_state=True, kinds=(FlowEvent, LogEvent))
    ui = bus.subscribe("ui", limit=10, kinds=(Committed, LogEvent))
    bus.publish(FlowEvent("response", "a", None, {}))
    bus.publish(Committed([("a", 1, "done")]))
    bus.publish(LogEvent(0.0, "WARNING", "hello"))
    assert [type(e) for e in writer.drain()] == [FlowEvent, LogEvent]
    assert [type(e) for e in ui.drain()] == [Committed, LogEvent]
