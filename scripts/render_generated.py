"""Render the files made from the catalogue (camprotool/protocol/generate.py says which).

    python scripts/render_generated.py          # rewrite the stale ones
    python scripts/render_generated.py --check  # exit 1 and name them if any is stale

Run it after editing camprotool/protocol/catalogue.py (or the dissector's template in
protocol/lua.py, or the docstrings docs/protocol.md quotes) and commit the result with
the edit; tests/protocol/test_generated.py fails until you do.
"""

from __future__ import annotations

import argparse
import sys

from camprotool.protocol.generate import GENERATED, REPO_ROOT, stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="only say which files are stale (exit status 1 if any)")
    args = parser.parse_args(argv)
    names = stale()
    if args.check:
        for name in names:
            print(f"stale: {name}", file=sys.stderr)
        return 1 if names else 0
    for name in names:
        (REPO_ROOT / name).write_text(GENERATED[name](), encoding="utf-8")
        print(f"wrote {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
