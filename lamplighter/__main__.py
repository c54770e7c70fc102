"""The `lamplighter` command and `python -m lamplighter`.

The garbage collector is paused before the program is imported: start-up builds, for good, the
imported modules, the config's devices and the registry's rows (~1 million objects at 50,000
lamps), and the collector scanned that growing heap again and again — 0.6–0.9 s of a restart beside
two busy instances. The controller's start freezes what it built (`gc.freeze`), and `run` resumes
the collector once the API answers (`event_loop.resume_collector`); every other command at once.
"""

from __future__ import annotations

import gc
import sys


def main() -> None:
    gc.disable()
    from lamplighter.cli import app

    if sys.argv[1:2] != ["run"]:
        gc.enable()
    app()


if __name__ == "__main__":
    main()
