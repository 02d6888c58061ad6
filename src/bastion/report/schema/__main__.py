"""Print the report's JSON Schema: ``python -m bastion.report.schema > docs/report-schema.json``."""

from __future__ import annotations

import sys

from bastion.report.schema import report_schema_text


def main() -> int:
    """Write the schema to standard output."""
    sys.stdout.write(report_schema_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
