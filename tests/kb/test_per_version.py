"""What is built from a base's texts once per index version and kept per process (kb.retrieval.per_version):
the speller and the glossary."""

from __future__ import annotations

import threading

import pytest

from kb.retrieval import glossary, spelling


@pytest.mark.parametrize(("built_for", "forget"), [
    (spelling.speller_for, spelling.forget_spellers),
    (glossary.glossary_for, glossary.forget_glossaries),
], ids=["speller", "glossary"])
def test_a_bases_value_is_built_once_however_many_requests_ask_at_once(built_for, forget):
    # given eight threads asking for the same base's value at the same moment
    forget()
    reads = []
    start = threading.Barrier(8)

    def texts():
        reads.append(1)
        return ["An easement (servitut) is a right of way. Insulation of the roof."]

    def ask():
        start.wait()
        built_for((1, 1), texts)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # then the base's texts were read once, and a later call reuses the value
    assert len(reads) == 1
    assert built_for((1, 1), texts) is built_for((1, 1), texts) and len(reads) == 1
    forget()


def test_the_oldest_version_is_dropped_past_the_limit():
    from kb.retrieval.per_version import PerVersion

    # given a cache of two
    cache = PerVersion(lambda texts: list(texts), kept=2)
    first = cache.get((1, 1), lambda: ["a"])
    cache.get((1, 2), lambda: ["b"])
    # when a third version is asked for
    cache.get((1, 3), lambda: ["c"])
    # then the first is built again on its next use
    assert cache.get((1, 1), lambda: ["a"]) is not first
