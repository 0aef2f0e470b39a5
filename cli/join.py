"""``desired join``: a host's etcd credential, asked of the API and kept for its hostd.

Owns: asking ``POST /apis/v1/hosts/<host>/credentials`` with an admin's token,
writing the answer as a credential directory (``state.etcd_tls``: every file
0600 in a 0700 directory) and saying how hostd runs with it.

Must never: print the password or key, or leave a half-written directory.
"""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

from state.errors import DesiredError
from state.private_files import write_private


def join(api_url: str, token: str, host: str, into: Path) -> str:
    """Asks for ``host``'s credential and keeps it in ``into``; returns what to run."""
    url = f"{api_url.rstrip('/')}/apis/v1/hosts/{quote(host, safe='')}/credentials"
    request = urllib.request.Request(
        url, method="POST", data=b"", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            answer = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        body = exc.read().decode(errors="replace")
        try:
            said = json.loads(body).get("message", body)
        except ValueError:
            said = body
        raise DesiredError(f"the API refused the credential ({exc.code}): {said}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise DesiredError(f"cannot ask {api_url} for a credential: {exc}") from None
    etcd = answer["etcd"]
    part = into.with_name(into.name + ".part")
    shutil.rmtree(part, ignore_errors=True)
    for name, text in (
        ("ca.pem", etcd["ca"]),
        ("cert.pem", etcd["cert"]),
        ("key.pem", etcd["key"]),
        ("user", etcd["user"]),
        ("password", etcd["password"]),
    ):
        write_private(part / name, text.encode())
    shutil.rmtree(into, ignore_errors=True)
    part.replace(into)
    endpoints = ",".join(etcd["endpoints"])
    return (
        f"DESIRED_ETCD_URL={endpoints} DESIRED_ETCD_CREDENTIALS={into} "
        f"DESIRED_HOSTD_NAME={host} desired hostd"
    )
