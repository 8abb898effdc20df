"""A ticket's life: called, served, recalled, skipped, transferred, held, cancelled."""



from queueing import Reason, Status, TimeNode, WindowState
from queueing.events import (
    Event,
    TicketAbandoned,
    TicketCalled,
    TicketCancelled,
    TicketFinished,
    TicketRecalled,
    TicketSkipped,
    TicketStepCompleted,
    TicketTransferred,
    WindowStateChanged,
)
from tests.engine_kit import Hall, only, refused


def types(events: list[Event]) -> list[str]:
    return [event.type for event in events]


def queue(hall: Hall, window_id: str) -> list[str]:
    return [ticket.number for ticket in hall.engine.waiting_list(window_id)]


def status(hall: Hall, ticket_id: str) -> Status:
    return hall.engine.ticket(ticket_id).status

# ------------------------------------------------------------------ the path


def test_a_ticket_goes_from_waiting_to_called_to_serving_to_finished() -> None:
    hall = Hall(logged_in=("W1",))
    ticket_id = hall.take("biz")
    assert status(hall, ticket_id) is Status.WAITING
    hall.call("W1")
    assert status(hall, ticket_id) is Status.CALLED
    assert hall.engine.ticket(ticket_id).window == "W1"
    hall.do("start", "W1")
    assert status(hall, ticket_id) is Status.SERVING
    hall.do("finish", "W1")
    assert status(hall, ticket_id) is Status.FINISHED
    assert hall.engine.current_ticket("W1") is None


def test_every_transition_stamps_a_time_node_with_its_window() -> None:
    hall = Hall(logged_in=("W1",))
    ticket_id = hall.take("biz")
    issued_at = hall.clock.now
    called_at = hall.clock.tick()
    hall.do("call_next", "W1")
    started_at = hall.clock.tick(2)
    hall.do("start", "W1")
    finished_at = hall.clock.tick(9)
    hall.do("finish", "W1")
    assert hall.engine.ticket(ticket_id).nodes == [
        TimeNode("issued", issued_at, None, "biz"),
        TimeNode("called", called_at, "W1", "biz"),
        TimeNode("started", started_at, "W1", "biz"),
        TimeNode("finished", finished_at, "W1", "biz"),
    ]


def test_the_called_event_names_ticket_window_staff_and_service() -> None:
    hall = Hall(logged_in=("W1",))
    ticket_id = hall.take("tax")
    hall.clock.tick()
    called = only(hall.do("call_next", "W1"), TicketCalled)
    assert (called.ticket_id, called.number, called.window_id) == (ticket_id, "B001", "W1")
    assert called.staff_id == "staff-W1"
    assert called.service_id == "tax"
    assert called.rule == "fifo"
    assert called.at == hall.clock.now


def test_the_finished_event_reports_the_time_since_service_started() -> None:
    hall = Hall(logged_in=("W1",))
    ticket_id = hall.take("biz")
    hall.call("W1")
    hall.clock.tick(3)
    hall.do("start", "W1")
    hall.clock.tick(7)
    finished = only(hall.do("finish", "W1"), TicketFinished)
    assert (finished.ticket_id, finished.window_id, finished.service_id) == (
        ticket_id,
        "W1",
        "biz",
    )
    assert finished.service_seconds == 7 * 60


def test_recall_increments_the_count_and_emits_ticket_recalled() -> None:
    hall = Hall(logged_in=("W1",))
    ticket_id = hall.take("biz")
    hall.call("W1")
    first = hall.do("recall", "W1")
    hall.clock.tick()
    second = hall.do("recall", "W1")
    assert types(first) == ["ticket.recalled"]  # the window stays "calling"
    recalled = only(second, TicketRecalled)
    assert (recalled.ticket_id, recalled.number, recalled.window_id) == (ticket_id, "A001", "W1")
    assert recalled.recalls == 2
    ticket = hall.engine.ticket(ticket_id)
    assert ticket.recalls == 2
    assert ticket.status is Status.CALLED
    assert [node.kind for node in ticket.nodes].count("recalled") == 2


def test_recall_of_a_ticket_in_service_is_refused() -> None:
    hall = Hall(logged_in=("W1",))
    hall.take("biz")
    hall.call("W1")
    hall.do("start", "W1")
    assert refused(hall, "recall", "W1") is Reason.WRONG_STATE


def test_start_without_a_ticket_in_hand_is_refused() -> None:
    hall = Hall(logged_in=("W1",))
    assert refused(hall, "start", "W1") is Reason.NO_CURRENT_TICKET


