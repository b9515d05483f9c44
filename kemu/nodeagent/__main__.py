"""`python -m kemu.nodeagent ...`: the agent without the `kemu` front end (tests use it)."""

import sys

from kemu.nodeagent.cli import main

sys.exit(main())
