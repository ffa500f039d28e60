"""``core.groupcommit``: a new leader waits (up to ``gather_s``) for the group to grow back to
the size of the previous one, instead of recording the first caller back alone."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from casereach.core.groupcommit import Combiner


class _Project:
    pk = 1


def test_the_callers_of_a_group_coming_back_one_by_one_are_recorded_together() -> None:
    groups: list[list[str]] = []
    first_recording = threading.Event()
    release = threading.Event()

    def record(project: _Project, items: Sequence[str]) -> list[str]:
        groups.append(list(items))
        if items == ["a"]:
            first_recording.set()
            release.wait(10)  # b, c and d queue meanwhile
        return [i.upper() for i in items]

    combiner: Combiner[_Project, str, str] = Combiner(record, key=lambda p: p.pk, gather_s=10)
    results: dict[str, str] = {}

    def submit(item: str) -> None:
        results[item] = combiner.submit(_Project(), item)

    def start(item: str) -> threading.Thread:
        t = threading.Thread(target=submit, args=(item,))
        t.start()
        return t

    threads = [start("a")]
    first_recording.wait(10)
    threads += [start(i) for i in "bcd"]
    while len(combiner._queue) < 3:
        time.sleep(0.005)
    release.set()
    for t in threads:
        t.join(10)
    threads = [start("e")]
    for item in "fg":  # the next group comes back one by one
        time.sleep(0.05)
        threads.append(start(item))
    for t in threads:
        t.join(20)

    assert [["a"], ["b", "c", "d"], ["e", "f", "g"]] == groups
    assert {i: i.upper() for i in "abcdefg"} == results
