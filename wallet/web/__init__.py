"""``ev-wallet web``: the driver's EV Wallet in a browser (:func:`create_app`)."""

from wallet.web.app import create_app

__all__ = ["create_app"]