def test_finish_straight_from_called_starts_the_service_implicitly() -> None:
    hall = Hall(logged_in=("W1",))
    ticket_id = hall.take("biz")
    hall.call("W1")
    hall.clock.tick(5)
    events = hall.do("finish", "W1")
    assert types(events) == ["ticket.started", "ticket.finished", "window.state_changed"]
    kinds = [node.kind for node in hall.engine.ticket(ticket_id).nodes]
    assert kinds == ["issued", "called", "started", "finished"]
    assert status(hall, ticket_id) is Status.FINISHED


# ---------------------------------------------------------------- no-shows


def test_a_skipped_ticket_goes_back_behind_two_people() -> None:
    hall = Hall(logged_in=("W1",))
    first = hall.take("biz")
    for _ in range(3):
        hall.take("biz")
    hall.call("W1")
    skipped = only(hall.do("skip", "W1"), TicketSkipped)
    assert (skipped.ticket_id, skipped.window_id, skipped.skips) == (first, "W1", 1)
    assert status(hall, first) is Status.WAITING
    assert hall.engine.window_state("W1") is WindowState.IDLE
    assert queue(hall, "W1") == ["A002", "A003", "A001", "A004"]


def test_a_skipped_ticket_is_called_again_after_the_two_people_ahead() -> None:
    hall = Hall(logged_in=("W1",))
    for _ in range(4):
        hall.take("biz")
    hall.call("W1")
    hall.do("skip", "W1")
    called = []
    for _ in range(4):
        called.append(hall.number(hall.call("W1")))
        hall.do("finish", "W1")
    assert called == ["A002", "A003", "A001", "A004"]


def test_the_second_skip_abandons_the_ticket() -> None:
    hall = Hall(logged_in=("W1",))
    ticket_id = hall.take("biz")
    hall.call("W1")
    hall.do("skip", "W1")
    hall.call("W1")
    events = hall.do("skip", "W1")
    abandoned = only(events, TicketAbandoned)
    assert (abandoned.ticket_id, abandoned.window_id, abandoned.skips) == (ticket_id, "W1", 2)
    assert status(hall, ticket_id) is Status.ABANDONED
    assert queue(hall, "W1") == []
    assert hall.engine.window_state("W1") is WindowState.IDLE


def test_a_skip_when_fewer_than_two_wait_puts_the_ticket_last() -> None:
    hall = Hall(logged_in=("W1",))
    hall.take("biz")
    hall.take("biz")
    hall.call("W1")
    hall.do("skip", "W1")
    assert queue(hall, "W1") == ["A002", "A001"]


def test_a_skip_when_fewer_than_two_wait_puts_the_ticket_behind_an_earlier_skip() -> None:
    hall = Hall(logged_in=("W1",))
    first = hall.take("biz")
    second = hall.take("biz")
    hall.clock.tick()
    hall.do("call_ticket", "W1", second)
    hall.do("skip", "W1")  # A002 goes last: [A001, A002]
    assert hall.call("W1") == first
    hall.do("skip", "W1")  # one person waits: A001 must now go last
    assert queue(hall, "W1") == ["A002", "A001"]


# ---------------------------------------------------------------- transfers


def test_a_transfer_to_another_service_keeps_the_issue_time_and_issue_order_place() -> None:
    hall = Hall(logged_in=("W2", "W3"))
    hall.take("tax")
    moved = hall.take("biz")
    hall.take("tax")
    issued_at = hall.engine.ticket(moved).issued_at
    assert hall.call("W2") == moved
    hall.clock.tick(4)
    events = hall.do("transfer", "W2", to_service="tax")
    transferred = only(events, TicketTransferred)
    assert (transferred.ticket_id, transferred.from_window_id) == (moved, "W2")
    assert (transferred.service_id, transferred.to_window_id) == ("tax", None)
    ticket = hall.engine.ticket(moved)
    assert ticket.status is Status.WAITING
    assert ticket.service == "tax"
    assert ticket.number == "A001"
    assert ticket.issued_at == issued_at
    assert ticket.nodes[-1] == TimeNode("transferred", hall.clock.now, "W2", "tax")
    assert queue(hall, "W3") == ["B001", "A001", "B002"]
    assert hall.engine.window_state("W2") is WindowState.IDLE


def test_a_ticket_transferred_to_a_window_is_called_only_by_that_window() -> None:
    hall = Hall(logged_in=("W1", "W2"))
    moved = hall.take("biz")
    hall.call("W1")
    hall.do("transfer", "W1", to_window="W2")
    assert hall.engine.ticket(moved).target_window == "W2"
    assert queue(hall, "W1") == []
    assert queue(hall, "W2") == ["A001"]
    assert refused(hall, "call_ticket", "W1", moved) is Reason.NOT_SERVED_HERE
    assert refused(hall, "call_next", "W1") is Reason.NOTHING_WAITING
    assert hall.call("W2") == moved


