"""The [upstream] section in the Core Client's config: read from TOML (outbox relative to the file),
from EVN_CC_UPSTREAM, written back by settings_to_toml; absent, the Core Client is standalone."""

from __future__ import annotations

from pathlib import Path

import pytest

from core_client.config import ConfigError, Settings, load_settings, settings_to_toml
from core_client.proxy.config import OfflineIdTags
from core_client.proxy.relay import proxy_for

CONFIG = """
database = "cc.sqlite"
[charge_points]
"CP-1" = "pw"
[upstream]
url = "wss://csms.example.com/ocpp/{cp_id}"
outbox = "state/outbox.sqlite"
offline_id_tags = "reject"
[upstream.credentials]
"CP-1" = "at the CSMS"
"""


def test_upstream_section_read_from_the_file_and_written_back(tmp_path: Path) -> None:
    path = tmp_path / "core-client.toml"
    path.write_text(CONFIG)
    settings = load_settings(path, environ={})
    upstream = settings.upstream
    assert upstream is not None and upstream.outbox == tmp_path / "state" / "outbox.sqlite"
    assert upstream.offline_id_tags is OfflineIdTags.REJECT and upstream.password_for("CP-1", None) == "at the CSMS"
    again = tmp_path / "again.toml"
    again.write_text(settings_to_toml(settings))
    read_back = load_settings(again, environ={})
    assert (read_back.upstream, read_back.charge_points) == (settings.upstream, settings.charge_points)


def test_upstream_from_the_environment_and_bad_values_are_one_line_errors(tmp_path: Path) -> None:
    settings = load_settings(None, environ={"EVN_CC_UPSTREAM": '{"url": "ws://127.0.0.1:9/{cp_id}"}'})
    assert settings.upstream is not None and settings.upstream.url_for("CP 1") == "ws://127.0.0.1:9/CP%201"
    with pytest.raises(ConfigError, match="EVN_CC_UPSTREAM must be a JSON object"):
        load_settings(None, environ={"EVN_CC_UPSTREAM": "ws://x"})
    with pytest.raises(ConfigError, match="the CSMS's URL starts with ws"):
        load_settings(None, environ={"EVN_CC_UPSTREAM": '{"url": "http://x"}'})


def test_without_upstream_the_core_client_is_standalone() -> None:
    assert Settings().upstream is None and proxy_for(Settings()) is None


def test_the_tags_a_signing_meter_signs_are_chain_tags_in_proxy_mode() -> None:
    from core_client.proxy.policy import Source, source
    from ev_network.ocmf import session_id_tag

    signed = session_id_tag(0x70997970C51812DC3A010C7D01B50E0D17DC79C8 << 96 | 1)
    assert source("StartTransaction", {"idTag": signed}) is Source.MERGED  # the chain's idTagInfo
    assert source("Authorize", {"idTag": signed}) is Source.CORE
    assert (
        source("Authorize", {"idTag": "EV12"}) is Source.CSMS
        and source("Authorize", {"idTag": "CARD-1"}) is Source.CSMS
    )
