"""The ``reports`` plugin family: a renderer turns a run's results into sections and files.

A report plugin (registered under the entry-point group ``ue_bench.reports``, like the built-ins in
``pyproject.toml``) subclasses :class:`Report`, lists the formats it can produce and implements
``render(run, fmt)``. ``ue-bench report`` (``build.build_report``) calls every registered plugin, in
``order``, for each requested format it supports:

* ``md`` and ``html`` return a **section** (text); the sections of all plugins are joined into one
  ``report.md`` and one self-contained ``report.html``;
* ``csv`` and ``latex`` return text, ``png`` returns bytes, written as ``<plugin name>.<ext>``.

So a third-party renderer appears in the page and the Markdown without any change here.
"""

from __future__ import annotations

import abc
from typing import ClassVar

from ue_bench.registry import Plugin

from .results import RunResults

FORMATS = ("md", "csv", "latex", "html", "png")
EXTENSIONS = {"md": "md", "csv": "csv", "latex": "tex", "html": "html", "png": "png"}


class Report(Plugin, abc.ABC):
    """Base of report renderers: ``formats`` they produce, a ``title`` and their ``order`` on the page."""

    formats: ClassVar[tuple[str, ...]] = ()
    title: ClassVar[str] = ""
    order: ClassVar[int] = 100

    @abc.abstractmethod
    def render(self, run: RunResults, fmt: str) -> str | bytes:
        """The section (``md``, ``html``) or file content (``csv``, ``latex``, ``png``) in ``fmt``."""
