"""The proposed ``[upstream]`` settings: the CSMS's URL per charge point, credentials, bad values refused."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core_client.proxy.config import OfflineIdTags, UpstreamSettings


def test_the_url_names_the_charge_point_by_template_or_as_last_segment():
    assert UpstreamSettings(url="wss://csms/ocpp/{cp_id}/ws").url_for("CP 1/a") == "wss://csms/ocpp/CP%201%2Fa/ws"
    assert UpstreamSettings(url="ws://csms:8180/steve/websocket/CentralSystemService/").url_for("CP-1") == (
        "ws://csms:8180/steve/websocket/CentralSystemService/CP-1"
    )


def test_configured_credentials_win_over_pass_through_and_neither_means_none():
    settings = UpstreamSettings(url="ws://csms", credentials={"CP-1": "at-csms"}, pass_through=True)
    assert settings.password_for("CP-1", "own") == "at-csms"
    assert settings.password_for("CP-2", "own") == "own"
    assert UpstreamSettings(url="ws://csms").password_for("CP-2", "own") is None


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"url": "http://csms"}, "ws:// or wss://"),
        ({"url": "ws://csms", "reconnect_min_s": 5, "reconnect_max_s": 1}, "reconnect_max_s"),
        ({"url": "ws://csms", "offline_id_tags": "maybe"}, "offline_id_tags"),
        ({"url": "ws://csms", "response_timeout_s": 0}, "response_timeout_s"),
        ({"url": "ws://csms", "typo": 1}, "typo"),
    ],
)
def test_bad_settings_are_refused_with_the_field_named(values, problem):
    with pytest.raises(ValidationError, match=problem):
        UpstreamSettings.model_validate(values)


def test_offline_tags_default_to_accept_like_a_charge_points_offline_rule():
    assert UpstreamSettings(url="ws://csms").offline_id_tags is OfflineIdTags.ACCEPT
