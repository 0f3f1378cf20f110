"""The CPO dashboard (:func:`create_dashboard_app`) and what it reads (:class:`DashboardSource`)."""

from core_client.web.dashboard import create_dashboard_app
from core_client.web.dashboard_source import DashboardSource, ServiceDashboardSource

__all__ = ["DashboardSource", "ServiceDashboardSource", "create_dashboard_app"]
