"""
make coverage's report: line and branch coverage of core/ per file and in
total (and, for reference, of the bundled modules), from the .gcda files
the unit tests and the end-to-end suite left. gcovr reads them (through
gcov); this only lays its summary out as one table.

Usage: python3 tests/coverage/report.py [--json FILE]
"""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def summary(filter_dir):
    out = subprocess.run(
        ["gcovr", "--root", str(REPO), "--filter", filter_dir,
         "--json-summary", "-", "objs", "modules"],
        cwd=REPO, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def pct(covered, total):
    return 100.0 * covered / total if total else 100.0


def row(name, f):
    return "%-28s %6d %6d %6.1f%%  %6d %6d %6.1f%%" % (
        name, f["line_total"], f["line_covered"],
        pct(f["line_covered"], f["line_total"]),
        f["branch_total"], f["branch_covered"],
        pct(f["branch_covered"], f["branch_total"]))


def main():
    core = summary("core/")
    mods = summary("modules/")
    head = "%-28s %6s %6s %7s  %6s %6s %7s" % (
        "file", "lines", "exec", "cover", "branch", "taken", "cover")
    rule = "-" * len(head)
    print(rule)
    print(head)
    print(rule)
    for f in sorted(core["files"], key=lambda f: f["filename"]):
        print(row(f["filename"], f))
    print(rule)
    print(row("core/ total", core))
    print(row("modules/ total", mods))
    print(rule)
    if len(sys.argv) == 3 and sys.argv[1] == "--json":
        Path(sys.argv[2]).write_text(json.dumps(core, indent=1) + "\n")
    print("coverage of core/: lines %.1f%% (%d of %d), branches %.1f%% "
          "(%d of %d)" % (
              pct(core["line_covered"], core["line_total"]),
              core["line_covered"], core["line_total"],
              pct(core["branch_covered"], core["branch_total"]),
              core["branch_covered"], core["branch_total"]))


if __name__ == "__main__":
    main()
