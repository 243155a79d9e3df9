"""Wait for something to become true: one helper, on tenacity, for every wait in the lab.

Lesson material (topics, replays) and the lab's process control both wait with it.
"""

from __future__ import annotations

from collections.abc import Callable

import tenacity


class NotYet(Exception):
    """Raised by a check to say "not yet, try again": :func:`wait_until` retries only it
    when asked to (``retry_on=NotYet``), and lets any other error through at once."""


def wait_until(
    check: Callable[[], object],
    *,
    timeout: float,
    died: Callable[[], None] | None = None,
    interval: float = 0.5,
    retry_on: type[BaseException] | tuple[type[BaseException], ...] = Exception,
) -> None:
    """Call ``check()`` until it stops raising; re-raise its last error after ``timeout``.

    Only errors of type ``retry_on`` are tried again; any other ends the wait at once.
    ``died()`` is called before each pause: it raises when the process being waited for
    is gone, so a crash fails fast instead of waiting out the whole timeout.
    """
    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_delay(timeout),
        wait=tenacity.wait_fixed(interval),
        retry=tenacity.retry_if_exception_type(retry_on),
        before_sleep=(lambda _: died()) if died is not None else None,
        reraise=True,  # the check's own last error, not tenacity's RetryError
    )
    retrying(check)
