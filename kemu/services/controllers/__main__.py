"""``python -m kemu.services.controllers``: run the controller manager without the kemu CLI.

Tests start the controller manager as a real process this way; ``kemu controller-manager``
calls the same ``cli.run``. Bad arguments print one line and exit non-zero.
"""

from __future__ import annotations

import sys

from kemu.services.controllers.cli import main

if __name__ == "__main__":
    sys.exit(main())