def test_a_ticket_transferred_to_a_window_is_called_there_first() -> None:
    hall = Hall(logged_in=("W1", "W2"))
    hall.take("biz")
    hall.take("biz")
    moved = hall.take("biz")
    hall.clock.tick()
    hall.do("call_ticket", "W1", moved)
    hall.do("transfer", "W1", to_window="W2")
    hall.clock.tick()
    called = only(hall.do("call_next", "W2"), TicketCalled)
    assert called.ticket_id == moved
    assert called.rule == "transfers_first"


def test_a_transfer_to_a_window_and_a_service_at_once() -> None:
    hall = Hall(logged_in=("W1", "W2", "W3"))
    moved = hall.take("biz")
    hall.call("W2")
    hall.do("transfer", "W2", to_service="tax", to_window="W3")
    ticket = hall.engine.ticket(moved)
    assert (ticket.service, ticket.target_window) == ("tax", "W3")
    assert queue(hall, "W1") == []  # W1 serves tax, but the ticket went to W3 by name
    assert hall.call("W3") == moved


def test_a_transfer_to_a_window_that_does_not_serve_the_service_is_refused() -> None:
    hall = Hall(logged_in=("W1", "W3"))
    hall.take("biz")
    hall.call("W1")
    assert refused(hall, "transfer", "W1", to_window="W3") is Reason.NOT_SERVED_HERE


def test_a_transfer_to_an_unknown_service_is_refused() -> None:
    hall = Hall(logged_in=("W1",))
    hall.take("biz")
    hall.call("W1")
    assert refused(hall, "transfer", "W1", to_service="passport") is Reason.UNKNOWN_SERVICE


def test_a_transfer_without_a_service_or_a_window_is_refused() -> None:
    hall = Hall(logged_in=("W1",))
    hall.take("biz")
    hall.call("W1")
    assert refused(hall, "transfer", "W1") is Reason.BAD_REQUEST


def test_a_transfer_to_the_same_window_is_refused() -> None:
    hall = Hall(logged_in=("W1",))
    hall.take("biz")
    hall.call("W1")
    assert refused(hall, "transfer", "W1", to_window="W1") is Reason.BAD_REQUEST


# -------------------------------------------------------------------- holds


def test_hold_parks_the_citizen_and_frees_the_window() -> None:
    hall = Hall(logged_in=("W1",))
    held = hall.take("biz")
    hall.take("biz")
    hall.call("W1")
    hall.do("start", "W1")
    events = hall.do("hold", "W1")
    assert types(events) == ["ticket.held", "window.state_changed"]
    change = only(events, WindowStateChanged)
    assert (change.old, change.new) == ("serving", "idle")
    assert status(hall, held) is Status.HELD
    assert list(hall.engine.window("W1").held) == [held]
    assert hall.engine.window_state("W1") is WindowState.IDLE
    assert hall.number(hall.call("W1")) == "A002"


def test_a_released_ticket_waits_for_its_window_and_is_called_there_next() -> None:
    hall = Hall(logged_in=("W1", "W2"))
    held = hall.take("biz")
    hall.take("biz")
    hall.take("biz")
    hall.call("W1")
    hall.do("hold", "W1")
    hall.call("W1")  # A002
    hall.do("finish", "W1")
    events = hall.do("release", "W1", held)
    assert types(events) == ["ticket.released"]
    ticket = hall.engine.ticket(held)
    assert (ticket.status, ticket.target_window) == (Status.WAITING, "W1")
    assert hall.engine.window("W1").held == {}
    assert hall.number(hall.call("W2")) == "A003"  # the other window does not get it
    assert hall.call("W1") == held


def test_call_ticket_on_a_ticket_held_at_this_window_resumes_it() -> None:
    hall = Hall(logged_in=("W1",))
    held = hall.take("biz")
    hall.take("biz")
    hall.call("W1")
    hall.do("hold", "W1")
    hall.clock.tick()
    called = only(hall.do("call_ticket", "W1", held), TicketCalled)
    assert called.rule == "picked"
    assert status(hall, held) is Status.CALLED
    assert hall.engine.window("W1").held == {}
    assert hall.engine.window_state("W1") is WindowState.CALLING
    assert queue(hall, "W1") == ["A002"]


