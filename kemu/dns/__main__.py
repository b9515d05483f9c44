"""``python -m kemu.dns``: run the cluster DNS without the kemu CLI.

Tests start the server as a real process this way; ``kemu dns`` calls the same
``cli.run``. Bad arguments print one line and exit non-zero, never a traceback.
"""

from __future__ import annotations

import sys

from kemu.dns.cli import main

if __name__ == "__main__":
    sys.exit(main())
