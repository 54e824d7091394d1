"""Settings of the HTTP service: environment parsing and security checks (docs: tests/test_docs.py)."""

from __future__ import annotations

import pytest


def test_settings_read_grader_variables(monkeypatch):
    from grader.settings import Settings, get_settings

    monkeypatch.setenv("GRADER_API_KEYS", " k1, k2 ,,k3 ")
    monkeypatch.setenv("GRADER_PORT", "9001")
    monkeypatch.setenv("GRADER_MAX_ANSWER_CHARS", "123")
    monkeypatch.setenv("GRADER_LOG_LEVEL", "WARNING")
    s = Settings()
    assert s.key_bytes() == [b"k1", b"k2", b"k3"]
    assert (s.port, s.max_answer_chars, s.log_level) == (9001, 123, "warning")
    assert "k1" not in repr(s)  # keys are secrets
    get_settings.cache_clear()
    try:
        assert get_settings() is get_settings() and get_settings().port == 9001
    finally:
        get_settings.cache_clear()


def test_an_invalid_setting_names_the_variable(monkeypatch):
    from grader.errors import ConfigError
    from grader.settings import make_settings

    monkeypatch.setenv("GRADER_MAX_BODY_BYTES", "-5")
    with pytest.raises(ConfigError, match="GRADER_MAX_BODY_BYTES") as info:
        make_settings()
    assert info.value.field == "max_body_bytes"


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("127.1.2.3", True), ("::1", True),
                                            ("[::1]", True), ("localhost", True), ("0.0.0.0", False),
                                            ("192.168.1.5", False), ("::", False), ("example.org", False)])
def test_open_mode_only_on_loopback(host, loopback):
    from grader.errors import ConfigError
    from grader.settings import Settings, is_loopback

    assert is_loopback(host) is loopback
    settings = Settings(open=True, host=host)
    if loopback:
        settings.check_security()
    else:
        with pytest.raises(ConfigError, match="loopback"):
            settings.check_security()
