"""Every `kemu` process builds the whole command line, so what the command-line modules
import at their top is paid in memory by every component: a scheduler or a store must not
carry the docker SDK (with requests and urllib3) or cryptography, which only some commands
need (about 14 MB of each process's RSS, 10% of the control plane at 10,000 pods)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("docker", "requests", "urllib3", "cryptography")
COMPONENTS = ("kemu.services.store.server", "kemu.services.scheduler.scheduler",
              "kemu.services.controllers.manager", "kemu.cli.simulate")


def loaded_after(*modules: str) -> list[str]:
    code = ("import sys\n" + "".join(f"import {m}\n" for m in modules)
            + f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    return [m for m in out.split(",") if m]


def test_components_do_not_import_docker_or_cryptography() -> None:
    assert loaded_after("kemu.cli.kemu_main", *COMPONENTS) == []


def test_the_check_sees_an_import() -> None:
    assert loaded_after("kemu.cli.kemu_main", "kemu.images.build") == [
        "docker", "requests", "urllib3"]
