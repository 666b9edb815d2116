"""Every request a step served is counted, read by read, whatever the pods do in between: the
cases that lost evidence when each read was compared with the step's first only."""

from __future__ import annotations

from aiship.commands.deploy.analysis import PodMetrics
from aiship.commands.deploy.canary import Scrape, Tally


def served(requests: int, errors: int) -> PodMetrics:
    return PodMetrics(requests, errors, ((0.1, requests), (float("inf"), requests)), {})


def read(*pods: tuple[str, str, int, int, int]) -> Scrape:
    """(name, track, requests, errors, restarts) of each ready pod."""
    return Scrape(
        {name: (track, served(r, e)) for name, track, r, e, _ in pods},
        {name: restarts for name, _, _, _, restarts in pods},
        {name: track for name, track, *_ in pods},
    )


def counts(tally: Tally) -> tuple[tuple[int, int], tuple[int, int]]:
    canary, stable = tally.sides()
    return (canary.requests, canary.errors), (stable.requests, stable.errors)


def test_a_canary_pod_that_failed_then_was_replaced_keeps_what_it_served():
    tally = Tally.starting(read(("c1", "canary", 0, 0, 0), ("s1", "stable", 0, 0, 0)))
    tally.add(read(("c1", "canary", 400, 40, 0), ("s1", "stable", 400, 0, 0)))
    tally.add(read(("c2", "canary", 0, 0, 0), ("s1", "stable", 450, 0, 0)))  # c1 gone
    assert counts(tally) == ((400, 40), (450, 0))


def test_a_pod_that_restarted_and_served_past_its_old_count_counts_both_lives():
    tally = Tally.starting(read(("c1", "canary", 100, 0, 0)))
    tally.add(read(("c1", "canary", 400, 40, 0)))
    tally.add(read(("c1", "canary", 515, 50, 1)))  # restarted: every counter above its old one
    assert counts(tally)[0] == (300 + 515, 40 + 50)


def test_a_counter_that_went_down_is_a_reset_even_without_a_restart_seen():
    tally = Tally.starting(read(("s1", "stable", 100, 5, 0)))
    tally.add(read(("s1", "stable", 30, 1, 0)))
    assert counts(tally)[1] == (30, 1)


def test_a_pod_missing_from_one_read_counts_on_from_its_last_reading():
    tally = Tally.starting(read(("s1", "stable", 0, 0, 0), ("s2", "stable", 0, 0, 0)))
    tally.add(read(("s1", "stable", 10, 0, 0), ("s2", "stable", 10, 0, 0)))
    tally.add(read(("s1", "stable", 20, 0, 0)))  # s2 not ready, or unreadable, this time
    tally.add(read(("s1", "stable", 30, 0, 0), ("s2", "stable", 25, 1, 0)))
    assert counts(tally)[1] == (55, 1)


def test_a_pod_that_came_during_the_step_counts_from_zero():
    tally = Tally.starting(read(("s1", "stable", 1000, 0, 0)))
    tally.add(read(("s1", "stable", 1010, 0, 0), ("s2", "stable", 7, 0, 0)))  # the HPA added s2
    assert counts(tally)[1] == (17, 0)
