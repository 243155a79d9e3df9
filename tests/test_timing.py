import time

import pytest

from neuralake.timing import warm_ms


def test_warm_ms_calls_once_to_warm_up_then_reports_the_median():
    calls = []

    def sleepy():
        calls.append(1)
        time.sleep(0.02 if len(calls) > 1 else 0.2)  # the slow first call is not counted

    median = warm_ms(sleepy, repeats=3)
    assert len(calls) == 4
    assert 15 <= median < 150


def test_warm_ms_rejects_zero_repeats():
    with pytest.raises(ValueError, match="repeats=5"):
        warm_ms(lambda: None, repeats=0)
