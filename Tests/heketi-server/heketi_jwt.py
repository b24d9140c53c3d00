"""JWT verification the way Heketi does it -- TEST SUPPORT ONLY.

Part of the Heketi-compatible test server in this directory; it is not product
code and is never shipped. It reproduces the observable behaviour recorded in
shared/reference/heketi-api.md: which requests are refused, with which status
and which message, so that a client tested against this server behaves the same
against a real Heketi.

Only the verifier lives here. Tests mint their own tokens with independent code
so that a bug here cannot hide a bug in the client (or vice versa).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

# Heketi allows a token issued up to this many seconds "in the future" (clock skew).
IAT_LEEWAY_SECONDS = 120

_HMAC_ALGS = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
# Algorithms the Go JWT library knows; any other name is "unavailable".
_KNOWN_NON_HMAC_ALGS = {
    "RS256", "RS384", "RS512", "ES256", "ES384", "ES512",
    "PS256", "PS384", "PS512", "EdDSA", "none",
}
_INT64_MAX = 2**63 - 1


@dataclass
class AuthFailure(Exception):
    """A refused request: HTTP status and the body text Heketi sends."""

    status: int
    message: str


def qsh(method: str, path: str) -> str:
    """Query-string hash: lowercase hex SHA-256 of ``METHOD&PATH``."""
    return hashlib.sha256(f"{method.upper()}&{path}".encode()).hexdigest()


def go_duration(seconds: int) -> str:
    """Format whole seconds like Go's time.Duration.String()."""
    if seconds == 0:
        return "0s"
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{sign}{h}h{m}m{s}s"
    if m:
        return f"{sign}{m}m{s}s"
    return f"{sign}{s}s"


def _b64decode_segment(segment: str) -> bytes:
    # The Go library pads the segment and uses the URL alphabet strictly.
    padded = segment + "=" * (-len(segment) % 4)
    for i, ch in enumerate(segment):
        if not (ch.isascii() and (ch.isalnum() or ch in "-_")):
            raise ValueError(f"illegal base64 data at input byte {i}")
    try:
        return base64.urlsafe_b64decode(padded)
    except (binascii.Error, ValueError):
        raise ValueError(f"illegal base64 data at input byte {len(segment)}") from None


def _claim_int(claims: dict, name: str) -> int:
    value = claims.get(name)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not -_INT64_MAX - 1 <= value <= _INT64_MAX:
        kind = "number" if isinstance(value, (int, float)) and not isinstance(value, bool) else type(value).__name__
        kind = {"str": "string", "bool": "bool", "list": "array", "dict": "object"}.get(kind, kind)
        raise ValueError(f"json: cannot unmarshal {kind} into Go struct field HeketiJwtClaims.{name} of type int64")
    return value


def _claim_str(claims: dict, name: str) -> str:
    value = claims.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"json: cannot unmarshal value into Go struct field HeketiJwtClaims.{name} of type string")
    return value


def authenticate(authorization: str | None, method: str, path: str, admin_key: bytes, user_key: bytes,
                 now: float | None = None) -> str:
    """Check one request's Authorization header; return the role ('admin' or 'user').

    Raises AuthFailure with Heketi's status and message when the request is refused.
    ``path`` is the URL path only (no query string), as Go's ``r.URL.Path``.
    """
    if not authorization:
        raise AuthFailure(401, "Required authorization token not found")
    parts = authorization.split()
    if len(parts) != 2 or parts[0].lower() != "bearer":
        raise AuthFailure(400, "Authorization header format must be Bearer {token}")
    token = parts[1]
    now_s = int(time.time() if now is None else now)

    def invalid(reason: str) -> AuthFailure:
        msg = f"Invalid JWT token: {reason}"
        if reason == "signature is invalid":
            msg += " (client and server secrets may not match)"
        if "used before issued" in reason:
            msg += " (client and server clocks may differ)"
        return AuthFailure(401, msg)

    segments = token.split(".")
    if len(segments) != 3:
        raise invalid("token contains an invalid number of segments")
    try:
        header = json.loads(_b64decode_segment(segments[0]))
        claims = json.loads(_b64decode_segment(segments[1]))
    except ValueError as err:  # includes JSONDecodeError and base64 errors
        raise invalid(str(err)) from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise invalid("json: cannot unmarshal into Go value")
    alg = header.get("alg")
    alg_name = alg if isinstance(alg, str) else ""
    if alg_name not in _HMAC_ALGS and alg_name not in _KNOWN_NON_HMAC_ALGS:
        raise invalid("signing method (alg) is unavailable.")
    try:
        iss = _claim_str(claims, "iss")
        exp = _claim_int(claims, "exp")
        iat = _claim_int(claims, "iat")
        nbf = _claim_int(claims, "nbf")
        token_qsh = _claim_str(claims, "qsh")
    except ValueError as err:
        raise invalid(str(err)) from None

    # Key lookup ("keyfunc"): only HMAC, and the issuer picks the key.
    if alg_name not in _HMAC_ALGS:
        raise invalid(f"Unexpected signing method: {alg_name}")
    if iss == "":
        raise invalid("Token missing iss claim")
    if iss == "admin":
        key = admin_key
    elif iss == "user":
        key = user_key
    else:
        raise invalid("Unknown user")

    # Claim validation; like the Go library the last failing check names the error.
    reason = None
    if exp == 0 or now_s > exp:
        reason = f"Token is expired by {go_duration(now_s - exp)}"
    if now_s < iat - IAT_LEEWAY_SECONDS:
        reason = "Token used before issued"
    if nbf != 0 and now_s < nbf:
        reason = "token is not valid yet"

    # Signature check runs after claims and, if it fails, its error wins.
    try:
        signature = _b64decode_segment(segments[2])
    except ValueError as err:
        raise invalid(str(err)) from None
    signing_input = f"{segments[0]}.{segments[1]}".encode()
    expected = hmac.new(key, signing_input, _HMAC_ALGS[alg_name]).digest()
    if not hmac.compare_digest(expected, signature):
        reason = "signature is invalid"
    if reason is not None:
        raise invalid(reason)

    if token_qsh != qsh(method, path):
        raise AuthFailure(401, "Invalid qsh claim in token")
    if iss == "user" and path != "/volumes":
        raise AuthFailure(401, "Administrator access required")
    return iss
