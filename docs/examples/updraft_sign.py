"""Signs a request to an updraft server with HMAC-SHA256 (docs/server.md)."""
import hashlib, hmac, secrets, sys, time, urllib.error, urllib.parse, urllib.request

def signed_request(method, url, key_id, secret, body=b""):
    parts = urllib.parse.urlsplit(url)
    query = "&".join(sorted(p for p in parts.query.split("&") if p))
    timestamp, nonce = str(int(time.time())), secrets.token_hex(16)
    canonical = "\n".join(["UPDRAFT-HMAC-SHA256", method, parts.path or "/", query,
                           timestamp, nonce, hashlib.sha256(body).hexdigest()])
    signature = hmac.new(secret.encode(), canonical.encode(), hashlib.sha256).hexdigest()
    headers = {"X-Updraft-Key-Id": key_id, "X-Updraft-Timestamp": timestamp,
               "X-Updraft-Nonce": nonce, "X-Updraft-Signature": signature,
               "Content-Type": "application/json"}
    return urllib.request.Request(url, data=body or None, method=method, headers=headers)

if __name__ == "__main__":  # updraft_sign.py METHOD URL KEY_ID SECRET_FILE [BODY]
    method, url, key_id, secret_file = sys.argv[1:5]
    body = sys.argv[5].encode() if len(sys.argv) > 5 else b""
    secret = open(secret_file).read().strip()
    try:
        with urllib.request.urlopen(signed_request(method, url, key_id, secret, body)) as answer:
            print(answer.status, answer.read().decode())
    except urllib.error.HTTPError as error:
        print(error.code, error.read().decode())