def test_a_ticket_held_at_one_window_cannot_be_called_by_another() -> None:
    hall = Hall(logged_in=("W1", "W2"))
    held = hall.take("biz")
    hall.call("W1")
    hall.do("hold", "W1")
    assert refused(hall, "call_ticket", "W2", held) is Reason.TICKET_NOT_WAITING


def test_release_of_a_ticket_not_held_at_that_window_is_refused() -> None:
    hall = Hall(logged_in=("W1", "W2"))
    held = hall.take("biz")
    waiting = hall.take("biz")
    hall.call("W1")
    hall.do("hold", "W1")
    assert refused(hall, "release", "W2", held) is Reason.TICKET_NOT_HELD
    assert refused(hall, "release", "W1", waiting) is Reason.TICKET_NOT_HELD


# ------------------------------------------------------------- named calls


def test_a_clerk_may_call_a_named_ticket_from_the_waiting_list() -> None:
    hall = Hall(logged_in=("W1",))
    hall.take("biz")
    hall.take("tax")
    named = hall.take("biz")
    hall.clock.tick()
    called = only(hall.do("call_ticket", "W1", named), TicketCalled)
    assert (called.ticket_id, called.rule) == (named, "picked")
    assert status(hall, named) is Status.CALLED
    assert queue(hall, "W1") == ["A001", "B001"]


def test_a_clerk_cannot_call_a_ticket_of_a_service_the_window_does_not_serve() -> None:
    hall = Hall(logged_in=("W2", "W3"))
    tax = hall.take("tax")
    assert refused(hall, "call_ticket", "W2", tax) is Reason.NOT_SERVED_HERE


def test_a_clerk_cannot_call_a_ticket_that_is_no_longer_waiting() -> None:
    hall = Hall(logged_in=("W1",))
    done = hall.take("biz")
    hall.call("W1")
    hall.do("finish", "W1")
    assert refused(hall, "call_ticket", "W1", done) is Reason.TICKET_NOT_WAITING


def test_a_clerk_cannot_call_an_unknown_ticket() -> None:
    hall = Hall(logged_in=("W1",))
    assert refused(hall, "call_ticket", "W1", "20261124-A999") is Reason.UNKNOWN_TICKET


# ------------------------------------------------------------------ cancels


def test_cancelling_a_waiting_ticket_takes_it_out_of_the_queue() -> None:
    hall = Hall(logged_in=("W1",))
    hall.take("biz")
    gone = hall.take("biz")
    hall.take("biz")
    events = hall.do("cancel", gone, reason="duplicate")
    cancelled = only(events, TicketCancelled)
    assert (cancelled.ticket_id, cancelled.reason) == (gone, "duplicate")
    assert types(events) == ["ticket.cancelled"]
    assert status(hall, gone) is Status.CANCELLED
    assert hall.engine.waiting_count("biz") == 2
    assert queue(hall, "W1") == ["A001", "A003"]


def test_cancelling_a_called_ticket_frees_the_window() -> None:
    hall = Hall(logged_in=("W1",))
    called = hall.take("biz")
    hall.call("W1")
    events = hall.do("cancel", called)
    assert types(events) == ["ticket.cancelled", "window.state_changed"]
    change = only(events, WindowStateChanged)
    assert (change.old, change.new, change.ticket_number) == ("calling", "idle", None)
    assert status(hall, called) is Status.CANCELLED
    assert hall.engine.current_ticket("W1") is None


def test_cancelling_a_held_ticket_removes_it_from_the_window() -> None:
    hall = Hall(logged_in=("W1",))
    held = hall.take("biz")
    hall.call("W1")
    hall.do("hold", "W1")
    hall.do("cancel", held)
    assert status(hall, held) is Status.CANCELLED
    assert hall.engine.window("W1").held == {}
    assert refused(hall, "release", "W1", held) is Reason.TICKET_NOT_HELD


def test_cancelling_a_finished_ticket_is_refused() -> None:
    hall = Hall(logged_in=("W1",))
    done = hall.take("biz")
    hall.call("W1")
    hall.do("finish", "W1")
    assert refused(hall, "cancel", done) is Reason.TICKET_ALREADY_ENDED


def test_cancelling_a_cancelled_ticket_is_refused() -> None:
    hall = Hall(logged_in=("W1",))
    gone = hall.take("biz")
    hall.do("cancel", gone)
    assert refused(hall, "cancel", gone) is Reason.TICKET_ALREADY_ENDED


# ------------------------------------------------------------------ packages


