"""AWS Signature Version 4 for the one request shape the data plane sends: `POST /`, no query string, a
JSON body, headers content-type, host, x-amz-date, x-amz-target (and x-amz-security-token with temporary
credentials).

botocore's general signer spends ~200 µs per request normalising arbitrary headers through
`email.message`; for this fixed shape the canonical request is a format string. The derived signing key
is cached per (secret, day), and the timestamp per second. tests/test_dataplane.py checks the result
equals botocore's SigV4Auth byte for byte, for permanent and temporary credentials."""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import datetime

CONTENT_TYPE = "application/x-amz-json-1.0"
ALGORITHM = "AWS4-HMAC-SHA256"


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.digest(key, message.encode(), "sha256")  # OpenSSL's one-shot HMAC: no Python object


class Signer:
    def __init__(self, region: str, service: str = "dynamodb") -> None:
        self.region = region
        self.service = service
        self._key: tuple[str, str, bytes] | None = None  # (secret, day, signing key)
        self._stamp: tuple[int, str] = (-1, "")  # (epoch second, its x-amz-date)

    def stamp(self, now: datetime | None) -> str:
        """The x-amz-date of `now` (default: the current second, formatted once per second)."""
        if now is not None:
            return now.strftime("%Y%m%dT%H%M%SZ")
        second = int(time.time())
        cached = self._stamp
        if cached[0] != second:
            cached = self._stamp = (second, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second)))
        return cached[1]

    def signing_key(self, secret: str, day: str) -> bytes:
        cached = self._key
        if cached is not None and cached[0] == secret and cached[1] == day:
            return cached[2]
        key = _hmac(_hmac(_hmac(_hmac(("AWS4" + secret).encode(), day), self.region), self.service), "aws4_request")
        self._key = (secret, day, key)
        return key

    def headers(
        self,
        host: str,
        target: str,
        body: bytes,
        access_key: str,
        secret_key: str,
        token: str | None = None,
        now: datetime | None = None,
    ) -> dict[str, str]:
        """Every header of the request, Authorization included."""
        stamp = self.stamp(now)
        day = stamp[:8]
        if token:
            signed = "content-type;host;x-amz-date;x-amz-security-token;x-amz-target"
            canonical_headers = (
                f"content-type:{CONTENT_TYPE}\nhost:{host}\nx-amz-date:{stamp}\n"
                f"x-amz-security-token:{token}\nx-amz-target:{target}\n"
            )
        else:
            signed = "content-type;host;x-amz-date;x-amz-target"
            canonical_headers = f"content-type:{CONTENT_TYPE}\nhost:{host}\nx-amz-date:{stamp}\nx-amz-target:{target}\n"
        canonical_request = f"POST\n/\n\n{canonical_headers}\n{signed}\n{hashlib.sha256(body).hexdigest()}"
        scope = f"{day}/{self.region}/{self.service}/aws4_request"
        string_to_sign = f"{ALGORITHM}\n{stamp}\n{scope}\n{hashlib.sha256(canonical_request.encode()).hexdigest()}"
        signature = hmac.digest(self.signing_key(secret_key, day), string_to_sign.encode(), "sha256").hex()
        headers = {
            "Content-Type": CONTENT_TYPE,
            "Host": host,
            "X-Amz-Date": stamp,
            "X-Amz-Target": target,
            "Authorization": f"{ALGORITHM} Credential={access_key}/{scope}, SignedHeaders={signed}, Signature={signature}",
        }
        if token:
            headers["X-Amz-Security-Token"] = token
        return headers
