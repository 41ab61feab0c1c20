"""Entry point of the frozen console executable ``station``: every subcommand, as ``station`` does
in a checkout (``station selftest``, ``station audit verify``, ``station batch ...``)."""

import multiprocessing

from station.cli import main

if __name__ == "__main__":
    # a no-op unless a library starts worker processes; then Windows re-enters here instead of the app
    multiprocessing.freeze_support()
    raise SystemExit(main())