def test_a_package_ticket_is_served_service_by_service_under_one_number() -> None:
    hall = Hall(logged_in=("W2", "W3"))  # W2: biz only, W3: tax only
    package = hall.take("startup")
    assert hall.call("W2") == package
    hall.clock.tick(5)
    hall.do("start", "W2")
    hall.clock.tick(10)
    events = hall.do("finish", "W2")
    assert types(events) == ["ticket.step_completed", "window.state_changed"]
    step = only(events, TicketStepCompleted)
    assert (step.ticket_id, step.window_id) == (package, "W2")
    assert (step.service_id, step.next_service_id) == ("biz", "tax")
    assert step.service_seconds == 10 * 60
    ticket = hall.engine.ticket(package)
    assert (ticket.status, ticket.service, ticket.number) == (Status.WAITING, "tax", "K001")
    assert refused(hall, "call_next", "W2") is Reason.NOTHING_WAITING

    called = only(hall.do("call_next", "W3"), TicketCalled)
    assert (called.ticket_id, called.number, called.service_id) == (package, "K001", "tax")
    events = hall.do("finish", "W3")
    finished = only(events, TicketFinished)
    assert (finished.window_id, finished.service_id) == ("W3", "tax")
    assert "ticket.step_completed" not in types(events)
    assert status(hall, package) is Status.FINISHED
    nodes = [(n.kind, n.window, n.service) for n in hall.engine.ticket(package).nodes]
    assert nodes == [
        ("issued", None, "biz"),
        ("called", "W2", "biz"),
        ("started", "W2", "biz"),
        ("step_completed", "W2", "biz"),
        ("called", "W3", "tax"),
        ("started", "W3", "tax"),
        ("finished", "W3", "tax"),
    ]


def test_a_package_waits_for_its_next_service_by_its_issue_order() -> None:
    hall = Hall(logged_in=("W2", "W3"))
    package = hall.take("startup")
    hall.take("tax")
    hall.call("W2")
    hall.clock.tick(10)
    hall.do("finish", "W2")
    assert queue(hall, "W3") == ["K001", "B001"]
    assert hall.call("W3") == package


# ----------------------------------------------------------- windows refuse


def test_a_window_with_a_ticket_in_hand_refuses_to_call() -> None:
    hall = Hall(logged_in=("W1",))
    hall.take("biz")
    waiting = hall.take("biz")
    hall.call("W1")
    assert refused(hall, "call_next", "W1") is Reason.WINDOW_BUSY
    assert refused(hall, "call_ticket", "W1", waiting) is Reason.WINDOW_BUSY
    hall.do("start", "W1")
    assert refused(hall, "call_next", "W1") is Reason.WINDOW_BUSY


def test_a_paused_window_refuses_to_call() -> None:
    hall = Hall(logged_in=("W1", "W3"))
    waiting = hall.take("tax")
    hall.do("pause", "W1", "break")
    assert refused(hall, "call_next", "W1") is Reason.WINDOW_PAUSED
    assert refused(hall, "call_ticket", "W1", waiting) is Reason.WINDOW_PAUSED


def test_a_window_nobody_is_logged_in_to_refuses_to_call() -> None:
    hall = Hall(logged_in=("W1",))
    waiting = hall.take("biz")
    assert refused(hall, "call_next", "W2") is Reason.NOT_LOGGED_IN
    assert refused(hall, "call_ticket", "W2", waiting) is Reason.NOT_LOGGED_IN


def test_a_window_with_nothing_waiting_refuses_to_call() -> None:
    hall = Hall(logged_in=("W2", "W3"))
    hall.take("tax")  # W2 serves biz only
    assert refused(hall, "call_next", "W2") is Reason.NOTHING_WAITING


def test_an_unknown_window_refuses_to_call() -> None:
    hall = Hall(logged_in=("W1",))
    assert refused(hall, "call_next", "W9") is Reason.UNKNOWN_WINDOW


# ----------------------------------------------------------- waiting list


def test_the_waiting_list_is_in_queue_order_across_the_windows_services() -> None:
    hall = Hall(logged_in=("W1", "W3"))
    for service in ("tax", "biz", "biz", "tax", "startup"):
        hall.take(service)
    assert queue(hall, "W1") == ["B001", "A001", "A002", "B002", "K001"]
    assert queue(hall, "W3") == ["B001", "B002"]


def test_the_waiting_list_is_limited() -> None:
    hall = Hall(logged_in=("W1",))
    for service in ("tax", "biz", "biz", "tax", "biz"):
        hall.take(service)
    assert [t.number for t in hall.engine.waiting_list("W1", limit=3)] == [
        "B001",
        "A001",
        "A002",
    ]
    assert len(hall.engine.waiting_list("W1", limit=50)) == 5
