"""Prints the README's two set-up commands, one per line: the first fenced bash block.

    python .ci/readme_commands.py README.md

Exit status 1, naming the file, when that block is missing or does not hold exactly two
commands (the README's contract: install + demo, then the tests). Used by .ci/run so that CI
runs what the README tells a newcomer to run, not a copy of it.
"""

from __future__ import annotations

import re
import sys


def setup_commands(readme: str) -> list[str]:
    """The non-empty, non-comment lines of the README's first ```bash block."""
    block = re.search(r"^```bash\n(.*?)^```", readme, re.S | re.M)
    if block is None:
        raise ValueError("no ```bash block")
    return [line.strip() for line in block.group(1).splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def main(argv: list[str]) -> int:
    path = argv[1] if len(argv) > 1 else "README.md"
    with open(path, encoding="utf-8") as f:
        try:
            commands = setup_commands(f.read())
        except ValueError as e:
            print(f"{path}: {e}; expected the two set-up commands first", file=sys.stderr)
            return 1
    if len(commands) != 2:
        print(f"{path}: the first ```bash block holds {len(commands)} commands, expected 2 "
              f"(install + demo, then the tests): {commands}", file=sys.stderr)
        return 1
    print("\n".join(commands))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
