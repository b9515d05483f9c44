"""``python -m kemu.services.scheduler``: run the scheduler without the kemu CLI.

Tests start the scheduler as a real process this way; ``kemu scheduler`` calls the same
``cli.run``. Bad arguments print one line and exit non-zero, never a traceback.
"""

from __future__ import annotations

import sys

from kemu.services.scheduler.cli import main

if __name__ == "__main__":
    sys.exit(main())
