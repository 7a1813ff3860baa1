"""files: atomic writes and capped reads of files people name."""

from __future__ import annotations

import pytest

from pipeline.files import write_atomic


def test_a_folder_that_is_a_file_is_named_as_not_a_directory(tmp_path):
    """`--out afile/x.png` where afile is a file: mkdir says "File exists", which reads as if
    x.png were in the way; the reason is that afile is not a folder."""
    (tmp_path / "afile").write_text("")
    with pytest.raises(NotADirectoryError) as caught:
        write_atomic(tmp_path / "afile" / "sub" / "x.png", b"data")
    assert caught.value.filename == str(tmp_path / "afile")
    assert caught.value.strerror == "Not a directory"
    assert [p.name for p in tmp_path.iterdir()] == ["afile"]
