"""``session_conf`` on one session used by several threads at once (three scorers of one batch do this): every
thread's body sees its own value, and the session gets back what it had when the last one leaves."""

import threading

from lakeforge.spark import session_conf

WAIT = 30


def test_a_value_two_threads_share_stays_until_the_last_leaves_and_is_then_removed(spark):
    key = "lakeforge.test.shared"
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen = []

    def first():
        with session_conf(spark, {key: "x"}):
            first_in.set()
            assert second_in.wait(WAIT)
        first_out.set()

    def second():
        assert first_in.wait(WAIT)
        with session_conf(spark, {key: "x"}):
            second_in.set()
            assert first_out.wait(WAIT)
            seen.append(spark.conf.get(key, None))

    _run(first, second)
    assert seen == ["x"]  # the first thread's exit did not take it from the second
    assert spark.conf.get(key, None) is None  # and the second's did not leave the first's value behind


def test_a_thread_wanting_another_value_waits_until_the_holder_leaves(spark):
    key = "lakeforge.test.conflict"
    spark.conf.set(key, "before")
    held, asked = threading.Event(), threading.Event()
    events = []

    def holder():
        with session_conf(spark, {key: "a"}):
            held.set()
            assert asked.wait(WAIT)
            threading.Event().wait(0.5)  # the other thread is at the door meanwhile
            events.append(("a", spark.conf.get(key)))
        events.append(("a left", None))

    def other():
        assert held.wait(WAIT)
        asked.set()
        with session_conf(spark, {key: "b"}):
            events.append(("b", spark.conf.get(key)))

    _run(holder, other)
    assert events == [("a", "a"), ("a left", None), ("b", "b")] or events == [("a", "a"), ("b", "b"), ("a left", None)]
    assert events.index(("b", "b")) > events.index(("a", "a"))
    assert spark.conf.get(key) == "before"
    spark.conf.unset(key)


def test_one_thread_may_override_its_own_value_inside_and_gets_it_back(spark):
    key = "lakeforge.test.nested"
    with session_conf(spark, {key: "outer"}):
        with session_conf(spark, {key: "inner"}):
            assert spark.conf.get(key) == "inner"
        assert spark.conf.get(key) == "outer"
    assert spark.conf.get(key, None) is None


def _run(*targets):
    errors = []

    def guarded(target):
        try:
            target()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread below
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(t,)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT * 2)
    assert not any(t.is_alive() for t in threads), "a thread is still inside session_conf"
    if errors:
        raise errors[0]


def test_a_thread_does_not_join_another_threads_nested_value(spark):
    """Holding ``outer`` with ``inner`` nested inside, a thread gets ``outer`` back when it leaves ``inner``, even if
    another thread asked for ``inner`` meanwhile: that thread waits until the value is free."""
    key = "lakeforge.test.nested_shared"
    inside, asked, back = threading.Event(), threading.Event(), threading.Event()
    events = []

    def nester():
        with session_conf(spark, {key: "outer"}):
            with session_conf(spark, {key: "inner"}):
                inside.set()
                assert asked.wait(WAIT)
                threading.Event().wait(0.3)
            events.append(("nester back", spark.conf.get(key)))
            back.set()
            threading.Event().wait(0.3)
        events.append(("nester left", None))

    def joiner():
        assert inside.wait(WAIT)
        asked.set()
        with session_conf(spark, {key: "inner"}):
            assert back.wait(WAIT)  # at once where it waited; had it joined, while the other thread is back outside
            events.append(("joiner", spark.conf.get(key)))

    _run(nester, joiner)
    assert events[0] == ("nester back", "outer")
    assert events.index(("joiner", "inner")) > events.index(("nester back", "outer"))
    assert spark.conf.get(key, None) is None
