"""Where the steps keep things."""

from __future__ import annotations

from aiship.support.paths import cache_dir


def test_cache_dir_honours_xdg_cache_home(tmp_path):
    assert cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "aiship"
