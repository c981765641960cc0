"""The report plugin interface (the ``reports`` family): a renderer turns a run's results into
sections and files.

A report plugin subclasses :class:`Report`, lists the formats it can produce and implements
``render(run, fmt)``. ``ue-bench report`` and the end of ``ue-bench run``
(:func:`ue_bench.bench.render.build_report`) call every registered plugin, in ``order``, for each
requested format it supports:

* ``md`` and ``html`` return a **section** (str); the sections of all plugins are joined into one
  ``report.md`` and one self-contained ``report.html``;
* ``csv`` and ``latex`` return str, ``png`` returns bytes, written as ``<plugin name>.<ext>``;
* ``text`` returns a plain-text table that ``ue-bench run`` prints when the run ends.

So a third-party renderer appears in the page and the Markdown without any change here. Contract
(checked by :mod:`ue_bench.testing`): every listed format renders from a run of cells without raising,
with the type above; a format not listed is never asked for. ``run`` is a
:class:`~ue_bench.results.RunResults` (``run.frame``: one row per cell; ``run.cells``: the records).
"""

from __future__ import annotations

import abc
from typing import ClassVar

from ue_bench.plugin import Plugin
from ue_bench.results import RunResults

#: Formats written as files by ``ue-bench report`` (``text`` is printed by ``ue-bench run`` instead).
FORMATS = ("md", "csv", "latex", "html", "png")
EXTENSIONS = {"md": "md", "csv": "csv", "latex": "tex", "html": "html", "png": "png"}
#: What ``render`` returns per format.
RETURNS = {"md": str, "csv": str, "latex": str, "html": str, "png": bytes, "text": str}


class Report(Plugin, abc.ABC):
    """Base of report renderers: ``formats`` they produce, a ``title`` and their ``order`` on the page."""

    formats: ClassVar[tuple[str, ...]] = ()
    title: ClassVar[str] = ""
    order: ClassVar[int] = 100

    @abc.abstractmethod
    def render(self, run: RunResults, fmt: str) -> str | bytes:
        """The section (``md``, ``html``), file content (``csv``, ``latex``, ``png``) or printed table
        (``text``) in ``fmt``, one of :attr:`formats`."""

    @classmethod
    def contract_problem(cls) -> str | None:
        unknown = [f for f in cls.formats if f not in RETURNS]
        if unknown:
            return f"{cls.__name__}.formats lists {unknown[0]!r}; known formats: {', '.join(RETURNS)}"
        return None
