"""OCPP 1.6J: the websocket server, one link per charge point, the adapter over `ocpp`, the wire format."""
