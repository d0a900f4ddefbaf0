"""Print the README's main-job tables from a finished `gotd run demo` (its compare folder), as Markdown.

Usage: python scripts/testbed_readme_tables.py reports/demo/05c_testbed_compare
"""
from __future__ import annotations

import sys

from gotd.testbed._figures import markdown_summary

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python scripts/testbed_readme_tables.py <compare folder of gotd run demo>")
    print(markdown_summary(sys.argv[1]))
