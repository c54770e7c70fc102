"""Run by `tests/api/test_ngsi_ld.py` with the interpreter of `.venv-ngsi` (made by `make test`): the
`ngsildclient` library, as a FIWARE user would run it, against our NGSI-LD API. It has its own
environment because it pins an old httpx. Prints one JSON document of what it saw.

Usage: python ngsi_client_check.py PORT API_KEY
"""

from __future__ import annotations

import json
import sys

from ngsildclient import Client
from requests.auth import AuthBase


class ApiKey(AuthBase):
    def __init__(self, key: str) -> None:
        self.key = key

    def __call__(self, request):  # type: ignore[no-untyped-def]
        request.headers["X-API-Key"] = self.key
        return request


def main(port: int, key: str) -> None:
    # The client refuses to start unless `GET /entities?type=None&limit=0&count=true` answers 2xx.
    client = Client("127.0.0.1", port, custom_auth=ApiKey(key), verbose=False)
    seen = {
        "connected": client.is_connected(),
        "streetlights": client.count(type="Streetlight"),
        "lit_low": client.count(type="Streetlight", q='powerState=="low"'),
        "groups": [e.id for e in client.query(type="StreetlightGroup", limit=1)],
        "one": client.get("urn:ngsi-ld:Streetlight:gw1-001", asdict=True),
        "unknown_type": client.count(type="ParkingSpot"),
    }
    client.close()
    print(json.dumps(seen))


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
