"""Token file parsing and the bearer check of `--token-file` (the wire path is in
tests/integration/apiserver/test_token_auth.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kemu.services.apiserver.auth import (
    TOKEN_ONLY,
    TokenFileError,
    allowed,
    bearer,
    load_tokens,
    lookup,
)
from kemu.services.apiserver.identity import Identity


def test_lines_are_kubernetes_static_tokens_comments_and_blanks_skipped(
        tmp_path: Path) -> None:
    f = tmp_path / "tokens"
    f.write_text("# admins\n\nabc\n  def  \nghi,kubelet,uid-1,\"system:nodes\"\n"
                 'jkl,jane,uid-2,"dev,qa"\nmno,bot,uid-3\n')
    tokens = load_tokens(f)
    assert tokens == {
        "abc": TOKEN_ONLY, "def": TOKEN_ONLY,
        "ghi": Identity("kubelet", ("system:nodes", "system:authenticated")),
        "jkl": Identity("jane", ("dev", "qa", "system:authenticated")),
        "mno": Identity("bot", ("system:authenticated",)),
    }
    assert Identity("admin", ("system:masters", "system:authenticated")) == TOKEN_ONLY
    assert lookup(tokens, "jkl") == tokens["jkl"]
    assert lookup(tokens, "jk") is None and lookup(tokens, "") is None


@pytest.mark.parametrize("text", [pytest.param("", id="empty"),
                                  pytest.param("# only a comment\n\n", id="comments")])
def test_a_file_without_tokens_is_an_error_not_open_access(tmp_path: Path, text: str) -> None:
    f = tmp_path / "tokens"
    f.write_text(text)
    with pytest.raises(TokenFileError, match="no token"):
        load_tokens(f)


def test_a_missing_file_names_itself(tmp_path: Path) -> None:
    with pytest.raises(TokenFileError, match=r"--token-file .*missing"):
        load_tokens(tmp_path / "missing")


@pytest.mark.parametrize(("metadata", "want"), [
    pytest.param([("authorization", "Bearer abc")], "abc", id="bearer"),
    pytest.param([("Authorization", "bearer  abc ")], "abc", id="case-and-spaces"),
    pytest.param([("authorization", "Basic abc")], "", id="other-scheme"),
    pytest.param([("x-other", "Bearer abc")], "", id="other-key"),
    pytest.param(None, "", id="none"),
])
def test_bearer(metadata: list[tuple[str, str]] | None, want: str) -> None:
    assert bearer(metadata) == want


@pytest.mark.parametrize(("presented", "ok"), [
    pytest.param("abc", True, id="listed"),
    pytest.param("abcd", False, id="longer"),
    pytest.param("", False, id="empty"),
])
def test_allowed(presented: str, ok: bool) -> None:
    assert allowed(frozenset({"abc", "xyz"}), presented) is ok
