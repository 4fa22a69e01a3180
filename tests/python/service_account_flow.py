"""Google's own auth library against longrun: a service-account key file made by
`longrun service-accounts create` refreshes at the server's /token, then calls the API.

Usage: service_account_flow.py BASE KEY_FILE (allowed|refused)
"""

import sys

import google.auth.exceptions
import google.auth.transport.requests
from google.oauth2 import service_account

EE = "https://www.googleapis.com/auth/earthengine"


def main() -> None:
    base, key_file, expect = sys.argv[1], sys.argv[2], sys.argv[3]
    credentials = service_account.Credentials.from_service_account_file(key_file, scopes=[EE])
    session = google.auth.transport.requests.AuthorizedSession(credentials)
    if expect == "refused":
        try:
            session.get(f"{base}/v1/projects/p/operations")
        except google.auth.exceptions.RefreshError as e:
            print(f"refused: {e}")
            return
        sys.exit("a disabled account still got a token")

    submitted = session.post(
        f"{base}/v1/projects/p/operations:submit", json={"type": "T", "operationId": "py"}
    )
    assert submitted.status_code == 200, submitted.text
    assert credentials.token and credentials.valid
    got = session.get(f"{base}/v1/projects/p/operations/py")
    assert got.status_code == 200 and got.json()["metadata"]["state"] == "PENDING", got.text
    listed = session.get(f"{base}/v1/projects/p/operations")
    assert [op["name"] for op in listed.json()["operations"]] == ["projects/p/operations/py"]
    cancelled = session.post(f"{base}/v1/projects/p/operations/py:cancel", json={})
    assert cancelled.status_code == 200 and cancelled.json() == {}, cancelled.text
    done = session.get(f"{base}/v1/projects/p/operations/py").json()
    assert done["done"] and done["error"]["code"] == 1, done
    principal = done["error"]["details"][0]["metadata"]["principal"]
    # Another project: no permission there, whether or not the operation exists.
    other = session.get(f"{base}/v1/projects/q/operations/py")
    assert other.status_code == 403, other.text
    print(f"ok {principal}")


if __name__ == "__main__":
    main()
