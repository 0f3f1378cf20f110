"""The OCPI layer's errors: one base, :class:`OcpiError` (a :class:`~core_client.errors.CoreClientError`,
so the ``core-client`` CLI prints its one-line message), and a few kinds the callers tell apart.

Messages never contain a credentials token."""

from __future__ import annotations

from core_client.errors import CoreClientError


class OcpiError(CoreClientError):
    """Base of everything the OCPI layer raises: one clear line for the operator."""


class OcpiUnreachable(OcpiError):
    """The peer did not answer (connection refused, reset, timed out) within the request's time budget."""


class OcpiRejected(OcpiError):
    """The peer answered, but refused: an HTTP error, or an OCPI status code outside 1xxx."""

    def __init__(self, message: str, *, http_status: int, status_code: int | None = None) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.status_code = status_code


class OcpiUnauthorized(OcpiRejected):
    """The peer answered 401: our credentials token is unknown to it (revoked, or never registered)."""


class OcpiProtocolError(OcpiError):
    """The peer's answer is not OCPI 2.2.1 (no envelope, an invalid object, a link to another host)."""


class NotRegistered(OcpiError):
    """No credentials exchanged with the CSMS yet (run ``core-client ocpi register``)."""


class TariffNotExpressible(OcpiError):
    """An OCPI tariff the chain's tariff (fee + per kWh + per hour) cannot express exactly; the message
    names the part."""
