"""What a lab object is: the plumbing every lab's grader module shares.

A lab notebook's setup cell keeps what ``labNN.setup(s, prefix=PREFIX)`` returns as
``lab``. That object owns:

- ``settings``: where S3, Kafka and PostgreSQL are (``lab.storage_options`` is what
  delta-rs and Polars take);
- ``prefix``: the start of every table, topic and folder the lab creates, so that two
  runs with different prefixes (a student's and a test's) never touch each other's data;
- what each exercise starts from: where its tables and topics are and what it was given
  (the fields a subclass declares, such as lab 01's ``lab.ex3.batch``);
- ``reset(exercise)``: rebuild that exercise's starting state and restart its hints at
  1/3, so that a student who broke one exercise retries it alone.

It does not grade. The graders are the ``check_*`` functions of the lab's module: they
read the real tables and never take the object's (or the student's) word for what
happened. A lab subclasses :class:`Lab`, names itself, its exercises and its tables, and
declares one builder per exercise; :meth:`Lab.build_all` builds them all and
:meth:`Lab.rebuild` one of them::

    @dataclass
    class Lab07(Lab):
        number: ClassVar[str] = "07"
        exercises: ClassVar[tuple[str, ...]] = ("ex1", "ex2")
        tables: ClassVar[tuple[str, ...]] = ("ex1_events", "ex2_events")
        ex1: str  # the URI exercise 1 works on
        ex2: str

    Lab07.builders = {"ex1": build_events, "ex2": build_late_events}

    def setup(settings, *, prefix="lab07_") -> Lab07:
        return Lab07.build_all(settings, prefix)

A lab whose exercises need more than (settings, prefix) overrides :meth:`Lab.rebuild`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar, Self

import polars as pl
from deltalake import DeltaTable

from neuralake import delta
from neuralake.errors import ConfigError, NeuralakeError
from neuralake.lab.graders.checks import Grading, Hint, reset_attempts
from neuralake.settings import Settings
from neuralake.streaming import topics


@dataclass
class Lab:
    """One run of a lab: its settings, its prefix, and what each exercise starts from."""

    settings: Settings
    prefix: str  # every table, topic and folder of this run starts with it

    number: ClassVar[str]  # "01": attempt keys are "lab01.ex3"
    exercises: ClassVar[tuple[str, ...]]  # ("ex1", ...), in the notebook's order
    tables: ClassVar[tuple[str, ...]] = ()  # table names after the prefix (drop_tables)
    # exercise -> builder(settings, prefix): what the exercise starts from. A lab that
    # declares them gets build_all() and rebuild() for free.
    builders: ClassVar[Mapping[str, Callable[[Settings, str], object]]] = {}

    @property
    def storage_options(self) -> dict[str, str]:
        return self.settings.storage_options

    @classmethod
    def key(cls, exercise: str) -> str:
        """The attempt key of an exercise (``lab01.ex3``): hints count per key."""
        return f"lab{cls.number}.{exercise}"

    @classmethod
    def forget_attempts(cls) -> None:
        """Restart every exercise's hints at 1/3 (``setup`` does this first)."""
        reset_attempts(f"lab{cls.number}.")

    @classmethod
    def build_all(
        cls,
        settings: Settings,
        prefix: str,
        *,
        needs_stack: bool = False,
    ) -> Self:
        """A run of the lab with every exercise built from scratch by its
        :attr:`builders`; attempts forgotten."""
        if needs_stack and settings.profile == "local":
            raise ConfigError(
                f"lab {cls.number} needs Kafka and S3: start the stack (make up), then rerun"
            )
        cls.forget_attempts()
        built = {exercise: build(settings, prefix) for exercise, build in cls.builders.items()}
        return cls(settings, prefix, **built)

    @classmethod
    def grading(cls, exercise: str) -> Grading:
        """What a check of ``exercise`` fails through: ``cls.grading("ex3").expect(...)``."""
        return Grading(cls.key(exercise))

    def require_table(
        self, exercise: str, uri: str, hint: Hint, *, what: str, made_by: str
    ) -> DeltaTable:
        """The Delta table at ``uri``; else fail ``exercise``'s check with "there is no
        ``what``: ``made_by``" (``made_by`` says which step writes it)."""
        self.grading(exercise).expect(
            DeltaTable.is_deltatable(uri, storage_options=self.storage_options),
            f"there is no {what}: {made_by}",
            hint,
        )
        return DeltaTable(uri, storage_options=self.storage_options)

    def read_table(
        self, exercise: str, uri: str, hint: Hint, *, what: str, made_by: str
    ) -> pl.DataFrame:
        """The rows of the Delta table at ``uri``, checked as :meth:`require_table` does."""
        self.require_table(exercise, uri, hint, what=what, made_by=made_by)
        return pl.read_delta(uri, storage_options=self.storage_options or None)

    def reset(self, exercise: str) -> None:
        """Rebuild one exercise's starting state and forget its attempts."""
        if exercise not in self.exercises:
            raise NeuralakeError(
                f"lab {self.number} has no exercise {exercise!r}: "
                f"use one of {', '.join(self.exercises)}"
            )
        self.rebuild(exercise)
        reset_attempts(self.key(exercise))
        print(f"{exercise} is as it was at setup; its hints start again at 1/3")

    def rebuild(self, exercise: str) -> None:
        """Put ``exercise`` back as ``setup`` left it: its builder, by default."""
        if exercise not in self.builders:
            raise NotImplementedError(f"lab {self.number} does not say how to rebuild {exercise}")
        setattr(self, exercise, self.builders[exercise](self.settings, self.prefix))

    @classmethod
    def fresh_table(cls, settings: Settings, prefix: str, name: str) -> str:
        """The URI of the lab's table ``name``, dropped so that it starts empty.

        ``name`` must be one of :attr:`tables`, so that :meth:`drop_tables` deletes it too.
        """
        if name not in cls.tables:
            raise NeuralakeError(
                f"{name!r} is not one of lab {cls.number}'s tables: add it to its tables first"
            )
        return delta.fresh_table(settings.table_uri(prefix + name), settings.storage_options)

    @classmethod
    def drop_tables(cls, settings: Settings, prefix: str) -> None:
        """Delete every table of the lab (the tests clean up with it)."""
        for name in cls.tables:
            delta.drop_table(settings.table_uri(prefix + name), settings.storage_options)


class TableName:
    """A lab's attribute that reads as one of its tables' full name: in a ``Lab``
    subclass, ``bronze = TableName("bronze")`` makes ``lab.bronze`` the prefix + "bronze"."""

    def __init__(self, table: str) -> None:
        self.table = table

    def __get__(self, lab: Lab | None, owner: type | None = None) -> str:
        if lab is None:
            raise AttributeError(f"{self.table!r} is a table of a lab run, not of its class")
        return lab.prefix + self.table


class TableUri(TableName):
    """Like :class:`TableName`, for the table's URI: ``bronze_uri = TableUri("bronze")``."""

    def __get__(self, lab: Lab | None, owner: type | None = None) -> str:
        if lab is None:
            raise AttributeError(f"{self.table!r} is a table of a lab run, not of its class")
        return lab.settings.table_uri(lab.prefix + self.table)


def fresh_topic(settings: Settings, topic: str, partitions: int, timeout_s: float = 30) -> str:
    """``topic``, deleted and created again, empty, with ``partitions`` partitions.

    :func:`neuralake.streaming.topics.recreate_topic` waits out Kafka's background delete
    and the new partitions' leaders; this only hands the name back for the lab's fields.
    """
    topics.recreate_topic(settings, topic, partitions, timeout_s=timeout_s)
    return topic
