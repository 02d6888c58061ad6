"""The HTML threat-model report: one self-contained page, no scripts, nothing fetched.

The page opens with the design warnings and the ranked risk list, then the
threats x mitigations matrix (gaps in red), a likelihood x impact map, one card per
applicable threat (why it applies, the risk factors adjusted to the system, the
bug-bar severity, the mitigations and the Bastion probes, guards and remedies), the
controls, and the threats that do not apply with the reason. Jinja2 escapes every
value, so text from the description cannot inject markup.

Examples
--------
>>> from bastion.threatmodel.analysis import analyse
>>> from bastion.threatmodel.samples import minimal_description
>>> page = to_html(analyse(minimal_description(summary="<b>tags</b>")))
>>> "&lt;b&gt;tags&lt;/b&gt;" in page, "<script" in page
(True, False)
"""

from __future__ import annotations

import functools
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined

from bastion.report._common import format_datetime, write_text
from bastion.threatmodel.results import ThreatModel
from bastion.threatmodel.views import build_page

__all__ = ["to_html", "write_html"]


@functools.cache
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("bastion.threatmodel", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["when"] = format_datetime
    env.filters["http_url"] = lambda url: str(url).startswith(("https://", "http://"))
    return env


def to_html(tm: ThreatModel, *, assessment: str | None = None) -> str:
    """Render a threat model as one HTML page.

    Parameters
    ----------
    tm : ThreatModel
    assessment : str, optional
        Path of the emitted assessment config, shown in the "how to test" commands.
    """
    template = _environment().get_template("threatmodel.html.j2")
    return template.render(page=build_page(tm), tm=tm, assessment=assessment)


def write_html(tm: ThreatModel, path: Path, *, assessment: str | None = None) -> Path:
    """Write :func:`to_html` to ``path``; raises UsageError when it cannot be written."""
    return write_text(Path(path), to_html(tm, assessment=assessment))
