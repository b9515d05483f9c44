"""docs/api.md is the reference clients in other languages read: it must be current and complete.

The reference is generated from the comments in protos/kemu/v1/*.proto by
scripts/gen_api_docs.py. These tests fail `make test` when a .proto changed without
`make api-docs`, and when a service, method, message, field, oneof, enum or enum value
has no comment, so the reference never has an empty row.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "scripts" / "gen_api_docs.py"


@pytest.fixture(scope="module")
def gen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_api_docs", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_committed_reference_is_current() -> None:
    result = subprocess.run([sys.executable, str(SCRIPT), "--check"], cwd=ROOT,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_check_reports_a_stale_file_in_one_line(gen: ModuleType, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    stale = tmp_path / "api.md"
    stale.write_text("# an old reference\n")
    assert gen.main(["--check"], output=stale) == 1
    assert capsys.readouterr().err == "docs/api.md is stale: run make api-docs\n"
    assert gen.main(["--check"], output=tmp_path / "missing.md") == 1


def test_every_element_has_a_comment(gen: ModuleType) -> None:
    missing = gen.missing_comments(gen.compile_protos())
    assert missing == [], "add a leading // comment to:\n  " + "\n  ".join(missing)


def test_reference_links_resolve() -> None:
    text = (ROOT / "docs" / "api.md").read_text()
    anchors = set(re.findall(r'<a id="([^"]+)"></a>', text))
    links = set(re.findall(r"\]\(#([^)]+)\)", text))
    assert links - anchors == set()
    assert len(anchors) == text.count('<a id="'), "two sections share an anchor"
